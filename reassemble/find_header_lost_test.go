package reassemble

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/vmdk"
)

// TestOwnMetadataStartsNothing: a 640 MiB disk (20 grain tables) whose
// data is sparse, so that some of its tables' sectors hold a single entry:
// the last sector of table 2, the second of table 5, the first of table 9.
// Each such sector, followed by a table-shaped block, has the shape of a
// one-entry grain directory naming that block, in the primary tables and
// again in the redundant copy. They are the file's own metadata: with its
// header found, or lost and inferred from its directories, the image holds
// one disk, every grain placed and right.
func TestOwnMetadataStartsNothing(t *testing.T) {
	const (
		sectors = 640 << 20 / 512
		at      = 4 << 20 // the file's image offset
	)
	used := func(g uint64) bool {
		table, e := g/vmdk.GTEsPerGT, g%vmdk.GTEsPerGT
		switch table {
		case 2:
			return e < 4 || e == 384
		case 5:
			return e < 4 || e == 128
		case 9:
			return e == 0
		}
		return e < 4
	}
	grainAt := func(g uint64) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("sparse grain %08d ", g)), testGrain/22+1)[:testGrain]
	}
	want := 0
	for g := uint64(0); g < sectors/128; g++ {
		if used(g) {
			want++
		}
	}
	writers := []struct {
		name  string
		write func(t *testing.T) []byte
	}{
		{"our writer", func(t *testing.T) []byte {
			var w tooltest.MemFile
			if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: sectors, FileName: "s.vmdk", Descriptor: testDescriptor},
				func(g uint64, b []byte) (bool, error) {
					if !used(g) {
						return false, nil
					}
					copy(b, grainAt(g))
					return true, nil
				}); err != nil {
				t.Fatal(err)
			}
			return w.Bytes
		}},
		{"qemu-img convert", func(t *testing.T) []byte {
			tooltest.Need(t, "qemu-img")
			dir := t.TempDir()
			raw, vmdkPath := filepath.Join(dir, "s.raw"), filepath.Join(dir, "s.vmdk")
			f, err := os.Create(raw)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(sectors * 512); err != nil {
				t.Fatal(err)
			}
			for g := uint64(0); g < sectors/128; g++ {
				if used(g) {
					if _, err := f.WriteAt(grainAt(g), int64(g)*testGrain); err != nil {
						t.Fatal(err)
					}
				}
			}
			tooltest.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, vmdkPath)
			b, err := os.ReadFile(vmdkPath)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for _, wr := range writers {
		for _, lost := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, header lost %v", wr.name, lost), func(t *testing.T) {
				f := wr.write(t)
				if lost {
					clear(f[:512])
				}
				img := append(append(noise(at, 50), f...), noise(1<<20, 51)...)
				disks := plan(t, img)
				for _, d := range disks {
					for _, i := range d.Instances {
						t.Logf("disk %d: instance at %d, header lost %v, %d grains placed; notes %v", d.ID, i.HeaderOffset, i.HeaderLost, d.Counts.Placed, i.Notes)
					}
				}
				if len(disks) != 1 || len(disks[0].Instances) != 1 {
					t.Fatalf("%d disks, want 1 with one instance", len(disks))
				}
				d := disks[0]
				if i := d.Instances[0]; i.HeaderOffset != at || i.HeaderLost != lost || d.Capacity != sectors {
					t.Fatalf("instance at %d, header lost %v, %d sectors; want %d, %v, %d", i.HeaderOffset, i.HeaderLost, d.Capacity, at, lost, sectors)
				}
				if d.Counts.Placed != uint64(want) || d.Counts.Missing != 0 || d.Counts.Conflict != 0 {
					t.Fatalf("counts %+v, want %d placed", d.Counts, want)
				}
				for g, gr := range d.placed {
					if !used(g) || !bytes.Equal(img[gr.Source.ImageOffset:gr.Source.ImageOffset+testGrain], grainAt(g)) {
						t.Fatalf("grain %d placed from image offset %d is wrong", g, gr.Source.ImageOffset)
					}
				}
			})
		}
	}
}
