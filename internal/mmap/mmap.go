// Package mmap maps a file's bytes read-only into memory, for reading the
// page cache in place instead of copying it (pread), and tells a fault on
// such a mapping from any other. A read error under a mapping (a bad
// sector, a file shrunk since it was measured) faults on access instead of
// returning an error: a reader sets debug.SetPanicOnFault, recovers, and
// asks Fault whether the panic was the mapping's. The carve's scan maps
// its chunks; rebuild's randomness test maps the image.
//
// Why not a library: golang.org/x/exp/mmap and its like copy in ReadAt
// and leave a fault to crash the process.
package mmap

import (
	"os"
	"unsafe"
)

// PageSize is the unit a mapping starts and ends on.
var PageSize = int64(os.Getpagesize())

// Fault reports whether p, recovered from a panic, is a fault on an
// address of data, a mapping's bytes, and at which offset of data (the
// page the address lies in counts, since a mapping starts and ends on page
// boundaries). A panic that is not such a fault (a bug) must be panicked
// again, never taken for a read error.
func Fault(p any, data []byte) (int64, bool) {
	e, ok := p.(interface{ Addr() uintptr })
	if !ok || len(data) == 0 {
		return 0, false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	a := e.Addr()
	if a+uintptr(PageSize) < lo || a >= lo+uintptr(len(data))+uintptr(PageSize) {
		return 0, false
	}
	return max(int64(a)-int64(lo), 0), true
}
