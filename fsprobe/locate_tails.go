package fsprobe

import (
	"fmt"
	"maps"
	"slices"
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
)

// Where a structure lies, and where a guest file's last bytes lie: what a
// caller that finds the structures at image offsets (not grain by grain)
// needs to turn them into anchors (a virtual offset and an image offset).

// Addresses returns the virtual byte offsets a claim's structure may lie
// at (once every grain has been seen, for claims located through records
// found anywhere), or nil when nothing locates it.
func (l *Locator) Addresses(c Claim) []int64 {
	if c.later != nil {
		return c.later()
	}
	return c.addrs
}

// Tail is a guest file's last block: the file's bytes end Used bytes into
// it and the writer left zeros from there to the block's end (ext4 and
// NTFS both zero what follows a file's end in its last block). A block
// found elsewhere whose non-zero bytes end exactly at Used is a candidate
// for Addr; one with a non-zero byte past Used is not the file's block.
type Tail struct {
	Addr  int64  // virtual byte offset of the block
	Block int    // bytes in the block (cluster)
	Used  int    // bytes of file data in it, 1..Block-1
	What  string // e.g. "ext4 inode 37's last block"
}

// maxTails bounds the tails returned (one per file the records name).
const maxTails = 1 << 20

// Tails lists the last blocks of the regular files whose records the
// Locator has seen (inodes and MFT records, after Locate): files whose
// size is not a whole number of blocks, whose last block is allocated and
// written. Sorted by address.
func (l *Locator) Tails() []Tail {
	byAddr := map[int64]Tail{}
	add := func(t Tail) {
		if len(byAddr) < maxTails && t.Used > 0 && t.Used < t.Block && t.Addr >= 0 && t.Addr+int64(t.Block) <= l.diskBytes {
			if _, dup := byAddr[t.Addr]; dup {
				// Two files cannot end in one block: a stale record.
				// Neither is trusted.
				byAddr[t.Addr] = Tail{Addr: t.Addr}
				return
			}
			byAddr[t.Addr] = t
		}
	}
	for _, v := range l.ext {
		bs := int64(v.sb.BlockSize)
		for _, inum := range slices.Sorted(maps.Keys(v.inodes)) {
			in := v.inodes[inum]
			if in.mode&ext4.ModeTypeMask != ext4.ModeRegular || in.deep || in.size <= 0 || in.size%bs == 0 {
				continue
			}
			last := (in.size - 1) / bs
			for _, e := range in.extents {
				if e.Uninit || int64(e.Logical) > last || last >= int64(e.Logical)+int64(e.Len) || e.Start > uint64(l.diskBytes/bs) {
					continue // (a block number past the disk is bounded before it is multiplied)
				}
				add(Tail{Addr: v.start + (int64(e.Start)+last-int64(e.Logical))*bs, Block: int(bs), Used: int(in.size % bs),
					What: fmt.Sprintf("last block of ext4 inode %d", inum)})
			}
		}
	}
	for _, v := range l.ntfs {
		cs := v.boot.ClusterSize
		for _, num := range slices.Sorted(maps.Keys(v.records)) {
			f := v.records[num]
			if !f.InUse || f.Dir || f.Base != 0 {
				continue
			}
			for _, d := range f.Data {
				if d.Resident || d.StartVCN != 0 || d.Compressed || d.Encrypted || d.Sparse || d.Size <= 0 || d.Initialized != d.Size || d.Size%cs == 0 {
					continue
				}
				lcn := ntfs.VCNToLCN(d.Runs, (d.Size-1)/cs)
				if lcn < 0 || lcn > l.diskBytes/cs {
					continue // the last cluster is in an extension record, a hole, or past the disk
				}
				add(Tail{Addr: v.start + lcn*cs, Block: int(cs), Used: int(d.Size % cs),
					What: fmt.Sprintf("last cluster of NTFS MFT record %d", num)})
			}
		}
	}
	var out []Tail
	for _, a := range slices.Sorted(maps.Keys(byAddr)) {
		if t := byAddr[a]; t.Block > 0 {
			out = append(out, t)
		}
	}
	return out
}

// TailMatch says whether a block (Block bytes read where a tail is
// expected) ends as the tail does: its last non-zero byte at Used-1.
// Mismatch reports a non-zero byte past Used: the block is not the file's.
func (t Tail) TailMatch(b []byte) (match, mismatch bool) {
	if len(b) < t.Block || t.Used <= 0 || t.Used >= t.Block {
		return false, false
	}
	for _, c := range b[t.Used:t.Block] {
		if c != 0 {
			return false, true
		}
	}
	return b[t.Used-1] != 0, false
}
