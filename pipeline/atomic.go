package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

// AtomicFile is a file that appears at its path complete or not at all
// (STYLE.md 13): it is written to a temporary file in the same directory,
// then Commit syncs it, renames it over the path and syncs the directory, so
// a crash leaves either the old file or the new one, never a torn one.
type AtomicFile struct {
	*os.File
	path string
	done bool
	// unsent counts the bytes written since writeback was last started
	// (WriteAt, Write).
	unsent int64
	// direct, when set (WriteDirect), writes the aligned writes past the
	// page cache; the others go through File.
	direct             *os.File
	memAlign, offAlign int
}

// writebackEvery is how many bytes an AtomicFile takes before it asks the
// kernel to start writing them out (startWriteback): a disk of hundreds of
// MiB then reaches the disk while the rest is computed, and Commit's sync
// waits for the last few MiB instead of all of them (on the bench image
// the syncs of the disks had cost a fifth of rebuild's wall time with the
// CPUs idle).
const writebackEvery = 16 << 20

// WriteDirect makes the file's aligned writes bypass the page cache
// (O_DIRECT), where the filesystem allows it. It is for a large file
// written once in large aligned pieces and not read back soon, a rebuilt
// disk: copying it into the page cache, and the kernel writing the cache
// out, cost a rebuild of the bench image about as much CPU as reading and
// checking every grain. Writes that are not aligned, and all of them where
// O_DIRECT is refused, still go through the page cache.
func (a *AtomicFile) WriteDirect() {
	if a.direct == nil {
		a.direct, a.memAlign, a.offAlign = openDirect(a.File)
	}
}

// WriteAt writes p at off (os.File.WriteAt), starting writeback every
// writebackEvery bytes.
func (a *AtomicFile) WriteAt(p []byte, off int64) (int, error) {
	if a.direct != nil && a.alignedForDirect(p, off) {
		n, err := a.direct.WriteAt(p, off)
		if n > 0 || err == nil || !errors.Is(err, syscall.EINVAL) {
			return n, err
		}
		// Refused for its alignment after all (a filesystem that
		// reported none): the page cache from here on.
		a.direct.Close()
		a.direct = nil
	}
	n, err := a.File.WriteAt(p, off)
	a.wrote(n)
	return n, err
}

// alignedForDirect says whether a direct write of p at off meets the
// alignment the filesystem asks of memory, offset and length.
func (a *AtomicFile) alignedForDirect(p []byte, off int64) bool {
	return len(p) > 0 && off%int64(a.offAlign) == 0 && len(p)%a.offAlign == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(p)))%uintptr(a.memAlign) == 0
}

// Write writes p (os.File.Write), starting writeback every writebackEvery
// bytes.
func (a *AtomicFile) Write(p []byte) (int, error) {
	n, err := a.File.Write(p)
	a.wrote(n)
	return n, err
}

func (a *AtomicFile) wrote(n int) {
	a.unsent += int64(n)
	if a.unsent >= writebackEvery {
		a.unsent = 0
		startWriteback(a.File)
	}
}

// CreateAtomic starts writing the file at path. Call Commit to publish it or
// Abort to discard it; Abort after Commit does nothing, so
// `defer f.Abort()` is the usual pattern.
func CreateAtomic(path string) (*AtomicFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The leading dot and the suffix keep a leftover temp file (after a
	// crash) from looking like a case file to a reader or a merge.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("pipeline: creating %s: %w", path, err)
	}
	return &AtomicFile{File: f, path: path}, nil
}

// Commit syncs the file, renames it to its final path and syncs the
// directory so that the rename itself survives a crash.
func (a *AtomicFile) Commit() error {
	if a.done {
		return fmt.Errorf("pipeline: %s: commit after commit or abort", a.path)
	}
	a.done = true
	a.closeDirect()
	tmp := a.File.Name()
	err := a.File.Sync()
	if cerr := a.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, a.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pipeline: writing %s: %w", a.path, err)
	}
	return syncDir(filepath.Dir(a.path))
}

// Abort discards the temporary file. It does nothing after Commit.
func (a *AtomicFile) Abort() error {
	if a.done {
		return nil
	}
	a.done = true
	a.closeDirect()
	a.File.Close()
	if err := os.Remove(a.File.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pipeline: discarding temp file for %s: %w", a.path, err)
	}
	return nil
}

func (a *AtomicFile) closeDirect() {
	if a.direct != nil {
		a.direct.Close()
		a.direct = nil
	}
}

// WriteFileAtomic writes data to path atomically (see AtomicFile).
func WriteFileAtomic(path string, data []byte) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("pipeline: writing %s: %w", path, err)
	}
	return f.Commit()
}

// syncDir makes a rename or create in dir durable. Some filesystems refuse
// to fsync a directory; that is not worth failing a stage for, so only the
// open error is reported.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pipeline: syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	d.Sync()
	return nil
}
