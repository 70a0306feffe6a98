package e2e

import (
	"strings"
	"testing"

	"vmdkcarve/corpus"
)

// TestHeaderLost zeroes the first sector of each file (a ransomware
// "head"): sparse files are found again from their grain directories and
// surviving descriptor, streams from their footer. Every surviving grain
// is placed, none is wrong, and a disk whose grains all survived compares
// identical in qemu-img (capacity included).
func TestHeaderLost(t *testing.T) {
	head := []corpus.Damage{{Kind: corpus.ZeroHeader}}
	truth := generate(t, corpus.Spec{Seed: 31, ImageSize: 160 << 20,
		Disks: []corpus.DiskSpec{disk(1, 24<<20), disk(2, 40<<20+512*9), disk(3, 16<<20), disk(4, 20<<20)},
		Files: []corpus.FileSpec{
			{Disk: 1, Variant: corpus.QemuSparse, Damage: head},
			{Disk: 2, Variant: corpus.OursSparse, Damage: head},
			{Disk: 3, Variant: corpus.VMwareStream, Damage: head},
			{Disk: 4, Variant: corpus.QemuStream, Damage: head},
		}})
	run := carveAndRebuild(t, truth.Image)
	for _, rep := range run.reports {
		t.Logf("report %d: instance at %d %s lost=%v notes %v", rep.Disk.ID, rep.Disk.Instances[0].HeaderOffset, rep.Disk.Instances[0].Variant, rep.Disk.Instances[0].HeaderLost, rep.Disk.Instances[0].Notes)
	}
	for _, f := range truth.Files {
		t.Logf("truth file at %d %s", f.ImageOffset, f.Variant)
	}
	scores := checkAll(t, truth, run, 4)
	for _, rep := range run.reports {
		if !rep.Disk.Instances[0].HeaderLost {
			t.Errorf("disk %d: instance not marked header-lost", rep.Disk.ID)
		}
		t.Logf("disk %d notes: %v", rep.Disk.ID, rep.Disk.Instances[0].Notes)
	}
	_ = scores
}

// TestAllTablesLost zeroes both copies of every grain table of sparse
// files whose headers survive. Without its map a grain is placed only on
// proof: guest structures that locate themselves (fsprobe), or write order
// between two proven grains (order). Every placed grain must be right;
// recall, unplaced grains, the guest metadata rebuilt and the files
// recovered are logged for the closing table. Without a host map a slot
// is a grain of the file only where the file is contiguous, which only
// proven slots agreeing with write order show: a file written in guest
// order (not virtual order) and a disk with no filesystem place nothing.
func TestAllTablesLost(t *testing.T) {
	lost := []corpus.Damage{{Kind: corpus.ZeroPrimaryTables}, {Kind: corpus.ZeroRedundantTables}}
	for _, tc := range []struct {
		name    string
		disk    corpus.DiskSpec
		variant corpus.Variant
		order   bool // write order must place something
		host    *corpus.HostSpec
	}{
		{"ext4 guest, qemu-img convert", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}, corpus.QemuSparse, true, nil},
		{"ext4 guest, our writer", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}, corpus.OursSparse, true, nil},
		{"ext4 guest made with mkfs's lazy init, qemu-img convert", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4, LazyInit: true}, corpus.QemuSparse, true, nil},
		{"ext4 guest, qemu-img convert, tables zeroed but directories intact", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}, corpus.QemuSparse, true, nil},
		{"NTFS guest, qemu-img convert", corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS}, corpus.QemuSparse, true, nil},
		{"ext4 guest, grains in guest write order", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}, corpus.OursSparseGuestOrder, false, nil},
		{"NTFS guest, qemu-img convert, on an NTFS host in 12 pieces", corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS}, corpus.QemuSparse, true,
			&corpus.HostSpec{FS: corpus.FSNTFS, Offset: 1 << 20, Size: 96 << 20, Fragments: 12, OutOfOrder: true}},
		{"ext4 guest, grains in guest write order, on an ext4 host in 8 pieces", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}, corpus.OursSparseGuestOrder, false,
			&corpus.HostSpec{FS: corpus.FSExt4, Offset: 1 << 20, Size: 96 << 20, Fragments: 8}},
		{"small ext4 guest (one block group), qemu-img convert", corpus.DiskSpec{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, corpus.QemuSparse, true, nil},
		{"small ext4 guest, qemu-img convert, on an ext4 host in 6 pieces", corpus.DiskSpec{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, corpus.QemuSparse, true,
			&corpus.HostSpec{FS: corpus.FSExt4, Offset: 1 << 20, Size: 64 << 20, Fragments: 6}},
		{"small NTFS guest, our writer", corpus.DiskSpec{ID: 1, Capacity: 24 << 20, FS: corpus.FSNTFS}, corpus.OursSparse, true, nil},
		{"synthetic disk, no filesystem", disk(1, 24<<20), corpus.OursSparse, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			damage := lost
			if strings.Contains(tc.name, "directories intact") {
				damage = []corpus.Damage{{Kind: corpus.ZeroGrainTables}}
			}
			truth := generate(t, corpus.Spec{Seed: 32, ImageSize: tc.disk.Capacity + 64<<20, Disks: []corpus.DiskSpec{tc.disk},
				Files: []corpus.FileSpec{{Disk: 1, Variant: tc.variant, Damage: damage}}, Host: tc.host})
			run := carveAndRebuild(t, truth.Image)
			if len(run.reports) != 1 {
				t.Fatalf("%d disks (%v)", len(run.reports), run.err)
			}
			rep := run.reports[0]
			s := scoreDisk(t, run, truth, rep)
			inst := rep.Disk.Instances[0]
			ev := rep.Disk.Counts.ByEvidence
			files := filesRecovered(rep)
			t.Logf("%s: recall %d/%d, %d wrong, %d unplaced (+%d past the last proven slot), fsprobe %d, order %d, metadata %d/%d, files %s",
				tc.name, s.placed, s.surviving, s.wrong, inst.UnplacedGrains, inst.TrailingSlots, ev["fsprobe"], ev["order"], inst.MetadataPlaced, inst.MetadataGrains, files)
			for _, n := range inst.Notes {
				t.Logf("note: %s", n)
			}
			if s.wrong != 0 {
				t.Errorf("%d wrong grains", s.wrong)
			}
			if tc.order != (ev["order"] > 0) {
				t.Errorf("write order placed %d grains; want some: %v", ev["order"], tc.order)
			}
			if tc.disk.FS != "" && ev["fsprobe"] == 0 {
				t.Errorf("no grain of a real guest placed by its own structures")
			}
		})
	}
}

