package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
)

// TestRandomContentIntact lays intact, contiguous VMDKs whose guests hold
// 30–100% random-looking content (compressed and encrypted files, random
// MiBs, a BitLocker-like volume), with and without a partition table,
// from qemu-img and our writers, sparse, stream and flat. Random-looking
// bytes are guest content: every grain is placed, the disks compare
// identical to the truth, the guests check clean, and no extra disk
// appears.
func TestRandomContentIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("real guests with random content take a while: skipped with -short")
	}
	ext4 := func(id int, capacity int64, share float64, files int64) corpus.DiskSpec {
		return corpus.DiskSpec{ID: id, Capacity: capacity, FS: corpus.FSExt4, RandomShare: share, FileBytes: files}
	}
	for _, tc := range []struct {
		name  string
		disks []corpus.DiskSpec
		files []corpus.FileSpec
		want  int // disks: one per guest, or per writer (each writes its own CID)
	}{
		{"ext4 50% random, qemu-img sparse", []corpus.DiskSpec{ext4(1, 64<<20, 0.5, 32<<20)},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}}, 1},
		{"NTFS 30% random, qemu-img sparse", []corpus.DiskSpec{{ID: 1, Capacity: 64 << 20, FS: corpus.FSNTFS, RandomShare: 0.3, FileBytes: 24 << 20}},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}}, 1},
		{"ext4 without a partition table, 90% random, qemu-img sparse", []corpus.DiskSpec{{ID: 1, Capacity: 96 << 20, FS: corpus.FSExt4, RandomShare: 0.9, FileBytes: 64 << 20, NoPartitionTable: true}},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}}, 1},
		{"ext4 100% random, our sparse writer and qemu-img stream", []corpus.DiskSpec{ext4(1, 48<<20, 1, 24<<20)},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse}, {Disk: 1, Variant: corpus.QemuStream}}, 2},
		{"no filesystem, random MiBs, qemu-img and our sparse writer", []corpus.DiskSpec{{ID: 1, Capacity: 64 << 20, RandomMiBs: 28}},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}, {Disk: 1, Variant: corpus.OursSparse}}, 2},
		{"BitLocker-like NTFS volume, qemu-img sparse", []corpus.DiskSpec{{ID: 1, Capacity: 64 << 20, FS: corpus.FSNTFS, Cipher: true, FileBytes: 24 << 20}},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}}, 1},
		{"ext4 70% random, ESXi flat", []corpus.DiskSpec{ext4(1, 48<<20, 0.7, 24<<20)},
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 81, ImageSize: 320 << 20, Disks: tc.disks, Files: tc.files})
			run := carveAndRebuild(t, truth.Image)
			// One disk per guest: copies merge, and nothing inside a file
			// found starts another.
			checkAll(t, truth, run, tc.want)
			for _, rep := range run.reports {
				id := diskOf(t, truth, rep)
				if dt := truth.Disk(id); dt.FS != nil && !dt.FS.Cipher {
					guestCheck(t, truth, run, rep, id)
				}
				for _, inst := range rep.Disk.Instances {
					if dm := inst.Damage; dm != nil {
						t.Logf("disk %d instance %d: %s", id, inst.ID, dm.Decision)
						if len(dm.Lattices) > 0 {
							t.Errorf("disk %d: a lattice was accepted on intact content: %+v", id, dm.Lattices)
						}
					}
				}
			}
		})
	}
}

