package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"vmdkcarve/internal/tooltest"

	ext4 "github.com/dsoprea/go-ext4"
)

// TestCRC32CLinearity checks the identity the carve-time checksums rely on.
func TestCRC32CLinearity(t *testing.T) {
	p := []byte("some inode bytes, any length: 0123456789")
	for _, seed := range []uint32{0, 1, 0xFFFFFFFF, 0x12345678} {
		if got, want := CRC32CZeros(seed, len(p))^CRC32C(0, p), CRC32C(seed, p); got != want {
			t.Fatalf("seed %#x: %#x != %#x", seed, got, want)
		}
	}
	if CRC32CZeros(7, 10000) != CRC32C(7, make([]byte, 10000)) {
		t.Fatal("CRC32CZeros across its buffer size")
	}
}

func TestSolveInodeNumber(t *testing.T) {
	b := make([]byte, 256)
	binary.LittleEndian.PutUint16(b[0:], 0x81a4)
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint32(b[32:], FlagExtents)
	binary.LittleEndian.PutUint16(b[40:], ExtentMagic)
	binary.LittleEndian.PutUint16(b[42:], 1)
	binary.LittleEndian.PutUint16(b[44:], 4)
	binary.LittleEndian.PutUint16(b[56:], 1)         // ee_len
	binary.LittleEndian.PutUint32(b[60:], 999)       // ee_start_lo
	binary.LittleEndian.PutUint32(b[100:], 0xabcdef) // generation
	binary.LittleEndian.PutUint16(b[128:], 32)
	in, err := ParseInode(b)
	if err != nil {
		t.Fatal(err)
	}
	const seed, inum = 0x5eed, 4242
	c, _ := in.csum(seed, inum, 256)
	binary.LittleEndian.PutUint16(b[InodeChecksumLo:], uint16(c))
	binary.LittleEndian.PutUint16(b[InodeChecksumHi:], uint16(c>>16))
	in, _ = ParseInode(b)
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
	n, err := ParseExtentBlock(leaf)
	if err != nil || !n.Entries[0].Uninit || n.Entries[0].Len != 40000-32768 || n.BlockSize() != 1024 {
		t.Fatalf("%+v %v", n, err)
	}
	// Every prefix short of the checksum tail is an error naming a field.
	for i := range 1024 {
		_, err := ParseExtentBlock(leaf[:i])
		var fe *FormatError
		if !errors.Is(err, ErrFormat) || !errors.As(err, &fe) || fe.Field == "" {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	for i := range SuperblockSize {
		if _, err := ParseSuperblock(make([]byte, i)); !errors.Is(err, ErrFormat) {
			t.Fatalf("superblock prefix %d: %v", i, err)
		}
	}
	// A volume whose blocks times their size overflow an int64 (2^47
	// blocks of 64 KiB) is refused; one of 2^46 such blocks is not.
	for _, tc := range []struct {
		blocks uint64
		ok     bool
	}{{1 << 46, true}, {1<<47 + 1, false}} {
		sb := Superblock{BlockSize: 64 << 10, BlocksPerGroup: 8 << 10, InodesPerGroup: 8 << 10, InodeSize: 256, Blocks: tc.blocks, Inodes: 1}
		if err := sb.Validate(); (err == nil) != tc.ok {
			t.Errorf("%d blocks of 64 KiB: %v, want accepted %v", tc.blocks, err, tc.ok)
		}
		if tc.ok && sb.VolumeBytes() != int64(tc.blocks)<<16 {
			t.Errorf("VolumeBytes %d", sb.VolumeBytes())
		}
	}
	for i := range 128 {
		if _, err := ParseInode(make([]byte, i)); !errors.Is(err, ErrFormat) {
			t.Fatalf("inode prefix %d: %v", i, err)
		}
	}
}

// TestExt4SuperblockAgainstGoExt4 compares our superblock parser with
// go-ext4's on a filesystem made by mkfs.ext4 (a feature set go-ext4
// accepts: flex_bg, extents, filetype).
func TestExt4SuperblockAgainstGoExt4(t *testing.T) {
	tooltest.Need(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "2048", "-O", "metadata_csum,64bit", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	raw := b[1024:2048]
	ours, err := ParseSuperblock(raw)
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

// FuzzParse feeds crafted bytes to every parser: an error or nothing,
// never a panic, and nothing that breaks the limits the callers rely on.
func FuzzParse(f *testing.F) {
	sb := make([]byte, SuperblockSize)
	binary.LittleEndian.PutUint16(sb[OffMagic:], Magic)
	f.Add(sb)
	f.Add(make([]byte, InodeWindow))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ParseSuperblock(b); err == nil && s.BlockSize <= 0 {
			t.Fatalf("superblock with block size %d", s.BlockSize)
		}
		if n, err := ParseExtentBlock(b); err == nil && int(n.Depth) > MaxDepth {
			t.Fatalf("extent block of depth %d", n.Depth)
		}
		for _, in := range ParseInodes(b) {
			if in.At < 0 || in.At >= len(b) {
				t.Fatalf("inode at %d of %d bytes", in.At, len(b))
			}
		}
	})
}
