package corpus

import (
	"fmt"
	"sort"
)

// A scenario is a named Spec shared by cmd/corpus, tests, benchmarks and
// the README demo, so they all talk about the same images.
type scenario struct {
	help        string
	defaultSize int64
	build       func(seed uint64, size int64, qemu bool) Spec
}

var scenarios = map[string]scenario{
	"demo": {
		help:        "a QemuSparse disk (OursSparse without qemu-img), a VMwareStream disk with its tail cut, an OursSparse copy with its primary tables zeroed, and a duplicate copy of the first disk",
		defaultSize: 256 << 20,
		build:       demoSpec,
	},
	"bench": {
		help:        "a large noise image with a few VMDKs of every available variant: for timing a carve against cat",
		defaultSize: 2 << 30,
		build:       benchSpec,
	},
	"ext4-host": {
		help:        "an MBR partition at 1 MiB with an ext4 host volume holding VMDKs of mixed variants fragmented into 2..40 pieces by the allocator, guests with ext4 and NTFS filesystems, no damage",
		defaultSize: 256 << 20,
		build:       hostScenario(FSExt4),
	},
	"ntfs-host": {
		help:        "as ext4-host on an NTFS host volume (pieces out of disk order)",
		defaultSize: 256 << 20,
		build:       hostScenario(FSNTFS),
	},
	"ext4-host-wiped": {
		help:        "ext4-host with every host filesystem structure zeroed: only the file data survives",
		defaultSize: 256 << 20,
		build:       hostScenario(FSExt4, HostDamage{Kind: WipeHostMetadata}),
	},
	"ntfs-host-wiped": {
		help:        "ntfs-host with every host filesystem structure zeroed: only the file data survives",
		defaultSize: 256 << 20,
		build:       hostScenario(FSNTFS, HostDamage{Kind: WipeHostMetadata}),
	},
	"ext4-host-encrypted": {
		help:        "ext4-host with MiB 4, 12, 20 ... of each VMDK file overwritten with random bytes (ransomware; the headers survive)",
		defaultSize: 256 << 20,
		build:       hostScenario(FSExt4, HostDamage{Kind: EncryptEveryNthMiB, N: 8, Offset: 4 << 20}),
	},
	"ntfs-host-encrypted": {
		help:        "ntfs-host with MiB 4, 12, 20 ... of each VMDK file overwritten with random bytes (ransomware; the headers survive)",
		defaultSize: 256 << 20,
		build:       hostScenario(FSNTFS, HostDamage{Kind: EncryptEveryNthMiB, N: 8, Offset: 4 << 20}),
	},
	"tables-lost": {
		help:        "last resort: an ext4 guest (160 MiB) and an NTFS guest (48 MiB) as QemuSparse (OursSparse without qemu-img) and an ext4 guest written in guest order, every grain table zeroed in both copies; needs mkfs.ext4, debugfs, mkntfs and ntfscp",
		defaultSize: 512 << 20,
		build:       tablesLostSpec,
	},
	"flat": {
		help:        "flat extents in noise, each a raw disk plus its text descriptor at a place of its own: an ext4 guest (64 MiB) as QemuFlat (VMFSFlat without qemu-img), an NTFS guest (32 MiB) as VMFSFlat (ESXi's createType vmfs), and a synthetic disk as VMFSFlat whose descriptor is lost; needs mkfs.ext4, debugfs, mkntfs and ntfscp",
		defaultSize: 256 << 20,
		build:       flatSpec,
	},
	"random-guests": {
		help:        "guests holding random-looking data, each an intact contiguous QemuSparse (OursSparse without qemu-img) in noise: an ext4 guest with half its file bytes in JPEG/ZIP/gzip/.bin files, an NTFS guest with 30%, an ext4 guest without a partition table (the volume at LBA 0) with 90%, a synthetic disk with random 1 MiB regions, and an NTFS guest whose partition is cipher text (a BitLocker stand-in); needs mkfs.ext4, debugfs, mkntfs and ntfscp",
		defaultSize: 256 << 20,
		build:       randomGuestsSpec,
	},
	"encrypted-lattice": {
		help:        "ransomware's intermittent encryption: contiguous sparse and flat files in noise, each encrypted in place in 1 MiB chunks on its own lattice (stride 2 MiB from 1 MiB; 4 MiB from 0, header included; 8 MiB from 3 MiB with a 64 KiB head; ESXiArgs' size-step stride; 16 MiB from 5 MiB, stopping short of the file's end)",
		defaultSize: 512 << 20,
		build:       encryptedLatticeSpec,
	},
	"fragmented": {
		help:        "no host filesystem: VMDKs in pieces at seeded places of their own, as a host leaves them once its metadata is wiped, other files' pieces between them: an ext4 guest (3/8 of the image) as QemuSparse (OursSparse without qemu-img) in 19 pieces out of order and as QemuStream (OursStreamFront) in 12 out of order, an NTFS guest (1/8) as OursSparse in 8 pieces in order and as VMwareStream in 6 out of order, both guests 40% full with 30% random-looking file bytes, a synthetic disk (1/16) as OursSparse in 10 pieces, and a decoy: 8 MiB from inside another sparse file of the ext4 guest, headerless, written in guest order (OursSparseGuestOrder) so its grain layout is not the real files'; needs mkfs.ext4, debugfs, mkntfs and ntfscp",
		defaultSize: 1 << 30,
		build:       fragmentedSpec(false),
	},
	"fragmented-encrypted": {
		help:        "fragmented with every file but the decoy encrypted in place in 1 MiB chunks every 8 MiB from MiB 4, through its pieces (ransomware; the headers survive); needs mkfs.ext4, debugfs, mkntfs and ntfscp",
		defaultSize: 1 << 30,
		build:       fragmentedSpec(true),
	},
	"variants": {
		help:        "one small disk in every available sparse and stream variant plus one copy for every damage kind: for end-to-end tests (the flat variants are in the flat scenario)",
		defaultSize: 64 << 20,
		build:       variantsSpec,
	},
}

