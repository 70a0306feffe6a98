// Package corpus generates deterministic evidence images with ground truth:
// synthetic guest disks whose every sector names itself, VMDK files of
// several writers made from them, laid into a noise-filled host image at
// seeded offsets and optionally damaged. The same Spec always gives a
// byte-identical image and truth, so end-to-end tests, benchmarks and demos
// can measure a carver's recall and precision exactly.
//
// Files written by Generate into its output directory:
//
//	image.dd        the evidence image
//	disk-NN.raw     each guest disk as it should be recovered (sparse file)
//	truth.json      where every file and every grain was put, and what was damaged
package corpus

import (
	"errors"
	"fmt"
)

// Variant names the writer that made a VMDK file. The values are stable:
// they appear in truth.json.
type Variant string

const (
	// OursSparse is vmdk.WriteMonolithicSparse: qemu's layout with RGD.
	OursSparse Variant = "ours-sparse"
	// OursStreamFront is vmdk.WriteStreamOptimized with StreamGDFront
	// (open-vmdk style: GD/GTs at the front, no footer, EOS at the end).
	OursStreamFront Variant = "ours-stream-front"
	// VMwareStream is vmdk.WriteStreamOptimized with StreamGDAtEnd: the
	// VMware spec / ovftool layout with markers, footer and EOS.
	VMwareStream Variant = "vmware-stream"
	// QemuSparse is `qemu-img convert -O vmdk` (monolithicSparse).
	QemuSparse Variant = "qemu-sparse"
	// OursSparseGuestOrder is OursSparse with grains appended in a seeded
	// random order, as a disk grown by a running guest is: write order says
	// nothing about virtual order.
	OursSparseGuestOrder Variant = "ours-sparse-guest-order"
	// QemuStream is `qemu-img convert -O vmdk -o subformat=streamOptimized`.
	QemuStream Variant = "qemu-stream"
	// QemuFlat is `qemu-img convert -O vmdk -o subformat=monolithicFlat`:
	// two files, the raw disk NAME-flat.vmdk (the laid file) and the text
	// descriptor NAME.vmdk (createType "monolithicFlat", extent
	// `RW <sectors> FLAT "NAME-flat.vmdk" 0`, NUL-padded to 512 bytes).
	QemuFlat Variant = "qemu-flat"
	// VMFSFlat is what ESXi writes for a thick disk: the raw disk
	// NAME-flat.vmdk and a text descriptor NAME.vmdk with createType
	// "vmfs" and extent `RW <sectors> VMFS "NAME-flat.vmdk"`, written by
	// vmdk.Descriptor.Encode.
	VMFSFlat Variant = "vmfs-flat"
)

// Variants lists every variant, in a fixed order. New variants go at the
// end: a variant's index seeds its CID.
var Variants = []Variant{OursSparse, OursStreamFront, VMwareStream, QemuSparse, QemuStream, OursSparseGuestOrder, QemuFlat, VMFSFlat}

// NeedsQemu reports whether the variant is made by qemu-img.
func (v Variant) NeedsQemu() bool { return v == QemuSparse || v == QemuStream || v == QemuFlat }

// Flat reports whether the variant is a flat extent: a headerless raw
// disk (the laid file, FORMAT.md §4.3) with a separate text descriptor
// file (§4.4) laid beside it unless FileSpec.NoDescriptor.
func (v Variant) Flat() bool { return v == QemuFlat || v == VMFSFlat }

// Stream reports whether the variant is stream-optimized (grain records
// are compressed and carry markers).
func (v Variant) Stream() bool { return v == OursStreamFront || v == VMwareStream || v == QemuStream }

func (v Variant) valid() bool {
	for _, k := range Variants {
		if v == k {
			return true
		}
	}
	return false
}

// DamageKind names a way a laid copy of a file is damaged.
type DamageKind string

