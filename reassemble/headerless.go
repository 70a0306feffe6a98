package reassemble

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// headerlessStarts finds files whose header is gone (overwritten by a
// ransomware "head" or reused) from what still names their start:
//
//   - a stream footer (a copy of the header with the real gdOffset) sits
//     at a known distance from its file's start (FORMAT.md §3.5);
//   - a pre-allocated grain directory (qemu and VMware hosted sparse
//     files) holds entries that start right after itself, so its first
//     entry and its length give its own sector in the file, and so the
//     file's start. The RGD and the GD of one file agree on that start.
//     A directory is taken only where a grain-table-shaped block lies at
//     the sector its first entry names: directory-shaped runs of numbers
//     occur in other data, a directory whose table is there too does not.
//
// It returns a made-up start hit per such file with an inferred header,
// and records in x.synthesized how each was inferred.
func headerlessStarts(x *hitIndex, starts, footers []*signatures.Hit, image io.ReaderAt, imageSize int64, maps []fsprobe.FileMap) []*signatures.Hit {
	have := make(map[int64]bool)      // start offsets taken
	explained := make(map[int64]bool) // directories and footers of files whose header was found
	for _, h := range starts {
		have[h.Offset] = true
		// A found header explains its own directories and footer, where
		// its host map (or else contiguity) puts them.
		m := mapFor(maps, h.Offset)
		at := func(fileOff int64) {
			if m == nil {
				explained[h.Offset+fileOff] = true
				return
			}
			for _, e := range m.Extents {
				if fileOff >= e.FileOffset && fileOff < e.FileOffset+e.Length {
					explained[e.ImageOffset+fileOff-e.FileOffset] = true
				}
			}
		}
		for _, s := range []uint64{h.Sparse.GDOffset, h.Sparse.RGDOffset} {
			if s != 0 && s != vmdk.GDAtEnd {
				for k := uint64(0); k < min(h.Sparse.GDSectors(), 1<<16); k++ {
					at(int64(s+k) * vmdk.SectorSize)
				}
			}
		}
		if m != nil && m.Size >= 2*vmdk.SectorSize {
			at(m.Size - 2*vmdk.SectorSize)
		}
	}
	var out []*signatures.Hit
	add := func(start int64, hdr vmdk.SparseHeader, why string) *signatures.Hit {
		if start < 0 || start%vmdk.SectorSize != 0 || start >= imageSize || have[start] || hdr.Validate() != nil {
			return nil
		}
		have[start] = true
		h := &signatures.Hit{Offset: start, Kind: signatures.KindSparseHeader, Verdict: signatures.Valid, Sparse: &hdr}
		x.synthesized[h] = why
		out = append(out, h)
		return h
	}

	// A footer or directory that could belong to a file whose header was
	// found, but whose map does not reach it (a fragmented file without a
	// host map), is that file's, not a headerless file's: inventing a
	// start for it would invent a disk.
	couldBeFound := func(capacity, grainSize uint64, stream bool) bool {
		for _, h := range starts {
			if h.Sparse.Compressed() == stream && h.Sparse.GrainSize == grainSize &&
				(h.Sparse.Capacity == capacity || (!stream && h.Sparse.GDEntries() == capacity)) {
				return true
			}
		}
		return false
	}
	for _, f := range footers {
		if explained[f.Offset] || couldBeFound(f.Sparse.Capacity, f.Sparse.GrainSize, true) {
			continue
		}
		hdr := *f.Sparse
		start := f.Offset - int64(hdr.GDOffset+hdr.GDSectors()+1)*vmdk.SectorSize
		if hdr.GDOffset == vmdk.GDAtEnd || hdr.GDOffset > 1<<32 {
			continue
		}
		add(start, hdr, fmt.Sprintf("header lost: the stream footer at image offset %d (gdOffset %d) puts the file's start here", f.Offset, hdr.GDOffset))
	}

	// A stream whose header sector is gone but whose descriptor (sector
	// 1) survives: the descriptor gives the capacity, the first grain
	// record after it the start of the grain area. Its tables, if any,
	// are found where the records say (placeStream checks them).
	for off, d := range x.descriptors {
		start := off - vmdk.SectorSize
		if start < 0 || have[start] || d.Descriptor.CreateType != "streamOptimized" || d.Descriptor.Capacity() == 0 {
			continue
		}
		i := sort.Search(len(x.markers), func(i int) bool { return x.markers[i].Offset > off })
		if i == len(x.markers) || x.markers[i].Verdict != signatures.Valid || x.markers[i].Offset-off > 1<<20 {
			continue
		}
		capacity := d.Descriptor.Capacity()
		const grainSize = 128
		hdr := vmdk.SparseHeader{Version: 3, Flags: vmdk.FlagValidNewlines | vmdk.FlagCompressed | vmdk.FlagMarkers,
			Capacity: capacity, GrainSize: grainSize, DescriptorOffset: 1, DescriptorSize: 20, NumGTEsPerGT: vmdk.GTEsPerGT,
			GDOffset: vmdk.GDAtEnd, OverHead: uint64(x.markers[i].Offset-start) / vmdk.SectorSize, CompressAlgorithm: vmdk.CompressDeflate}
		if couldBeFound(capacity, grainSize, true) {
			continue
		}
		// Writers that put the tables at the front (qemu, open-vmdk) leave
		// a directory between the descriptor and the first record; the
		// last one there is the primary (qemu writes the redundant copy
		// first). placeStream trusts it only if the records agree.
		tables := "no grain directory before the first record"
		if gd, ok := streamDirectory(image, x, start, off, x.markers[i].Offset); ok {
			hdr.GDOffset = uint64(gd-start) / vmdk.SectorSize
			tables = fmt.Sprintf("grain directory at image offset %d (its first table names records found)", gd)
		}
		add(start, hdr, fmt.Sprintf("header lost: the streamOptimized descriptor at image offset %d gives capacity %d sectors; grain size 128 assumed (every writer's); the grain area starts at the first record, image offset %d; %s",
			off, capacity, x.markers[i].Offset, tables))
	}

	gts := make(map[int64]bool)
	for _, h := range x.gtShaped {
		gts[h.Offset] = true
	}
	byStart := make(map[int64][]dir)
	for _, g := range x.gds {
		if explained[g.Offset] {
			continue
		}
		first := uint64(g.Table.First)
		// A sector that continues the run of the sector before it is the
		// middle or end of a longer directory, not its start.
		if prev, ok := readEntries(image, g.Offset-vmdk.SectorSize); ok && prev[len(prev)-1] != 0 && uint64(prev[len(prev)-1])+4 == first {
			continue
		}
		// A run that fills its sector may go on into the next ones.
		n := uint64(g.Table.Entries)
		for k := int64(1); n == uint64(k)*vmdk.SectorSize/4 && k < 1<<16; k++ {
			next, ok := readEntries(image, g.Offset+k*vmdk.SectorSize)
			if !ok {
				break
			}
			for _, e := range next {
				if uint64(e) != first+4*n {
					break
				}
				n++
			}
		}
		gdSectors := (n*4 + vmdk.SectorSize - 1) / vmdk.SectorSize
		if first <= gdSectors+1 {
			continue
		}
		self := first - gdSectors
		start := g.Offset - int64(self)*vmdk.SectorSize
		if start < 0 {
			continue
		}
		// One of the tables it names must be where it says (the first
		// ones may be empty: an all-zero table is no evidence).
		named := false
		for k := uint64(0); k < min(n, 64) && !named; k++ {
			named = gts[start+int64(first+4*k)*vmdk.SectorSize]
		}
		if !named {
			continue
		}
		byStart[start] = append(byStart[start], dir{g, self, n})
	}
	// A disk of up to 32 MiB has one grain table, so its directory has a
	// single entry: too common a shape for the carver to record. Each
	// grain table found gets its preceding sector read instead: a
	// one-entry directory naming that very table, then zeros, is one.
	for _, gt := range x.gtShaped {
		var sec [vmdk.SectorSize]byte
		if gt.Offset < 2*vmdk.SectorSize || explained[gt.Offset-vmdk.SectorSize] {
			continue
		}
		if _, err := image.ReadAt(sec[:], gt.Offset-vmdk.SectorSize); err != nil {
			continue
		}
		first := uint64(binary.LittleEndian.Uint32(sec[:]))
		if first < 3 || !entropy.Zero(sec[4:]) {
			continue
		}
		start := gt.Offset - int64(first)*vmdk.SectorSize
		if start < 0 {
			continue
		}
		h := &signatures.Hit{Offset: gt.Offset - vmdk.SectorSize, Kind: signatures.KindGD, Verdict: signatures.Valid,
			Table: &signatures.TableInfo{Entries: 1, First: uint32(first)}}
		byStart[start] = append(byStart[start], dir{h, first - 1, 1})
	}
	keys := make([]int64, 0, len(byStart))
	for k := range byStart {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, start := range keys {
		dirs := byStart[start]
		if couldBeFound(dirs[0].entries, 128, false) {
			continue
		}
		sort.Slice(dirs, func(i, j int) bool { return dirs[i].sector < dirs[j].sector })
		n := dirs[0].entries
		const grainSize = 128 // every writer's, FORMAT.md §5
		hdr := vmdk.SparseHeader{Version: 1, Flags: vmdk.FlagValidNewlines, GrainSize: grainSize, NumGTEsPerGT: vmdk.GTEsPerGT}
		last := dirs[len(dirs)-1]
		hdr.GDOffset = last.sector
		if len(dirs) > 1 && dirs[0].entries == last.entries {
			hdr.Flags |= vmdk.FlagRedundantGD
			hdr.RGDOffset = dirs[0].sector
		}
		lastGT := uint64(last.hit.Table.First) + (n-1)*4
		hdr.OverHead = (lastGT + 4 + grainSize - 1) / grainSize * grainSize
		capacity, from := n*vmdk.GTEsPerGT*grainSize, fmt.Sprintf("the directory's %d entries (an upper bound: the last table may be part-used)", n)
		bounded := true
		if d := x.descriptors[start+vmdk.SectorSize]; d != nil && d.Descriptor.Capacity() > 0 {
			if c := d.Descriptor.Capacity(); (c+vmdk.GTEsPerGT*grainSize-1)/(vmdk.GTEsPerGT*grainSize) == n {
				capacity, from, bounded = c, "the surviving descriptor's extent line", false
			}
			hdr.DescriptorOffset, hdr.DescriptorSize = 1, 20
		}
		hdr.Capacity = capacity
		if h := add(start, hdr, fmt.Sprintf("header lost: %d grain directory copies at image offsets %v put the file's start here; grain size 128 assumed (every writer's); capacity %d sectors from %s",
			len(dirs), dirOffsets(dirs), capacity, from)); h != nil && bounded {
			x.capacityBound[h] = true
		}
	}
	return out
}

// dir is a grain directory found in the image and its own sector in the
// file it implies.
type dir struct {
	hit     *signatures.Hit
	sector  uint64
	entries uint64 // in the whole directory (it may span sectors)
}

func dirOffsets(ds []dir) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.hit.Offset)
	}
	return out
}

