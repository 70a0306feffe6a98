package ext4

import "encoding/binary"

// Fields read as stored, for callers that judge them by rules of their
// own: a backup superblock checked against its primary, the group
// descriptors and inode tables the guest's metadata predicts, a journal
// found by its magic. ParseSuperblock and ParseInode are the checked
// decodings; these accessors only bound their reads.

// More superblock fields.
const (
	sbReservedGDT  = 0xCE  // u16 s_reserved_gdt_blocks
	sbDescSize     = 0xFE  // u16 s_desc_size (64bit volumes)
	compatSparse2  = 0x200 // sparse_super2: two backups, where mke2fs chose
	roCompatSparse = 0x1   // sparse_super: backups in groups 0, 1 and powers of 3, 5, 7
)

// SuperblockFields are a superblock's fields as stored.
type SuperblockFields struct {
	Magic             uint16
	InodesCount       uint32
	BlocksLo          uint32 // s_blocks_count_lo
	BlocksHi          uint32 // s_blocks_count_hi (64bit volumes)
	InodesPerGroup    uint32
	RevLevel          uint32
	InodeSize         uint16 // s_inode_size (revision 1 and later)
	FirstDataBlock    uint32
	LogBlockSize      uint32
	BlocksPerGroup    uint32
	BlockGroup        uint16 // s_block_group_nr: the group a backup lies in
	WriteTime         uint32 // s_wtime
	FeatureCompat     uint32
	FeatureIncompat   uint32
	FeatureROCompat   uint32
	UUID              [16]byte
	ReservedGDTBlocks uint16
	DescSize          uint16
}

// IsSuperblockMagic is the cheap first test: s_magic at its place in the
// 1024-byte superblock at the start of b.
func IsSuperblockMagic(b []byte) bool {
	return len(b) >= SuperblockSize && le16(b, OffMagic) == Magic
}

// ReadSuperblockFields reads the superblock at the start of b (zeros for a
// b shorter than SuperblockSize).
func ReadSuperblockFields(b []byte) SuperblockFields {
	if len(b) < SuperblockSize {
		return SuperblockFields{}
	}
	f := SuperblockFields{
		Magic: le16(b, OffMagic), InodesCount: le32(b, sbInodesCount), BlocksLo: le32(b, sbBlocksCountLo),
		BlocksHi: le32(b, sbBlocksCountHi), InodesPerGroup: le32(b, sbInodesPerGroup), RevLevel: le32(b, sbRevLevel),
		InodeSize: le16(b, sbInodeSize), FirstDataBlock: le32(b, sbFirstDataBlock),
		LogBlockSize: le32(b, sbLogBlockSize), BlocksPerGroup: le32(b, sbBlocksPerGroup), BlockGroup: le16(b, sbBlockGroupNr),
		WriteTime: le32(b, OffWriteTime), FeatureCompat: le32(b, sbFeatureCompat), FeatureIncompat: le32(b, sbFeatureIncompt),
		FeatureROCompat: le32(b, sbFeatureROCompt), ReservedGDTBlocks: le16(b, sbReservedGDT), DescSize: le16(b, sbDescSize),
	}
	copy(f.UUID[:], b[sbUUID:sbUUID+16])
	return f
}

// BlockSize is the block size s_log_block_size gives, capped at 64 KiB
// (the largest a kernel mounts) so that a damaged field cannot overflow.
func (f SuperblockFields) BlockSize() int64 { return 1024 << min(f.LogBlockSize, maxLogBlockSize) }

// SparseSuper reports whether backup superblocks lie only in groups 0, 1
// and the powers of 3, 5 and 7 (sparse_super without sparse_super2, which
// puts its two backups where mke2fs chose).
func (f SuperblockFields) SparseSuper() bool {
	return f.FeatureCompat&compatSparse2 == 0 && f.FeatureROCompat&roCompatSparse != 0
}

// GroupDescSize is the size of a group descriptor: 32 bytes, or
// s_desc_size on a 64bit volume, where it must be a power of two from 64
// to 1024 bytes (ok false otherwise).
func (f SuperblockFields) GroupDescSize() (int64, bool) {
	if f.FeatureIncompat&incompat64bit == 0 {
		return groupDescSize32, true
	}
	n := int64(f.DescSize)
	return n, n >= 64 && n <= 1024 && n&(n-1) == 0
}

