package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// plannedDisk carves an image holding one monolithicSparse disk of 300
// grains (every third zero, the last one short) in noise and plans it.
func plannedDisk(t testing.TB) (*os.File, *reassemble.Disk) {
	t.Helper()
	const grains = 300
	raw := make([]byte, grains*65536-4096)
	for g := 0; g*65536 < len(raw); g++ {
		if g%3 != 0 {
			b := raw[g*65536 : min((g+1)*65536, len(raw))]
			copy(b, noise(len(b), uint64(g)))
		}
	}
	var vm tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&vm, vmdk.SparseWriterOptions{Capacity: uint64(len(raw) / 512), FileName: "d.vmdk"},
		func(g uint64, buf []byte) (bool, error) { copy(buf, raw[g*65536:]); return true, nil }); err != nil {
		t.Fatal(err)
	}
	data := noise(1<<20, 7)
	data = append(append(data, vm.Bytes...), noise(1<<20, 8)...)
	path := filepath.Join(t.TempDir(), "evidence.dd")
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "case")
	if _, err := Carve(context.Background(), dir, path, CarveOptions{Hash: "none", ChunkSize: testChunk}); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCase(dir)
	if err != nil {
		t.Fatal(err)
	}
	hits, err := c.LoadHits()
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	disks := reassemble.Plan(img, int64(len(data)), hits, reassemble.Options{})
	if len(disks) != 1 || disks[0].Grains() != grains {
		t.Fatalf("planned %d disks, want one of %d grains", len(disks), grains)
	}
	return img, disks[0]
}

// TestReadAheadMatchesSerial: reading a disk ahead on several goroutines
// gives every grain, and the counts, that one reader in order gives; a
// read error comes back at its grain; stopping early does not hang.
func TestReadAheadMatchesSerial(t *testing.T) {
	img, d := plannedDisk(t)
	gb := int64(d.GrainSize) * vmdk.SectorSize
	type grain struct {
		ok   bool
		data []byte
		err  error
	}
	readAll := func(read func(uint64, []byte) (bool, error), upto uint64) []grain {
		var out []grain
		for g := range upto {
			buf := make([]byte, grainLen(d.Capacity, gb, g))
			ok, err := read(g, buf)
			out = append(out, grain{ok, buf, err})
			if err != nil {
				break
			}
		}
		return out
	}
	same := func(a, b []grain) error {
		if len(a) != len(b) {
			return fmt.Errorf("%d grains, want %d", len(a), len(b))
		}
		for g := range a {
			if a[g].ok != b[g].ok || !bytes.Equal(a[g].data, b[g].data) || (a[g].err == nil) != (b[g].err == nil) {
				return fmt.Errorf("grain %d: ok %v err %v, want ok %v err %v (or its bytes differ)", g, a[g].ok, a[g].err, b[g].ok, b[g].err)
			}
		}
		return nil
	}
	serial := newDiskReader(img, d)
	want := readAll(serial.readGrain, d.Grains())
	if want[1].ok != true || want[3].ok != false {
		t.Fatalf("grains 1 and 3 read %v %v, want placed and zero", want[1].ok, want[3].ok)
	}
	// A read error half way: the serial reader's first error.
	bad := tooltest.FailingReaderAt{R: img, Off: 1<<20 + 150*gb}
	wantBad := readAll(newDiskReader(bad, d).readGrain, d.Grains())
	for _, workers := range []int{1, 3, 8} {
		dr := newDiskReader(img, d)
		a := newReadAhead(dr, workers)
		got := readAll(a.readGrain, d.Grains())
		a.stop()
		if err := same(got, want); err != nil {
			t.Errorf("workers %d: %v", workers, err)
		}
		if dr.verify != serial.verify {
			t.Errorf("workers %d: counts %+v, want %+v", workers, dr.verify, serial.verify)
		}
		if _, err := a.readGrain(0, make([]byte, gb)); err == nil {
			t.Errorf("workers %d: grain 0 again after the last: no error", workers)
		}

		a = newReadAhead(newDiskReader(bad, d), workers)
		got = readAll(a.readGrain, d.Grains())
		a.stop()
		if err := same(got, wantBad); err != nil || len(wantBad) == int(d.Grains()) {
			t.Errorf("workers %d, failing reader: %v (%d grains before the error)", workers, err, len(wantBad))
		}

		a = newReadAhead(newDiskReader(img, d), workers)
		readAll(a.readGrain, 5)
		a.stop()
		a.stop()
	}
}

// BenchmarkReadAhead reads every grain of a planned disk of 300 grains
// (from the image, checked against the plan) in order, as the writer
// does: one reader (Serial) or read ahead on a goroutine per CPU.
func BenchmarkReadAhead(b *testing.B) {
	img, d := plannedDisk(b)
	buf := make([]byte, int64(d.GrainSize)*vmdk.SectorSize)
	for _, ahead := range []bool{false, true} {
		name := "Serial"
		if ahead {
			name = "Ahead"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(d.Capacity) * vmdk.SectorSize)
			for b.Loop() {
				read := newDiskReader(img, d).readGrain
				var a *readAhead
				if ahead {
					a = newReadAhead(newDiskReader(img, d), 0)
					read = a.readGrain
				}
				for g := range d.Grains() {
					if _, err := read(g, buf[:grainLen(d.Capacity, int64(len(buf)), g)]); err != nil {
						b.Fatal(err)
					}
				}
				if a != nil {
					a.stop()
				}
			}
		})
	}
}