const (
	// ZeroPrimaryTables zeroes the primary GD and every GT it points to
	// (for a GD_AT_END stream: the GD named by the footer), leaving any
	// redundant copy.
	ZeroPrimaryTables DamageKind = "zero-primary-tables"
	// ZeroRedundantTables zeroes the redundant GD and its GTs; an error
	// for a file without them.
	ZeroRedundantTables DamageKind = "zero-redundant-tables"
	// ZeroGrainTables zeroes every grain table of both copies and leaves
	// the grain directories: the directories still name the tables, which
	// read as all zero.
	ZeroGrainTables DamageKind = "zero-grain-tables"
	// ZeroHeader zeroes sector 0 of the file (of a flat extent: the
	// guest's sector 0, which costs grain 0).
	ZeroHeader DamageKind = "zero-header"
	// CutTail overwrites the last Bytes of the file with noise, as if the
	// file's tail clusters had been reused.
	CutTail DamageKind = "cut-tail"
	// Overwrite overwrites Bytes at file offset At with noise.
	Overwrite DamageKind = "overwrite"
	// EncryptChunks encrypts the file in place intermittently, as
	// ransomware does (ESXiArgs, LockBit, BlackCat, Akira, Royal): Chunk
	// bytes every Stride bytes from file offset At up to Until, and the
	// first Head bytes, are overwritten with noise (see Damage.Chunks).
	EncryptChunks DamageKind = "encrypt-chunks"
)

// Damage is one damage applied to the copy of a file in the image (never
// to the file as made, whose grain map is the reference).
type Damage struct {
	Kind DamageKind `json:"kind"`
	// At is the file offset of an Overwrite, or of EncryptChunks' first
	// strided chunk (the lattice's phase, a multiple of the chunk).
	At    int64 `json:"at,omitempty"`
	Bytes int64 `json:"bytes,omitempty"` // CutTail, Overwrite: length

	// EncryptChunks only. Chunk is the length of one encrypted chunk
	// (0: 1 MiB); Stride the bytes from one chunk's start to the next's,
	// more than Chunk; Head the bytes from file offset 0 also encrypted
	// (0: none); Until the file offset where the strided chunks stop (0:
	// the file's end). SizeStep derives the stride from the file's size
	// as ESXiArgs does (see EffectiveStride); Stride must then be 0, and
	// in FileTruth.Damage it holds the stride used.
	Chunk    int64 `json:"chunk,omitempty"`
	Stride   int64 `json:"stride,omitempty"`
	Head     int64 `json:"head,omitempty"`
	Until    int64 `json:"until,omitempty"`
	SizeStep bool  `json:"size_step,omitempty"`
}

// Fill is what the host image holds outside the laid files.
type Fill int

const (
	// Noise is seeded pseudo-random bytes (the default).
	Noise Fill = iota
	// Zero is all zero bytes.
	Zero
)

func (f Fill) String() string {
	if f == Zero {
		return "zero"
	}
	return "noise"
}

// DiskSpec describes one synthetic guest disk.
type DiskSpec struct {
	ID       int   // 1..9999; the ID is written into every sector
	Capacity int64 // bytes, a positive multiple of 512
	// ZeroFraction is about the fraction of 64 KiB grains that are all
	// zero (so writers leave them unallocated). 0 means 0.3; a negative
	// value means no zero grains. Unused with FS.
	ZeroFraction float64
	// FS makes the disk a real one: FSExt4 or FSNTFS on an MBR partition
	// at 1 MiB, filled with seeded files (see guestfs.go). "" keeps the
	// synthetic self-naming sectors.
	FS string
	// GPT gives an FS disk a GUID partition table (protective MBR, the
	// primary GPT at sector 1 and its backup in the disk's last sectors)
	// instead of an MBR, as UEFI guests have.
	GPT bool
	// LazyInit makes an ext4 guest as mkfs.ext4 does by default on most
	// systems: inode tables and journal not zeroed (nor flagged zeroed).
	LazyInit bool
	// RandomShare (FS guests, 0..1) is the share of the guest's file
	// bytes held by random-looking "binary" files, as real guests hold
	// compressed and encrypted files: JPEG, ZIP, gzip and headerless .bin
	// files of 1..8 whole MiB, a real magic and small header followed by
	// seeded noise every 4 KiB block of which looks random
	// (entropy.RandomLooking). 1 makes every file binary; 0 none.
	RandomShare float64
	// FileBytes (FS guests) is the total size of the guest's files, at
	// most 80% of the partition and MaxGuestFileBytes; 0 means a tenth of
	// the partition, at most 8 MiB. Files that do not fit are a spec error.
	FileBytes int64
	// NoPartitionTable (FS guests) puts the filesystem at LBA 0: no MBR
	// nor GPT, the volume is the whole disk. An error with GPT.
	NoPartitionTable bool
	// Cipher (FS guests) stands in for BitLocker or LUKS: the filesystem
	// and files are built as usual, then every non-zero 4 KiB block of the
	// partition becomes seeded random-looking bytes keyed by the disk and
	// the block's offset (zero blocks, the free space, stay zero), and the
	// partition's first sector a BitLocker-like boot sector ("-FVE-FS-").
	// The partition table still types the partition as the filesystem's.
	Cipher bool
	// RandomMiBs (synthetic disks only) is a number of 1 MiB regions, at
	// seeded distinct MiB-aligned virtual offsets past MiB 0 and inside the
	// capacity, filled with seeded random-looking bytes instead of the
	// self-naming sectors (never zero grains); DiskTruth.RandomMiBs and
	// RandomGrains list them.
	RandomMiBs int
}

