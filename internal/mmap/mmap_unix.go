//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos

package mmap

import (
	"os"

	"golang.org/x/sys/unix"
)

// Range maps [off, off+n) of f read-only and shared; release unmaps it.
// With readAhead the kernel is asked to start reading all of it at once
// (a file not yet in the page cache is then read in large requests; only
// advice, so its failure is of no consequence).
func Range(f *os.File, off int64, n int, readAhead bool) (data []byte, release func(), err error) {
	base := off &^ (PageSize - 1)
	m, err := unix.Mmap(int(f.Fd()), base, int(off-base)+n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	if readAhead {
		_ = unix.Madvise(m, unix.MADV_WILLNEED)
	}
	return m[off-base:], func() { unix.Munmap(m) }, nil
}

// DropPages unmaps the resident pages of data, a mapping from its start
// (Range at a page boundary), keeping the mapping: their bytes stay in the
// page cache, and a page read again is mapped again. Only advice.
func DropPages(data []byte) { _ = unix.Madvise(data, unix.MADV_DONTNEED) }
