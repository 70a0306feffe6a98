package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/vmdk"
)

// TestFlatExtents: flat extents (qemu-img's monolithicFlat, ESXi's vmfs
// -flat.vmdk) have no header; each is found from its descriptor and the
// guest partition table at its start, laid contiguously in noise or
// fragmented on a host volume. Every grain is placed and nothing is wrong;
// a flat extent whose descriptor is lost is not invented.
func TestFlatExtents(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []corpus.FileSpec
		disks []corpus.DiskSpec
		host  *corpus.HostSpec
		want  int // disks rebuilt; -1: any number, none wrong
	}{
		{"in noise: qemu monolithicFlat ext4, ESXi vmfs NTFS",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuFlat}, {Disk: 2, Variant: corpus.VMFSFlat}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, {ID: 2, Capacity: 32 << 20, FS: corpus.FSNTFS}}, nil, 2},
		{"right after a sparse file of the same guest (inside its contiguous guess)",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse, Offset: 1 << 20}, {Disk: 1, Variant: corpus.VMFSFlat, Offset: 8 << 20}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}}, nil, 2},
		{"descriptor lost: nothing is invented",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat, NoDescriptor: true}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}}, nil, 0},
		{"a raw disk without a descriptor beside a larger flat disk: one disk, not two under one descriptor",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat}, {Disk: 2, Variant: corpus.VMFSFlat, NoDescriptor: true}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 32 << 20, FS: corpus.FSNTFS}, {ID: 2, Capacity: 24 << 20, FS: corpus.FSExt4}}, nil, 1},
		{"two flat disks of one size",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat}, {Disk: 2, Variant: corpus.VMFSFlat}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, {ID: 2, Capacity: 24 << 20, FS: corpus.FSNTFS}}, nil, 2},
		{"on an ext4 host in 4 pieces",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSNTFS}},
			&corpus.HostSpec{FS: corpus.FSExt4, Offset: 1 << 20, Size: 64 << 20, Fragments: 4}, 1},
		{"descriptor lost, on an NTFS host: the host names the extent and gives its size",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat, NoDescriptor: true}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSNTFS}},
			&corpus.HostSpec{FS: corpus.FSNTFS, Offset: 1 << 20, Size: 64 << 20, Fragments: 3}, 1},
		{"on a wiped ext4 host in 6 pieces (no map: nothing wrong)",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 32 << 20, FS: corpus.FSNTFS}},
			&corpus.HostSpec{FS: corpus.FSExt4, Offset: 1 << 20, Size: 96 << 20, Fragments: 6, Damage: []corpus.HostDamage{{Kind: corpus.WipeHostMetadata}}}, -1},
		// A disk formatted whole (mkfs.ext4 on the device): no partition
		// table; its superblock and the descriptor's size find it.
		{"qemu monolithicFlat of an ext4 volume without a partition table, in noise",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuFlat}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4, NoPartitionTable: true}}, nil, 1},
		{"ESXi vmfs flat of an ext4 volume without a partition table, at sector 63 + 1 MiB",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat, Offset: 63*512 + 1<<20}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 32 << 20, FS: corpus.FSExt4, NoPartitionTable: true}}, nil, 1},
		{"an ext4 volume without a partition table, descriptor lost: nothing is invented",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat, NoDescriptor: true}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4, NoPartitionTable: true}}, nil, 0},
		{"on an NTFS host in 4 pieces",
			[]corpus.FileSpec{{Disk: 1, Variant: corpus.QemuFlat}},
			[]corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}},
			&corpus.HostSpec{FS: corpus.FSNTFS, Offset: 1 << 20, Size: 64 << 20, Fragments: 4, OutOfOrder: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generateGuests(t, corpus.Spec{Seed: 71, ImageSize: 128 << 20, Disks: tc.disks, Files: tc.files, Host: tc.host})
			run := carveAndRebuildLogged(t, truth)
			switch tc.want {
			case 0:
				if len(run.reports) != 0 {
					t.Errorf("%d disks rebuilt, want none", len(run.reports))
				}
				return
			case -1: // whatever is rebuilt must be right
				for _, rep := range run.reports {
					s := scoreDisk(t, run, truth, rep)
					t.Logf("disk %d: %d of %d surviving grains placed, %d wrong; notes %v", s.disk, s.placed, s.surviving, s.wrong, rep.Disk.Instances[0].Notes)
					if s.wrong != 0 {
						t.Errorf("%d wrong grains", s.wrong)
					}
				}
				return
			}
			checkAll(t, truth, run, tc.want)
			for _, rep := range run.reports {
				guestCheck(t, truth, run, rep, diskOf(t, truth, rep))
			}
		})
	}
}

