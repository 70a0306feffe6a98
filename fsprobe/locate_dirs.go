package fsprobe

import (
	"encoding/binary"
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

// INDX block header fields.
const (
	indxUSAOffset   = 0x04
	indxUSACount    = 0x06
	indxVCN         = 0x10
	indxEntries     = 0x18 // index header: entries offset (from 0x18), total size
	indxEntryKey    = 0x10 // an entry's key ($FILE_NAME) within the entry
	indxLastEntry   = 0x2
	ntfsAttrIndex   = 0xA0 // $INDEX_ALLOCATION
	maxIndexEntries = 64   // entries checked per block for one parent
)

// indexClaims reads an INDX block at w: its VCN and the directory every
// entry names as parent.
func (l *Locator) indexClaims(off int, w []byte) []Claim {
	var out []Claim
	for _, v := range l.ntfs {
		cs := v.boot.ClusterSize
		const blockSize = 4096 // what every NTFS writer uses for index blocks
		if len(w) < blockSize {
			continue
		}
		b, ok := fixUp(w[:blockSize])
		if !ok {
			continue
		}
		vcn := int64(binary.LittleEndian.Uint64(b[indxVCN:]))
		dir, ok := indexParent(b)
		if !ok || vcn < 0 || vcn >= ntfs.MaxLCN {
			continue
		}
		// VCNs count clusters, or 512-byte units when a block is smaller
		// than a cluster.
		at := vcn * cs
		if blockSize < cs {
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

// fixUp applies an update sequence array to a copy of b, or reports a torn
// block.
func fixUp(w []byte) ([]byte, bool) {
	usaOff := int(binary.LittleEndian.Uint16(w[indxUSAOffset:]))
	usaCount := int(binary.LittleEndian.Uint16(w[indxUSACount:]))
	if usaCount != len(w)/ntfs.FixupStride+1 || usaOff < 0x28 || usaOff+2*usaCount > len(w) {
		return nil, false
	}
	b := append([]byte(nil), w...)
	for i := 1; i < usaCount; i++ {
		end := i*ntfs.FixupStride - 2
		if b[end] != b[usaOff] || b[end+1] != b[usaOff+1] {
			return nil, false
		}
		b[end], b[end+1] = b[usaOff+2*i], b[usaOff+2*i+1]
	}
	return b, true
}

// indexParent returns the directory every entry of a fixed-up INDX block
// names as its parent, if they all agree.
func indexParent(b []byte) (int64, bool) {
	pos := indxEntries + int(binary.LittleEndian.Uint32(b[indxEntries:]))
	end := indxEntries + int(binary.LittleEndian.Uint32(b[indxEntries+4:]))
	if end > len(b) {
		return 0, false
	}
	parent := int64(-1)
	for i := 0; i < maxIndexEntries && pos+indxEntryKey <= end; i++ {
		length := int(binary.LittleEndian.Uint16(b[pos+8:]))
		keyLen := int(binary.LittleEndian.Uint16(b[pos+10:]))
		flags := binary.LittleEndian.Uint32(b[pos+12:])
		if flags&indxLastEntry != 0 {
			break
		}
		if length < indxEntryKey+8 || pos+length > end || keyLen < 8 || indxEntryKey+keyLen > length {
			return 0, false
		}
		p := int64(binary.LittleEndian.Uint64(b[pos+indxEntryKey:]) & ntfs.RefRecordMask)
		if parent >= 0 && p != parent {
			return 0, false
		}
		parent = p
		pos += length
	}
	return parent, parent >= 0
}

// ext4 directory block tail (struct ext4_dir_entry_tail).
const (
	dirTailSize     = 12
	dirTailFileType = 0xDE
	maxDirCandidate = 4096 // directories tried for a block that does not name itself
)

// dirBlockClaims finds the checksummed directory blocks of volume v in
// buf. A block whose first entry is "." names its directory (and is its
// logical block 0); any other is tried against every directory seen.
func (l *Locator) dirBlockClaims(v *extLoc, buf []byte) []Claim {
	bs := int64(v.sb.BlockSize)
	phase := int(v.start % bs)
	var out []Claim
	for off := phase; off+int(bs) <= len(buf); off += int(bs) {
		b := buf[off : off+int(bs)]
		t := b[bs-dirTailSize:]
		if binary.LittleEndian.Uint32(t[0:]) != 0 || binary.LittleEndian.Uint16(t[4:]) != dirTailSize || t[6] != 0 || t[7] != dirTailFileType {
			continue
		}
		body := ext4.CRC32C(0, b[:bs-dirTailSize])
		want := binary.LittleEndian.Uint32(t[8:])
		self := uint32(0)
		if binary.LittleEndian.Uint16(b[6:])&0xFF == 1 && b[8] == '.' {
			self = binary.LittleEndian.Uint32(b[0:])
		}
		out = append(out, Claim{At: off, What: "ext4 directory block", later: func() []int64 {
			return v.dirBlockAt(body, want, self)
		}})
	}
	return out
}

// dirBlockAt returns where a directory block whose checksum is want (and
// whose bytes before the tail have raw crc32c body) may lie: the blocks of
// the one directory whose seed verifies it; logical block 0 when the block
// names itself.
func (v *extLoc) dirBlockAt(body, want, self uint32) []int64 {
	bs := int64(v.sb.BlockSize)
	verifies := func(inum uint32, in *extInode) bool {
		return in.mode&ext4.ModeTypeMask == 0x4000 && ext4.CRC32CZeros(ext4.InodeCsumSeed(v.sb.CsumSeed, inum, in.gen), int(bs)-dirTailSize)^body == want
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
