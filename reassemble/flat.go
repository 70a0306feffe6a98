package reassemble

import (
	"fmt"
	"io"
	"sort"

	"vmdkcarve/fsprobe"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Flat extents (monolithicFlat, ESXi's vmfs "-flat.vmdk", a one-extent
// twoGbMaxExtentFlat) have no header: the extent file is the raw guest
// disk, byte for byte, and only its text descriptor names it and its size
// (FORMAT.md §4.3). Its start is found by the guest's own sector 0 (a
// partition table the carve recorded) whose partitions fit the size, and
// its bytes are mapped by the host filesystem's map of the file starting
// there or, without one, assumed contiguous from there until the bytes
// contradict it (the guest's structures, another VMDK's), exactly as a
// sparse file's grain area. A flat extent is a sparse extent whose table
// maps every grain to its own offset, so the same placement applies, with
// one difference: a flat file stores zero grains, so a zero grain is a
// zero grain, not a break.

// EvFlat is the evidence level of a grain placed from a flat extent: its
// offset in the raw extent is its virtual offset.
const EvFlat = "flat"

// maxFlatGrains bounds a flat extent placed grain by grain (1 TiB of
// 64 KiB grains): the per-grain candidates must fit in memory.
const maxFlatGrains = 1 << 24

// flatGrainSize is the grain size flat disks are rebuilt with (every
// writer's, FORMAT.md §5).
const flatGrainSize = 128

// flatExtent returns the flat extent a descriptor describes, if it
// describes exactly one (data at offset 0 of its file).
func flatExtent(d *vmdk.Descriptor) (vmdk.Extent, bool) {
	if d == nil || len(d.Extents) != 1 {
		return vmdk.Extent{}, false
	}
	e := d.Extents[0]
	if (e.Type != "FLAT" && e.Type != "VMFS") || e.Offset != 0 || e.Sectors == 0 || e.Sectors/flatGrainSize >= maxFlatGrains {
		return vmdk.Extent{}, false
	}
	return e, true
}

// flatStart is a candidate start of a flat extent: a partition table.
type flatStart struct {
	hit *signatures.Hit
	end uint64 // sector after its last partition
	m   *fsprobe.FileMap
}

// flatInstances makes one instance per distinct flat descriptor, mapped
// from the one partition table that can be its start. taken are the
// instances found so far: a partition table inside one of their files is
// a guest's sector 0 stored in a sparse grain, not a flat extent's start.
func flatInstances(x *hitIndex, imageSize int64, maps []fsprobe.FileMap, taken []*Instance) []*Instance {
	var starts []flatStart
	for _, h := range x.mbrs {
		if h.Offset == 0 || insideAny(taken, h.Offset) {
			// Image offset 0 is the evidence disk's own partition table.
			continue
		}
		s := flatStart{hit: h, m: mapFor(maps, h.Offset)}
		for _, p := range h.MBR.Partitions {
			s.end = max(s.end, p.End())
		}
		starts = append(starts, s)
	}
	offs := make([]int64, 0, len(x.descriptors))
	for off := range x.descriptors {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	seen := map[string]bool{}
	type want struct {
		d      *signatures.Hit
		extent vmdk.Extent
		fits   []int // indexes in starts
	}
	var wants []want
	claims := map[int]int{} // start → descriptors it fits
	for _, off := range offs {
		d := x.descriptors[off]
		e, ok := flatExtent(d.Descriptor)
		if !ok {
			continue
		}
		key := fmt.Sprintf("%08x/%s/%d", d.Descriptor.CID, e.FileName, e.Sectors)
		if seen[key] {
			continue // a copy of a descriptor already taken
		}
		seen[key] = true
		w := want{d: d, extent: e}
		// The start with a host map of the extent's size wins; else every
		// partition table whose partitions fit, the closest fit first.
		best := uint64(0)
		for i, s := range starts {
			if s.end > e.Sectors {
				continue
			}
			if s.m != nil && s.m.Size == int64(e.Sectors)*vmdk.SectorSize {
				w.fits = []int{i}
				best = ^uint64(0)
				break
			}
			switch {
			case s.end > best:
				w.fits, best = []int{i}, s.end
			case s.end == best:
				w.fits = append(w.fits, i)
			}
		}
		for _, i := range w.fits {
			claims[i]++
		}
		wants = append(wants, w)
	}
	var out []*Instance
	for _, w := range wants {
		e := w.extent
		hdr := vmdk.SparseHeader{Version: 1, Flags: vmdk.FlagValidNewlines, Capacity: e.Sectors, GrainSize: flatGrainSize, NumGTEsPerGT: vmdk.GTEsPerGT}
		inst := &Instance{Variant: w.d.Descriptor.CreateType, Header: &hdr, Descriptor: w.d.Descriptor, grains: newDecisions(), flat: true,
			Tables: "none: a flat extent's grains lie at their own offsets"}
		inst.Notes = append(inst.Notes, fmt.Sprintf("flat extent %q of %d sectors named by the descriptor at image offset %d", e.FileName, e.Sectors, w.d.Offset))
		switch {
		case len(w.fits) == 0:
			inst.Notes = append(inst.Notes, "no partition table that fits the extent's size was found: its data is not located")
		case len(w.fits) > 1 || claims[w.fits[0]] > 1:
			inst.Notes = append(inst.Notes, fmt.Sprintf("%d partition tables fit the extent (and %d descriptors fit the best): which is its start is not known", len(w.fits), claims[w.fits[0]]))
		default:
			s := starts[w.fits[0]]
			inst.HeaderOffset = s.hit.Offset
			if s.m != nil && s.m.Size == int64(e.Sectors)*vmdk.SectorSize {
				inst.Fragments, inst.size = fragmentsFromMap(s.m)
				inst.HostMap = s.m
			} else {
				n := min(int64(e.Sectors)*vmdk.SectorSize, imageSize-s.hit.Offset)
				inst.Fragments = []Fragment{{FileOffset: 0, ImageOffset: s.hit.Offset, Length: n, Link: LinkContiguous,
					Evidence: "assumed contiguous from the guest's partition table at its start, until the bytes contradict it"}}
				inst.size = n
			}
			inst.Notes = append(inst.Notes, fmt.Sprintf("its start is the guest partition table at image offset %d (partitions end at sector %d)", s.hit.Offset, s.end))
		}
		out = append(out, inst)
	}
	return out
}

// insideAny reports whether an image offset lies in a mapped range of one
// of the instances' files (their start excluded).
func insideAny(instances []*Instance, off int64) bool {
	for _, inst := range instances {
		if fo, ok := inst.fileOffsetOf(off); ok && fo > 0 {
			return true
		}
	}
	return false
}

// placeFlat decides every grain of a flat instance: grain g at file offset
// g × grain size, through the fragments, with the contiguity checks of
// placeCandidates.
func placeFlat(inst *Instance, image io.ReaderAt, x *hitIndex, opts Options) {
	h := inst.Header
	grains := h.Grains()
	if len(inst.Fragments) == 0 {
		inst.grains.setRange(0, grains, &Grain{Status: Missing, Reason: "the flat extent's data was not located"})
		return
	}
	cands := make([]candidate, 0, grains)
	for g := range grains {
		cands = append(cands, candidate{grain: g, sector: uint32(g * h.GrainSize), which: "flat"})
	}
	view := newFileView(image, inst.Fragments)
	placeCandidates(inst, view, cands, x, opts, &Grain{Status: Zero, Evidence: []string{EvFlat}, Reason: "the flat extent holds zeros here"})
}
