package ext4

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"vmdkcarve/internal/tooltest"
)

// dumpe2fsGroup is what dumpe2fs prints of one block group.
type dumpe2fsGroup struct {
	blockBitmap, inodeBitmap, inodeTable   int64
	freeBlocks, freeInodes, unused         int64
	inodeUninit, blockUninit, checksumSeen bool
}

var (
	dumpGroupRE  = regexp.MustCompile(`(?m)^Group (\d+): .*csum 0x[0-9a-f]+(?: \[([A-Z_, ]*)\])?`)
	dumpBitmapRE = regexp.MustCompile(`(?m)^  Block bitmap at (\d+).*\n  Inode bitmap at (\d+).*\n  Inode table at (\d+)-`)
	dumpFreeRE   = regexp.MustCompile(`(?m)^  (\d+) free blocks, (\d+) free inodes, \d+ directories(?:, (\d+) unused inodes)?`)
)

// parseDumpe2fs reads dumpe2fs's group listing.
func parseDumpe2fs(t *testing.T, out string) []dumpe2fsGroup {
	t.Helper()
	heads := dumpGroupRE.FindAllStringSubmatchIndex(out, -1)
	var gs []dumpe2fsGroup
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i, h := range heads {
		end := len(out)
		if i+1 < len(heads) {
			end = heads[i+1][0]
		}
		body := out[h[0]:end]
		flags := ""
		if h[4] >= 0 {
			flags = out[h[4]:h[5]]
		}
		bm := dumpBitmapRE.FindStringSubmatch(body)
		fr := dumpFreeRE.FindStringSubmatch(body)
		if bm == nil || fr == nil {
			t.Fatalf("group %d: cannot read dumpe2fs:\n%s", i, body)
		}
		g := dumpe2fsGroup{blockBitmap: num(bm[1]), inodeBitmap: num(bm[2]), inodeTable: num(bm[3]),
			freeBlocks: num(fr[1]), freeInodes: num(fr[2]),
			inodeUninit: regexp.MustCompile(`INODE_UNINIT`).MatchString(flags), blockUninit: regexp.MustCompile(`BLOCK_UNINIT`).MatchString(flags)}
		if fr[3] != "" {
			g.unused = num(fr[3])
		}
		gs = append(gs, g)
	}
	return gs
}

// TestGroupDescsAgainstDumpe2fs reads the group descriptors of real
// mkfs.ext4 volumes (32- and 64-byte descriptors) and compares every
// field with what dumpe2fs says; every descriptor's checksum verifies, and
// fails once a byte changes.
func TestGroupDescsAgainstDumpe2fs(t *testing.T) {
	tooltest.Need(t, "mkfs.ext4", "dumpe2fs")
	for _, features := range []string{"metadata_csum,64bit", "metadata_csum,^64bit"} {
		t.Run(features, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fs.img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 64<<20); err != nil {
				t.Fatal(err)
			}
			tooltest.Run(t, "mkfs.ext4", "-q", "-F", "-O", features, img)
			want := parseDumpe2fs(t, tooltest.Run(t, "dumpe2fs", img))
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			raw := b[SuperblockOffset : SuperblockOffset+SuperblockSize]
			sb, err := ParseSuperblock(raw)
			if err != nil {
				t.Fatal(err)
			}
			f := ReadSuperblockFields(raw)
			if f.Magic != Magic || f.BlockGroup != 0 || f.BlockSize() != int64(sb.BlockSize) || !f.SparseSuper() {
				t.Fatalf("fields %+v, superblock %+v", f, sb)
			}
			size, ok := f.GroupDescSize()
			if !ok || (sb.Is64Bit && size != 64) || (!sb.Is64Bit && size != 32) {
				t.Fatalf("descriptor size %d (%v), 64bit %v", size, ok, sb.Is64Bit)
			}
			gdt := b[(int64(sb.FirstDataBlock)+1)*int64(sb.BlockSize):]
			if len(want) < 4 {
				t.Fatalf("dumpe2fs lists %d groups", len(want))
			}
			for g, w := range want {
				d := gdt[int64(g)*size : int64(g+1)*size]
				if !GroupDescChecksumOK(d, sb.CsumSeed, uint32(g)) {
					t.Errorf("group %d: checksum does not verify", g)
				}
				bad := append([]byte(nil), d...)
				bad[gdInodeTableLo] ^= 1
				if GroupDescChecksumOK(bad, sb.CsumSeed, uint32(g)) || GroupDescChecksumOK(d, sb.CsumSeed, uint32(g+1)) {
					t.Errorf("group %d: a changed descriptor, or another group's number, verifies", g)
				}
				gd := ParseGroupDesc(d)
				if gd.BlockBitmap != w.blockBitmap || gd.InodeBitmap != w.inodeBitmap || gd.InodeTable != w.inodeTable ||
					gd.FreeBlocks != w.freeBlocks || gd.FreeInodes != w.freeInodes || gd.ItableUnused != w.unused ||
					(gd.Flags&GroupInodeUninit != 0) != w.inodeUninit || (gd.Flags&GroupBlockUninit != 0) != w.blockUninit {
					t.Errorf("group %d: ours %+v, dumpe2fs %+v", g, gd, w)
				}
			}
		})
	}
}

