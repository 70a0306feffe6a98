package signatures

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
)

var le = binary.LittleEndian

// rawCRC32C is the kernel's crc32c(seed, p) (no inversions).
func rawCRC32C(seed uint32, p []byte) uint32 {
	return ^crc32.Update(^seed, crc32.MakeTable(crc32.Castagnoli), p)
}

// ext4Superblock builds a metadata_csum superblock: 4 KiB blocks, group g.
func ext4Superblock(group uint16) []byte {
	b := make([]byte, 1024)
	le.PutUint32(b[0x00:], 16384)      // inodes
	le.PutUint32(b[0x04:], 65536)      // blocks
	le.PutUint32(b[0x18:], 2)          // 4 KiB
	le.PutUint32(b[0x20:], 32768)      // blocks per group
	le.PutUint32(b[0x28:], 8192)       // inodes per group
	le.PutUint16(b[0x38:], 0xEF53)     // magic
	le.PutUint32(b[0x4C:], 1)          // dynamic rev
	le.PutUint16(b[0x58:], 256)        // inode size
	le.PutUint16(b[0x5A:], group)      // s_block_group_nr
	le.PutUint32(b[0x60:], 0x2c2)      // filetype, extents, 64bit, flex_bg
	le.PutUint32(b[0x64:], 0x400)      // metadata_csum
	copy(b[0x68:], "0123456789abcdef") // uuid
	le.PutUint32(b[0x3FC:], rawCRC32C(^uint32(0), b[:0x3FC]))
	return b
}

// ext4Leaf builds a 4 KiB leaf extent block with n extents.
func ext4Leaf(n int) []byte {
	b := make([]byte, 4096)
	le.PutUint16(b[0:], 0xF30A)
	le.PutUint16(b[2:], uint16(n))
	le.PutUint16(b[4:], 340)
	for i := range n {
		o := 12 + 12*i
		le.PutUint32(b[o:], uint32(100*i))
		le.PutUint16(b[o+4:], 50)
		le.PutUint32(b[o+8:], uint32(5000+200*i))
	}
	le.PutUint32(b[4092:], 0xdeadbeef)
	return b
}

// ext4InodeSector builds a sector of two 256-byte inodes: a regular file
// with a depth-1 root at 0, and a directory at 256.
func ext4InodeSector() []byte {
	b := make([]byte, 512)
	le.PutUint16(b[0:], 0x81a4)
	le.PutUint32(b[4:], 3<<20)
	le.PutUint16(b[26:], 1)
	le.PutUint32(b[32:], 0x80000)
	le.PutUint16(b[40:], 0xF30A)
	le.PutUint16(b[42:], 1)
	le.PutUint16(b[44:], 4)
	le.PutUint16(b[46:], 1) // depth 1
	le.PutUint32(b[52:], 0)
	le.PutUint32(b[56:], 2322) // leaf block
	le.PutUint16(b[128:], 32)  // i_extra_isize
	le.PutUint16(b[124:], 0x1234)
	le.PutUint16(b[130:], 0x5678)
	d := b[256:]
	le.PutUint16(d[0:], 0x41ed)
	le.PutUint16(d[26:], 2)
	le.PutUint32(d[32:], 0x80000)
	le.PutUint16(d[40:], 0xF30A)
	return b
}

func TestExt4Recognizers(t *testing.T) {
	badCsum := ext4Superblock(0)
	badCsum[0x3FC] ^= 1
	badBS := ext4Superblock(0)
	le.PutUint32(badBS[0x18:], 40)
	zeroBPG := ext4Superblock(0)
	le.PutUint32(zeroBPG[0x20:], 0)
	overMax := ext4Leaf(3)
	le.PutUint16(overMax[2:], 341)
	oddMax := ext4Leaf(3)
	le.PutUint16(oddMax[4:], 300)
	deep := ext4Leaf(3)
	le.PutUint16(deep[6:], 6)
	overlap := ext4Leaf(3)
	le.PutUint32(overlap[24:], 10) // second extent starts inside the first
	zeroLen := ext4Leaf(3)
	le.PutUint16(zeroLen[16:], 0)
	noFlag := ext4InodeSector()
	le.PutUint32(noFlag[32:], 0)
	noLinks := ext4InodeSector()
	le.PutUint16(noLinks[26:], 0)
	rootMax := ext4InodeSector()
	le.PutUint16(rootMax[44:], 5)
	huge := ext4InodeSector()
	le.PutUint32(huge[108:], 1<<20)
	for _, tc := range []struct {
		name, recognizer string
		in               []byte
		match            bool
		verdict          Verdict
	}{
		{"primary", "ext4-superblock", ext4Superblock(0), true, Valid},
		{"backup", "ext4-superblock", ext4Superblock(1), true, Valid},
		{"bad checksum", "ext4-superblock", badCsum, true, Damaged},
		{"block size 2^50", "ext4-superblock", badBS, false, ""},
		{"blocks per group 0", "ext4-superblock", zeroBPG, false, ""},
		{"group past the end", "ext4-superblock", ext4Superblock(2), false, ""},
		{"leaf", "ext4-extent-block", ext4Leaf(3), true, Valid},
		{"full leaf", "ext4-extent-block", ext4Leaf(340), true, Valid},
		{"entries > max", "ext4-extent-block", overMax, false, ""},
		{"max of no block size", "ext4-extent-block", oddMax, false, ""},
		{"too deep", "ext4-extent-block", deep, false, ""},
		{"overlapping extents", "ext4-extent-block", overlap, false, ""},
		{"zero-length extent", "ext4-extent-block", zeroLen, false, ""},
		{"no entries", "ext4-extent-block", ext4Leaf(0), false, ""},
		{"inode", "ext4-inode", ext4InodeSector(), true, Valid},
		{"no extents flag", "ext4-inode", noFlag, false, ""},
		{"no links", "ext4-inode", noLinks, false, ""},
		{"root max 5", "ext4-inode", rootMax, false, ""},
		{"size 2^52", "ext4-inode", huge, false, ""},
		{"zeros", "ext4-inode", make([]byte, 512), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := window(find(tc.recognizer), tc.in)
			if ok != tc.match || ok && (h.Verdict != tc.verdict || h.Ext4 == nil || h.Kind != KindExt4) {
				t.Fatalf("got %v %+v, want match %v verdict %q", ok, h, tc.match, tc.verdict)
			}
		})
	}
}

