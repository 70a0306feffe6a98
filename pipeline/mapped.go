package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync/atomic"
	"unsafe"

	"vmdkcarve/internal/mmap"
)

// mappedImage reads a raw image through one read-only shared mapping of
// all of it, for rebuild's randomness test of blocks (Fingerprints.At),
// which reads every block of every file planning places: reading them in
// place (view) instead of copying them (pread) took a tenth off planning's
// CPU on the bench image. (Reading the grains so, to hash and write them,
// gained nothing: they are copied anyway, and the faults cost what pread
// did.) ReadAt copies from the mapping, for whoever holds only a reader.
//
// A read error under the mapping (a bad sector, an image shrunk since it
// was measured) faults on access, and view turns the fault into an error,
// as pread would return one (internal/mmap).
//
// The pages read stay mapped, and count in the process's resident set,
// though they are the page cache pread would have filled: every
// dropPagesEvery bytes read, the mapping's pages are dropped (the data
// stays in the page cache, and a page read again maps again), so that a
// batch system that limits RSS does not count the image against rebuild.
type mappedImage struct {
	data    []byte
	release func()
	read    atomic.Int64 // bytes read since the pages were last dropped
}

// dropPagesEvery is how many bytes mappedImage reads between dropping its
// pages: what it adds to rebuild's resident set at most.
const dropPagesEvery = 64 << 20

// maxMappedImage is the largest image mapped whole: a 64-bit address
// space holds 128 TiB or more, and a larger image is read with pread.
const maxMappedImage = 1 << 46

var errMappedFault = errors.New("the mapped image could not be read (a read error, or the image shrank)")

// mapImage maps f's first size bytes, or returns nil where it cannot (a
// 32-bit address space, a file or filesystem that refuses mmap, an empty
// or too large image).
func mapImage(f *os.File, size int64) *mappedImage {
	if unsafe.Sizeof(uintptr(0)) < 8 || size <= 0 || size > maxMappedImage {
		return nil
	}
	data, release, err := mmap.Range(f, 0, int(size), false)
	if err != nil {
		return nil
	}
	return &mappedImage{data: data, release: release}
}

// view calls fn with the image's bytes [off, off+n), which fn must not
// keep. A fault while fn reads them is returned as an error; fn is then
// cut short, so it must leave nothing half done that matters (a test that
// only computes its result does).
func (m *mappedImage) view(off, n int64, fn func([]byte)) (err error) {
	if off < 0 || n < 0 || off > int64(len(m.data))-n {
		return fmt.Errorf("pipeline: image bytes [%d, %d) outside the mapped %d", off, off+n, len(m.data))
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if _, ok := mmap.Fault(p, m.data); !ok {
				panic(p) // not the mapping's: a bug, which must not pass for a read error
			}
			err = fmt.Errorf("pipeline: image offset %d: %w", off, errMappedFault)
		}
	}()
	fn(m.data[off : off+n])
	if m.read.Add(n) >= dropPagesEvery {
		m.read.Store(0)
		mmap.DropPages(m.data)
	}
	return nil
}

// ReadAt reads as os.File.ReadAt does: io.EOF past the image's end.
func (m *mappedImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("pipeline: negative image offset %d", off)
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := min(int64(len(p)), int64(len(m.data))-off)
	if err := m.view(off, n, func(b []byte) { copy(p, b) }); err != nil {
		return 0, err
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// Close unmaps the image.
func (m *mappedImage) Close() error {
	m.release()
	return nil
}