// Group descriptor (struct ext4_group_desc) fields.
const (
	groupDescSize32  = 32
	gdBlockBitmapLo  = 0x00
	gdInodeBitmapLo  = 0x04
	gdInodeTableLo   = 0x08
	gdFreeBlocksLo   = 0x0C
	gdFreeInodesLo   = 0x0E
	gdFlags          = 0x12
	gdItableUnusedLo = 0x1C
	gdChecksum       = 0x1E
	gdBlockBitmapHi  = 0x20
	gdInodeBitmapHi  = 0x24
	gdInodeTableHi   = 0x28
	gdFreeBlocksHi   = 0x2C
	gdFreeInodesHi   = 0x2E
	gdItableUnusedHi = 0x32

	// Group flags (bg_flags).
	GroupInodeUninit = 0x1 // the inode table and bitmap are not initialised
	GroupBlockUninit = 0x2 // the block bitmap is not initialised
)

// GroupDesc is a block group descriptor: where the group's bitmaps and
// inode table lie (blocks), its free counts and flags.
type GroupDesc struct {
	BlockBitmap, InodeBitmap, InodeTable int64
	FreeBlocks, FreeInodes               int64
	ItableUnused                         int64 // inodes at the table's end never used
	Flags                                uint16
}

// ParseGroupDesc decodes the descriptor d, of the volume's descriptor
// size: the upper halves are read from descriptors of 64 bytes or more.
// A d shorter than 32 bytes gives zeros.
func ParseGroupDesc(d []byte) GroupDesc {
	if len(d) < groupDescSize32 {
		return GroupDesc{}
	}
	wide := len(d) >= 64
	hi32 := func(lo, hi int) int64 {
		x := int64(le32(d, lo))
		if wide {
			x |= int64(le32(d, hi)) << 32
		}
		return x
	}
	hi16 := func(lo, hi int) int64 {
		x := int64(le16(d, lo))
		if wide {
			x |= int64(le16(d, hi)) << 16
		}
		return x
	}
	return GroupDesc{
		BlockBitmap: hi32(gdBlockBitmapLo, gdBlockBitmapHi), InodeBitmap: hi32(gdInodeBitmapLo, gdInodeBitmapHi),
		InodeTable: hi32(gdInodeTableLo, gdInodeTableHi), FreeBlocks: hi16(gdFreeBlocksLo, gdFreeBlocksHi),
		FreeInodes: hi16(gdFreeInodesLo, gdFreeInodesHi), ItableUnused: hi16(gdItableUnusedLo, gdItableUnusedHi),
		Flags: le16(d, gdFlags),
	}
}

// GroupDescChecksumOK reports whether descriptor d of group g carries its
// metadata_csum checksum under the filesystem seed: the low 16 bits of
// crc32c(seed, g, d with bg_checksum zeroed).
func GroupDescChecksumOK(d []byte, seed, g uint32) bool {
	if len(d) < groupDescSize32 {
		return false
	}
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], g)
	c := CRC32C(CRC32C(seed, le[:]), d[:gdChecksum])
	c = CRC32C(c, []byte{0, 0})
	c = CRC32C(c, d[gdChecksum+2:])
	return uint16(c) == le16(d, gdChecksum)
}

// More inode fields.
const (
	inodeDtime      = 0x14
	inodeBlockDind  = InodeBlock + 13*4 // i_block[13]: the double-indirect block of a block-mapped inode
	FlagInlineData  = 0x10000000
	JournalInode    = 8 // the journal's inode number
	ResizeInode     = 7 // the reserved GDT blocks' inode
	inodeBlockWords = 15
)

// InodeFields are an inode's fields as stored, of any file type.
type InodeFields struct {
	Mode       uint16
	Links      uint16
	Flags      uint32
	Generation uint32
	Size       int64 // i_size, its high half's sign bit cleared
	Dtime      uint32
	ExtraIsize uint16
	Block      [inodeBlockWords]uint32 // i_block: block numbers, or an extent tree root
}

// ReadInodeFields reads the inode at the start of b (zeros for a b
// shorter than 128 bytes; ExtraIsize 0 where b ends before it).
func ReadInodeFields(b []byte) InodeFields {
	if len(b) < ext4GoodOldInodeSize {
		return InodeFields{}
	}
	f := InodeFields{Mode: le16(b, InodeMode), Links: le16(b, InodeLinks), Flags: le32(b, InodeFlags),
		Generation: le32(b, InodeGeneration), Dtime: le32(b, inodeDtime),
		Size: int64(le32(b, InodeSizeLo)) | int64(le32(b, InodeSizeHigh)&0x7fffffff)<<32}
	if len(b) >= InodeExtraIsize+2 {
		f.ExtraIsize = le16(b, InodeExtraIsize)
	}
	for i := range f.Block {
		f.Block[i] = le32(b, InodeBlock+4*i)
	}
	return f
}