// TestEncryptionLattices encrypts contiguous files in place as lockers do:
// 1 MiB every 2, 4, 8 and 16 MiB at varying phases, 2 MiB chunks, a
// pattern that stops part-way, a size-dependent step, and a head plus a
// stride (on a flat extent, whose head is the guest's, not the VMDK's
// header). Every surviving grain is placed, none is wrong, every grain
// the encryption destroyed is reported damaged, and the lattice found is
// the one planted.
func TestEncryptionLattices(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	mib := int64(1 << 20)
	enc := func(at, stride, head, until int64) corpus.Damage {
		return corpus.Damage{Kind: corpus.EncryptChunks, At: at, Stride: stride, Head: head, Until: until}
	}
	var rows []string
	for _, tc := range []struct {
		name    string
		disk    corpus.DiskSpec
		variant corpus.Variant
		damage  corpus.Damage
	}{
		{"qemu sparse, 1 MiB every 2", corpus.DiskSpec{ID: 1, Capacity: 48 << 20}, corpus.QemuSparse, enc(1*mib, 2*mib, 0, 0)},
		{"qemu sparse, 1 MiB every 4 from 3", corpus.DiskSpec{ID: 1, Capacity: 64 << 20}, corpus.QemuSparse, enc(3*mib, 4*mib, 0, 0)},
		{"our sparse, 1 MiB every 8 from 5", corpus.DiskSpec{ID: 1, Capacity: 96 << 20}, corpus.OursSparse, enc(5*mib, 8*mib, 0, 0)},
		{"qemu sparse, 1 MiB every 16 from 2", corpus.DiskSpec{ID: 1, Capacity: 96 << 20, ZeroFraction: -1}, corpus.QemuSparse, enc(2*mib, 16*mib, 0, 0)},
		{"qemu sparse of an ext4 guest, every 4 from 2", corpus.DiskSpec{ID: 1, Capacity: 64 << 20, FS: corpus.FSExt4, RandomShare: 0.3, FileBytes: 32 << 20}, corpus.QemuSparse, enc(2*mib, 4*mib, 0, 0)},
		{"qemu sparse, 2 MiB every 8 until 40 MiB", corpus.DiskSpec{ID: 1, Capacity: 96 << 20}, corpus.QemuSparse,
			corpus.Damage{Kind: corpus.EncryptChunks, At: 4 * mib, Chunk: 2 * mib, Stride: 8 * mib, Until: 40 * mib}},
		{"qemu sparse, size-dependent step", corpus.DiskSpec{ID: 1, Capacity: 96 << 20, ZeroFraction: -1}, corpus.QemuSparse,
			corpus.Damage{Kind: corpus.EncryptChunks, At: 1 * mib, SizeStep: true}},
		{"ESXi flat of an ext4 guest, 1 MiB every 8 from 3", corpus.DiskSpec{ID: 1, Capacity: 64 << 20, FS: corpus.FSExt4, RandomShare: 0.2, FileBytes: 32 << 20}, corpus.VMFSFlat, enc(3*mib, 8*mib, 0, 0)},
		{"ESXi flat of an NTFS guest, every 16 from 6", corpus.DiskSpec{ID: 1, Capacity: 96 << 20, FS: corpus.FSNTFS, FileBytes: 40 << 20}, corpus.VMFSFlat, enc(6*mib, 16*mib, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 83, ImageSize: 256 << 20, Disks: []corpus.DiskSpec{tc.disk},
				Files: []corpus.FileSpec{{Disk: 1, Variant: tc.variant, Damage: []corpus.Damage{tc.damage}}}})
			run := carveAndRebuild(t, truth.Image)
			if run.err != nil && !errors.Is(run.err, pipeline.ErrNothingRecovered) {
				t.Fatalf("rebuild: %v", run.err)
			}
			if len(run.reports) != 1 {
				t.Fatalf("%d disks, want 1", len(run.reports))
			}
			rep := run.reports[0]
			s := scoreDisk(t, run, truth, rep)
			f := truth.Files[0]
			damaged, reported := destroyed(f, rep)
			planted := f.Damage[0].Damage
			found := latticeOf(rep, f.ImageOffset)
			rows = append(rows, fmt.Sprintf("%-48s recall %d/%d  wrong %d  destroyed %d  reported damaged %d  lattice %s", tc.name, s.placed, s.surviving, s.wrong, damaged, reported, found))
			if s.wrong != 0 || s.placed != s.surviving {
				t.Errorf("placed %d of %d surviving grains, %d wrong; not placed: %v", s.placed, s.surviving, s.wrong, s.unplaced)
			}
			if reported != damaged {
				t.Errorf("%d grains destroyed, %d reported damaged", damaged, reported)
			}
			want := corpus.EffectiveStride(planted, f.Length)
			if found == nil || found.Stride != want || found.Phase != planted.At || found.Head != planted.Head ||
				(planted.Chunk != 0 && found.Chunk != planted.Chunk) {
				t.Errorf("lattice found %v, planted %+v (stride %d)", found, planted, want)
			}
		})
	}
	t.Logf("encryption lattices:\n%s", strings.Join(rows, "\n"))
}

// destroyed counts the file's grains the damage touched that no other copy
// holds, and how many of them the rebuilt disk reports damaged.
func destroyed(f corpus.FileTruth, rep *pipeline.DiskReport) (destroyed, reported int) {
	st := statuses(rep.Disk)
	for _, g := range f.Grains {
		if g.Intact {
			continue
		}
		destroyed++
		if g.Grain < uint64(len(st)) && st[g.Grain] == reassemble.Damaged {
			reported++
		}
	}
	return destroyed, reported
}

// latticeOf returns the first lattice the damage policy accepted for the
// instance found at a file's image offset.
func latticeOf(rep *pipeline.DiskReport, imageOffset int64) *reassemble.Lattice {
	for _, inst := range rep.Disk.Instances {
		if inst.HeaderOffset == imageOffset && inst.Damage != nil && len(inst.Damage.Lattices) > 0 {
			return &inst.Damage.Lattices[0]
		}
	}
	return nil
}

