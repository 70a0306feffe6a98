package fsprobe

import (
	"fmt"
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
)

// Directory blocks that locate themselves, through the directory's own
// record: an NTFS INDX block names its VCN and (in every entry's
// $FILE_NAME) its directory, whose $INDEX_ALLOCATION runs place the VCN;
// an ext4 directory block with metadata_csum ends in a checksum seeded
// with its directory's inode number and generation, and the directory's
// extents place it. Both are resolved once every grain has been seen,
// since the directory's record may lie in any grain.

// ntfsAttrIndex is the $INDEX_ALLOCATION attribute type.
const ntfsAttrIndex = 0xA0

// indexClaims reads an INDX block at w: its VCN and the directory every
// entry names as parent.
func (l *Locator) indexClaims(off int, w []byte) []Claim {
	ib, err := ntfs.ParseIndexBlock(w)
	if err != nil || ib.Parent < 0 {
		return nil
	}
	vcn, dir := ib.VCN, ib.Parent
	var out []Claim
	for _, v := range l.ntfs {
		cs := v.boot.ClusterSize
		// VCNs count clusters, or 512-byte units when a block is smaller
		// than a cluster.
		at := vcn * cs
		if ntfs.IndexBlockSize < cs {
			at = vcn * 512
		}
		out = append(out, Claim{At: off, What: fmt.Sprintf("NTFS index block %d of directory %d", vcn, dir), later: func() []int64 {
			f := v.records[dir]
			if f == nil || !f.InUse || !f.Dir {
				return nil
			}
			for _, d := range f.Streams {
				if d.Type != ntfsAttrIndex {
					continue
				}
				if lcn := ntfs.VCNToLCN(d.Runs, at/cs); lcn >= 0 {
					return []int64{v.start + lcn*cs + at%cs}
				}
			}
			return nil
		}})
	}
	return out
}

// maxDirCandidate bounds the directories tried for a block that does not
// name itself.
const maxDirCandidate = 4096

// dirBlockClaims finds the checksummed directory blocks of volume v in
// buf. A block whose first entry is "." names its directory (and is its
// logical block 0); any other is tried against every directory seen.
func (l *Locator) dirBlockClaims(v *extLoc, buf []byte) []Claim {
	bs := int64(v.sb.BlockSize)
	phase := int(v.start % bs)
	var out []Claim
	for off := phase; off+int(bs) <= len(buf); off += int(bs) {
		t, ok := ext4.ParseDirBlockTail(buf[off : off+int(bs)])
		if !ok {
			continue
		}
		out = append(out, Claim{At: off, What: "ext4 directory block", later: func() []int64 {
			return v.dirBlockAt(t)
		}})
	}
	return out
}

// dirBlockAt returns where a directory block with tail t may lie: the
// blocks of the one directory whose seed verifies it; logical block 0 when
// the block names itself.
func (v *extLoc) dirBlockAt(t ext4.DirBlockTail) []int64 {
	bs := int64(v.sb.BlockSize)
	self := t.Self
	verifies := func(inum uint32, in *extInode) bool {
		return in.mode&ext4.ModeTypeMask == 0x4000 && ext4.CRC32CZeros(ext4.InodeCsumSeed(v.sb.CsumSeed, inum, in.gen), t.Covered)^t.BodyCRC == t.Checksum
	}
	var dir *extInode
	switch {
	case self != 0:
		if in := v.inodes[self]; in != nil && verifies(self, in) {
			dir = in
		}
	case len(v.inodes) <= maxDirCandidate:
		for inum, in := range v.inodes {
			if verifies(inum, in) {
				if dir != nil {
					return nil // two directories verify: proves nothing
				}
				dir = in
			}
		}
	}
	if dir == nil {
		return nil
	}
	var out []int64
	for _, e := range dir.extents {
		if e.Uninit || e.Len > ext4.MaxExtentLen {
			continue
		}
		if self != 0 {
			if e.Logical == 0 {
				return []int64{v.start + int64(e.Start)*bs}
			}
			continue
		}
		for k := int64(0); k < int64(e.Len) && len(out) < maxDirCandidate; k++ {
			out = append(out, v.start+(int64(e.Start)+k)*bs)
		}
	}
	return out
}
