//go:build !linux

package pipeline

import "os"

// openDirect gives no direct writer where O_DIRECT does not exist: an
// AtomicFile writes through the page cache.
func openDirect(*os.File) (direct *os.File, memAlign, offAlign int) { return nil, 0, 0 }