// Scenarios returns the scenario names, sorted.
func Scenarios() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ScenarioHelp describes a scenario, for --help.
func ScenarioHelp(name string) string { return scenarios[name].help }

// Scenario returns the Spec of a named scenario. size 0 means the
// scenario's default image size. qemu says whether the qemu-img variants
// may be used; without it they are replaced by our own writers of the same
// kind, so a scenario always generates.
func Scenario(name string, seed uint64, size int64, qemu bool) (Spec, error) {
	sc, ok := scenarios[name]
	if !ok {
		return Spec{}, fmt.Errorf("%w: unknown scenario %q (have %v)", ErrSpec, name, Scenarios())
	}
	if size == 0 {
		size = sc.defaultSize
	}
	return sc.build(seed, size, qemu), nil
}

// pick returns v, or its stand-in made by our writers when qemu is absent.
func pick(v Variant, qemu bool) Variant {
	if qemu {
		return v
	}
	switch v {
	case QemuSparse:
		return OursSparse
	case QemuStream:
		return OursStreamFront
	case QemuFlat:
		return VMFSFlat
	}
	return v
}

func demoSpec(seed uint64, size int64, qemu bool) Spec {
	return Spec{
		Seed: seed, ImageSize: size,
		Disks: []DiskSpec{
			{ID: 1, Capacity: 64 << 20},
			{ID: 2, Capacity: 48<<20 + 4096},
			{ID: 3, Capacity: 40 << 20},
		},
		Files: []FileSpec{
			{Disk: 1, Variant: pick(QemuSparse, qemu)},
			{Disk: 2, Variant: VMwareStream, Damage: []Damage{{Kind: CutTail, Bytes: 256 << 10}}},
			{Disk: 3, Variant: OursSparse, Damage: []Damage{{Kind: ZeroPrimaryTables}}},
			{Disk: 1, Variant: pick(QemuSparse, qemu)},
		},
	}
}

// benchSpec scales the disks with the image: about a quarter of the image
// is VMDK data, the rest noise, which is what a carver spends its time on.
func benchSpec(seed uint64, size int64, qemu bool) Spec {
	unit := min(max(size/16, 4<<20), 256<<20) / (1 << 20) * (1 << 20)
	return Spec{
		Seed: seed, ImageSize: size,
		Disks: []DiskSpec{
			{ID: 1, Capacity: unit},
			{ID: 2, Capacity: unit / 2},
			{ID: 3, Capacity: unit/2 + 4096},
			{ID: 4, Capacity: unit / 4},
		},
		Files: []FileSpec{
			{Disk: 1, Variant: pick(QemuSparse, qemu)},
			{Disk: 2, Variant: VMwareStream},
			{Disk: 3, Variant: OursStreamFront},
			{Disk: 4, Variant: pick(QemuStream, qemu)},
			{Disk: 1, Variant: OursSparse},
		},
	}
}

func tablesLostSpec(seed uint64, size int64, qemu bool) Spec {
	lost := []Damage{{Kind: ZeroPrimaryTables}, {Kind: ZeroRedundantTables}}
	return Spec{Seed: seed, ImageSize: size,
		Disks: []DiskSpec{{ID: 1, Capacity: 160 << 20, FS: FSExt4}, {ID: 2, Capacity: 48 << 20, FS: FSNTFS}, {ID: 3, Capacity: 160 << 20, FS: FSExt4}},
		Files: []FileSpec{
			{Disk: 1, Variant: pick(QemuSparse, qemu), Damage: lost},
			{Disk: 2, Variant: pick(QemuSparse, qemu), Damage: lost},
			{Disk: 3, Variant: OursSparseGuestOrder, Damage: lost},
		}}
}