// FileSpec is one VMDK file laid into the image. For a flat variant it is
// the raw extent, and its text descriptor file is laid as well: at a
// seeded offset of its own in the noise, or as a file beside it on the
// host volume.
type FileSpec struct {
	Disk    int // DiskSpec.ID
	Variant Variant
	// Offset is the image offset of the file; 0 means a seeded
	// 4096-aligned offset. A non-zero offset must be a multiple of 512.
	Offset int64
	Damage []Damage
	// Fragments overrides HostSpec.Fragments for this file (0: the
	// host's); ignored without a host (where Pieces splits a file).
	Fragments int
	// NoDescriptor leaves out the text descriptor of a flat variant, as
	// when the small descriptor file was deleted and its clusters reused:
	// only the raw extent is laid. An error for other variants.
	NoDescriptor bool
	// Pieces splits a file laid without a host into this many pieces
	// (2..MaxFragments; 0 or 1 lays it in one run), as a host filesystem
	// whose metadata was wiped leaves a fragmented file. The pieces'
	// lengths are seeded multiples of 4096 (host clusters; the last ends
	// at the file's end), drawn between 1 and 64 units and scaled to the
	// file, each at least 1 MiB when the file is large enough (else half
	// its share). The first is at least 1 MiB, so that the header and the
	// front grain directories and tables lie in it, as a host allocates a
	// file's start first; a file too short for that and a cluster for
	// every other piece (the last may be shorter) is a spec error. Each
	// piece lies at a seeded 4096-aligned place of its own, so noise and
	// other files' pieces lie between them; FileTruth.Fragments maps
	// them. An error with a host or a fixed Offset.
	Pieces int
	// InOrder lays the pieces so that their image offsets grow with their
	// file offsets, with seeded gaps (noise, or other files' pieces)
	// between them; otherwise their image order is seeded and never
	// their file order. An error without Pieces.
	InOrder bool
	// Decoy lays only one piece of the file, file bytes [At, At+Length),
	// at a seeded 4096-aligned place of its own (at Offset when set), and
	// nothing else of it, not even a flat variant's descriptor: a
	// headerless piece of some other VMDK of the same guest, as one left
	// behind in freed clusters. Its grains outside the piece are listed
	// in FileTruth.Grains but not intact. An error with a host or with
	// Pieces.
	Decoy *DecoyPiece
}

// DecoyPiece is the only piece of a file FileSpec.Decoy lays.
type DecoyPiece struct {
	// At is the file offset of the piece: a positive multiple of 4096,
	// so the header is never in it.
	At int64 `json:"at"`
	// Length is the piece's length: a positive multiple of 4096 with
	// At+Length within the file (checked when it is laid).
	Length int64 `json:"length"`
}

// Spec describes a whole evidence image.
type Spec struct {
	Seed      uint64
	ImageSize int64 // bytes, a positive multiple of 512
	NoiseFill Fill
	Disks     []DiskSpec
	Files     []FileSpec
	// Host, when set, puts the files on a real host filesystem volume
	// laid into the image (see host.go); nil lays them into the noise.
	Host *HostSpec
}

// GrainSectors is the grain size of every file the corpus makes.
const GrainSectors = 128

// grainBytes is one grain in bytes.
const grainBytes = GrainSectors * 512

// Limits that keep a mistyped Spec from filling the disk or memory.
const (
	// MaxDiskCapacity bounds one guest disk: the per-grain bookkeeping and
	// the truth file stay small, and qemu's and our sparse writers address
	// it easily.
	MaxDiskCapacity = 64 << 30
	maxDiskID       = 9999 // four digits in the sector text
	// MaxGuestFileBytes bounds DiskSpec.FileBytes: debugfs and ntfscp
	// write every byte, and a corpus needs no more.
	MaxGuestFileBytes = 1 << 30
	// maxFileOffset bounds offsets and lengths in a damage: past any file
	// (a disk is at most MaxDiskCapacity), and far from overflowing.
	maxFileOffset = 1 << 40
)