// TestStreamStartAndEndLost: a VMware-layout stream whose first 64 KiB
// (header, descriptor) and last 4 KiB (tables, footer) are overwritten is
// adopted from its grain records alone, its capacity taken from the guest's
// MBR; every record is placed, none is wrong. Two such streams of different
// disks cannot be told apart: nothing is adopted, nothing is wrong.
func TestStreamStartAndEndLost(t *testing.T) {
	gone := []corpus.Damage{{Kind: corpus.Overwrite, At: 0, Bytes: 64 << 10}, {Kind: corpus.CutTail, Bytes: 4 << 10}}
	truth := generate(t, corpus.Spec{Seed: 34, ImageSize: 96 << 20, Disks: []corpus.DiskSpec{disk(1, 20<<20)},
		Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream, Damage: gone}}})
	run := carveAndRebuild(t, truth.Image)
	scores := checkAll(t, truth, run, 1)
	if d := run.reports[0].Disk; !d.Instances[0].HeaderLost || d.Capacity != uint64(20<<20/512) {
		t.Errorf("instance %+v, capacity %d", d.Instances[0].Notes, d.Capacity)
	}
	_ = scores

	two := generate(t, corpus.Spec{Seed: 35, ImageSize: 96 << 20, Disks: []corpus.DiskSpec{disk(1, 20<<20), disk(2, 20<<20)},
		Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream, Damage: gone}, {Disk: 2, Variant: corpus.VMwareStream, Damage: gone}}})
	run = carveAndRebuild(t, two.Image)
	if len(run.reports) != 0 {
		t.Errorf("%d disks adopted from two streams' records, want none", len(run.reports))
	}
}

// TestHeadAndTablesLost: a ransomware head over a sparse file's first
// 64 KiB takes its header, descriptor, grain directories and tables. An
// NTFS guest's boot sector names the volume's place and size: the slots
// are counted from it and placed only on proof (its own structures, then
// write order between them). An ext4 guest whose first grain (the MBR) is
// gone too is not tried: its volume does not say where it starts, and a
// guess that is wrong is still consistent with itself. A 1 MiB head also takes
// the guest's first grains, its MFT among them: too few proven grains are
// left, and nothing is placed. Nothing is wrong either way.
func TestHeadAndTablesLost(t *testing.T) {
	for _, tc := range []struct {
		name     string
		disk     corpus.DiskSpec
		head     int64
		placeAll bool // every grain after the head is placed
	}{
		{"NTFS, 64 KiB head", corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS}, 64 << 10, true},
		{"ext4: not tried (its superblock does not name its partition's start)", corpus.DiskSpec{ID: 1, Capacity: 160 << 20, FS: corpus.FSExt4}, 128 << 10, false},
		{"NTFS, 1 MiB head", corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS}, 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 36, ImageSize: tc.disk.Capacity + 64<<20, Disks: []corpus.DiskSpec{tc.disk},
				Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse, Damage: []corpus.Damage{{Kind: corpus.Overwrite, At: 0, Bytes: tc.head}}}}})
			run := carveAndRebuild(t, truth.Image)
			if !tc.placeAll {
				if len(run.reports) != 0 {
					t.Errorf("%d disks from a file whose proven grains are too few", len(run.reports))
				}
				return
			}
			if len(run.reports) != 1 {
				t.Fatalf("%d disks (%v)", len(run.reports), run.err)
			}
			rep := run.reports[0]
			// The instance's start is made up (the file's is gone): score
			// against the one disk directly.
			s := scoreAgainst(t, run, rep, truth.Disks[0].Raw)
			inst := rep.Disk.Instances[0]
			t.Logf("recall %d/%d, %d wrong; evidence %v; capacity %d; files %s; notes %v", s.placed, s.surviving, s.wrong, rep.Disk.Counts.ByEvidence, rep.Disk.Capacity, filesRecovered(rep), inst.Notes)
			if s.wrong != 0 || s.placed+len(truth.Files[0].Grains)-truth.Files[0].IntactGrains < s.surviving {
				t.Errorf("placed %d of %d, %d wrong", s.placed, s.surviving, s.wrong)
			}
		})
	}
}
