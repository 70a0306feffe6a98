package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
)

// TestSplitSparse: a 4.5 GiB disk written by qemu-img as
// twoGbMaxExtentSparse (a descriptor and three extents of 2047, 2047 and
// 406 MiB) laid out of order in noise. The last extent is known by its
// size, the first by the guest MBR in its grain 0, the second by
// elimination: the disk is assembled whole. Without the MBR the first two
// cannot be told apart: only the third is placed, and nothing is wrong.
func TestSplitSparse(t *testing.T) {
	tooltest.Need(t, "qemu-img")
	for _, tc := range []struct {
		name   string
		mbr    bool
		wantOK bool // the whole disk compares identical
	}{
		{"with the guest MBR", true, true},
		{"without it", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := filepath.Join(dir, "disk.raw")
			const size = 4608 << 20
			f, err := os.Create(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			grain := make([]byte, 64<<10)
			for _, at := range []int64{0, 1 << 30, 2200 << 20, 3 << 30, 4200 << 20, size - 64<<10} {
				for i := 0; i < len(grain); i += 64 {
					copy(grain[i:i+64], fmt.Sprintf("split disk grain at %d, line %d%40s", at, i, ""))
				}
				if at == 0 {
					clear(grain[440:512])
					if tc.mbr {
						grain[446+4] = 0x83
						binary.LittleEndian.PutUint32(grain[446+8:], 2048)
						binary.LittleEndian.PutUint32(grain[446+12:], size/512-2048)
						binary.LittleEndian.PutUint16(grain[510:], 0xAA55)
					}
				}
				if _, err := f.WriteAt(grain, at); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			vmdk := filepath.Join(dir, "split.vmdk")
			tooltest.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", raw, vmdk)

			// Extents out of order, the descriptor between them, noise
			// around every file.
			noise := noiseSource(81, 0)
			var img []byte
			for _, name := range []string{"split-s002.vmdk", "split-s001.vmdk", "split.vmdk", "split-s003.vmdk"} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				img = append(img, noise(1<<20)...)
				img = append(img, b...)
				img = append(img, make([]byte, (-len(b))&4095)...)
			}
			img = append(img, noise(1<<20)...)
			image := filepath.Join(dir, "image.dd")
			if err := os.WriteFile(image, img, 0o644); err != nil {
				t.Fatal(err)
			}
			caseDir := filepath.Join(dir, "case")
			if _, err := pipeline.Carve(context.Background(), caseDir, image, pipeline.CarveOptions{}); err != nil {
				t.Fatal(err)
			}
			res, err := pipeline.Rebuild(context.Background(), caseDir, pipeline.RebuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Disks) != 1 {
				t.Fatalf("%d disks, want the one split disk", len(res.Disks))
			}
			d := res.Disks[0]
			out := filepath.Join(caseDir, d.Path)
			t.Logf("capacity %d, counts %+v", d.Capacity, d.Counts)
			if d.Capacity != size {
				t.Fatalf("capacity %d, want %d", d.Capacity, size)
			}
			if tc.wantOK {
				tooltest.Compare(t, out, raw)
				return
			}
			// Only the last extent's grains are placed, each right.
			tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", out)
			b, err := os.ReadFile(filepath.Join(caseDir, pipeline.DisksDirName, "disk-01.json"))
			if err != nil {
				t.Fatal(err)
			}
			var rep pipeline.DiskReport
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			// The placed grains are read back through qemu-img.
			rebuilt := filepath.Join(dir, "rebuilt.raw")
			tooltest.Run(t, "qemu-img", "convert", "-f", "vmdk", "-O", "raw", out, rebuilt)
			var placed []uint64
			for _, r := range rep.Disk.Runs {
				for g := r.FirstGrain; r.Status == reassemble.Placed && g < r.FirstGrain+r.Count; g++ {
					placed = append(placed, g)
					got, want := make([]byte, 64<<10), make([]byte, 64<<10)
					if _, err := tooltest.Open(t, rebuilt).ReadAt(got, int64(g)*64<<10); err != nil {
						t.Fatal(err)
					}
					if _, err := tooltest.Open(t, raw).ReadAt(want, int64(g)*64<<10); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("grain %d placed wrong", g)
					}
				}
			}
			if fmt.Sprint(placed) != fmt.Sprint([]uint64{67200, 73727}) || len(rep.Disk.Parts) != 3 {
				t.Errorf("placed %v, want the last extent's grains 67200 and 73727; %d parts", placed, len(rep.Disk.Parts))
			}
		})
	}
}
