package reassemble

import (
	"fmt"
	"io"
	"maps"
	"slices"
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
// Nothing that lies in the metadata of a file already found (where its
// header or its directories put it) starts another: a found file's own
// directories and tables have every shape looked for here.
//
// It returns a made-up start hit per such file with an inferred header,
// and records in x.synthesized how each was inferred.
func headerlessStarts(x *hitIndex, starts, footers []*signatures.Hit, image io.ReaderAt, imageSize int64, maps []fsprobe.FileMap) []*signatures.Hit {
	hs := newHeaderSearch(x, starts, image, imageSize, maps)
	hs.fromFooters(footers)
	hs.fromStreamDescriptors()
	byStart := hs.directories()
	hs.oneEntryDirectories(byStart)
	hs.fromDirectories(byStart)
	return hs.out
}

// headerSearch is the state of headerlessStarts: the starts taken and the
// image ranges that are found files' metadata.
type headerSearch struct {
	x         *hitIndex
	starts    []*signatures.Hit // the files found with their headers
	image     io.ReaderAt
	imageSize int64
	have      map[int64]bool // start offsets taken
	owned     imageRanges
	out       []*signatures.Hit
}

func newHeaderSearch(x *hitIndex, starts []*signatures.Hit, image io.ReaderAt, imageSize int64, maps []fsprobe.FileMap) *headerSearch {
	hs := &headerSearch{x: x, starts: starts, image: image, imageSize: imageSize, have: make(map[int64]bool)}
	// A found file's metadata is full of shapes the searches below look
	// for: its directories, and in its grain tables any sector holding a
	// single entry reads as a one-entry directory naming the next table
	// (and again in the redundant copy). What lies where a found file's
	// header puts its metadata is that file's, and starts nothing.
	offsets := make([]int64, len(starts))
	for i, h := range starts {
		offsets[i] = h.Offset
	}
	slices.Sort(offsets)
	for _, h := range starts {
		hs.have[h.Offset] = true
		m := mapFor(maps, h.Offset)
		hs.owned = append(hs.owned, metadataRanges(image, h.Offset, h.Sparse, m, nextStart(offsets, h.Offset, imageSize))...)
		if m != nil && m.Size >= 2*vmdk.SectorSize {
			// A stream's footer is its second last sector, where its host
			// map puts it.
			hs.owned = append(hs.owned, fileRanges(h.Offset, m, imageSize, m.Size-2*vmdk.SectorSize, m.Size-vmdk.SectorSize)...)
		}
	}
	hs.owned = hs.owned.normalize()
	return hs
}

// add makes a start hit with an inferred header, unless the start is
// taken, out of the image or the header invalid.
func (hs *headerSearch) add(start int64, hdr vmdk.SparseHeader, from, why string) *signatures.Hit {
	if start < 0 || start%vmdk.SectorSize != 0 || start >= hs.imageSize || hs.have[start] || hdr.Validate() != nil {
		return nil
	}
	hs.have[start] = true
	h := &signatures.Hit{Offset: start, Kind: signatures.KindSparseHeader, Verdict: signatures.Valid, Sparse: &hdr}
	hs.x.synthesized[h] = why
	hs.x.headerFrom[h] = from
	hs.out = append(hs.out, h)
	return h
}

// couldBeFound: a footer or directory that could belong to a file whose
// header was found, but whose map does not reach it (a fragmented file
// without a host map), is that file's, not a headerless file's: inventing
// a start for it would invent a disk.
func (hs *headerSearch) couldBeFound(capacity, grainSize uint64, stream bool) bool {
	for _, h := range hs.starts {
		if h.Sparse.Compressed() == stream && h.Sparse.GrainSize == grainSize &&
			(h.Sparse.Capacity == capacity || (!stream && h.Sparse.GDEntries() == capacity)) {
			return true
		}
	}
	return false
}

// fromFooters: a stream footer puts its file's start at a known distance.
func (hs *headerSearch) fromFooters(footers []*signatures.Hit) {
	for _, f := range footers {
		if hs.owned.contains(f.Offset) || hs.couldBeFound(f.Sparse.Capacity, f.Sparse.GrainSize, true) {
			continue
		}
		hdr := *f.Sparse
		start := f.Offset - int64(hdr.GDOffset+hdr.GDSectors()+1)*vmdk.SectorSize
		if hdr.GDOffset == vmdk.GDAtEnd || hdr.GDOffset > 1<<32 {
			continue
		}
		hs.add(start, hdr, HeaderFromFooter, fmt.Sprintf("header lost: the stream footer at image offset %d (gdOffset %d) puts the file's start here", f.Offset, hdr.GDOffset))
	}
}

// fromStreamDescriptors: a stream whose header sector is gone but whose
// descriptor (sector 1) survives: the descriptor gives the capacity, the
// first grain record after it the start of the grain area. Its tables, if
// any, are found where the records say (placeStream checks them).
func (hs *headerSearch) fromStreamDescriptors() {
	x := hs.x
	for off, d := range x.descriptors {
		start := off - vmdk.SectorSize
		if start < 0 || hs.have[start] || hs.owned.contains(off) || d.Descriptor.CreateType != "streamOptimized" || d.Descriptor.Capacity() == 0 {
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
		if hs.couldBeFound(capacity, grainSize, true) {
			continue
		}
		// Writers that put the tables at the front (qemu, open-vmdk) leave
		// a directory between the descriptor and the first record; the
		// last one there is the primary (qemu writes the redundant copy
		// first). placeStream trusts it only if the records agree.
		tables := "no grain directory before the first record"
		if gd, ok := streamDirectory(hs.image, x, start, off, x.markers[i].Offset); ok {
			hdr.GDOffset = uint64(gd-start) / vmdk.SectorSize
			tables = fmt.Sprintf("grain directory at image offset %d (its first table names records found)", gd)
		}
		hs.add(start, hdr, HeaderFromDescriptor, fmt.Sprintf("header lost: the streamOptimized descriptor at image offset %d gives capacity %d sectors; grain size 128 assumed (every writer's); the grain area starts at the first record, image offset %d; %s",
			off, capacity, x.markers[i].Offset, tables))
	}
}

// directories groups by the start they imply the pre-allocated grain
// directories the carve found that name one of their tables where it
// lies; what they span becomes owned.
func (hs *headerSearch) directories() map[int64][]dir {
	x, image := hs.x, hs.image
	gts := make(map[int64]bool)
	for _, h := range x.gtShaped {
		gts[h.Offset] = true
	}
	byStart := make(map[int64][]dir)
	for _, g := range x.gds {
		if hs.owned.contains(g.Offset) {
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
		// ones may be empty: an all-zero table is no evidence), and not be
		// a found file's: that one's directory names it already.
		named := false
		for k := uint64(0); k < min(n, 64) && !named; k++ {
			at := start + int64(first+4*k)*vmdk.SectorSize
			named = gts[at] && !hs.owned.contains(at)
		}
		if !named {
			continue
		}
		byStart[start] = append(byStart[start], dir{g, self, n})
	}
	// A directory found above is followed by the tables it names (its
	// entries step over them): from its first sector to its last table
	// is its file's, and no sector there is a one-entry directory.
	for start, dirs := range byStart {
		for _, d := range dirs {
			hs.owned = append(hs.owned, imageRange{d.hit.Offset, start + int64(uint64(d.hit.Table.First)+4*d.entries)*vmdk.SectorSize})
		}
	}
	hs.owned = hs.owned.normalize()
	return byStart
}

// oneEntryDirectories: a disk of up to 32 MiB has one grain table, so its
// directory has a single entry: too common a shape for the carver to
// record. Each grain table found gets its preceding sector read instead: a
// one-entry directory naming that very table, then zeros, is one. Not in a
// file found: there the sector before a table is its directory or the end
// of the table before, which often holds one entry alone (a guest sparse
// there).
func (hs *headerSearch) oneEntryDirectories(byStart map[int64][]dir) {
	for _, gt := range hs.x.gtShaped {
		var sec [vmdk.SectorSize]byte
		if gt.Offset < 2*vmdk.SectorSize || hs.owned.contains(gt.Offset) || hs.owned.contains(gt.Offset-vmdk.SectorSize) {
			continue
		}
		if _, err := hs.image.ReadAt(sec[:], gt.Offset-vmdk.SectorSize); err != nil {
			continue
		}
		first := uint64(vmdk.DecodeEntries(sec[:4])[0])
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
}

// fromDirectories infers a header for every start the directories imply,
// in image order: the directories' places, the grain size every writer
// uses, and a capacity from a surviving descriptor or, as an upper bound,
// from the directory's length.
func (hs *headerSearch) fromDirectories(byStart map[int64][]dir) {
	for _, start := range slices.Sorted(maps.Keys(byStart)) {
		dirs := byStart[start]
		if hs.couldBeFound(dirs[0].entries, 128, false) {
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
		if d := hs.x.descriptors[start+vmdk.SectorSize]; d != nil && d.Descriptor.Capacity() > 0 {
			if c := d.Descriptor.Capacity(); (c+vmdk.GTEsPerGT*grainSize-1)/(vmdk.GTEsPerGT*grainSize) == n {
				capacity, from, bounded = c, "the surviving descriptor's extent line", false
			}
			hdr.DescriptorOffset, hdr.DescriptorSize = 1, 20
		}
		hdr.Capacity = capacity
		if h := hs.add(start, hdr, HeaderFromDirectories, fmt.Sprintf("header lost: %d grain directory copies at image offsets %v put the file's start here; grain size 128 assumed (every writer's); capacity %d sectors from %s",
			len(dirs), dirOffsets(dirs), capacity, from)); h != nil && bounded {
			hs.x.capacityBound[h] = true
		}
	}
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

// imageRange is the image bytes [lo, hi).
type imageRange struct{ lo, hi int64 }

// imageRanges is a set of image byte ranges.
type imageRanges []imageRange

// normalize sorts the ranges and merges those that overlap or touch, as
// contains needs.
func (r imageRanges) normalize() imageRanges {
	sort.Slice(r, func(i, j int) bool { return r[i].lo < r[j].lo })
	out := r[:0]
	for _, e := range r {
		if e.hi <= e.lo {
			continue
		}
		if n := len(out); n > 0 && e.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, e.hi)
			continue
		}
		out = append(out, e)
	}
	return out
}

// contains reports whether image offset off lies in a range of r
// (normalized).
func (r imageRanges) contains(off int64) bool {
	i := sort.Search(len(r), func(i int) bool { return r[i].hi > off })
	return i < len(r) && r[i].lo <= off
}

// maxOwnedGDSectors bounds the directory sectors read to learn which
// tables a found file's directories name: 8192 sectors hold the 1 Mi
// entries of a 2 TiB hosted sparse extent of the smallest grains, every
// one that extent can address.
const maxOwnedGDSectors = 8192

// metadataRanges returns where in the image the metadata of the file that
// starts at image offset start with header hdr lies: its sectors up to
// overHead (header, descriptor, directories and, for every hosted sparse
// writer, its tables), its directories wherever they are, and every table
// they name, read from the image. They lie through the file's host map m when it has one,
// else contiguously from start up to end (the next start).
func metadataRanges(image io.ReaderAt, start int64, hdr *vmdk.SparseHeader, m *fsprobe.FileMap, end int64) imageRanges {
	out := fileRanges(start, m, end, 0, int64(hdr.OverHead)*vmdk.SectorSize)
	gtBytes := int64(hdr.GTSectors()) * vmdk.SectorSize
	for _, gd := range []uint64{hdr.GDOffset, hdr.RGDOffset} {
		if gd == 0 || gd == vmdk.GDAtEnd {
			continue
		}
		out = append(out, fileRanges(start, m, end, int64(gd)*vmdk.SectorSize, int64(gd+hdr.GDSectors())*vmdk.SectorSize)...)
		entries := hdr.GDEntries()
		for k := uint64(0); k < min(hdr.GDSectors(), maxOwnedGDSectors); k++ {
			at, ok := imageOffsetOf(start, m, end, int64(gd+k)*vmdk.SectorSize)
			if !ok {
				continue
			}
			es, ok := readEntries(image, at)
			if !ok {
				break
			}
			for i, e := range es {
				if k*vmdk.SectorSize/4+uint64(i) < entries && e != 0 {
					out = append(out, fileRanges(start, m, end, int64(e)*vmdk.SectorSize, int64(e)*vmdk.SectorSize+gtBytes)...)
				}
			}
		}
	}
	return out
}

// fileRanges returns where the file bytes [lo, hi) of the file starting at
// image offset start lie in the image: through its host map m, else
// contiguously from start, up to end.
func fileRanges(start int64, m *fsprobe.FileMap, end, lo, hi int64) imageRanges {
	var out imageRanges
	if m == nil {
		if a, b := start+lo, min(start+hi, end); a < b {
			out = append(out, imageRange{a, b})
		}
		return out
	}
	for _, e := range m.Extents {
		a, b := max(lo, e.FileOffset), min(hi, e.FileOffset+e.Length)
		if a < b {
			out = append(out, imageRange{e.ImageOffset + a - e.FileOffset, e.ImageOffset + b - e.FileOffset})
		}
	}
	return out
}

// imageOffsetOf is where file offset off of the file starting at start
// lies in the image (see fileRanges).
func imageOffsetOf(start int64, m *fsprobe.FileMap, end, off int64) (int64, bool) {
	if m != nil {
		at := mapOffset(m, off)
		return at, at >= 0
	}
	return start + off, off >= 0 && start+off < end
}

// nextStart is the first start after off among the sorted start offsets,
// else end: as far as a file without a host map is assumed contiguous
// (findInstances). A binary search: a crafted image of 10^6 headers made
// the linear scan it replaced quadratic.
func nextStart(offsets []int64, off, end int64) int64 {
	i, _ := slices.BinarySearch(offsets, off+1)
	if i < len(offsets) && offsets[i] < end {
		return offsets[i]
	}
	return end
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
	entries := make([]uint32, 0, vmdk.SectorSize/4)
	for at := desc + vmdk.SectorSize; at < firstRecord && at < desc+4096*vmdk.SectorSize; at += vmdk.SectorSize {
		if _, err := image.ReadAt(sec[:], at); err != nil {
			break
		}
		self := uint64(at-start) / vmdk.SectorSize
		entries = vmdk.AppendEntries(entries[:0], sec[:])
		first := uint64(entries[0])
		if first <= self || int64(first)*vmdk.SectorSize >= firstRecord-start {
			continue
		}
		n := 1
		for ; n < len(entries); n++ {
			e := uint64(entries[n])
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
		for j, e := range vmdk.DecodeEntries(gt) {
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
