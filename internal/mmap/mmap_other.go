//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos)

package mmap

import (
	"errors"
	"os"
)

// Range is not available here: callers read with ReadAt.
func Range(f *os.File, off int64, n int, readAhead bool) (data []byte, release func(), err error) {
	return nil, nil, errors.ErrUnsupported
}

// DropPages does nothing where nothing is mapped.
func DropPages([]byte) {}
