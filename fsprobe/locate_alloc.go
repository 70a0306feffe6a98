package fsprobe

import (
	"fmt"
	"maps"
	"slices"
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
)

// Allocation predicts which virtual grains the guest has written: the
// grains holding a partition table, boot sectors, superblocks, group
// descriptors, bitmaps, inodes and MFT records, and the clusters or blocks
// of every file seen. Complete says the prediction covers every file the
// guest's own counts say exist (NTFS: every MFT record up to $MFT's
// initialized size was seen; ext4: the in-use inodes seen and the blocks
// they and the metadata own match the group descriptors' free counts
// exactly); Why says what is missing otherwise.
//
// A grain predicted written may still hold only zeros (a file of zeros),
// and a grain predicted unwritten may hold stale bytes; the caller uses
// the prediction only where the grains between two proven ones match it
// in number.
type Allocation struct {
	Grains   []int64 // sorted, distinct
	Complete bool
	Why      string
}

// Allocation returns the prediction; call it after every grain has passed
// through Locate.
func (l *Locator) Allocation() Allocation {
	set := l.newGrainSet()
	mark := set.mark
	var why []string
	if len(l.parts) > 0 {
		mark(0, sector)
	}
	switch {
	case len(l.ntfs)+len(l.ext) == 0:
		why = append(why, "no guest filesystem located")
	case len(l.ntfs)+len(l.ext) > 1:
		why = append(why, "more than one guest filesystem: files cannot be told apart")
	}
	for _, v := range l.ntfs {
		why = append(why, v.allocation(mark)...)
	}
	for _, v := range l.ext {
		why = append(why, v.allocation(mark)...)
	}
	a := Allocation{Complete: len(why) == 0}
	if len(why) > 0 {
		a.Why = fmt.Sprint(why)
	}
	a.Grains = set.sorted()
	return a
}

// allocation marks the volume's written bytes and says why the prediction
// is incomplete, if it is.
func (v *ntfsLoc) allocation(mark func(off, n int64)) []string {
	mark(v.start, v.boot.SectorSize)
	mark(v.start+v.boot.TotalSectors*v.boot.SectorSize, v.boot.SectorSize)
	var why []string
	if v.mftRuns == nil {
		return []string{fmt.Sprintf("NTFS volume at %d: $MFT runs unknown", v.start)}
	}
	// Which records are in use is in $MFT's own $BITMAP: every record it
	// marks must have been seen in use, or some file's clusters are not
	// known.
	why = append(why, v.bitmapMisses()...)
	for num, f := range v.records {
		if !f.InUse {
			continue
		}
		for _, d := range f.Streams {
			if num == ntfsSecureRecord && d.Type == ntfs.AttrData && d.StartVCN == 0 {
				v.markSDS(d, mark)
				continue
			}
			limit := int64(-1) // bytes of the stream written; -1: all of this piece
			if d.StartVCN == 0 {
				limit = d.Initialized
			}
			v.markStream(d.Runs, 0, limit, mark)
		}
	}
	return why
}

// markStream marks the clusters holding stream bytes [from, to) (to -1:
// every run).
func (v *ntfsLoc) markStream(runs []ntfs.Run, from, to int64, mark func(off, n int64)) {
	cs := v.boot.ClusterSize
	for _, r := range runs {
		if r.Sparse {
			continue
		}
		lo, hi := max(from, r.VCN*cs), (r.VCN+r.Len)*cs
		if to >= 0 {
			hi = min(hi, to)
		}
		if hi > lo {
			mark(v.start+r.LCN*cs+lo-r.VCN*cs, hi-lo)
		}
	}
}

// $Secure ($MFT record 9) keeps its security descriptors in the named
// stream $SDS (its only $DATA), in 256 KiB blocks each followed by a
// mirror copy: of every 512 KiB only the descriptors written at the start
// of each half hold bytes. mkntfs writes a few hundred bytes and the
// mirror: the rest of the 512 KiB is allocated but zero.
const (
	ntfsSecureRecord = 9
	sdsBlock         = 256 << 10
)

// markSDS marks the written parts of $SDS: each full 512 KiB holds
// descriptors throughout; the last holds as many bytes at the start of
// each half as the stream's size puts in its mirror half.
func (v *ntfsLoc) markSDS(d ntfs.Data, mark func(off, n int64)) {
	size := min(d.Initialized, d.Size)
	for c := int64(0); c*2*sdsBlock < size; c++ {
		base := c * 2 * sdsBlock
		used := int64(sdsBlock)
		if size < base+2*sdsBlock {
			used = max(size-base-sdsBlock, 0) // the mirror half ends the stream
			if size <= base+sdsBlock {
				used = size - base // no mirror yet: all of it may be written
			}
		}
		v.markStream(d.Runs, base, base+used, mark)
		v.markStream(d.Runs, base+sdsBlock, base+sdsBlock+used, mark)
	}
}

