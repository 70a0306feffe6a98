package e2e

import (
	"io"
	"os"
	"slices"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/findings"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// tableCut zeroes bytes [From, To) of every grain table of one copy
// (primary or redundant) of a laid sparse file, in the image: a table only
// partly overwritten, which corpus damage kinds (whole tables) do not make.
type tableCut struct {
	Redundant bool
	From, To  int64 // byte offsets inside each grain table
}

// imageOffset maps file offset off of f to the image (f laid in one run,
// or in the host's fragments), or -1.
func imageOffset(f corpus.FileTruth, off int64) int64 {
	if len(f.Fragments) == 0 {
		return f.ImageOffset + off
	}
	for _, fr := range f.Fragments {
		if off >= fr.FileOffset && off < fr.FileOffset+fr.Length {
			return fr.ImageOffset + off - fr.FileOffset
		}
	}
	return -1
}

// laidFile reads file f where it is laid in the image.
type laidFile struct {
	img *os.File
	f   corpus.FileTruth
}

func (l laidFile) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		at := imageOffset(l.f, off+int64(i))
		if at < 0 {
			return i, io.ErrUnexpectedEOF
		}
		if _, err := l.img.ReadAt(p[i:i+1], at); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// cutTables applies the cuts to the image copy of file f, reading the
// directories from the undamaged header.
func cutTables(t *testing.T, truth *corpus.Truth, f corpus.FileTruth, cuts []tableCut) {
	t.Helper()
	img, err := os.OpenFile(truth.Image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	h := f.Header
	file := laidFile{img, f}
	for _, c := range cuts {
		gdSector := h.GDOffset
		if c.Redundant {
			gdSector = h.RGDOffset
		}
		gd, err := vmdk.ReadTable(file, f.Length, gdSector, h.GDEntries())
		if err != nil {
			t.Fatal(err)
		}
		zero := []byte{0}
		for _, gde := range gd {
			if gde == 0 {
				continue
			}
			for off := int64(gde)*vmdk.SectorSize + c.From; off < int64(gde)*vmdk.SectorSize+c.To; off++ {
				at := imageOffset(f, off)
				if at < 0 {
					t.Fatalf("file offset %d is laid nowhere", off)
				}
				if _, err := img.WriteAt(zero, at); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestPartlyZeroedTables: grain tables only partly overwritten with zeros.
// A zero entry is proof of an unallocated grain only where the table is
// shown intact (both copies agree); where it is not and grain slots hold
// data no table names, the zero entries of the damaged tables are missing,
// not zero, and the orphan slots are placed only by other evidence. No
// grain is wrong (a grain said zero is zero in the truth), and the recall
// reached is asserted.
func TestPartlyZeroedTables(t *testing.T) {
	const gtBytes = 512 * 4
	primaryLost := []corpus.Damage{{Kind: corpus.ZeroPrimaryTables}}
	ext4 := corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}
	onHost := &corpus.HostSpec{FS: corpus.FSExt4, Offset: 1 << 20, Size: 96 << 20, Fragments: 6}
	for _, tc := range []struct {
		name    string
		disk    corpus.DiskSpec
		variant corpus.Variant
		host    *corpus.HostSpec
		damage  []corpus.Damage
		cuts    []tableCut
		// minRecall is the per-mille of surviving grains that must be
		// placed; allPlaced asks for every one and no missing grain.
		minRecall int
		allPlaced bool
		orphans   bool // the report must name the damaged tables' zero entries missing
	}{
		{"intact, qemu-img", ext4, corpus.QemuSparse, nil, nil, nil, 1000, true, false},
		{"intact, our writer", ext4, corpus.OursSparse, nil, nil, nil, 1000, true, false},
		{"intact, qemu-img, on an ext4 host in 6 pieces", ext4, corpus.QemuSparse, onHost, nil, nil, 1000, true, false},
		{"primary lost, redundant zeroed from byte 64, qemu-img", ext4, corpus.QemuSparse, nil, primaryLost,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 1000, false, true},
		{"primary lost, redundant zeroed from byte 64, our writer", ext4, corpus.OursSparse, nil, primaryLost,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 1000, false, true},
		{"primary lost, redundant zeroed from byte 64, qemu-img, on an ext4 host in 6 pieces", ext4, corpus.QemuSparse, onHost, primaryLost,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 1000, false, true},
		{"primary lost, redundant zeroed from byte 64, small ext4 guest (one table), qemu-img", corpus.DiskSpec{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, corpus.QemuSparse, nil, primaryLost,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 1000, false, true},
		{"primary lost, redundant zeroed from byte 64, NTFS guest, qemu-img", corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS}, corpus.QemuSparse, nil, primaryLost,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 1000, false, true},
		// No guest structures: only write order could place the orphans,
		// and it is not shown; the grains the surviving entries name are
		// all that is placed (23 of 480).
		{"primary lost, redundant zeroed from byte 64, synthetic disk", disk(1, 40<<20), corpus.QemuSparse, nil, primaryLost,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 47, false, true},
		{"redundant zeroed from byte 64, primary intact", ext4, corpus.QemuSparse, nil, nil,
			[]tableCut{{Redundant: true, From: 64, To: gtBytes}}, 1000, true, false},
		{"primary and redundant zeroed at different ranges", ext4, corpus.QemuSparse, nil, nil,
			[]tableCut{{From: 64, To: 1024}, {Redundant: true, From: 1024, To: gtBytes}}, 1000, true, false},
		{"primary and redundant zeroed at the same range", ext4, corpus.QemuSparse, nil, nil,
			[]tableCut{{From: 64, To: gtBytes}, {Redundant: true, From: 64, To: gtBytes}}, 1000, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 51, ImageSize: tc.disk.Capacity + 64<<20, Disks: []corpus.DiskSpec{tc.disk},
				Files: []corpus.FileSpec{{Disk: 1, Variant: tc.variant, Damage: tc.damage}}, Host: tc.host})
			cutTables(t, truth, truth.Files[0], tc.cuts)
			run := carveAndRebuild(t, truth.Image)
			if len(run.reports) != 1 {
				t.Fatalf("%d disks (%v)", len(run.reports), run.err)
			}
			rep := run.reports[0]
			s := scoreDisk(t, run, truth, rep)
			inst := rep.Disk.Instances[0]
			recall := 1000 * s.placed / max(s.surviving, 1)
			orphanGrains := 0
			for _, r := range rep.Disk.Runs {
				if r.Code == reassemble.ReasonZeroEntriesOrphans {
					orphanGrains += int(r.Count)
				}
			}
			t.Logf("%s: recall %d/%d (%d‰), %d wrong, %d missing (%d for zero entries of damaged tables), evidence %v, unplaced slots %d",
				tc.name, s.placed, s.surviving, recall, s.wrong, s.missing, orphanGrains, rep.Disk.Counts.ByEvidence, inst.UnplacedGrains)
			for _, n := range inst.Notes {
				t.Logf("note: %s", n)
			}
			if s.wrong != 0 {
				t.Errorf("%d wrong grains", s.wrong)
			}
			if recall < tc.minRecall {
				t.Errorf("recall %d‰, want at least %d‰", recall, tc.minRecall)
			}
			if tc.allPlaced && (s.placed != s.surviving || rep.Disk.Counts.Missing != 0) {
				t.Errorf("placed %d of %d, %d missing; want every grain placed or zero", s.placed, s.surviving, rep.Disk.Counts.Missing)
			}
			if tc.orphans != (orphanGrains > 0) {
				t.Errorf("%d grains missing for zero entries of damaged tables; want some: %v", orphanGrains, tc.orphans)
			}
			if found := slices.ContainsFunc(rep.Findings, func(f findings.Finding) bool { return f.Code == findings.CodeZeroEntriesDistrusted }); found != (orphanGrains > 0) {
				t.Errorf("finding %s given: %v, want it exactly when grains are missing for zero entries (%d)", findings.CodeZeroEntriesDistrusted, found, orphanGrains)
			}
		})
	}
}
