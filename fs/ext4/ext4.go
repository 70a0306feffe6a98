// Package ext4 decodes the ext4 structures the carve and the probes read:
// the superblock, inodes and extent tree nodes, and the metadata_csum
// checksums that let an inode or a leaf say where it belongs. It knows
// bytes and nothing else: where a structure lies, and what it means for a
// host or a guest, is fsprobe's.
//
// Layout from the kernel's Documentation/filesystems/ext4
// (https://www.kernel.org/doc/html/latest/filesystems/ext4/) and
// fs/ext4/ext4.h, ext4_extents.h.
//
// Parsed by hand rather than through go-ext4: its superblock reader uses
// reflection (binary.Read), computes the block size with math.Pow on an
// unchecked shift, and panics on feature sets it cannot walk (no flex_bg,
// meta_bg, inline_data, ...). A carver must read damaged and unusual
// filesystems too, and needs fields (s_block_group_nr, the checksum seed)
// go-ext4 does not expose. go-ext4 serves as a test oracle instead.
package ext4

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"vmdkcarve/internal/formaterr"
)

// Superblock.
const (
	SuperblockOffset = 1024 // the primary superblock's offset in the filesystem
	SuperblockSize   = 1024
	Magic            = 0xEF53

	sbInodesCount    = 0x00
	sbBlocksCountLo  = 0x04
	sbFirstDataBlock = 0x14
	sbLogBlockSize   = 0x18
	sbBlocksPerGroup = 0x20
	sbInodesPerGroup = 0x28
	// OffWriteTime is s_wtime, the last write time (seconds since 1970).
	OffWriteTime = 0x30
	// OffMagic is s_magic (Magic).
	OffMagic         = 0x38
	sbRevLevel       = 0x4C
	sbInodeSize      = 0x58
	sbBlockGroupNr   = 0x5A
	sbFeatureCompat  = 0x5C
	sbFeatureIncompt = 0x60
	sbFeatureROCompt = 0x64
	sbUUID           = 0x68
	sbBlocksCountHi  = 0x150
	sbChecksumSeed   = 0x270
	sbChecksum       = 0x3FC

	incompatExtents  = 0x40
	incompat64bit    = 0x80
	incompatFlexBG   = 0x200
	incompatCsumSeed = 0x2000 // s_checksum_seed holds the seed (UUID may have changed)
	roCompatMetaCsum = 0x400

	// MaxExt4LogBlockSize: 64 KiB blocks, the largest any kernel mounts.
	maxLogBlockSize = 6
)

// Inodes.
const (
	ext4GoodOldInodeSize = 128
	InodeMode            = 0x00
	InodeSizeLo          = 0x04
	InodeLinks           = 0x1A
	InodeFlags           = 0x20
	InodeBlock           = 0x28 // i_block: 60 bytes, the extent tree root
	InodeGeneration      = 0x64
	InodeSizeHigh        = 0x6C
	InodeChecksumLo      = 0x7C
	InodeExtraIsize      = 0x80
	InodeChecksumHi      = 0x82

	ModeTypeMask      = 0xF000
	ModeRegular       = 0x8000
	FlagExtents       = 0x80000
	InodeRootMaxEntry = 4 // (60 - 12) / 12

	// maxInodeSize bounds i_size: 2^44 bytes (16 TiB), above any VMDK
	// extent a host could hold and the ext4 limit with 4 KiB blocks.
	maxInodeSize = 1 << 44
)

// Extent tree nodes.
const (
	ExtentMagic      = 0xF30A
	extentHeaderSize = 12
	extentEntrySize  = 12

	// MaxDepth is the deepest tree ext4 builds (the kernel checks
	// EXT4_MAX_EXTENT_DEPTH = 5).
	MaxDepth = 5

	// MaxExtentLen: ee_len above this marks an uninitialized extent of
	// ee_len-32768 blocks (reads as zeros).
	MaxExtentLen = 32768
)

// BlockSizes are the block sizes tried when no superblock says which.
var BlockSizes = []int64{1024, 2048, 4096, 65536}

// ErrFormat is the sentinel every ext4 parse error wraps.
var ErrFormat = errors.New("ext4: bad structure")

