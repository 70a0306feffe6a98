package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/findings"
	"vmdkcarve/pipeline"
)

// TestFindings carves and rebuilds evidence with one kind of damage each
// and checks that the findings name it: the codes expected appear in the
// disk reports and in CASE/findings.json, the case's file holds exactly
// the evidence's and the reports' findings, every finding is as the
// registry says, and an intact disk has no finding of warning or error
// severity.
func TestFindings(t *testing.T) {
	mib := int64(1 << 20)
	sparse := func(d ...corpus.Damage) []corpus.FileSpec {
		return []corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse, Damage: d}}
	}
	host := func(scenario string) corpus.Spec {
		spec, err := corpus.Scenario(scenario, 3, 96<<20, corpus.HaveQemu())
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	for _, tc := range []struct {
		name    string
		spec    corpus.Spec
		mapfile bool // mark 1 MiB of the file's grains not rescued, and zero it
		want    []findings.Code
		intact  bool // no finding of warning or error severity
	}{
		{"intact", corpus.Spec{Seed: 51, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)}, Files: sparse()}, false, nil, true},
		{"intact, every writer", corpus.Spec{Seed: 57, ImageSize: 160 << 20,
			Disks: []corpus.DiskSpec{disk(1, 16<<20), disk(2, 16<<20+4096), disk(3, 20<<20), disk(4, 12<<20), disk(5, 16<<20)},
			Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse}, {Disk: 2, Variant: corpus.OursStreamFront}, {Disk: 3, Variant: corpus.VMwareStream},
				{Disk: 4, Variant: corpus.QemuSparse}, {Disk: 5, Variant: corpus.QemuStream}}}, false, nil, true},
		{"intact files on an NTFS host", host("ntfs-host"), false, []findings.Code{findings.CodeHostMapUsed}, true},
		{"intact copies", corpus.Spec{Seed: 51, ImageSize: 96 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)},
			Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse}, {Disk: 1, Variant: corpus.OursSparse}}}, false,
			[]findings.Code{findings.CodeCopiesMerged}, true},
		{"header zeroed", corpus.Spec{Seed: 52, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)},
			Files: sparse(corpus.Damage{Kind: corpus.ZeroHeader})}, false, []findings.Code{findings.CodeHeaderLost}, false},
		{"header damaged", corpus.Spec{Seed: 52, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)},
			Files: sparse(corpus.Damage{Kind: corpus.Overwrite, At: 128, Bytes: 64})}, false, []findings.Code{findings.CodeHeaderDamaged}, false},
		{"stream header zeroed", corpus.Spec{Seed: 52, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 16<<20)},
			Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream, Damage: []corpus.Damage{{Kind: corpus.ZeroHeader}}}}}, false,
			[]findings.Code{findings.CodeHeaderLost}, false},
		{"primary tables zeroed", corpus.Spec{Seed: 53, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)},
			Files: sparse(corpus.Damage{Kind: corpus.ZeroPrimaryTables})}, false, []findings.Code{findings.CodePrimaryTablesLost}, false},
		{"every table zeroed", corpus.Spec{Seed: 54, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)},
			Files: sparse(corpus.Damage{Kind: corpus.ZeroPrimaryTables}, corpus.Damage{Kind: corpus.ZeroRedundantTables})}, false,
			[]findings.Code{findings.CodeTablesLost, findings.CodeGrainsMissing, findings.CodeNothingPlaced}, false},
		{"stream footer lost", corpus.Spec{Seed: 55, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 16<<20)},
			Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream, Damage: []corpus.Damage{{Kind: corpus.CutTail, Bytes: 4 << 10}}}}}, false,
			[]findings.Code{findings.CodeStreamFooterLost}, false},
		{"copies disagree", corpus.Spec{Seed: 12, ImageSize: 128 << 20, Disks: []corpus.DiskSpec{disk(1, 32<<20)}, Files: []corpus.FileSpec{
			{Disk: 1, Variant: corpus.OursSparse, Damage: []corpus.Damage{{Kind: corpus.Overwrite, At: 2 << 20, Bytes: 1 << 20}}},
			{Disk: 1, Variant: corpus.OursSparse}}}, false,
			[]findings.Code{findings.CodeCopiesMerged, findings.CodeCopiesDisagree}, false},
		{"encryption lattice", corpus.Spec{Seed: 83, ImageSize: 256 << 20, Disks: []corpus.DiskSpec{{ID: 1, Capacity: 96 << 20}},
			Files: sparse(corpus.Damage{Kind: corpus.EncryptChunks, At: 5 * mib, Stride: 8 * mib})}, false,
			[]findings.Code{findings.CodeEncryptionLattice}, false},
		{"fragmented, no host map", corpus.Spec{Seed: 56, ImageSize: 128 << 20, Disks: []corpus.DiskSpec{{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS, FileBytes: 16 << 20}},
			Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse, Pieces: 4}}}, false,
			[]findings.Code{findings.CodeFragmentBreak, findings.CodeFragmentsFollowed, findings.CodeGrainsMissing}, false},
		{"unreadable area", corpus.Spec{Seed: 91, ImageSize: 96 << 20, Disks: []corpus.DiskSpec{disk(1, 32<<20)}, Files: sparse()}, true,
			[]findings.Code{findings.CodeUnreadableArea, findings.CodeGrainsUnreadable, findings.CodeGrainsMissing}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, tc.spec)
			var opts pipeline.CarveOptions
			if tc.mapfile {
				opts.Mapfile = unrescue(t, truth, 20, 1<<20)
			}
			caseDir := filepath.Join(t.TempDir(), "case")
			if _, err := pipeline.Carve(context.Background(), caseDir, truth.Image, opts); err != nil {
				t.Fatal(err)
			}
			res, err := pipeline.Rebuild(context.Background(), caseDir, pipeline.RebuildOptions{})
			if err != nil && !(errors.Is(err, pipeline.ErrNothingRecovered) && slices.Contains(tc.want, findings.CodeNothingPlaced)) {
				t.Fatalf("rebuild: %v", err)
			}
			file := readFindingsFile(t, caseDir)
			var fromReports []findings.Finding
			for _, d := range res.Disks {
				rep := readReport(t, caseDir, d.Path)
				fromReports = append(fromReports, rep.Findings...)
			}
			var codes []findings.Code
			var serious int
			for _, f := range file.Findings {
				t.Logf("%s %s disk %d instance %d: %s %s", f.Severity, f.Code, f.Disk, f.Instance, f.Message, f.Action)
				codes = append(codes, f.Code)
				if e, ok := findings.Lookup(f.Code); !ok || e.Severity != f.Severity || f.Message == "" || f.Action == "" {
					t.Errorf("finding %+v is not as registered", f)
				}
				if f.Severity != findings.Info {
					serious++
				}
				if f.Disk == 0 {
					continue // the evidence's own
				}
				if !slices.ContainsFunc(fromReports, func(g findings.Finding) bool { return sameFinding(f, g) }) {
					t.Errorf("findings.json's %s on disk %d is in no disk report", f.Code, f.Disk)
				}
			}
			for _, g := range fromReports {
				if !slices.ContainsFunc(file.Findings, func(f findings.Finding) bool { return sameFinding(f, g) }) {
					t.Errorf("disk %d's %s is not in findings.json", g.Disk, g.Code)
				}
			}
			if e, w, i := findings.Count(file.Findings); e != file.Errors || w != file.Warnings || i != file.Info {
				t.Errorf("findings.json counts %d/%d/%d, its findings %d/%d/%d", file.Errors, file.Warnings, file.Info, e, w, i)
			}
			if !slices.EqualFunc(file.Findings, res.Findings, sameFinding) {
				t.Errorf("findings.json and the rebuild's result differ")
			}
			// A rebuild already complete says the same, from the case.
			again, _ := pipeline.Rebuild(context.Background(), caseDir, pipeline.RebuildOptions{})
			if again == nil || !again.Done || !slices.EqualFunc(again.Findings, res.Findings, sameFinding) {
				t.Errorf("a rebuild already complete does not give the same findings")
			}
			for _, c := range tc.want {
				if !slices.Contains(codes, c) {
					t.Errorf("no %s finding; codes %v", c, codes)
				}
			}
			if tc.intact {
				if serious > 0 {
					t.Errorf("an intact disk has %d findings of warning or error severity: %v", serious, codes)
				}
			}
		})
	}
}

