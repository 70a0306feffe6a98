package e2e

import (
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
		Disks: []corpus.DiskSpec{disk(1, 24<<20), disk(2, 40<<20+512*9), disk(3, 16<<20)},
		Files: []corpus.FileSpec{
			{Disk: 1, Variant: corpus.QemuSparse, Damage: head},
			{Disk: 2, Variant: corpus.OursSparse, Damage: head},
			{Disk: 3, Variant: corpus.VMwareStream, Damage: head},
		}})
	run := carveAndRebuild(t, truth.Image)
	for _, rep := range run.reports {
		t.Logf("report %d: instance at %d %s lost=%v notes %v", rep.Disk.ID, rep.Disk.Instances[0].HeaderOffset, rep.Disk.Instances[0].Variant, rep.Disk.Instances[0].HeaderLost, rep.Disk.Instances[0].Notes)
	}
	for _, f := range truth.Files {
		t.Logf("truth file at %d %s", f.ImageOffset, f.Variant)
	}
	scores := checkAll(t, truth, run, 3)
	for _, rep := range run.reports {
		if !rep.Disk.Instances[0].HeaderLost {
			t.Errorf("disk %d: instance not marked header-lost", rep.Disk.ID)
		}
		t.Logf("disk %d notes: %v", rep.Disk.ID, rep.Disk.Instances[0].Notes)
	}
	_ = scores
}