// FormatError says which field of an ext4 structure is wrong and where,
// in the shape of every format package's (vmdk.FormatError): Offset is the
// field's byte offset within the structure; a caller that knows where the
// structure lies adds its image offset.
type FormatError struct {
	Struct string // "superblock", "inode", "extent block"
	Offset int64
	Field  string
	Value  any
	Reason string
}

func (e *FormatError) Error() string {
	return formaterr.Message("ext4", e.Struct, e.Field, e.Value, e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return ErrFormat }

// Record is what the carver keeps of an ext4 structure found in the
// image. Exactly one of Super, Inodes, Node is set, matching Type.
type Record struct {
	Type   string      `json:"type"` // "superblock", "inodes", "extent-block"
	Super  *Superblock `json:"sb,omitempty"`
	Inodes []Inode     `json:"inodes,omitempty"`
	Node   *Node       `json:"node,omitempty"`
}

// Ext4 record types.
const (
	TypeSuperblock  = "superblock"
	TypeInodes      = "inodes"
	TypeExtentBlock = "extent-block"
)

// Superblock is the geometry a superblock gives.
type Superblock struct {
	BlockSize      uint32 `json:"bs"`
	BlocksPerGroup uint32 `json:"bpg"`
	InodesPerGroup uint32 `json:"ipg"`
	InodeSize      uint16 `json:"isz"`
	FirstDataBlock uint32 `json:"fdb"`
	Blocks         uint64 `json:"blocks"`
	Inodes         uint32 `json:"inodes"`
	Group          uint16 `json:"group"` // s_block_group_nr: 0 primary, else the backup's group
	MetadataCsum   bool   `json:"csum,omitempty"`
	Is64Bit        bool   `json:"64bit,omitempty"`
	FlexBG         bool   `json:"flex_bg,omitempty"`
	Extents        bool   `json:"extents,omitempty"`
	UUID           string `json:"uuid"`
	CsumSeed       uint32 `json:"seed,omitempty"` // metadata_csum seed: s_checksum_seed or crc32c(~0, UUID)
	CsumOK         bool   `json:"csum_ok,omitempty"`
}

// GroupStart is the byte offset, within the filesystem, of the block this
// superblock copy was read from (its group's first block); for the primary
// it is the superblock offset 1024 instead.
func (s *Superblock) GroupStart() int64 {
	if s.Group == 0 {
		return SuperblockOffset
	}
	return (int64(s.FirstDataBlock) + int64(s.Group)*int64(s.BlocksPerGroup)) * int64(s.BlockSize)
}

// maxVolumeBytes bounds a volume's bytes (its blocks times their size):
// ext4 reaches 1 EiB (2^60), and a product of at most 2^62 fits an int64
// wherever a caller computes it (VolumeBytes).
const maxVolumeBytes = 1 << 62

// VolumeBytes is the volume's size, its blocks times their size; Validate
// has bounded it to fit an int64.
func (s *Superblock) VolumeBytes() int64 { return int64(s.Blocks) * int64(s.BlockSize) }

// Validate applies ParseSuperblock's plausibility rules to s: every value
// the resolver divides or multiplies by. A superblock read back from a
// case file (which a user may edit) is checked with it before use.
func (s *Superblock) Validate() error {
	bad := func(off int, field string, v uint64) error {
		return &FormatError{Struct: "superblock", Offset: int64(off), Field: field, Value: v}
	}
	bs := s.BlockSize
	switch {
	case bs < 1024 || bs > 1024<<maxLogBlockSize || bs&(bs-1) != 0:
		return bad(sbLogBlockSize, "block size", uint64(bs))
	case s.BlocksPerGroup < 8 || s.BlocksPerGroup > 8*bs || s.BlocksPerGroup%8 != 0:
		return bad(sbBlocksPerGroup, "s_blocks_per_group", uint64(s.BlocksPerGroup))
	case s.InodesPerGroup == 0 || s.InodesPerGroup > 8*bs:
		return bad(sbInodesPerGroup, "s_inodes_per_group", uint64(s.InodesPerGroup))
	case s.InodeSize < ext4GoodOldInodeSize || uint32(s.InodeSize) > bs || s.InodeSize&(s.InodeSize-1) != 0:
		return bad(sbInodeSize, "s_inode_size", uint64(s.InodeSize))
	case s.FirstDataBlock > 1:
		return bad(sbFirstDataBlock, "s_first_data_block", uint64(s.FirstDataBlock))
	case s.Blocks == 0 || s.Blocks >= 1<<48 || s.Blocks > maxVolumeBytes/uint64(bs):
		return bad(sbBlocksCountLo, "s_blocks_count", s.Blocks)
	case s.Inodes == 0:
		return bad(sbInodesCount, "s_inodes_count", 0)
	case uint64(s.Group)*uint64(s.BlocksPerGroup) >= s.Blocks:
		return bad(sbBlockGroupNr, "s_block_group_nr", uint64(s.Group))
	}
	return nil
}

// Entry is one extent tree entry. In a leaf: Logical, Start (physical
// block) and Len blocks, Uninit for an unwritten extent (reads as zeros).
// In an index node: Logical and Start (the child node's block), Len 0.
type Entry struct {
	Logical uint32 `json:"l"`
	Start   uint64 `json:"p"`
	Len     uint16 `json:"n,omitempty"`
	Uninit  bool   `json:"u,omitempty"`
}

// Node is an extent tree node: the root in an inode's i_block, or an
// extent block.
type Node struct {
	Depth      uint16  `json:"depth"` // 0 = leaf
	Max        uint16  `json:"max"`   // capacity: 4 in an inode, (B-12)/12 in a block
	Generation uint32  `json:"gen,omitempty"`
	Entries    []Entry `json:"e"`
	// Extent blocks with metadata_csum end in a crc32c at 12+12*Max. It
	// cannot be checked at carve time (it is seeded with the owning inode's
	// number and generation), so the stored value and the raw crc32c of
	// the bytes it covers (seed 0, see CRC32C) are kept; the resolver
	// combines them with the seed by linearity.
	Tail    uint32 `json:"tail,omitempty"`
	BodyCRC uint32 `json:"body_crc,omitempty"`
}

// BlockSize is the block size an extent block's Max implies (0 if none).
func (n *Node) BlockSize() int64 {
	for _, b := range BlockSizes {
		if int64(n.Max) == (b-extentHeaderSize)/extentEntrySize {
			return b
		}
	}
	return 0
}

// Inode is a regular-file inode with an extent tree.
type Inode struct {
	At         int    `json:"at"` // byte offset within the recognized window
	Links      uint16 `json:"links"`
	Size       uint64 `json:"size"`
	Generation uint32 `json:"gen"`
	Root       Node   `json:"root"`
	// Raw checksum fields, checked by the resolver once the checksum seed
	// is known: i_checksum_lo, and i_checksum_hi when the inode is large
	// (i_extra_isize covers it) and the window held its second 128 bytes.
	CsumLo uint16 `json:"csum_lo"`
	CsumHi uint16 `json:"csum_hi,omitempty"`
	HasHi  bool   `json:"has_hi,omitempty"`
	// Raw crc32c (seed 0) of the first 128 bytes and, when HasHi, of all
	// 256 bytes, with the checksum fields zeroed as the kernel does.
	CRC128 uint32 `json:"crc128"`
	CRC256 uint32 `json:"crc256,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the kernel's crc32c(seed, p): the CRC register update
// without the pre- and post-inversion Go's crc32.Update applies.
func CRC32C(seed uint32, p []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, p)
}

var zeros [4096]byte

// CRC32CZeros is CRC32C(seed, n zero bytes). The raw CRC is linear:
// CRC32C(s, p) = CRC32CZeros(s, len(p)) ^ CRC32C(0, p), which lets a
// checksum whose seed is unknown at carve time be checked later.
func CRC32CZeros(seed uint32, n int) uint32 {
	for n > 0 {
		k := min(n, len(zeros))
		seed = CRC32C(seed, zeros[:k])
		n -= k
	}
	return seed
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// ParseSuperblock parses a 1024-byte superblock. A superblock whose
// metadata_csum checksum fails is returned with CsumOK false and no error:
// it is damaged evidence, the caller grades it.
func ParseSuperblock(b []byte) (*Superblock, error) {
	bad := func(off int, field string, v uint64) error {
		return &FormatError{Struct: "superblock", Offset: int64(off), Field: field, Value: v}
	}
	if len(b) < SuperblockSize {
		return nil, bad(0, "length", uint64(len(b)))
	}
	f := ReadSuperblockFields(b)
	if f.Magic != Magic {
		return nil, bad(OffMagic, "s_magic", uint64(f.Magic))
	}
	if f.LogBlockSize > maxLogBlockSize {
		return nil, bad(sbLogBlockSize, "s_log_block_size", uint64(f.LogBlockSize))
	}
	s := &Superblock{
		BlockSize:      uint32(f.BlockSize()),
		BlocksPerGroup: f.BlocksPerGroup,
		InodesPerGroup: f.InodesPerGroup,
		FirstDataBlock: f.FirstDataBlock,
		Inodes:         f.InodesCount,
		Group:          f.BlockGroup,
		UUID:           hex.EncodeToString(f.UUID[:]),
	}
	incompat, rocompat := f.FeatureIncompat, f.FeatureROCompat
	s.Is64Bit = incompat&incompat64bit != 0
	s.FlexBG = incompat&incompatFlexBG != 0
	s.Extents = incompat&incompatExtents != 0
	s.MetadataCsum = rocompat&roCompatMetaCsum != 0
	s.Blocks = uint64(f.BlocksLo)
	if s.Is64Bit {
		s.Blocks |= uint64(f.BlocksHi) << 32
	}
	s.InodeSize = ext4GoodOldInodeSize
	if f.RevLevel > 0 {
		s.InodeSize = f.InodeSize
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.MetadataCsum {
		if incompat&incompatCsumSeed != 0 {
			s.CsumSeed = le32(b, sbChecksumSeed)
		} else {
			s.CsumSeed = CRC32C(^uint32(0), b[sbUUID:sbUUID+16])
		}
		s.CsumOK = CRC32C(^uint32(0), b[:sbChecksum]) == le32(b, sbChecksum)
	}
	return s, nil
}

// ParseNode parses an extent tree node of at most maxEntries capacity
// from b (the root in i_block, or a whole extent block).
func ParseNode(b []byte, what string, maxCap int) (*Node, error) {
	bad := func(off int, field string, v uint64) error {
		return &FormatError{Struct: what, Offset: int64(off), Field: field, Value: v}
	}
	if len(b) < extentHeaderSize {
		return nil, bad(0, "length", uint64(len(b)))
	}
	if m := le16(b, 0); m != ExtentMagic {
		return nil, bad(0, "eh_magic", uint64(m))
	}
	n := &Node{Max: le16(b, 4), Depth: le16(b, 6), Generation: le32(b, 8)}
	entries := int(le16(b, 2))
	switch {
	case int(n.Max) > maxCap || n.Max == 0:
		return nil, bad(4, "eh_max", uint64(n.Max))
	case entries == 0 || entries > int(n.Max):
		return nil, bad(2, "eh_entries", uint64(entries))
	case n.Depth > MaxDepth:
		return nil, bad(6, "eh_depth", uint64(n.Depth))
	case len(b) < extentHeaderSize+entries*extentEntrySize:
		return nil, bad(0, "length", uint64(len(b)))
	}
	n.Entries = make([]Entry, entries)
	var next uint64 // entries are sorted and, in a leaf, do not overlap
	for i := range n.Entries {
		off := extentHeaderSize + i*extentEntrySize
		e := &n.Entries[i]
		e.Logical = le32(b, off)
		if uint64(e.Logical) < next {
			return nil, bad(off, "logical block", uint64(e.Logical))
		}
		if n.Depth == 0 {
			l := le16(b, off+4)
			e.Start = uint64(le16(b, off+6))<<32 | uint64(le32(b, off+8))
			if l > MaxExtentLen {
				l -= MaxExtentLen
				e.Uninit = true
			}
			if l == 0 {
				return nil, bad(off+4, "ee_len", 0)
			}
			e.Len = l
			next = uint64(e.Logical) + uint64(l)
		} else {
			e.Start = uint64(le16(b, off+8))<<32 | uint64(le32(b, off+4))
			next = uint64(e.Logical) + 1
		}
		if e.Start == 0 || e.Start >= 1<<48 {
			return nil, bad(off, "physical block", e.Start)
		}
	}
	return n, nil
}

// ParseExtentBlock parses an extent tree block (leaf or index) from b,
// which holds the block from its start (at least up to its checksum tail
// if the header's eh_max says a 1..64 KiB block). The tail is kept raw.
func ParseExtentBlock(b []byte) (*Node, error) {
	n, err := ParseNode(b, "extent block", (65536-extentHeaderSize)/extentEntrySize)
	if err != nil {
		return nil, err
	}
	if n.BlockSize() == 0 {
		// eh_max is fixed by the block size: anything else is not a block.
		return nil, &FormatError{Struct: "extent block", Offset: 4, Field: "eh_max", Value: uint64(n.Max)}
	}
	tail := extentHeaderSize + int(n.Max)*extentEntrySize
	if len(b) < tail+4 {
		return nil, &FormatError{Struct: "extent block", Offset: 0, Field: "length", Value: uint64(len(b))}
	}
	n.Tail = le32(b, tail)
	n.BodyCRC = CRC32C(0, b[:tail])
	return n, nil
}

// ParseInode parses b (at least 128 bytes) as a regular-file inode
// using extents. b may hold 256 bytes of a large inode: then the
// checksum's upper half is read too.
func ParseInode(b []byte) (*Inode, error) {
	bad := func(off int, field string, v uint64) error {
		return &FormatError{Struct: "inode", Offset: int64(off), Field: field, Value: v}
	}
	if len(b) < ext4GoodOldInodeSize {
		return nil, bad(0, "length", uint64(len(b)))
	}
	if m := le16(b, InodeMode); m&ModeTypeMask != ModeRegular {
		return nil, bad(InodeMode, "i_mode", uint64(m))
	}
	if f := le32(b, InodeFlags); f&FlagExtents == 0 {
		return nil, bad(InodeFlags, "i_flags", uint64(f))
	}
	root, err := ParseNode(b[InodeBlock:InodeBlock+60], "inode i_block", InodeRootMaxEntry)
	if err != nil {
		return nil, err
	}
	if root.Max != InodeRootMaxEntry {
		return nil, bad(InodeBlock+4, "eh_max", uint64(root.Max))
	}
	in := &Inode{
		Links:      le16(b, InodeLinks),
		Size:       uint64(le32(b, InodeSizeLo)) | uint64(le32(b, InodeSizeHigh))<<32,
		Generation: le32(b, InodeGeneration),
		Root:       *root,
		CsumLo:     le16(b, InodeChecksumLo),
	}
	switch {
	case in.Links == 0:
		// A deleted file's inode keeps its extents only until reuse;
		// ext4 zeroes the extent root on delete, so links 0 with a live
		// root is an inode being torn down: rare, and not worth the noise.
		return nil, bad(InodeLinks, "i_links_count", 0)
	case in.Size >= maxInodeSize:
		return nil, bad(InodeSizeLo, "i_size", in.Size)
	}
	var c [256]byte
	copy(c[:], b[:min(len(b), 256)])
	c[InodeChecksumLo], c[InodeChecksumLo+1] = 0, 0
	in.CRC128 = CRC32C(0, c[:128])
	// i_checksum_hi exists when i_extra_isize covers it (EXT4_FITS_IN_INODE).
	if extra := le16(c[:], InodeExtraIsize); len(b) >= 256 && extra >= 4 && extra <= 128 {
		in.HasHi = true
		in.CsumHi = le16(c[:], InodeChecksumHi)
		c[InodeChecksumHi], c[InodeChecksumHi+1] = 0, 0
		in.CRC256 = CRC32C(0, c[:256])
	}
	return in, nil
}

// InodeWindow is the window an inode recognizer reads: one sector,
// which holds two 256-byte or four 128-byte inodes of an inode table.
const InodeWindow = 512

// ParseInodes finds the regular extent-mapped inodes in a sector of an
// inode table, trying every 128-byte slot (the inode size is not known at
// carve time). Each one's At is its offset in w.
func ParseInodes(w []byte) []Inode {
	var out []Inode
	for at := 0; at+ext4GoodOldInodeSize <= min(len(w), InodeWindow); at += ext4GoodOldInodeSize {
		// Cheap rejection: extent magic in i_block, regular file mode.
		if le16(w, at+InodeBlock) != ExtentMagic || w[at+1]&0xF0 != 0x80 {
			continue
		}
		in, err := ParseInode(w[at:min(len(w), at+256)])
		if err != nil {
			continue
		}
		in.At = at
		out = append(out, *in)
	}
	return out
}

// InodeCsumSeed is the kernel's ei->i_csum_seed.
func InodeCsumSeed(fsSeed, inum, gen uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], inum)
	s := CRC32C(fsSeed, b[:])
	binary.LittleEndian.PutUint32(b[:], gen)
	return CRC32C(s, b[:])
}

// inodeCsum is the full checksum the kernel computes for an inode of
// inodeSize bytes (128 or 256 only: larger inodes' extra bytes are not kept)
// and whether it can be computed.
func (in *Inode) csum(fsSeed, inum uint32, inodeSize uint16) (uint32, bool) {
	s := InodeCsumSeed(fsSeed, inum, in.Generation)
	switch {
	case inodeSize == 128:
		return CRC32CZeros(s, 128) ^ in.CRC128, true
	case inodeSize == 256 && in.HasHi:
		return CRC32CZeros(s, 256) ^ in.CRC256, true
	}
	return 0, false
}

// VerifyCsum reports whether the inode's stored checksum matches inode
// number inum under the filesystem seed (known: a checksum was computable).
func (in *Inode) VerifyCsum(fsSeed, inum uint32, inodeSize uint16) (ok, known bool) {
	c, known := in.csum(fsSeed, inum, inodeSize)
	if !known {
		return false, false
	}
	if inodeSize > 128 {
		return c == uint32(in.CsumHi)<<16|uint32(in.CsumLo), true
	}
	return uint16(c) == in.CsumLo, true
}

// VerifyTail reports whether an extent block's tail checksum matches the
// inode (number, generation) that owns it under the filesystem seed.
func (n *Node) VerifyTail(fsSeed, inum, gen uint32) bool {
	tail := extentHeaderSize + int(n.Max)*extentEntrySize
	return CRC32CZeros(InodeCsumSeed(fsSeed, inum, gen), tail)^n.BodyCRC == n.Tail
}

// solveAffine finds x with f(x) == t, for f affine over GF(2)^32 (every
// CRC of x under a fixed seed is): f(x) = f(0) ^ L·x. It builds L's
// columns from f on the unit vectors and runs Gaussian elimination.
func solveAffine(f func(uint32) uint32, t uint32) (uint32, bool) {
	f0 := f(0)
	// rows: augmented equations over bits of x; row r: coefficient mask and rhs bit.
	var cols [32]uint32
	for i := range cols {
		cols[i] = f(1<<i) ^ f0
	}
	rhs := t ^ f0
	type row struct {
		mask uint32
		b    uint32
	}
	var rows [32]row
	for r := range 32 {
		var m uint32
		for i := range 32 {
			m |= (cols[i] >> r & 1) << i
		}
		rows[r] = row{m, rhs >> r & 1}
	}
	var pivotRow [32]int
	for i := range pivotRow {
		pivotRow[i] = -1
	}
	next := 0
	for bit := range 32 {
		p := -1
		for r := next; r < 32; r++ {
			if rows[r].mask>>bit&1 == 1 {
				p = r
				break
			}
		}
		if p < 0 {
			return 0, false // singular: no unique answer
		}
		rows[next], rows[p] = rows[p], rows[next]
		for r := range 32 {
			if r != next && rows[r].mask>>bit&1 == 1 {
				rows[r].mask ^= rows[next].mask
				rows[r].b ^= rows[next].b
			}
		}
		pivotRow[bit] = next
		next++
	}
	var x uint32
	for bit := range 32 {
		x |= rows[pivotRow[bit]].b << bit
	}
	return x, true
}

// SolveInodeNumber returns the only inode number for which the inode's
// 32-bit checksum verifies under fsSeed (inode checksums are affine in the
// inode number). Only 256-byte inodes with i_checksum_hi have 32 bits; the
// caller must still check the number is in range and consistent.
func (in *Inode) SolveInodeNumber(fsSeed uint32, inodeSize uint16) (uint32, bool) {
	if inodeSize != 256 || !in.HasHi {
		return 0, false
	}
	f := func(inum uint32) uint32 { c, _ := in.csum(fsSeed, inum, inodeSize); return c }
	return solveAffine(f, uint32(in.CsumHi)<<16|uint32(in.CsumLo))
}

// Validate applies ParseNode's rules to a node of at most maxCap entries:
// a record read back from a case file is checked with it before use.
func (n *Node) Validate(what string, maxCap int) error {
	bad := func(off int, field string, v uint64) error {
		return &FormatError{Struct: what, Offset: int64(off), Field: field, Value: v}
	}
	switch {
	case int(n.Max) > maxCap || n.Max == 0:
		return bad(4, "eh_max", uint64(n.Max))
	case len(n.Entries) == 0 || len(n.Entries) > int(n.Max):
		return bad(2, "eh_entries", uint64(len(n.Entries)))
	case n.Depth > MaxDepth:
		return bad(6, "eh_depth", uint64(n.Depth))
	}
	var next uint64
	for i, e := range n.Entries {
		off := extentHeaderSize + i*extentEntrySize
		if uint64(e.Logical) < next {
			return bad(off, "logical block", uint64(e.Logical))
		}
		if n.Depth == 0 {
			if e.Len == 0 || e.Len > MaxExtentLen {
				return bad(off+4, "ee_len", uint64(e.Len))
			}
			next = uint64(e.Logical) + uint64(e.Len)
		} else {
			if e.Len != 0 || e.Uninit {
				return bad(off+4, "index entry length", uint64(e.Len))
			}
			next = uint64(e.Logical) + 1
		}
		if e.Start == 0 || e.Start >= 1<<48 {
			return bad(off, "physical block", e.Start)
		}
	}
	return nil
}

// Validate checks a record read back from a case file against what the
// parsers could have produced: exactly the part its Type names, each
// within ParseSuperblock's, ParseInodes' and ParseExtentBlock's rules.
func (r *Record) Validate() error {
	bad := func(field string, v any) error {
		return &FormatError{Struct: "record", Field: field, Value: v, Reason: "not what the parser makes"}
	}
	switch r.Type {
	case TypeSuperblock:
		if r.Super == nil || r.Inodes != nil || r.Node != nil {
			return bad("type", r.Type)
		}
		return r.Super.Validate()
	case TypeInodes:
		if r.Super != nil || r.Node != nil || len(r.Inodes) == 0 || len(r.Inodes) > InodeWindow/ext4GoodOldInodeSize {
			return bad("inodes", len(r.Inodes))
		}
		for i := range r.Inodes {
			in := &r.Inodes[i]
			switch {
			case in.At < 0 || in.At+ext4GoodOldInodeSize > InodeWindow || in.At%ext4GoodOldInodeSize != 0:
				return bad("inode at", in.At)
			case i > 0 && in.At <= r.Inodes[i-1].At:
				return bad("inode at", in.At)
			case in.Links == 0:
				return bad("i_links_count", 0)
			case in.Size >= maxInodeSize:
				return bad("i_size", in.Size)
			case in.Root.Max != InodeRootMaxEntry:
				return bad("eh_max", in.Root.Max)
			}
			if err := in.Root.Validate("inode i_block", InodeRootMaxEntry); err != nil {
				return err
			}
		}
		return nil
	case TypeExtentBlock:
		if r.Node == nil || r.Super != nil || r.Inodes != nil {
			return bad("type", r.Type)
		}
		if r.Node.BlockSize() == 0 {
			return bad("eh_max", r.Node.Max)
		}
		return r.Node.Validate("extent block", (65536-extentHeaderSize)/extentEntrySize)
	}
	return bad("type", r.Type)
}