// Errors.
var (
	// ErrNoQemu is returned (wrapped) by Generate when a Spec needs
	// qemu-img and it is not installed; tests skip on it.
	ErrNoQemu = errors.New("corpus: qemu-img not found")
	// ErrSpec reports an invalid Spec.
	ErrSpec = errors.New("corpus: invalid spec")
)

func specErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrSpec, fmt.Sprintf(format, a...))
}

// validate checks s and returns its disks by ID.
func (s *Spec) validate() (map[int]*DiskSpec, error) {
	if s.ImageSize <= 0 || s.ImageSize%512 != 0 {
		return nil, specErr("image size %d is not a positive multiple of 512", s.ImageSize)
	}
	disks := make(map[int]*DiskSpec, len(s.Disks))
	for i := range s.Disks {
		d := &s.Disks[i]
		switch {
		case d.ID < 1 || d.ID > maxDiskID:
			return nil, specErr("disk id %d, want 1..%d", d.ID, maxDiskID)
		case disks[d.ID] != nil:
			return nil, specErr("disk id %d given twice", d.ID)
		case d.Capacity <= 0 || d.Capacity%512 != 0 || d.Capacity > MaxDiskCapacity:
			return nil, specErr("disk %d capacity %d is not a multiple of 512 in 512..%d", d.ID, d.Capacity, int64(MaxDiskCapacity))
		}
		switch d.FS {
		case "":
		case FSExt4, FSNTFS:
			if d.Capacity < minGuestCapacity || d.Capacity%4096 != 0 {
				return nil, specErr("disk %d: a %s guest needs a capacity that is a multiple of 4096 and at least %d", d.ID, d.FS, minGuestCapacity)
			}
		default:
			return nil, specErr("disk %d: guest filesystem %q, want ext4 or ntfs", d.ID, d.FS)
		}
		if err := d.validateContent(); err != nil {
			return nil, err
		}
		disks[d.ID] = d
	}
	for i, f := range s.Files {
		switch {
		case disks[f.Disk] == nil:
			return nil, specErr("file %d: no disk %d", i, f.Disk)
		case !f.Variant.valid():
			return nil, specErr("file %d: unknown variant %q", i, f.Variant)
		case f.Offset < 0 || f.Offset%512 != 0:
			return nil, specErr("file %d: offset %d is not a multiple of 512", i, f.Offset)
		case f.NoDescriptor && !f.Variant.Flat():
			return nil, specErr("file %d: no-descriptor on a %s file, whose descriptor is embedded", i, f.Variant)
		}
		if err := f.validatePieces(s.Host != nil); err != nil {
			return nil, specErr("file %d: %v", i, err)
		}
		for _, d := range f.Damage {
			switch d.Kind {
			case ZeroPrimaryTables, ZeroRedundantTables, ZeroGrainTables:
				if f.Variant.Flat() {
					return nil, specErr("file %d: %s on a %s file, which has no grain tables", i, d.Kind, f.Variant)
				}
			case ZeroHeader:
			case CutTail:
				if d.Bytes <= 0 {
					return nil, specErr("file %d: cut-tail of %d bytes", i, d.Bytes)
				}
			case Overwrite:
				if d.Bytes <= 0 || d.At < 0 {
					return nil, specErr("file %d: overwrite of %d bytes at %d", i, d.Bytes, d.At)
				}
			case EncryptChunks:
				if err := d.validateChunks(); err != nil {
					return nil, specErr("file %d: %v", i, err)
				}
			default:
				return nil, specErr("file %d: unknown damage %q", i, d.Kind)
			}
		}
	}
	if err := s.validateHost(); err != nil {
		return nil, err
	}
	return disks, nil
}