// TestGPTGuests: UEFI guests (GPT, its backup in the disk's last sectors)
// as a flat extent (found through the GPT behind its protective MBR), a
// sparse file with every table lost (the locator reads the GPT), and a
// header-lost sparse file without its descriptor (capacity exactly from
// the GPT's backup header LBA).
func TestGPTGuests(t *testing.T) {
	lost := []corpus.Damage{{Kind: corpus.ZeroPrimaryTables}, {Kind: corpus.ZeroRedundantTables}}
	for _, tc := range []struct {
		name  string
		disk  corpus.DiskSpec
		file  corpus.FileSpec
		exact bool // every surviving grain must be placed
	}{
		{"flat, NTFS", corpus.DiskSpec{ID: 1, Capacity: 32 << 20, FS: corpus.FSNTFS, GPT: true}, corpus.FileSpec{Disk: 1, Variant: corpus.VMFSFlat}, true},
		{"header and descriptor lost, ext4", corpus.DiskSpec{ID: 1, Capacity: 24<<20 + 4096, FS: corpus.FSExt4, GPT: true},
			corpus.FileSpec{Disk: 1, Variant: corpus.QemuSparse, Damage: []corpus.Damage{{Kind: corpus.Overwrite, At: 0, Bytes: 21 * 512}}}, true},
		{"every table lost, NTFS", corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS, GPT: true}, corpus.FileSpec{Disk: 1, Variant: corpus.QemuSparse, Damage: lost}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generateGuests(t, corpus.Spec{Seed: 72, ImageSize: 128 << 20, Disks: []corpus.DiskSpec{tc.disk}, Files: []corpus.FileSpec{tc.file}})
			run := carveAndRebuildLogged(t, truth)
			if tc.exact {
				checkAll(t, truth, run, 1)
				guestCheck(t, truth, run, run.reports[0], 1)
				return
			}
			if len(run.reports) != 1 {
				t.Fatalf("%d disks", len(run.reports))
			}
			s := scoreDisk(t, run, truth, run.reports[0])
			t.Logf("recall %d/%d, %d wrong; evidence %v; files %s", s.placed, s.surviving, s.wrong, run.reports[0].Disk.Counts.ByEvidence, filesRecovered(run.reports[0]))
			if s.wrong != 0 || s.placed == 0 {
				t.Errorf("placed %d, %d wrong", s.placed, s.wrong)
			}
		})
	}
}

// TestFlatOutOfOrder: a flat extent whose pieces lie out of order with no
// host map. Read contiguously from its partition table, the pieces after
// the first are in the wrong places; the guest's own structures show it,
// and nothing is placed wrong.
func TestFlatOutOfOrder(t *testing.T) {
	for _, fs := range []string{corpus.FSNTFS, corpus.FSExt4} {
		t.Run(fs, func(t *testing.T) {
			const capacity = 160 << 20
			truth := generateGuests(t, corpus.Spec{Seed: 73, ImageSize: capacity + 8<<20, Disks: []corpus.DiskSpec{{ID: 1, Capacity: capacity, FS: fs}},
				Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat}}})
			raw, err := os.ReadFile(truth.Disks[0].Raw)
			if err != nil {
				t.Fatal(err)
			}
			desc := vmdk.Descriptor{Version: 1, CID: 0x5eed, ParentCID: 0xffffffff, CreateType: "vmfs",
				Extents: []vmdk.Extent{{Access: "RW", Sectors: capacity / 512, Type: "VMFS", FileName: "x-flat.vmdk"}}}
			text, err := desc.Encode()
			if err != nil {
				t.Fatal(err)
			}
			noise := noiseSource(73, 1)
			// Pieces: [0, 40M), [100M, 160M), [40M, 100M).
			img := noise(1 << 20)
			img = append(img, text...)
			img = append(img, noise(1<<20-len(text))...)
			img = append(img, raw[:40<<20]...)
			img = append(img, raw[100<<20:]...)
			img = append(img, raw[40<<20:100<<20]...)
			img = append(img, noise(1<<20)...)
			image := filepath.Join(t.TempDir(), "image.dd")
			if err := os.WriteFile(image, img, 0o644); err != nil {
				t.Fatal(err)
			}
			run := carveAndRebuild(t, image)
			for _, rep := range run.reports {
				s := scoreAgainst(t, run, rep, truth.Disks[0].Raw)
				t.Logf("placed %d of %d, %d wrong; notes %v", s.placed, s.surviving, s.wrong, rep.Disk.Instances[0].Notes)
				if s.wrong != 0 {
					t.Errorf("%d wrong grains", s.wrong)
				}
			}
		})
	}
}

// TestFlatHeadEncrypted: an ESXi disk (vmfs -flat.vmdk) of an NTFS guest
// whose first MiB and every 16th MiB after it were encrypted in place, as
// ESXiArgs does: its partition table is gone, and the NTFS boot sector at
// 1 MiB (hidden sectors: the partition's start) with its backup at the
// volume's end name where the disk lies. With its descriptor, and with the
// descriptor lost (the disk then reaches the volume's end). No grain is
// wrong, every grain the encryption spared is placed, and those it
// destroyed are reported damaged or missing, never placed.
func TestFlatHeadEncrypted(t *testing.T) {
	esxiArgs := []corpus.Damage{{Kind: corpus.EncryptChunks, Head: 1 << 20, At: 16 << 20, Stride: 16 << 20}}
	for _, tc := range []struct {
		name         string
		noDescriptor bool
	}{
		{"with its descriptor", false},
		{"descriptor lost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generateGuests(t, corpus.Spec{Seed: 73, ImageSize: 256 << 20,
				Disks: []corpus.DiskSpec{{ID: 1, Capacity: 128 << 20, FS: corpus.FSNTFS, FileBytes: 48 << 20, RandomShare: 0.3}},
				Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMFSFlat, Damage: esxiArgs, NoDescriptor: tc.noDescriptor}}})
			run := carveAndRebuildLogged(t, truth)
			if len(run.reports) != 1 {
				t.Fatalf("%d disks rebuilt, want 1", len(run.reports))
			}
			rep := run.reports[0]
			placed, intact := intactPlaced(statuses(rep.Disk), truth.Files[0])
			s := scoreDisk(t, run, truth, rep)
			t.Logf("placed %d of %d grains the encryption spared, %d wrong; notes %v", placed, intact, s.wrong, rep.Disk.Instances[0].Notes)
			if s.wrong != 0 || placed != intact {
				t.Errorf("placed %d of %d spared grains, %d wrong", placed, intact, s.wrong)
			}
		})
	}
}