// DoubleIndirect is i_block[13] of a block-mapped inode.
func (f InodeFields) DoubleIndirect() int64 { return int64(f.Block[13]) }

// InodeChecksumFields reads the checksum fields of an inode of any type
// (ParseInode takes regular extent-mapped files only) from its 256 bytes,
// for SolveInodeNumber and VerifyCsum.
func InodeChecksumFields(b []byte) *Inode {
	var c [256]byte
	copy(c[:], b)
	in := &Inode{Generation: le32(c[:], InodeGeneration), CsumLo: le16(c[:], InodeChecksumLo), HasHi: true, CsumHi: le16(c[:], InodeChecksumHi)}
	c[InodeChecksumLo], c[InodeChecksumLo+1] = 0, 0
	c[InodeChecksumHi], c[InodeChecksumHi+1] = 0, 0
	in.CRC128 = CRC32C(0, c[:128])
	in.CRC256 = CRC32C(0, c[:])
	return in
}

// InodeChecksumOK reports whether the inode b (of the volume's inode size,
// 128 bytes or more) carries its metadata_csum checksum for number inum
// under the filesystem seed. The checksum's upper half is stored (and
// checked) only in an inode larger than 128 bytes whose i_extra_isize
// covers it.
func InodeChecksumOK(b []byte, seed, inum uint32) bool {
	if len(b) < ext4GoodOldInodeSize {
		return false
	}
	in := append([]byte(nil), b...)
	lo := le16(in, InodeChecksumLo)
	in[InodeChecksumLo], in[InodeChecksumLo+1] = 0, 0
	hasHi := len(in) >= InodeChecksumHi+2 && le16(in, InodeExtraIsize) >= 4
	var hi uint16
	if hasHi {
		hi = le16(in, InodeChecksumHi)
		in[InodeChecksumHi], in[InodeChecksumHi+1] = 0, 0
	}
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], inum)
	c := CRC32C(seed, le[:])
	c = CRC32C(c, in[InodeGeneration:InodeGeneration+4])
	c = CRC32C(c, in)
	if hasHi {
		return c == uint32(lo)|uint32(hi)<<16
	}
	return uint16(c) == lo
}

// The jbd2 journal superblock (big-endian, at the journal's first block).
const (
	jbd2Magic        = 0xC03B3998
	jbd2SuperblockV1 = 3
	jbd2SuperblockV2 = 4
)

// IsJournalSuperblock reports whether b starts with a jbd2 journal
// superblock's header: the magic and a superblock block type.
func IsJournalSuperblock(b []byte) bool {
	if len(b) < 8 || binary.BigEndian.Uint32(b) != jbd2Magic {
		return false
	}
	t := binary.BigEndian.Uint32(b[4:])
	return t == jbd2SuperblockV1 || t == jbd2SuperblockV2
}

// ext4 directory block tail (struct ext4_dir_entry_tail): a fake entry of
// inode 0 at the block's end holding its metadata_csum checksum.
const (
	dirTailSize     = 12
	dirTailFileType = 0xDE
)

// DirBlockTail is what a checksummed directory block says of itself.
type DirBlockTail struct {
	// Checksum is the stored crc32c, BodyCRC the raw crc32c (seed 0) of
	// the bytes it covers: with the directory's inode seed (InodeCsumSeed)
	// the two verify by linearity (CRC32CZeros(seed, n) ^ BodyCRC).
	Checksum, BodyCRC uint32
	// Self is the inode number of its first entry when that entry is "."
	// (the directory's logical block 0), else 0.
	Self uint32
	// Covered is the number of bytes the checksum covers.
	Covered int
}

// ParseDirBlockTail reads the tail of the directory block b (one whole
// block); ok is false when b does not end in a directory tail.
func ParseDirBlockTail(b []byte) (DirBlockTail, bool) {
	if len(b) < 2*dirTailSize {
		return DirBlockTail{}, false
	}
	n := len(b) - dirTailSize
	t := b[n:]
	if le32(t, 0) != 0 || le16(t, 4) != dirTailSize || t[6] != 0 || t[7] != dirTailFileType {
		return DirBlockTail{}, false
	}
	d := DirBlockTail{Checksum: le32(t, 8), BodyCRC: CRC32C(0, b[:n]), Covered: n}
	// The first entry: inode u32, rec_len u16, name_len u8, file_type u8, name.
	if b[6] == 1 && b[8] == '.' {
		d.Self = le32(b, 0)
	}
	return d, true
}
