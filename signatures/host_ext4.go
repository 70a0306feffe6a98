package signatures

// Recognizers for ext4 host structures: what survives of the filesystem a
// VMDK file lived in says where the file's pieces lie (fsprobe.Ext4Maps).
// Parsing lives in fsprobe (ext4_format.go); these functions do the cheap
// rejection and grade the result.
//
// All three run at Align 512: a filesystem starts on a sector boundary, so
// its superblocks, blocks and inode table sectors are 512-aligned in the
// image; a smaller Align would slow every recognizer down (the carver steps
// at the gcd of all Aligns).

import (
	"vmdkcarve/fs/ext4"
)

const (
	ext4Align = 512
	// ext4ExtentWindow covers the largest extent block (64 KiB blocks),
	// whose checksum tail is its last 4 bytes.
	ext4ExtentWindow = 65536
)

func init() {
	register(Recognizer{
		Name: "ext4-superblock", Kind: KindExt4, Align: ext4Align, Window: ext4.SuperblockSize,
		Doc:       "ext4 superblock (primary or backup): geometry, features, UUID, crc32c verified with metadata_csum",
		Recognize: recognizeExt4Superblock,
		Magics:    []Magic{{Offset: ext4.OffMagic, Mask: 0xFFFF, Value: ext4.Magic}},
	})
	register(Recognizer{
		Name: "ext4-extent-block", Kind: KindExt4, Align: ext4Align, Window: ext4ExtentWindow,
		Doc:       "ext4 extent tree block (leaf or index): entries, and its checksum tail for the resolver",
		Recognize: recognizeExt4ExtentBlock,
		Magics:    []Magic{{Mask: 0xFFFF, Value: ext4.ExtentMagic}},
	})
	register(Recognizer{
		Name: "ext4-inode", Kind: KindExt4, Align: ext4Align, Window: ext4.InodeWindow,
		Doc:       "ext4 regular-file inodes with an extent tree (every 128-byte slot of a sector)",
		Recognize: recognizeExt4Inode,
		Magics:    inodeMagics(),
	})
}

func recognizeExt4Superblock(w, _ []byte) (Hit, bool) {
	// Cheap test: the magic at +56.
	if !ext4.IsSuperblockMagic(w) {
		return Hit{}, false
	}
	s, err := ext4.ParseSuperblock(w)
	if err != nil {
		// Two magic bytes are 2^-16 by chance: a superblock whose
		// geometry does not parse is not kept.
		return Hit{}, false
	}
	hit := Hit{Kind: KindExt4, Verdict: Valid, Length: ext4.SuperblockSize,
		Ext4: &ext4.Record{Type: ext4.TypeSuperblock, Super: s}}
	if s.MetadataCsum && !s.CsumOK {
		hit.Verdict, hit.Reason = Damaged, "superblock crc32c does not match"
	}
	return hit, true
}

func recognizeExt4ExtentBlock(w, _ []byte) (Hit, bool) {
	// Cheap test: the magic, then eh_max equal to one block size's
	// capacity (84, 169, 340 or 5460).
	if len(w) < 12 || w[0] != 0x0A || w[1] != 0xF3 {
		return Hit{}, false
	}
	n, err := ext4.ParseExtentBlock(w)
	if err != nil {
		return Hit{}, false
	}
	return Hit{Kind: KindExt4, Verdict: Valid, Length: n.BlockSize(),
		Ext4: &ext4.Record{Type: ext4.TypeExtentBlock, Node: n}}, true
}

func recognizeExt4Inode(w, _ []byte) (Hit, bool) {
	if len(w) < 128 {
		return Hit{}, false
	}
	// Cheap test: the extent magic in i_block of some 128-byte slot.
	found := false
	for at := 0; at+128 <= len(w); at += 128 {
		if w[at+40] == 0x0A && w[at+41] == 0xF3 {
			found = true
			break
		}
	}
	if !found {
		return Hit{}, false
	}
	ins := ext4.ParseInodes(w)
	if len(ins) == 0 {
		return Hit{}, false
	}
	return Hit{Kind: KindExt4, Verdict: Valid, Length: int64(len(w)),
		Ext4: &ext4.Record{Type: ext4.TypeInodes, Inodes: ins}}, true
}

// inodeMagics are the extent magic in i_block of each 128-byte slot of an
// inode window (recognizeExt4Inode's cheap test).
func inodeMagics() []Magic {
	var ms []Magic
	for at := 0; at+128 <= ext4.InodeWindow; at += 128 {
		ms = append(ms, Magic{Offset: at + ext4.InodeBlock, Mask: 0xFFFF, Value: ext4.ExtentMagic})
	}
	return ms
}