// bitmapMisses says which records the $MFT bitmap marks in use that were
// not seen, or that the bitmap was not read whole.
func (v *ntfsLoc) bitmapMisses() []string {
	if v.bitmap == nil {
		return []string{fmt.Sprintf("NTFS volume at %d: the $MFT bitmap was not found in a proven grain", v.start)}
	}
	for _, h := range v.have {
		if !h {
			return []string{fmt.Sprintf("NTFS volume at %d: part of the $MFT bitmap lies in grains not proven", v.start)}
		}
	}
	var missing []int64
	for n := int64(0); n < int64(len(v.bitmap))*8; n++ {
		if v.bitmap[n/8]&(1<<(n%8)) == 0 {
			continue
		}
		if f := v.records[n]; f == nil || !f.InUse {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return []string{fmt.Sprintf("NTFS volume at %d: %d records in use were not seen (first %d)", v.start, len(missing), missing[0])}
	}
	return nil
}

// hasSuper reports whether group g keeps a superblock backup (sparse_super:
// groups 0, 1 and the powers of 3, 5 and 7).
func hasSuper(g int64) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []int64{3, 5, 7} {
		x := b
		for x < g {
			x *= b
		}
		if x == g {
			return true
		}
	}
	return false
}

func (v *extLoc) allocation(mark func(off, n int64)) []string {
	bs := int64(v.sb.BlockSize)
	bpg := int64(v.sb.BlocksPerGroup)
	ipg := int64(v.sb.InodesPerGroup)
	isz := int64(v.sb.InodeSize)
	fdb := int64(v.sb.FirstDataBlock)
	blocks := int64(v.sb.Blocks)
	block := func(b, n int64) { mark(v.start+b*bs, n*bs) }
	var why []string
	if int64(len(v.groups)) < v.allGroups {
		why = append(why, fmt.Sprintf("ext4 volume %s: %d of %d group descriptors found", v.sb.UUID, len(v.groups), v.allGroups))
	}
	gdtBlocks := (v.allGroups*v.descSize + bs - 1) / bs
	itableBlocks := (ipg*isz + bs - 1) / bs
	var owned, allocated, usedInodes int64 // blocks the metadata and files own; the descriptors' count; inodes in use
	for g := range int64(len(v.groups)) {
		gr := v.groups[g]
		if !gr.ok {
			why = append(why, fmt.Sprintf("ext4 group %d: descriptor not verified", g))
			continue
		}
		first := fdb + g*bpg
		inGroup := min(bpg, blocks-first)
		allocated += inGroup - gr.freeBlocks
		usedInodes += ipg - gr.freeInodes
		if hasSuper(g) {
			owned += 1 + gdtBlocks + v.reserved
			if g == 0 {
				mark(v.start, ext4.SuperblockOffset+ext4.SuperblockSize) // boot block and superblock
			} else {
				block(first, 1)
			}
			block(first+1, gdtBlocks)
		}
		owned += 2 + itableBlocks
		if gr.flags&ext4.GroupBlockUninit == 0 {
			block(gr.blockBitmap, 1)
		}
		if gr.flags&ext4.GroupInodeUninit == 0 && gr.freeInodes < ipg {
			block(gr.inodeBitmap, 1)
		}
		// A group whose inode table was never zeroed (mkfs's default lazy
		// init, until the kernel's first mount zeroes it) may hold stale
		// bytes in its unused inodes. That is no reason to call the
		// prediction incomplete: on a new virtual disk they read zero,
		// and stale bytes would be slots the prediction cannot match in
		// number, which places nothing.
	}
	firstIno := uint32(11)
	seenInUse := int64(firstIno - 1) // the reserved inodes are always marked used
	for inum, in := range v.inodes {
		g := (int64(inum) - 1) / ipg
		if g < int64(len(v.groups)) && v.groups[g].ok {
			mark(v.start+v.groups[g].table*bs+((int64(inum)-1)%ipg)*isz, isz)
		}
		if in.mode == 0 {
			continue
		}
		if inum >= firstIno {
			seenInUse++
		}
		switch {
		case in.deep:
			why = append(why, fmt.Sprintf("ext4 inode %d: extent tree with index blocks", inum))
		case in.mapped && inum == ext4.ResizeInode:
			if in.dind > 0 {
				block(in.dind, 1)
				owned++
			}
		case in.mapped:
			why = append(why, fmt.Sprintf("ext4 inode %d: block-mapped", inum))
		}
		for _, e := range in.extents {
			n := int64(e.Len)
			if n > ext4.MaxExtentLen {
				n -= ext4.MaxExtentLen
			}
			owned += n
			if e.Uninit || n > ext4.MaxExtentLen {
				continue
			}
			if inum == ext4.JournalInode {
				// mkfs zeroes the journal: only its superblock is written
				// until the journal is used.
				if e.Logical == 0 {
					block(int64(e.Start), 1)
				}
				continue
			}
			block(int64(e.Start), n)
		}
	}
	if seenInUse != usedInodes {
		why = append(why, fmt.Sprintf("ext4 volume %s: %d inodes in use, %d seen", v.sb.UUID, usedInodes, seenInUse))
	} else if owned != allocated {
		why = append(why, fmt.Sprintf("ext4 volume %s: %d blocks allocated, %d accounted for", v.sb.UUID, allocated, owned))
	}
	return why
}

