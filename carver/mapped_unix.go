//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos

package carver

import (
	"os"

	"golang.org/x/sys/unix"
)

var pageSize = int64(unix.Getpagesize())

// mapRange maps [off, off+n) of f read-only into memory, so that the scan
// reads the page cache in place instead of copying every byte into a
// buffer first: the copy (pread) was half the CPU a carve without hashes
// spent. release unmaps it. A read error of the file (a bad sector, or an
// image shrunk since it was measured) then surfaces as a fault on access,
// which the scan turns into an error (faultError).
func mapRange(f *os.File, off int64, n int) (data []byte, release func(), err error) {
	base := off &^ (pageSize - 1)
	m, err := unix.Mmap(int(f.Fd()), base, int(off-base)+n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	// Start reading the whole chunk ahead of the scan (an image not yet
	// in the page cache is read in large requests); only advice, so its
	// error is of no consequence.
	_ = unix.Madvise(m, unix.MADV_WILLNEED)
	return m[off-base:], func() { unix.Munmap(m) }, nil
}