func TestExt4RecordDetail(t *testing.T) {
	h, _ := window(find("ext4-superblock"), ext4Superblock(1))
	s := h.Ext4.Super
	if s.BlockSize != 4096 || s.BlocksPerGroup != 32768 || s.Group != 1 || !s.MetadataCsum || !s.Is64Bit || !s.FlexBG || !s.Extents || !s.CsumOK || s.GroupStart() != 32768*4096 {
		t.Fatalf("superblock %+v", s)
	}
	h, _ = window(find("ext4-inode"), ext4InodeSector())
	if ins := h.Ext4.Inodes; len(ins) != 1 || ins[0].At != 0 || ins[0].Root.Depth != 1 || ins[0].Root.Entries[0].Start != 2322 ||
		ins[0].Size != 3<<20 || !ins[0].HasHi || ins[0].CsumLo != 0x1234 || ins[0].CsumHi != 0x5678 {
		t.Fatalf("inodes %+v", h.Ext4.Inodes)
	}
	h, _ = window(find("ext4-extent-block"), ext4Leaf(3))
	if n := h.Ext4.Node; n.Tail != 0xdeadbeef || len(n.Entries) != 3 || n.Entries[2] != (ext4.Entry{Logical: 200, Start: 5400, Len: 50}) || h.Length != 4096 {
		t.Fatalf("node %+v", h.Ext4.Node)
	}
	// hits.jsonl: compact and round-trips.
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back Hit
	if err := json.Unmarshal(j, &back); err != nil || back.Ext4.Node.Entries[2] != h.Ext4.Node.Entries[2] {
		t.Fatalf("round trip %s: %v", j, err)
	}
}

// TestExt4Truncation feeds every prefix of every structure: no panic, and
// no hit from a window too short to hold what the structure says.
func TestExt4Truncation(t *testing.T) {
	for name, full := range map[string][]byte{
		"ext4-superblock":   ext4Superblock(0),
		"ext4-extent-block": ext4Leaf(5),
		"ext4-inode":        ext4InodeSector(),
	} {
		r := find(name)
		for n := 0; n < len(full); n++ {
			h, ok := r.Recognize(full[:n], nil)
			if ok && name != "ext4-inode" {
				t.Fatalf("%s matched a %d-byte prefix: %+v", name, n, h)
			}
			if ok && (n < 128 || len(h.Ext4.Inodes) == 0) {
				t.Fatalf("%s matched a %d-byte prefix: %+v", name, n, h)
			}
		}
	}
}

func FuzzExt4Record(f *testing.F) {
	f.Add(ext4Superblock(0))
	f.Add(ext4Leaf(4))
	f.Add(ext4InodeSector())
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []fsprobe.LocatedExt4
		for _, name := range []string{"ext4-superblock", "ext4-extent-block", "ext4-inode"} {
			r := find(name)
			h, ok := r.Recognize(b[:min(len(b), r.Window)], nil)
			if !ok {
				continue
			}
			if h.Kind != KindExt4 || h.Ext4 == nil {
				t.Fatalf("%s: hit without detail: %+v", name, h)
			}
			if n := h.Ext4.Node; n != nil && (len(n.Entries) > int(n.Max) || n.Depth > ext4.MaxDepth) {
				t.Fatalf("%s: node out of bounds: %+v", name, n)
			}
			recs = append(recs, fsprobe.LocatedExt4{Offset: 1 << 20, Record: h.Ext4})
			if _, err := json.Marshal(h); err != nil {
				t.Fatal(err)
			}
		}
		// The resolver must survive whatever the recognizers accept,
		// whichever anchors it is given.
		fsprobe.Ext4Maps(recs, []int64{0, 1 << 20, 1<<20 + 4096})
	})
}