// streamDirectory looks between a stream's descriptor and its first record
// for the grain directory writers with front tables put there: a sector
// whose entries step by 4 from a sector after it, then zeros, whose first
// table's entries name sectors where records of exactly those LBAs were
// found. The last such directory is the primary (qemu writes the
// redundant copy first). At most 4096 sectors are read.
func streamDirectory(image io.ReaderAt, x *hitIndex, start, desc, firstRecord int64) (int64, bool) {
	found, ok := int64(0), false
	var sec [vmdk.SectorSize]byte
	for at := desc + vmdk.SectorSize; at < firstRecord && at < desc+4096*vmdk.SectorSize; at += vmdk.SectorSize {
		if _, err := image.ReadAt(sec[:], at); err != nil {
			break
		}
		self := uint64(at-start) / vmdk.SectorSize
		first := uint64(binary.LittleEndian.Uint32(sec[:]))
		if first <= self || int64(first)*vmdk.SectorSize >= firstRecord-start {
			continue
		}
		n := 1
		for ; n < vmdk.SectorSize/4; n++ {
			e := uint64(binary.LittleEndian.Uint32(sec[4*n:]))
			if e == 0 {
				break
			}
			if e != first+uint64(4*n) {
				n = -1
				break
			}
		}
		if n < 0 || !entropy.Zero(sec[4*n:]) {
			continue
		}
		gt := make([]byte, vmdk.GTEsPerGT*4)
		if _, err := image.ReadAt(gt, start+int64(first)*vmdk.SectorSize); err != nil {
			continue
		}
		agree, disagree := 0, 0
		for j := 0; j < vmdk.GTEsPerGT; j++ {
			e := binary.LittleEndian.Uint32(gt[4*j:])
			if e == 0 {
				continue
			}
			m := x.markerAt[start+int64(e)*vmdk.SectorSize]
			if m != nil && m.Verdict == signatures.Valid && m.Grain.LBA == uint64(j)*128 {
				agree++
			} else {
				disagree++
			}
		}
		if agree > 0 && disagree == 0 {
			found, ok = at, true
		}
	}
	return found, ok
}

// readEntries reads the sector at off as u32 entries.
func readEntries(image io.ReaderAt, off int64) ([]uint32, bool) {
	if off < 0 {
		return nil, false
	}
	var sec [vmdk.SectorSize]byte
	if _, err := image.ReadAt(sec[:], off); err != nil {
		return nil, false
	}
	return vmdk.DecodeEntries(sec[:]), true
}