// TestHostEncryptionLattices encrypts every VMDK file on real ext4 and
// NTFS host volumes in place (host metadata intact, files fragmented):
// none is wrong, every grain of a sparse file the encryption destroyed is
// damaged (the scenario's other writers' copies are other versions, so
// recall is logged, not asserted), and each sparse file's lattice is the
// one planted: proven on the larger file, inherited by the small ones.
func TestHostEncryptionLattices(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	var rows []string
	for _, hc := range []struct {
		scenario string
		damage   corpus.HostDamage
	}{
		{"ext4-host", corpus.HostDamage{Kind: corpus.EncryptEveryNthMiB, N: 4, Offset: 1 << 20}},
		{"ntfs-host", corpus.HostDamage{Kind: corpus.EncryptEveryNthMiB, N: 8, Offset: 2 << 20}},
		{"ntfs-host", corpus.HostDamage{Kind: corpus.EncryptEveryNthMiB, N: 2, Offset: 3 << 20}},
		{"ext4-host", corpus.HostDamage{Kind: corpus.EncryptEveryNthMiB, SizeStep: true, Offset: 1 << 20}},
	} {
		name := fmt.Sprintf("%s every %d MiB from %d MiB (size step %v)", hc.scenario, hc.damage.N, hc.damage.Offset>>20, hc.damage.SizeStep)
		t.Run(name, func(t *testing.T) {
			truth := generateHost(t, hc.scenario, 96<<20, hc.damage)
			run := carveAndRebuild(t, truth.Image)
			if run.err != nil {
				t.Fatalf("rebuild: %v", run.err)
			}
			for _, rep := range run.reports {
				s := scoreDisk(t, run, truth, rep)
				placed, intact := ownRecall(truth, rep)
				rows = append(rows, fmt.Sprintf("%-52s disk %d  recall %d/%d (own copies' intact grains %d/%d)  wrong %d  damaged %d",
					name, s.disk, s.placed, s.surviving, placed, intact, s.wrong, rep.Disk.Counts.Damaged))
				if s.wrong != 0 {
					t.Errorf("disk %d: %d wrong grains", s.disk, s.wrong)
				}
				if placed != intact || intact == 0 {
					t.Errorf("disk %d: placed %d of the %d intact grains of its own copies", s.disk, placed, intact)
				}
			}
			if len(run.reports) != len(truth.Files) {
				t.Errorf("%d disks rebuilt from %d files (each writer's copy is a version of its own)", len(run.reports), len(truth.Files))
			}
			for _, ht := range truth.Host.Damage {
				for _, ef := range ht.Files {
					if ef.FileIndex < 0 || ef.FileIndex >= len(truth.Files) {
						continue
					}
					f := truth.Files[ef.FileIndex]
					if f.Variant.Stream() || f.Variant.Flat() {
						continue
					}
					for _, rep := range run.reports {
						if d, r := destroyed(f, rep); diskOf(t, truth, rep) == f.Disk && latticeOf(rep, f.ImageOffset) != nil && d != r {
							t.Errorf("%s: %d grains destroyed, %d reported damaged", f.HostPath, d, r)
						}
						if l := latticeOf(rep, f.ImageOffset); l != nil {
							rows = append(rows, fmt.Sprintf("    %s (%d bytes): lattice %s; planted every %d MiB from %d", f.HostPath, f.Length, l, ef.Stride>>20, ef.Phase>>20))
							if l.Stride != ef.Stride || l.Phase != ef.Phase {
								t.Errorf("%s: lattice %s, planted stride %d phase %d", f.HostPath, l, ef.Stride, ef.Phase)
							}
						}
					}
				}
			}
		})
	}
	t.Logf("host encryption lattices:\n%s", strings.Join(rows, "\n"))
}

// ownRecall counts the intact grains of the files a report's instances
// were found in (its own copies, not other writers' versions of the same
// guest), and how many of them it placed: the recall a host map allows.
func ownRecall(truth *corpus.Truth, rep *pipeline.DiskReport) (placed, intact int) {
	st := statuses(rep.Disk)
	for _, f := range truth.Files {
		if !instanceAt(rep, f.ImageOffset) {
			continue
		}
		p, n := intactPlaced(st, f)
		placed, intact = placed+p, intact+n
	}
	return placed, intact
}

// instanceAt reports whether one of a report's instances starts at the
// image offset.
func instanceAt(rep *pipeline.DiskReport, imageOffset int64) bool {
	for _, inst := range rep.Disk.Instances {
		if inst.HeaderOffset == imageOffset {
			return true
		}
	}
	return false
}