// MetadataGrains are the virtual grains expected to hold the guest's
// metadata (partition table, boot sectors, MFT records up to $MFT's
// initialized size, directory indexes; superblocks, group descriptors,
// bitmaps, in-use inodes, directory blocks, the journal superblock), as far
// as the structures seen tell.
func (l *Locator) MetadataGrains() []int64 {
	set := l.newGrainSet()
	mark := set.mark
	if len(l.parts) > 0 {
		mark(0, sector)
	}
	for _, v := range l.ntfs {
		mark(v.start, v.boot.SectorSize)
		mark(v.start+v.boot.TotalSectors*v.boot.SectorSize, v.boot.SectorSize)
		cs := v.boot.ClusterSize
		for _, r := range v.mftRuns { // the records written: $MFT's runs up to its initialized size
			if n := min(r.Len*cs, v.mftInit-r.VCN*cs); !r.Sparse && n > 0 {
				mark(v.start+r.LCN*cs, n)
			}
		}
		for n := int64(0); n < v.mirror; n++ {
			mark(v.start+v.boot.MirrLCN*v.boot.ClusterSize+n*v.boot.RecordSize, v.boot.RecordSize)
		}
		for _, f := range v.records {
			if !f.InUse || !f.Dir {
				continue
			}
			for _, d := range f.Streams {
				for _, r := range d.Runs {
					if !r.Sparse {
						mark(v.start+r.LCN*v.boot.ClusterSize, r.Len*v.boot.ClusterSize)
					}
				}
			}
		}
	}
	for _, v := range l.ext {
		bs := int64(v.sb.BlockSize)
		ipg := int64(v.sb.InodesPerGroup)
		isz := int64(v.sb.InodeSize)
		for g := range int64(len(v.groups)) {
			gr := v.groups[g]
			if !gr.ok {
				continue
			}
			first := int64(v.sb.FirstDataBlock) + g*int64(v.sb.BlocksPerGroup)
			if hasSuper(g) {
				mark(v.start+max(first*bs, ext4.SuperblockOffset), ext4.SuperblockSize)
			}
			if gr.flags&ext4.GroupBlockUninit == 0 {
				mark(v.start+gr.blockBitmap*bs, bs)
			}
			if gr.flags&ext4.GroupInodeUninit == 0 && gr.freeInodes < ipg {
				mark(v.start+gr.inodeBitmap*bs, bs)
				mark(v.start+gr.table*bs, (ipg-gr.freeInodes)*isz)
			}
		}
		for _, in := range v.inodes {
			if in.mode&ext4.ModeTypeMask != 0x4000 {
				continue
			}
			for _, e := range in.extents {
				if !e.Uninit && e.Len <= ext4.MaxExtentLen {
					mark(v.start+int64(e.Start)*bs, int64(e.Len)*bs)
				}
			}
		}
		if v.journal >= 0 {
			mark(v.start+v.journal*bs, bs)
		}
	}
	return set.sorted()
}

// grainSet collects the grains byte ranges of the disk touch.
type grainSet struct {
	grainBytes, diskBytes int64
	set                   map[int64]bool
}

func (l *Locator) newGrainSet() *grainSet {
	return &grainSet{grainBytes: l.grainBytes, diskBytes: l.diskBytes, set: map[int64]bool{}}
}

// mark adds the grains of n bytes at virtual offset off (cut at the disk's
// end; nothing for a range outside it).
func (s *grainSet) mark(off, n int64) {
	if n <= 0 || off < 0 || off >= s.diskBytes {
		return
	}
	for g := off / s.grainBytes; g <= (min(off+n, s.diskBytes)-1)/s.grainBytes; g++ {
		s.set[g] = true
	}
}

func (s *grainSet) sorted() []int64 { return slices.Sorted(maps.Keys(s.set)) }