func flatSpec(seed uint64, size int64, qemu bool) Spec {
	return Spec{Seed: seed, ImageSize: size,
		Disks: []DiskSpec{{ID: 1, Capacity: 64 << 20, FS: FSExt4}, {ID: 2, Capacity: 32 << 20, FS: FSNTFS}, {ID: 3, Capacity: 24<<20 + 4096}},
		Files: []FileSpec{
			{Disk: 1, Variant: pick(QemuFlat, qemu)},
			{Disk: 2, Variant: VMFSFlat},
			{Disk: 3, Variant: VMFSFlat, NoDescriptor: true},
		}}
}

func variantsSpec(seed uint64, size int64, qemu bool) Spec {
	s := Spec{Seed: seed, ImageSize: size, Disks: []DiskSpec{{ID: 1, Capacity: 4<<20 + 1536}}}
	seen := map[Variant]bool{}
	for _, v := range Variants {
		if v.Flat() {
			continue // the flat scenario has them; this image stays as it was
		}
		if v = pick(v, qemu); !seen[v] {
			seen[v] = true
			s.Files = append(s.Files, FileSpec{Disk: 1, Variant: v})
		}
	}
	s.Files = append(s.Files,
		FileSpec{Disk: 1, Variant: OursSparse, Damage: []Damage{{Kind: ZeroPrimaryTables}}},
		FileSpec{Disk: 1, Variant: OursSparse, Damage: []Damage{{Kind: ZeroRedundantTables}}},
		FileSpec{Disk: 1, Variant: VMwareStream, Damage: []Damage{{Kind: ZeroHeader}}},
		FileSpec{Disk: 1, Variant: VMwareStream, Damage: []Damage{{Kind: CutTail, Bytes: 64 << 10}}},
		FileSpec{Disk: 1, Variant: OursStreamFront, Damage: []Damage{{Kind: Overwrite, At: 64 << 10, Bytes: 100 << 10}}},
	)
	return s
}

// hostScenario lays the VMDKs on a host volume filling the image from
// 1 MiB (1 MiB spare at the end): two real-filesystem guests and one
// synthetic, six files of mixed variants, each with its own seeded piece
// count in 2..40. The guests scale with the image (a quarter of the volume
// in all; the synthetic disk's sparse copy, some 30 MiB at the default
// size, is what the every-8th-MiB encryption has most to bite on); the guest filesystems need mkfs.ext4, debugfs, mkntfs and
// ntfscp, like the host.
func hostScenario(fs string, damage ...HostDamage) func(seed uint64, size int64, qemu bool) Spec {
	return func(seed uint64, size int64, qemu bool) Spec {
		vol := max((size-2<<20)/(1<<20)*(1<<20), minHostSize)
		unit := max(vol/16/(1<<20)*(1<<20), minGuestCapacity)
		s := Spec{
			Seed: seed, ImageSize: max(size, vol+2<<20),
			Disks: []DiskSpec{
				{ID: 1, Capacity: unit + unit/2, FS: FSExt4},
				{ID: 2, Capacity: unit, FS: FSNTFS},
				{ID: 3, Capacity: 3 * unit},
			},
			Files: []FileSpec{
				{Disk: 1, Variant: pick(QemuSparse, qemu)},
				{Disk: 2, Variant: VMwareStream},
				{Disk: 3, Variant: OursStreamFront},
				{Disk: 2, Variant: OursSparse},
				{Disk: 1, Variant: pick(QemuStream, qemu)},
				{Disk: 3, Variant: OursSparse},
			},
			Host: &HostSpec{FS: fs, Offset: 1 << 20, Size: vol, Fragments: 8, OutOfOrder: true, Damage: damage},
		}
		for i := range s.Files {
			s.Files[i].Fragments = 2 + int(mix(seed^uint64(i)^0x66726167)%39) // "frag"
		}
		return s
	}
}

// sixteenth is a scenario's disk unit: a sixteenth of the image in whole
// MiBs, 16 MiB at least.
func sixteenth(size int64) int64 { return max(size/16/(1<<20)*(1<<20), 16<<20) }

// twoFifths is the guest file bytes of a disk whose files fill 40% of it.
func twoFifths(capacity int64) int64 { return capacity * 2 / 5 }

