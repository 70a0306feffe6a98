package reassemble

import (
	"fmt"
	"io"
	"slices"
	"sort"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/fsprobe"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// hitIndex gives the hits by kind and offset.
type hitIndex struct {
	headers     []*signatures.Hit // valid sparse headers, by offset
	descriptors map[int64]*signatures.Hit
	footerMark  map[int64]bool             // offsets of footer markers
	gtMark      map[int64]bool             // offsets of GT markers
	gdMark      map[int64]bool             // offsets of GD markers
	foreign     []*signatures.Hit          // structures that end a sparse extent's grain area, by offset
	gds         []*signatures.Hit          // grain-directory-shaped sectors, by offset
	gtShaped    []*signatures.Hit          // grain-table-shaped blocks
	synthesized map[*signatures.Hit]string // start hits made up for files whose header is lost, and why
	// capacityBound marks the made-up start hits whose capacity is only
	// their grain directory's span (refineLostCapacity looks for better).
	capacityBound map[*signatures.Hit]bool
	markers       []*signatures.Hit          // grain markers (valid and damaged), by offset
	markerAt      map[int64]*signatures.Hit  // grain markers by offset
	mbrs          []*signatures.Hit          // partition tables: where flat extents may start
	ext4Primary   map[int64]*ext4.Superblock // primary ext superblocks by image offset: volumes that may start a flat extent
	volumeAt      map[int64]bool             // image offsets where an NTFS or ext volume starts (a boot sector or primary superblock)
	geometry      []int64                    // structures a guest's geometry is learned from (partition tables, boot sectors, $MFT record 0, primary superblocks), by offset
	guest         []int64                    // every partition table and NTFS or ext4 structure, by offset: where self-locating guest structures are
	imageSize     int64                      // bytes of the image (set by Plan)

	// headerFrom says what each made-up start hit's header was inferred
	// from (a HeaderFrom value); damagedHeaders are the sparse headers
	// found with their magic that fail a rule, by offset, and why: never
	// trusted, but what a file found again without its header had there.
	headerFrom     map[*signatures.Hit]string
	damagedHeaders map[int64]string
}

func indexHits(hits []signatures.Hit) *hitIndex {
	x := &hitIndex{
		descriptors:   make(map[int64]*signatures.Hit),
		footerMark:    make(map[int64]bool),
		gtMark:        make(map[int64]bool),
		gdMark:        make(map[int64]bool),
		synthesized:   make(map[*signatures.Hit]string),
		capacityBound: make(map[*signatures.Hit]bool),
		markerAt:      make(map[int64]*signatures.Hit),
		volumeAt:      make(map[int64]bool),
		ext4Primary:   make(map[int64]*ext4.Superblock),
	}
	x.headerFrom, x.damagedHeaders = make(map[*signatures.Hit]string), make(map[int64]string)
	for i := range hits {
		h := &hits[i]
		if !trustworthy(h) {
			continue
		}
		if isForeign(h) {
			x.foreign = append(x.foreign, h)
		}
		if (h.Kind == signatures.KindMBR || h.Kind == signatures.KindNTFS || h.Kind == signatures.KindExt4) && h.Verdict == signatures.Valid {
			x.guest = append(x.guest, h.Offset)
		}
		switch h.Kind {
		case signatures.KindSparseHeader:
			if h.Verdict == signatures.Valid && h.Sparse != nil {
				x.headers = append(x.headers, h)
			} else if h.Verdict == signatures.Damaged {
				x.damagedHeaders[h.Offset] = h.Reason
			}
		case signatures.KindDescriptor:
			if h.Descriptor != nil {
				x.descriptors[h.Offset] = h
			}
		case signatures.KindMetaMarker:
			if h.Meta != nil && h.Meta.Type == vmdk.MarkerFooter {
				x.footerMark[h.Offset] = true
			}
			if h.Meta != nil && h.Meta.Type == vmdk.MarkerGT {
				x.gtMark[h.Offset] = true
			}
			if h.Meta != nil && h.Meta.Type == vmdk.MarkerGD {
				x.gdMark[h.Offset] = true
			}
		case signatures.KindGD:
			if h.Table != nil {
				x.gds = append(x.gds, h)
			}
		case signatures.KindGT:
			x.gtShaped = append(x.gtShaped, h)
		case signatures.KindMBR:
			if h.MBR != nil {
				x.mbrs = append(x.mbrs, h)
				x.geometry = append(x.geometry, h.Offset)
			}
		case signatures.KindNTFS:
			if h.Verdict == signatures.Valid && h.NTFS != nil && h.NTFS.Type == ntfs.TypeBootSector {
				x.volumeAt[h.Offset] = true
				x.geometry = append(x.geometry, h.Offset)
			}
			if h.Verdict == signatures.Valid && h.NTFS != nil && h.NTFS.MFT != nil && h.NTFS.MFT.Number == 0 {
				x.geometry = append(x.geometry, h.Offset)
			}
			if h.Verdict == signatures.Valid && h.NTFS != nil && h.NTFS.MFT != nil && h.NTFS.MFT.Descriptor != nil && x.descriptors[h.Offset] == nil {
				// A descriptor resident in a host MFT record (a standalone
				// descriptor file on an NTFS host).
				x.descriptors[h.Offset] = &signatures.Hit{Offset: h.Offset, Kind: signatures.KindDescriptor, Verdict: signatures.Valid, Descriptor: h.NTFS.MFT.Descriptor}
			}
		case signatures.KindExt4:
			if h.Verdict == signatures.Valid && h.Ext4 != nil && h.Ext4.Super != nil && h.Ext4.Super.Group == 0 {
				x.volumeAt[h.Offset-ext4.SuperblockOffset] = true
				x.geometry = append(x.geometry, h.Offset)
				x.ext4Primary[h.Offset] = h.Ext4.Super
			}
		case signatures.KindGrainMarker:
			if h.Grain != nil {
				x.markers = append(x.markers, h)
				x.markerAt[h.Offset] = h
			}
		}
	}
	byOffset := func(s []*signatures.Hit) {
		sort.SliceStable(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
	}
	byOffset(x.headers)
	byOffset(x.foreign)
	byOffset(x.markers)
	return x
}

// isFooter tells a stream footer from a start header by its neighbour: the
// sector before a footer is a footer marker (FORMAT.md §3.5).
//
// The marker may lie in another fragment of a fragmented host file, so a
// stream header with a real gdOffset that has no descriptor after it is a
// footer too: every writer's start header carries its descriptor at
// sector 1, and a footer (a copy of it) is followed by the EOS sector.
func (x *hitIndex) isFooter(h *signatures.Hit) bool {
	if !h.Sparse.IsStreamFooterCandidate() {
		return false
	}
	if x.footerMark[h.Offset-vmdk.SectorSize] {
		return true
	}
	return h.Sparse.DescriptorOffset > 0 && x.descriptors[h.Offset+int64(h.Sparse.DescriptorOffset)*vmdk.SectorSize] == nil
}

// trustworthy re-checks what a hit claims before anything is sized or
// read from it: hits.jsonl is a file on disk like any other, and a damaged
// or crafted line must not make the planner allocate by a header's word
// (a grain size of 2^40) or read a record of any length it says.
func trustworthy(h *signatures.Hit) bool {
	switch {
	case h.Offset < 0:
		return false
	case h.Sparse != nil && h.Verdict == signatures.Valid && h.Sparse.Validate() != nil:
		return false
	case h.Grain != nil && (h.Length <= 0 || h.Length > maxRecordBytes):
		return false
	}
	return true
}

// maxRecordBytes is the largest grain record: the marker, the largest
// compressed grain of the largest grain size, sector padding.
var maxRecordBytes = (12 + vmdk.MaxCompressedGrain(vmdk.MaxGrainSize*vmdk.SectorSize) + vmdk.SectorSize - 1) / vmdk.SectorSize * vmdk.SectorSize

// isMetaGT reports whether a GT marker sits at off.
func (x *hitIndex) isMetaGT(off int64) bool { return x.gtMark[off] }

// findInstances makes one instance per start header. Under the contiguous
// assumption an instance's file runs from its header to the next start
// header or the end of the image; the fragment list is kept general so that
// fragment search can replace it.
func findInstances(x *hitIndex, image io.ReaderAt, imageSize int64, maps []fsprobe.FileMap) []*Instance {
	var starts []*signatures.Hit
	var footers []*signatures.Hit
	for _, h := range x.headers {
		if x.isFooter(h) {
			footers = append(footers, h)
		} else {
			starts = append(starts, h)
		}
	}
	// Files whose first sectors are gone still announce themselves: a
	// stream footer names where its file began, a pre-allocated grain
	// directory names where its own file began (find_header_lost.go).
	lost := headerlessStarts(x, starts, footers, image, imageSize, maps)
	starts = append(starts, lost...)
	sort.SliceStable(starts, func(i, j int) bool { return starts[i].Offset < starts[j].Offset })
	var out []*Instance
	for i, h := range starts {
		end := imageSize
		cut := false
		if i+1 < len(starts) {
			end, cut = starts[i+1].Offset, true
		}
		hdr := *h.Sparse
		inst := &Instance{
			ID:           len(out) + 1,
			HeaderOffset: h.Offset,
			Header:       &hdr,
			Fragments: []Fragment{{
				FileOffset: 0, ImageOffset: h.Offset, Length: end - h.Offset,
				Evidence: "contiguous from the header to the next header or the image end",
				Link:     LinkContiguous,
			}},
			size:        end - h.Offset,
			grains:      newDecisions(),
			cutByHeader: cut,
		}
		if m := mapFor(maps, h.Offset); m != nil {
			inst.Fragments, inst.size = fragmentsFromMap(m)
			inst.HostMap = m
		}
		if why, ok := x.synthesized[h]; ok {
			inst.HeaderLost = true
			inst.Notes = append(inst.Notes, why)
			inst.capacityBound = x.capacityBound[h]
			inst.HeaderFrom, inst.HeaderDamaged = x.headerFrom[h], x.damagedHeaders[h.Offset]
			if inst.capacityBound {
				inst.CapacityBound = BoundUpper
			}
		}
		switch {
		case !hdr.Compressed():
			inst.Variant = "monolithicSparse"
		case hdr.GDOffset == vmdk.GDAtEnd:
			inst.Variant = "streamOptimized (GD at end)"
		default:
			inst.Variant = "streamOptimized"
		}
		if hdr.DescriptorOffset > 0 {
			if d := x.descriptors[h.Offset+int64(hdr.DescriptorOffset)*vmdk.SectorSize]; d != nil {
				inst.Descriptor = d.Descriptor
			}
		}
		// A GD_AT_END stream's footer lies at gdOffset + gdSectors + 1 of
		// the file; one in this instance's range that agrees is its own.
		// Only the footers inside its fragments are looked at (a binary
		// search in each): 10^6 crafted footers against every start were
		// quadratic.
		for _, k := range footersIn(footers, inst.Fragments) {
			f := footers[k]
			if f.Sparse.Capacity != hdr.Capacity || f.Sparse.GrainSize != hdr.GrainSize {
				continue
			}
			fileOff, ok := inst.fileOffsetOf(f.Offset)
			if !ok || fileOff != int64(f.Sparse.GDOffset+f.Sparse.GDSectors()+1)*vmdk.SectorSize {
				continue
			}
			{
				inst.FooterOffset = f.Offset
				if inst.HostMap == nil {
					// The file ends with the footer and the EOS sector.
					inst.size = fileOff + 2*vmdk.SectorSize
					inst.Fragments[0].Length = inst.size
				}
				footer := *f.Sparse
				inst.Header = &footer
				inst.Notes = append(inst.Notes, fmt.Sprintf("footer at image offset %d gives gdOffset %d", f.Offset, footer.GDOffset))
			}
		}
		out = append(out, inst)
	}
	return out
}

// footersIn returns the indexes, in order, of the footers (sorted by
// offset) that lie inside the fragments' image ranges.
func footersIn(footers []*signatures.Hit, frags []Fragment) []int {
	var out []int
	for _, fr := range frags {
		if fr.Link == LinkHole {
			continue
		}
		i := sort.Search(len(footers), func(i int) bool { return footers[i].Offset >= fr.ImageOffset })
		for ; i < len(footers) && footers[i].Offset < fr.ImageOffset+fr.Length; i++ {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