// unrescue zeroes n bytes of the image from the first file's grain-th
// grain on (sector-aligned), as ddrescue leaves an area it could not
// read, and writes the mapfile that says so.
func unrescue(t *testing.T, truth *corpus.Truth, grain int, n int64) string {
	t.Helper()
	start := truth.Files[0].Grains[grain].ImageOffset &^ 511
	end := start + n
	img, err := os.OpenFile(truth.Image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := img.WriteAt(make([]byte, n), start); err != nil {
		t.Fatal(err)
	}
	size := truth.ImageSize
	path := filepath.Join(t.TempDir(), "image.map")
	mf := fmt.Sprintf("# Mapfile. Created by GNU ddrescue version 1.27\n0x%x +  1\n0x0 0x%x +\n0x%x 0x%x -\n0x%x 0x%x +\n",
		size, start, start, end-start, end, size-end)
	if err := os.WriteFile(path, []byte(mf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFindingsFile(t *testing.T, caseDir string) *pipeline.FindingsFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caseDir, pipeline.FindingsName))
	if err != nil {
		t.Fatal(err)
	}
	file := new(pipeline.FindingsFile)
	if err := json.Unmarshal(b, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// readReport reads the report of the disk written at path (relative to
// the case).
func readReport(t *testing.T, caseDir, path string) *pipeline.DiskReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caseDir, path[:len(path)-len(".vmdk")]+".json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := new(pipeline.DiskReport)
	if err := json.Unmarshal(b, rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// sameFinding compares two findings as their JSON says them.
func sameFinding(a, b findings.Finding) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