// TestInodeFieldsReal reads the root directory's and the journal's inodes
// of a real volume: their checksums verify for their own numbers only,
// the checksum fields solve to the number, the root's first directory
// block carries a tail naming the root, and the journal starts with its
// superblock.
func TestInodeFieldsReal(t *testing.T) {
	b := tooltest.MakeFS(t, 32<<20, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum,64bit")
	sb, err := ParseSuperblock(b[SuperblockOffset : SuperblockOffset+SuperblockSize])
	if err != nil {
		t.Fatal(err)
	}
	bs := int64(sb.BlockSize)
	size, _ := ReadSuperblockFields(b[SuperblockOffset:]).GroupDescSize()
	gd := ParseGroupDesc(b[bs : bs+size])
	isz := int64(sb.InodeSize)
	inode := func(n uint32) []byte {
		off := gd.InodeTable*bs + int64(n-1)*isz
		return b[off : off+isz]
	}
	for _, n := range []uint32{2, JournalInode} {
		in := inode(n)
		if !InodeChecksumOK(in, sb.CsumSeed, n) || InodeChecksumOK(in, sb.CsumSeed, n+1) {
			t.Errorf("inode %d: checksum verifies for the wrong numbers", n)
		}
		if got, ok := InodeChecksumFields(in).SolveInodeNumber(sb.CsumSeed, sb.InodeSize); !ok || got != n {
			t.Errorf("inode %d: solved to %d (%v)", n, got, ok)
		}
		f := ReadInodeFields(in)
		if f.Links == 0 || f.Dtime != 0 || f.ExtraIsize < 4 || f.Flags&FlagExtents == 0 {
			t.Errorf("inode %d: fields %+v", n, f)
		}
	}
	// Both are extent-mapped with a depth-0 root: the first extent's
	// start is their first block.
	first := func(n uint32) int64 {
		root, err := ParseNode(inode(n)[InodeBlock:InodeBlock+60], "i_block", InodeRootMaxEntry)
		if err != nil || len(root.Entries) == 0 {
			t.Fatalf("inode %d: root %v, %v", n, root, err)
		}
		return int64(root.Entries[0].Start)
	}
	dir := b[first(2)*bs : (first(2)+1)*bs]
	tail, ok := ParseDirBlockTail(dir)
	if !ok || tail.Self != 2 || tail.Covered != int(bs)-dirTailSize {
		t.Fatalf("root directory block tail %+v (%v)", tail, ok)
	}
	rootGen := ReadInodeFields(inode(2)).Generation
	if CRC32CZeros(InodeCsumSeed(sb.CsumSeed, 2, rootGen), tail.Covered)^tail.BodyCRC != tail.Checksum {
		t.Error("the root directory block's checksum does not verify with the root's seed")
	}
	if !IsJournalSuperblock(b[first(JournalInode)*bs:]) || IsJournalSuperblock(dir) {
		t.Error("journal superblock not told from a directory block")
	}
}

// FuzzFields: the unchecked accessors read any bytes without panicking.
func FuzzFields(f *testing.F) {
	f.Add(make([]byte, SuperblockSize))
	f.Add(make([]byte, 64))
	f.Add(make([]byte, 256))
	f.Fuzz(func(t *testing.T, b []byte) {
		sf := ReadSuperblockFields(b)
		if bs := sf.BlockSize(); bs < 1024 || bs > 64<<10 {
			t.Fatalf("block size %d", bs)
		}
		if n, ok := sf.GroupDescSize(); ok && (n < 32 || n > 1024) {
			t.Fatalf("descriptor size %d", n)
		}
		_ = ParseGroupDesc(b)
		_ = GroupDescChecksumOK(b, 1, 2)
		_ = ReadInodeFields(b)
		_ = InodeChecksumOK(b, 1, 2)
		_ = InodeChecksumFields(b)
		_, _ = ParseDirBlockTail(b)
		_ = IsJournalSuperblock(b)
		_ = IsSuperblockMagic(b)
	})
}
