//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos)

package carver

import (
	"errors"
	"os"
)

// pageSize bounds a fault address to a mapping's pages (faultOffset):
// no mapping here, no fault.
const pageSize = 4096

// mapRange is not available here: every chunk is read with ReadAt.
func mapRange(f *os.File, off int64, n int) (data []byte, release func(), err error) {
	return nil, nil, errors.ErrUnsupported
}