// validateContent checks the fields that shape a disk's content.
func (d *DiskSpec) validateContent() error {
	if d.FS == "" {
		switch {
		case d.RandomShare != 0 || d.FileBytes != 0 || d.NoPartitionTable || d.Cipher:
			return specErr("disk %d: random share, file bytes, no partition table and cipher need a guest filesystem", d.ID)
		case d.RandomMiBs < 0 || int64(d.RandomMiBs) > max(d.Capacity>>20-1, 0):
			return specErr("disk %d: %d random MiBs, want 0..%d (whole MiBs of the capacity past MiB 0)", d.ID, d.RandomMiBs, max(d.Capacity>>20-1, 0))
		}
		return nil
	}
	part := d.partitionSize()
	switch {
	case d.RandomMiBs != 0:
		return specErr("disk %d: random MiBs on a %s guest: use random share", d.ID, d.FS)
	case !(d.RandomShare >= 0 && d.RandomShare <= 1): // NaN too
		return specErr("disk %d: random share %v outside 0..1", d.ID, d.RandomShare)
	case d.FileBytes < 0 || d.FileBytes > part/10*8 || d.FileBytes > MaxGuestFileBytes:
		return specErr("disk %d: file bytes %d, want 0..%d (80%% of the %d-byte partition, at most %d)", d.ID, d.FileBytes, min(part/10*8, MaxGuestFileBytes), part, int64(MaxGuestFileBytes))
	case d.NoPartitionTable && d.GPT:
		return specErr("disk %d: no partition table and GPT", d.ID)
	}
	return nil
}

// validatePieces checks Pieces, InOrder and Decoy (the file's length is
// checked when it is laid).
func (f *FileSpec) validatePieces(host bool) error {
	d := f.Decoy
	switch {
	case f.Pieces < 0 || f.Pieces > MaxFragments:
		return fmt.Errorf("%d pieces, want 0..%d", f.Pieces, MaxFragments)
	case host && (f.Pieces > 1 || d != nil):
		return errors.New("pieces and decoys are laid without a host: the host filesystem fragments its files itself (FileSpec.Fragments)")
	case f.InOrder && f.Pieces < 2:
		return fmt.Errorf("in-order with %d pieces", f.Pieces)
	case f.Pieces > 1 && f.Offset != 0:
		return errors.New("a fixed offset for a file in pieces, each of which is placed by seed")
	case d == nil:
		return nil
	case f.Pieces > 1:
		return errors.New("a decoy in pieces: a decoy is one piece")
	case d.At <= 0 || d.At%fileAlign != 0 || d.At > maxFileOffset:
		return fmt.Errorf("decoy at file offset %d, want a positive multiple of %d (the header is never in a decoy)", d.At, fileAlign)
	case d.Length <= 0 || d.Length%fileAlign != 0 || d.Length > maxFileOffset:
		return fmt.Errorf("decoy of %d bytes, want a positive multiple of %d", d.Length, fileAlign)
	}
	return nil
}

// validateChunks checks an EncryptChunks damage on its own (the file's
// length is checked when it is laid).
func (d Damage) validateChunks() error {
	chunk := d.chunk()
	switch {
	case d.Chunk < 0 || d.Stride < 0 || d.At < 0 || d.Head < 0 || d.Until < 0:
		return fmt.Errorf("%s: negative chunk %d, stride %d, at %d, head %d or until %d", d.Kind, d.Chunk, d.Stride, d.At, d.Head, d.Until)
	case max(d.Chunk, d.Stride, d.At, d.Head, d.Until) > maxFileOffset:
		return fmt.Errorf("%s: chunk %d, stride %d, at %d, head %d or until %d past any file", d.Kind, d.Chunk, d.Stride, d.At, d.Head, d.Until)
	case d.SizeStep && d.Stride != 0:
		return fmt.Errorf("%s: stride %d with size-step, which derives the stride from the file's size", d.Kind, d.Stride)
	case !d.SizeStep && d.Stride <= chunk:
		return fmt.Errorf("%s: stride %d is not more than the %d-byte chunk", d.Kind, d.Stride, chunk)
	case d.At%chunk != 0:
		return fmt.Errorf("%s: at %d is not a multiple of the %d-byte chunk", d.Kind, d.At, chunk)
	case d.Until != 0 && d.Until <= d.At:
		return fmt.Errorf("%s: until %d is not past the first chunk at %d", d.Kind, d.Until, d.At)
	}
	return nil
}

// NeedsQemu reports whether any file of s is made by qemu-img.
func (s *Spec) NeedsQemu() bool {
	for _, f := range s.Files {
		if f.Variant.NeedsQemu() {
			return true
		}
	}
	return false
}
