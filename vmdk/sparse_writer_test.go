package vmdk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vmdkcarve/internal/entropy"
	"vmdkcarve/internal/tooltest"
)

// testImage returns a raw image with zero grains, text grains and one
// random grain, and a capacity that is not a multiple of the grain size.
func testImage(sectors int) []byte {
	img := make([]byte, sectors*SectorSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for g := 0; g*65536 < len(img); g++ {
		chunk := img[g*65536 : min((g+1)*65536, len(img))]
		switch g % 5 {
		case 0, 3:
			for i := range chunk {
				chunk[i] = byte('a' + (g+i)%26)
			}
		case 1:
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
		}
	}
	return img
}

func readFrom(img []byte) func(uint64, []byte) (bool, error) {
	return func(g uint64, buf []byte) (bool, error) {
		copy(buf, img[g*65536:])
		return true, nil
	}
}

func TestWriteMonolithicSparseInterop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sectors   int
		redundant bool
	}{
		{"small-redundant", 131069, true},
		{"small-plain", 4096, false},
		{"two-tables", 65536*2 + 128*3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := testImage(tc.sectors)
			raw := filepath.Join(dir, "src.raw")
			if err := os.WriteFile(raw, img, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.vmdk")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			size, err := WriteMonolithicSparse(f, SparseWriterOptions{Capacity: uint64(tc.sectors), FileName: "out.vmdk", NoRedundant: !tc.redundant}, readFrom(img))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(out)
			if int64(len(data)) != size {
				t.Fatalf("file is %d bytes, writer said %d", len(data), size)
			}
			h, gtes, err := GrainMap(bytes.NewReader(data), size)
			if err != nil {
				t.Fatal(err)
			}
			if h.Capacity != uint64(tc.sectors) || h.HasRedundantGD() != tc.redundant {
				t.Fatalf("header %+v", h)
			}
			for g, s := range gtes {
				want := img[g*65536 : min((g+1)*65536, len(img))]
				if s == 0 {
					if !entropy.Zero(want) {
						t.Fatalf("grain %d unallocated but not zero", g)
					}
					continue
				}
				if got := data[int(s)*512:][:len(want)]; !bytes.Equal(got, want) {
					t.Fatalf("grain %d differs", g)
				}
			}
			tooltest.Compare(t, out, raw)
			tooltest.VMDKInfo(t, out)
		})
	}
}

// memFile is an io.WriterAt in memory that records whether every write
// continued where the one before ended.
type memFile struct {
	data       []byte
	end        int64
	sequential bool
	writes     int
}

func newMemFile() *memFile { return &memFile{sequential: true} }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off != m.end {
		m.sequential = false
	}
	if need := off + int64(len(p)); need > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, need-int64(len(m.data)))...)
	}
	copy(m.data[off:], p)
	m.end = off + int64(len(p))
	m.writes++
	return len(p), nil
}

// TestWriteAllocatedAhead: told the allocation up front, the writer writes
// the file front to back, and the same bytes as without it; told wrongly,
// it still writes the same bytes (only not in one pass).
func TestWriteAllocatedAhead(t *testing.T) {
	const sectors = 65536*2 + 128*3 + 5 // two tables, a short last grain
	img := testImage(sectors)
	grainOf := func(g uint64) []byte { return img[g*65536 : min((g+1)*65536, uint64(len(img)))] }
	// Grains 7 and 12 are absent, whatever their bytes.
	read := func(g uint64, buf []byte) (bool, error) {
		if g == 7 || g == 12 {
			return false, nil
		}
		copy(buf, grainOf(g))
		return true, nil
	}
	truth := func(g uint64) bool { return g != 7 && g != 12 && !entropy.Zero(grainOf(g)) }
	for _, order := range [][]uint64{nil, reversed(uint64((sectors + 127) / 128))} {
		opts := SparseWriterOptions{Capacity: sectors, FileName: "out.vmdk", Order: order}
		want := newMemFile()
		wantSize, err := WriteMonolithicSparse(want, opts, read)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name       string
			allocated  func(uint64) bool
			sequential bool
		}{
			{"right", truth, true},
			{"an absent grain said allocated", func(g uint64) bool { return truth(g) || g == 12 }, false},
			{"a grain said absent", func(g uint64) bool { return truth(g) && g != 300 }, false},
			{"all said absent", func(uint64) bool { return false }, false},
		} {
			got := newMemFile()
			o := opts
			o.Allocated = tc.allocated
			size, err := WriteMonolithicSparse(got, o, read)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if size != wantSize || !bytes.Equal(got.data, want.data) {
				t.Errorf("order %v, %s: %d bytes, differ from the %d written without Allocated", order != nil, tc.name, size, wantSize)
			}
			if got.sequential != tc.sequential || int64(len(got.data)) != size {
				t.Errorf("order %v, %s: sequential %v, want %v (%d writes)", order != nil, tc.name, got.sequential, tc.sequential, got.writes)
			}
		}
	}
}

