package e2e

import (
	"bytes"
	"os"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/reassemble"
)

// TestTruncatedFiles: a VMDK (qemu-img, an ext4 guest of real files) of
// which only the first 70% survives, either followed by other bytes of the
// image (text: another file's clusters) or cut by the image's own end (a
// partial image, a truncated copy). Nothing may come from the bytes past
// the cut, and the grains before it must be placed: the file's start is
// contiguous, and a file cut by the image's end is contiguous to it.
//
// The files at a 512-byte but not 4 KiB image offset (a host volume at
// sector 63) are the cases a red team found wrong: such a file was never
// followed, and its tables placed whatever followed the cut.
func TestTruncatedFiles(t *testing.T) {
	const capacity = 96 << 20
	text := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n"), 1<<14)
	for _, tc := range []struct {
		name   string
		offset int64
		// textAfter overwrites the file past the cut with text; else the
		// image ends at the cut.
		textAfter bool
		// minRecall is the per-mille of the grains wholly before the cut
		// that must be placed.
		minRecall int
	}{
		{"4 KiB-aligned, text after the cut", 5 << 20, true, 850},
		{"at sector 63 + 5 MiB, text after the cut", 63*512 + 5<<20, true, 850},
		{"4 KiB-aligned, the image ends at the cut", 5 << 20, false, 1000},
		{"at sector 63 + 5 MiB, the image ends at the cut", 63*512 + 5<<20, false, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 63, ImageSize: capacity + 32<<20,
				Disks: []corpus.DiskSpec{{ID: 1, Capacity: capacity, FS: corpus.FSExt4}},
				Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse, Offset: tc.offset}}})
			f := truth.Files[0]
			cut := f.Length * 7 / 10 / 512 * 512
			if tc.textAfter {
				img, err := os.OpenFile(truth.Image, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				for off := cut; off < f.Length; off += int64(len(text)) {
					if _, err := img.WriteAt(text[:min(int64(len(text)), f.Length-off)], f.ImageOffset+off); err != nil {
						t.Fatal(err)
					}
				}
				img.Close()
			} else if err := os.Truncate(truth.Image, f.ImageOffset+cut); err != nil {
				t.Fatal(err)
			}
			run := carveAndRebuild(t, truth.Image)
			if len(run.reports) != 1 {
				t.Fatalf("%d disks (%v)", len(run.reports), run.err)
			}
			rep := run.reports[0]
			s := scoreDisk(t, run, truth, rep)
			st := statuses(rep.Disk)
			before, placed := 0, 0
			for _, g := range f.Grains {
				if g.FileOffset+g.Length > cut {
					continue
				}
				before++
				if st[g.Grain] == reassemble.Placed {
					placed++
				}
			}
			recall := 1000 * placed / max(before, 1)
			t.Logf("%s: %d wrong; %d of the %d grains before the cut placed (%d‰); evidence %v", tc.name, s.wrong, placed, before, recall, rep.Disk.Counts.ByEvidence)
			for _, n := range rep.Disk.Instances[0].Notes {
				t.Logf("note: %.200s", n)
			}
			if s.wrong != 0 {
				t.Errorf("%d wrong grains", s.wrong)
			}
			if recall < tc.minRecall {
				t.Errorf("recall %d‰ of the grains before the cut, want at least %d‰", recall, tc.minRecall)
			}
		})
	}
}
