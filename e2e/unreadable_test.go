package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
)

// TestUnreadableAreas: an image whose ddrescue mapfile marks 1 MiB inside
// a VMDK's grains as not rescued (and whose bytes there are the zeros
// ddrescue fills in). With --mapfile, every grain touching the area is
// missing, saying why, where a copy does not prove it, and every other
// grain is placed; none is wrong.
func TestUnreadableAreas(t *testing.T) {
	for _, tc := range []struct {
		name   string
		copies []corpus.Variant
	}{
		{"one copy", []corpus.Variant{corpus.QemuSparse}},
		{"a second copy proves the grains", []corpus.Variant{corpus.QemuSparse, corpus.OursSparse}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var files []corpus.FileSpec
			for _, v := range tc.copies {
				files = append(files, corpus.FileSpec{Disk: 1, Variant: v})
			}
			truth := generate(t, corpus.Spec{Seed: 91, ImageSize: 96 << 20, Disks: []corpus.DiskSpec{disk(1, 32<<20)}, Files: files})
			f := truth.Files[0]
			// 1 MiB from the file's 20th grain on, sector-aligned.
			var start int64
			for i, g := range f.Grains {
				if i == 20 {
					start = g.ImageOffset &^ 511
				}
			}
			end := start + 1<<20
			img, err := os.OpenFile(truth.Image, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := img.WriteAt(make([]byte, end-start), start); err != nil {
				t.Fatal(err)
			}
			img.Close()
			mapPath := filepath.Join(t.TempDir(), "image.map")
			size := truth.ImageSize
			mf := fmt.Sprintf("# Mapfile. Created by GNU ddrescue version 1.27\n0x%x +  1\n0x0 0x%x +\n0x%x 0x%x -\n0x%x 0x%x +\n",
				size, start, start, end-start, end, size-end)
			if err := os.WriteFile(mapPath, []byte(mf), 0o644); err != nil {
				t.Fatal(err)
			}
			caseDir := filepath.Join(t.TempDir(), "case")
			if _, err := pipeline.Carve(context.Background(), caseDir, truth.Image, pipeline.CarveOptions{Mapfile: mapPath}); err != nil {
				t.Fatal(err)
			}
			if _, err := pipeline.Rebuild(context.Background(), caseDir, pipeline.RebuildOptions{}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(caseDir, pipeline.DisksDirName, "disk-01.json"))
			if err != nil {
				t.Fatal(err)
			}
			rep := new(pipeline.DiskReport)
			if err := json.Unmarshal(b, rep); err != nil {
				t.Fatal(err)
			}
			run := &caseRun{caseDir: caseDir, reports: []*pipeline.DiskReport{rep}}
			s := scoreDisk(t, run, truth, rep)
			st := statuses(rep.Disk)
			touched, missing := 0, 0
			for _, g := range f.Grains {
				if g.ImageOffset < end && start < g.ImageOffset+g.Length {
					touched++
					if st[g.Grain] == reassemble.Missing {
						missing++
						if r, _ := rep.Disk.RunOf(g.Grain); !strings.Contains(r.Reason, "not rescued") {
							t.Errorf("grain %d missing for %q, not the unreadable area", g.Grain, r.Reason)
						}
					}
				}
			}
			t.Logf("%s: %d grains touch the area, %d missing; recall %d/%d, %d wrong", tc.name, touched, missing, s.placed, s.surviving, s.wrong)
			if s.wrong != 0 || touched < 8 {
				t.Errorf("%d wrong; %d grains touch the area", s.wrong, touched)
			}
			wantMissing := touched
			if len(tc.copies) > 1 {
				wantMissing = 0 // the other copy holds them
			}
			if missing != wantMissing || s.placed+missing < s.surviving {
				t.Errorf("%d of the %d grains touching the area missing (want %d); placed %d of %d surviving", missing, touched, wantMissing, s.placed, s.surviving)
			}
		})
	}
}
