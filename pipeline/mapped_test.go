//go:build unix

package pipeline

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"vmdkcarve/internal/tooltest"
)

func mappedFile(t *testing.T, data []byte) (*os.File, *mappedImage) {
	t.Helper()
	f := tooltest.TempFile(t, data)
	m := mapImage(f, int64(len(data)))
	if m == nil {
		t.Fatal("mapImage mapped nothing")
	}
	t.Cleanup(func() { m.Close() })
	return f, m
}

// TestMappedImageReadAt: ReadAt of a mapped image reads what os.File's
// does, short reads and io.EOF at the end included, also past the point
// where the mapping's pages are dropped.
func TestMappedImageReadAt(t *testing.T) {
	data := noise(3<<20+777, 41)
	f, m := mappedFile(t, data)
	for _, tc := range []struct{ off, n int64 }{
		{0, 4096}, {12345, 70000}, {int64(len(data)) - 100, 100}, {int64(len(data)) - 100, 4096},
		{int64(len(data)), 10}, {int64(len(data)) + 5, 10}, {0, 0},
	} {
		want := make([]byte, tc.n)
		wn, werr := f.ReadAt(want, tc.off)
		got := make([]byte, tc.n)
		gn, gerr := m.ReadAt(got, tc.off)
		if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(got[:gn], want[:wn]) {
			t.Errorf("ReadAt(%d bytes at %d): %d, %v; os.File: %d, %v", tc.n, tc.off, gn, gerr, wn, werr)
		}
	}
	if _, err := m.ReadAt(make([]byte, 1), -1); err == nil {
		t.Errorf("ReadAt at a negative offset: no error")
	}
	// Read it all, many times over dropPagesEvery: still the same bytes.
	buf := make([]byte, 1<<20)
	for pass := int64(0); pass*int64(len(data)) < 2*dropPagesEvery; pass++ {
		for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
			n, _ := m.ReadAt(buf, off)
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Fatalf("pass %d: bytes at %d differ", pass, off)
			}
		}
	}
}

// TestMappedImageShrunk: an image that shrinks once mapped faults past its
// new end; view and ReadAt return an error instead of ending the process,
// and a fault that is not the mapping's is not taken for a read error.
func TestMappedImageShrunk(t *testing.T) {
	data := noise(1<<20, 42)
	f, m := mappedFile(t, data)
	if err := os.Truncate(f.Name(), 256<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Errorf("ReadAt before the new end: %v", err)
	}
	if _, err := m.ReadAt(make([]byte, 4096), 512<<10); !errors.Is(err, errMappedFault) || err == io.EOF {
		t.Errorf("ReadAt past the new end: %v, want errMappedFault", err)
	}
	var sum byte
	if err := m.view(600<<10, 4096, func(b []byte) { sum += b[100] }); !errors.Is(err, errMappedFault) {
		t.Errorf("view past the new end: %v, want errMappedFault", err)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("a nil dereference inside view was taken for a read error")
		}
	}()
	var p *byte
	m.view(0, 4096, func([]byte) { sum += *p })
}
