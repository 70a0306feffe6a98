package fsprobe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	ext4 "github.com/dsoprea/go-ext4"
)

// TestCRC32CLinearity checks the identity the carve-time checksums rely on.
func TestCRC32CLinearity(t *testing.T) {
	p := []byte("some inode bytes, any length: 0123456789")
	for _, seed := range []uint32{0, 1, 0xFFFFFFFF, 0x12345678} {
		if got, want := crc32cZeros(seed, len(p))^crc32cRaw(0, p), crc32cRaw(seed, p); got != want {
			t.Fatalf("seed %#x: %#x != %#x", seed, got, want)
		}
	}
	if crc32cZeros(7, 10000) != crc32cRaw(7, make([]byte, 10000)) {
		t.Fatal("crc32cZeros across its buffer size")
	}
}

func TestSolveInodeNumber(t *testing.T) {
	b := make([]byte, 256)
	binary.LittleEndian.PutUint16(b[0:], 0x81a4)
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint32(b[32:], ext4ExtentsFlag)
	binary.LittleEndian.PutUint16(b[40:], ExtentMagic)
	binary.LittleEndian.PutUint16(b[42:], 1)
	binary.LittleEndian.PutUint16(b[44:], 4)
	binary.LittleEndian.PutUint16(b[56:], 1)         // ee_len
	binary.LittleEndian.PutUint32(b[60:], 999)       // ee_start_lo
	binary.LittleEndian.PutUint32(b[100:], 0xabcdef) // generation
	binary.LittleEndian.PutUint16(b[128:], 32)
	in, err := ParseExt4Inode(b)
	if err != nil {
		t.Fatal(err)
	}
	const seed, inum = 0x5eed, 4242
	c, _ := in.csum(seed, inum, 256)
	binary.LittleEndian.PutUint16(b[inodeChecksumLo:], uint16(c))
	binary.LittleEndian.PutUint16(b[inodeChecksumHi:], uint16(c>>16))
	in, _ = ParseExt4Inode(b)
	if ok, known := in.VerifyCsum(seed, inum, 256); !ok || !known {
		t.Fatal("checksum does not verify")
	}
	if got, ok := in.SolveInodeNumber(seed, 256); !ok || got != inum {
		t.Fatalf("solved %d %v, want %d", got, ok, inum)
	}
	if _, ok := in.SolveInodeNumber(seed, 128); ok {
		t.Fatal("solved a 16-bit checksum")
	}
}

func TestParseExt4Errors(t *testing.T) {
	leaf := make([]byte, 1024)
	binary.LittleEndian.PutUint16(leaf[0:], ExtentMagic)
	binary.LittleEndian.PutUint16(leaf[2:], 1)
	binary.LittleEndian.PutUint16(leaf[4:], 84)
	binary.LittleEndian.PutUint32(leaf[12:], 0)
	binary.LittleEndian.PutUint16(leaf[16:], 40000) // uninitialized, 7232 blocks
	binary.LittleEndian.PutUint32(leaf[20:], 77)
	n, err := ParseExt4ExtentBlock(leaf)
	if err != nil || !n.Entries[0].Uninit || n.Entries[0].Len != 40000-32768 || n.BlockSize() != 1024 {
		t.Fatalf("%+v %v", n, err)
	}
	// Every prefix short of the checksum tail is an error naming a field.
	for i := range 1024 {
		_, err := ParseExt4ExtentBlock(leaf[:i])
		var fe *Ext4Error
		if !errors.Is(err, ErrExt4) || !errors.As(err, &fe) || fe.Field == "" {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	for i := range Ext4SuperblockSize {
		if _, err := ParseExt4Superblock(make([]byte, i)); !errors.Is(err, ErrExt4) {
			t.Fatalf("superblock prefix %d: %v", i, err)
		}
	}
	for i := range 128 {
		if _, err := ParseExt4Inode(make([]byte, i)); !errors.Is(err, ErrExt4) {
			t.Fatalf("inode prefix %d: %v", i, err)
		}
	}
}

// TestExt4ResolverCrafted: trees that point at themselves or run deep end
// as incomplete maps or none, without loops or panics.
func TestExt4ResolverCrafted(t *testing.T) {
	const F, B = 1 << 20, 4096
	sb := &Ext4Superblock{BlockSize: B, BlocksPerGroup: 32768, InodesPerGroup: 8192, InodeSize: 256, Blocks: 1 << 16, Inodes: 1 << 14}
	// An index block at block 10 that points at itself, and an inode
	// whose depth-1 root points at it: the child's depth is not one less,
	// so the walk stops there.
	self := &Ext4Node{Depth: 1, Max: 340, Entries: []Ext4Entry{{Logical: 0, Start: 10}}}
	in := Ext4Inode{Size: 1 << 20, Links: 1, Root: Ext4Node{Depth: 2, Max: 4, Entries: []Ext4Entry{{Logical: 0, Start: 10}}}}
	flat := Ext4Inode{At: 256, Size: 5000, Links: 1, Root: Ext4Node{Max: 4, Entries: []Ext4Entry{
		{Logical: 0, Start: 100, Len: 1}, {Logical: 1, Start: 101, Len: 1}, {Logical: 5, Start: 300, Len: 2, Uninit: true}}}}
	recs := []LocatedExt4{
		{Offset: F + 1024, Record: &Ext4Record{Type: Ext4TypeSuperblock, Super: sb}},
		{Offset: F + 10*B, Record: &Ext4Record{Type: Ext4TypeExtentBlock, Node: self}},
		{Offset: F + 20*B, Record: &Ext4Record{Type: Ext4TypeInodes, Inodes: []Ext4Inode{in, flat}}},
	}
	maps := Ext4Maps(recs, []int64{F + 100*B})
	if len(maps) != 1 || !maps[0].Complete || len(maps[0].Extents) != 1 ||
		maps[0].Extents[0] != (MappedExtent{FileOffset: 0, ImageOffset: F + 100*B, Length: 5000}) {
		t.Fatalf("flat file: %+v", maps)
	}
	if maps := Ext4Maps(recs, []int64{F + 10*B}); len(maps) != 0 {
		t.Fatalf("self-pointing tree mapped: %+v", maps)
	}
}

// TestExt4SuperblockAgainstGoExt4 compares our superblock parser with
// go-ext4's on a filesystem made by mkfs.ext4 (a feature set go-ext4
// accepts: flex_bg, extents, filetype).
func TestExt4SuperblockAgainstGoExt4(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is not installed (apt-get install e2fsprogs): skipping the go-ext4 comparison")
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "2048", "-O", "metadata_csum,64bit", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	raw := b[1024:2048]
	ours, err := ParseExt4Superblock(raw)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := ext4.NewSuperblockWithReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	d := theirs.Data()
	if ours.BlockSize != theirs.BlockSize() || ours.Blocks != theirs.BlockCount() || ours.BlocksPerGroup != d.SBlocksPerGroup ||
		ours.InodesPerGroup != d.SInodesPerGroup || ours.InodeSize != d.SInodeSize || ours.Inodes != d.SInodesCount ||
		!ours.CsumOK || !ours.MetadataCsum || !ours.Is64Bit || ours.Group != 0 {
		t.Fatalf("ours %+v, go-ext4 %+v", ours, d)
	}
	if theirs.Is64Bit() != ours.Is64Bit {
		t.Fatal("64bit disagrees")
	}
}