// TestWriteReadFills: told that read fills its buffer, the writer hands it
// the buffer as the last grain left it, and writes what it writes with
// zeroed buffers, the short last grain's padding zero; a read that returns
// false after scribbling on the buffer leaves nothing of it.
func TestWriteReadFills(t *testing.T) {
	const sectors = 65536*2 + 128*2 + 5 // two tables, a short last grain of random bytes
	img := testImage(sectors)
	last := uint64(sectors / 128)
	grainOf := func(g uint64) []byte { return img[g*65536 : min((g+1)*65536, uint64(len(img)))] }
	// Every seventh grain is absent, and so is the one before the last.
	absent := func(g uint64) bool { return g%7 == 3 || g == last-1 }
	plain := func(g uint64, buf []byte) (bool, error) {
		if absent(g) {
			return false, nil
		}
		copy(buf, grainOf(g))
		return true, nil
	}
	opts := SparseWriterOptions{Capacity: sectors, FileName: "out.vmdk"}
	want := newMemFile()
	if _, err := WriteMonolithicSparse(want, opts, plain); err != nil {
		t.Fatal(err)
	}
	dirty := 0
	fills := func(g uint64, buf []byte) (bool, error) {
		if !entropy.Zero(buf) {
			dirty++
		}
		if absent(g) {
			// Scribbled on, then given up: the last grain, short,
			// comes next into the same buffer.
			for i := range buf {
				buf[i] = 0xff
			}
			return false, nil
		}
		copy(buf, grainOf(g))
		return true, nil
	}
	opts.ReadFills = true
	got := newMemFile()
	if _, err := WriteMonolithicSparse(got, opts, fills); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.data, want.data) {
		t.Errorf("with ReadFills the file differs from the one written with zeroed buffers (the last grain's padding included)")
	}
	if dirty == 0 {
		t.Errorf("every buffer was zeroed: ReadFills changed nothing")
	}
	// And qemu-img reads it as the image with the absent grains zero.
	raw := bytes.Clone(img)
	for g := uint64(0); g <= last; g++ {
		if absent(g) {
			clear(raw[g*65536 : min((g+1)*65536, uint64(len(raw)))])
		}
	}
	dir := t.TempDir()
	out, rawPath := filepath.Join(dir, "out.vmdk"), filepath.Join(dir, "want.raw")
	if err := os.WriteFile(out, got.data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Compare(t, out, rawPath)
}

// slowFile is a WriterAt whose writes take a while, and which notes a
// write that overlaps another in time or comes after the writer returned.
type slowFile struct {
	memFile
	active   atomic.Int32
	returned atomic.Bool
	overlap  atomic.Bool
	late     atomic.Bool
}

func (f *slowFile) WriteAt(p []byte, off int64) (int, error) {
	if f.active.Add(1) > 1 {
		f.overlap.Store(true)
	}
	defer f.active.Add(-1)
	time.Sleep(2 * time.Millisecond)
	if f.returned.Load() {
		f.late.Store(true)
	}
	return f.memFile.WriteAt(p, off)
}