// randomGuestsSpec scales its disks with the image (16 MiB units at the
// default size); the guests' files fill 40% of each.
func randomGuestsSpec(seed uint64, size int64, qemu bool) Spec {
	unit := sixteenth(size)
	s := Spec{
		Seed: seed, ImageSize: max(size, 8*unit),
		Disks: []DiskSpec{
			{ID: 1, Capacity: 2 * unit, FS: FSExt4, RandomShare: 0.5, FileBytes: twoFifths(2 * unit)},
			{ID: 2, Capacity: unit + unit/2, FS: FSNTFS, RandomShare: 0.3, FileBytes: twoFifths(unit + unit/2)},
			{ID: 3, Capacity: unit, FS: FSExt4, NoPartitionTable: true, RandomShare: 0.9, FileBytes: twoFifths(unit)},
			{ID: 4, Capacity: 2 * unit, RandomMiBs: int(unit>>20) / 2},
			{ID: 5, Capacity: unit, FS: FSNTFS, Cipher: true, RandomShare: 0.3, FileBytes: twoFifths(unit)},
		},
	}
	for _, d := range s.Disks {
		s.Files = append(s.Files, FileSpec{Disk: d.ID, Variant: pick(QemuSparse, qemu)})
	}
	return s
}

// encryptedLatticeSpec lays five synthetic disks' files (32 MiB units at
// the default size, 16 MiB at least so that every lattice repeats), each
// with a lattice of its own and no clean copy. The 16 MiB lattice stops
// at twice the unit, before the last chunks its file would hold.
func encryptedLatticeSpec(seed uint64, size int64, qemu bool) Spec {
	unit := sixteenth(size)
	enc := func(stride, at, head int64) []Damage {
		return []Damage{{Kind: EncryptChunks, Stride: stride, At: at, Head: head}}
	}
	return Spec{
		Seed: seed, ImageSize: max(size, 16*unit),
		Disks: []DiskSpec{
			{ID: 1, Capacity: 2 * unit},
			{ID: 2, Capacity: 2 * unit},
			{ID: 3, Capacity: 2 * unit},
			{ID: 4, Capacity: 5 * unit / 2}, // a size-step stride of 6 MiB (3 MiB at 16 MiB units)
			{ID: 5, Capacity: 4 * unit},
		},
		Files: []FileSpec{
			{Disk: 1, Variant: pick(QemuSparse, qemu), Damage: enc(2<<20, 1<<20, 0)},
			{Disk: 2, Variant: OursSparse, Damage: enc(4<<20, 0, 0)},
			{Disk: 3, Variant: VMFSFlat, Damage: enc(8<<20, 3<<20, 64<<10)},
			{Disk: 4, Variant: pick(QemuFlat, qemu), Damage: []Damage{{Kind: EncryptChunks, SizeStep: true}}},
			{Disk: 5, Variant: OursSparse, Damage: []Damage{{Kind: EncryptChunks, Stride: 16 << 20, At: 5 << 20, Until: 2 * unit}}},
		},
	}
}

// fragmentedSpec lays its files in pieces in noise. The disks scale with
// the image in units of a sixteenth (64 MiB at the default size; 16 MiB
// at least, so the image is 256 MiB at least and the NTFS guest's stream
// copy, some 5 MiB then, still reaches the first encrypted chunk): the
// ext4 guest 6 units, the NTFS guest 2, the synthetic disk 1. The decoy
// is 8 MiB at a sixth of the ext4 guest's capacity into its file, well
// inside the 40% of file bytes; it is written in guest order because
// OursSparse lays its grains exactly where qemu-img does, which would
// make the decoy a duplicate of the real file's bytes rather than
// another file's. With encrypted, every file but the decoy is encrypted
// on a lattice of 1 MiB chunks every 8 MiB from MiB 4.
func fragmentedSpec(encrypted bool) func(seed uint64, size int64, qemu bool) Spec {
	return func(seed uint64, size int64, qemu bool) Spec {
		unit := sixteenth(size)
		s := Spec{
			Seed: seed, ImageSize: max(size, 16*unit),
			Disks: []DiskSpec{
				{ID: 1, Capacity: 6 * unit, FS: FSExt4, RandomShare: 0.3, FileBytes: twoFifths(6 * unit)},
				{ID: 2, Capacity: 2 * unit, FS: FSNTFS, RandomShare: 0.3, FileBytes: twoFifths(2 * unit)},
				{ID: 3, Capacity: unit},
			},
			Files: []FileSpec{
				{Disk: 1, Variant: pick(QemuSparse, qemu), Pieces: 19},
				{Disk: 2, Variant: OursSparse, Pieces: 8, InOrder: true},
				{Disk: 1, Variant: pick(QemuStream, qemu), Pieces: 12},
				{Disk: 2, Variant: VMwareStream, Pieces: 6},
				{Disk: 3, Variant: OursSparse, Pieces: 10},
			},
		}
		if encrypted {
			for i := range s.Files {
				s.Files[i].Damage = []Damage{{Kind: EncryptChunks, Stride: 8 << 20, At: 4 << 20}}
			}
		}
		s.Files = append(s.Files, FileSpec{Disk: 1, Variant: OursSparseGuestOrder, Decoy: &DecoyPiece{At: unit, Length: 8 << 20}})
		return s
	}
}