// TestWriteBatchesInBackground: the batches written while the next one
// fills reach w one at a time, in order, and none is still being written
// once WriteMonolithicSparse has returned, whether it ends or a read fails.
func TestWriteBatchesInBackground(t *testing.T) {
	const sectors = 65536 * 3 // 3 tables, 24 batches of 64 grains
	img := testImage(sectors)
	want := newMemFile()
	if _, err := WriteMonolithicSparse(want, SparseWriterOptions{Capacity: sectors, FileName: "out.vmdk"}, readFrom(img)); err != nil {
		t.Fatal(err)
	}
	readErr := errors.New("unreadable")
	for _, failAt := range []uint64{0, 100, 1000, 1535} {
		for _, ahead := range []bool{false, true} {
			f := &slowFile{memFile: memFile{sequential: true}}
			read := func(g uint64, buf []byte) (bool, error) {
				if failAt > 0 && g == failAt {
					return false, readErr
				}
				return readFrom(img)(g, buf)
			}
			opts := SparseWriterOptions{Capacity: sectors, FileName: "out.vmdk"}
			if ahead {
				opts.Allocated = func(g uint64) bool { return !entropy.Zero(img[g*65536 : (g+1)*65536]) }
			}
			_, err := WriteMonolithicSparse(f, opts, read)
			f.returned.Store(true)
			time.Sleep(5 * time.Millisecond)
			if f.overlap.Load() || f.late.Load() {
				t.Errorf("fail at %d, ahead %v: writes overlapping %v, after return %v", failAt, ahead, f.overlap.Load(), f.late.Load())
			}
			switch {
			case failAt > 0 && !errors.Is(err, readErr):
				t.Errorf("fail at %d, ahead %v: %v, want the read error", failAt, ahead, err)
			case failAt == 0 && (err != nil || !bytes.Equal(f.data, want.data)):
				t.Errorf("ahead %v: %v, or bytes differ from a plain write", ahead, err)
			case ahead && failAt == 0 && !f.sequential:
				t.Errorf("ahead: not written front to back")
			}
		}
	}
}

func reversed(n uint64) []uint64 {
	o := make([]uint64, n)
	for i := range o {
		o[i] = n - 1 - uint64(i)
	}
	return o
}

// BenchmarkWriteMonolithicSparse writes a 256 MiB disk, a fifth of its
// grains zero, to a file, with its allocation known ahead as a rebuild
// does.
func BenchmarkWriteMonolithicSparse(b *testing.B) {
	const sectors = 256 << 11
	img := testImage(sectors)
	grainOf := func(g uint64) []byte { return img[g*65536 : min((g+1)*65536, uint64(len(img)))] }
	read := func(g uint64, buf []byte) (bool, error) { copy(buf, grainOf(g)); return true, nil }
	allocated := func(g uint64) bool { return !entropy.Zero(grainOf(g)) }
	path := filepath.Join(b.TempDir(), "out.vmdk")
	b.SetBytes(sectors * SectorSize)
	for b.Loop() {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := WriteMonolithicSparse(f, SparseWriterOptions{Capacity: sectors, FileName: "out.vmdk", Allocated: allocated}, read); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkDecodeGrain inflates a stream grain record of 64 KiB, half
// text (words drawn at random) and half zeros, as carve does for every
// grain marker it finds (checked) and rebuild for every stream grain it
// writes (fast, and unchecked when that gives other bytes).
func BenchmarkDecodeGrain(b *testing.B) {
	data := make([]byte, 0, 65536)
	words := strings.Fields("the grain table of a sector extent in the guest volume holds an inode block for each file")
	rng := rand.New(rand.NewPCG(3, 4))
	for len(data) < 32<<10 {
		data = append(data, words[rng.IntN(len(words))]...)
		data = append(data, " \n"[rng.IntN(2)])
	}
	data = append(data[:32<<10], make([]byte, 32<<10)...)
	rec, err := EncodeGrain(nil, 0, data, 6)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 65536)
	for _, d := range []struct {
		name   string
		decode func(b, dst []byte) (GrainMarker, int, error)
	}{{"checked", DecodeGrain}, {"unchecked", DecodeGrainUnchecked}, {"fast", DecodeGrainFast}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, n, err := d.decode(rec, dst); err != nil || n != len(data) {
					b.Fatal(n, err)
				}
			}
		})
	}
}
