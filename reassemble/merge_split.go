package reassemble

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"vmdkcarve/fsprobe"
	"vmdkcarve/vmdk"
)

// Split sparse disks (twoGbMaxExtentSparse: VMware Workstation's default,
// and qemu-img's subformat of that name) keep the disk in extents of at
// most 2 GiB, each a hosted sparse file with its own header, tables and
// grains, named in order by a separate text descriptor. Each extent is
// found and decided as an instance of its own; this file assembles them:
// extent k's grains are the disk's grains from the sum of the sizes before
// it. Which instance is which extent comes, in order of strength, from:
//
//   - its host file's name (NTFS), equal to the descriptor's;
//   - its size, when only one extent and one instance have it;
//   - its guest content: the self-locating guest structures in its placed
//     grains (fsprobe.Locator), which name absolute grains, agree on one
//     shift, and that shift is where an extent of its size starts;
//   - elimination: one extent of a size left and one instance of it.
//
// An extent no instance is proven to be stays missing. Assembled extents
// become parts of one composite instance and are not disks of their own.

// maxSplitExtents bounds the extents a descriptor may list (a 64 TiB disk
// of 2 GiB extents).
const maxSplitExtents = 1 << 15

// splitExtents returns a descriptor's extents if they are two or more
// sparse ones of whole grains.
func splitExtents(d *vmdk.Descriptor) ([]vmdk.Extent, bool) {
	if d == nil || len(d.Extents) < 2 || len(d.Extents) > maxSplitExtents {
		return nil, false
	}
	var total uint64
	for i, e := range d.Extents {
		// Sizes come from text on disk: each, and their sum, must be one
		// a monolithicSparse disk can hold, or the sum could wrap.
		if e.Type != "SPARSE" || e.Sectors == 0 || e.Sectors > vmdk.MaxSparseCapacity || (i < len(d.Extents)-1 && e.Sectors%flatGrainSize != 0) {
			return nil, false
		}
		if total += e.Sectors; total > vmdk.MaxSparseCapacity {
			return nil, false
		}
	}
	return d.Extents, true
}

// assembleSplit adds a composite instance for every split descriptor some
// of whose extents were found, and marks those extents as its parts.
func assembleSplit(instances []*Instance, x *hitIndex, image io.ReaderAt) []*Instance {
	offs := sortedOffsets(x)
	seen := map[string]bool{}
	for _, off := range offs {
		d := x.descriptors[off].Descriptor
		exts, ok := splitExtents(d)
		if !ok {
			continue
		}
		key := fmt.Sprintf("%08x/%v", d.CID, exts)
		if seen[key] {
			continue
		}
		seen[key] = true
		parts, how, unsure := matchExtents(exts, instances, image)
		if len(parts) == 0 {
			continue
		}
		c := composite(len(instances)+1, d, off, exts, parts, how)
		for _, inst := range unsure {
			// An extent file that is one of several of its size: part of
			// this disk, but not placed in it.
			inst.partOf, inst.UnprovenExtentOf = c.ID, c.ID
			inst.Notes = append(inst.Notes, fmt.Sprintf("an extent of split disk instance %d whose place among the extents of its size is not proven: its grains are not used", c.ID))
			c.Notes = append(c.Notes, fmt.Sprintf("instance %d (header at image offset %d) is one of its extents, which one is not proven", inst.ID, inst.HeaderOffset))
		}
		instances = append(instances, c)
	}
	return instances
}

// sortedOffsets returns the descriptor offsets in image order.
func sortedOffsets(x *hitIndex) []int64 {
	offs := make([]int64, 0, len(x.descriptors))
	for off := range x.descriptors {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	return offs
}

// matchExtents decides which instance is which extent.
func matchExtents(exts []vmdk.Extent, instances []*Instance, image io.ReaderAt) (parts map[int]*Instance, how map[int]string, unsure []*Instance) {
	parts, how = map[int]*Instance{}, map[int]string{}
	var cands []*Instance
	for _, inst := range instances {
		if inst.flat || inst.partOf != 0 || inst.Header.Compressed() || inst.Descriptor != nil || inst.Header.GrainSize != flatGrainSize {
			continue // an extent of a split disk has no embedded descriptor text
		}
		for _, e := range exts {
			if inst.Header.Capacity == e.Sectors {
				cands = append(cands, inst)
				break
			}
		}
	}
	taken := map[*Instance]bool{}
	assign := func(k int, inst *Instance, why string) {
		parts[k], how[k], taken[inst] = inst, why, true
	}
	// Host file names.
	for k, e := range exts {
		for _, inst := range cands {
			if !taken[inst] && inst.HostMap != nil && inst.Header.Capacity == e.Sectors && strings.EqualFold(path.Base(inst.HostMap.Name), path.Base(e.FileName)) {
				assign(k, inst, "its host file's name")
				break
			}
		}
	}
	left := func(size uint64) (ks []int, is []*Instance) {
		for k, e := range exts {
			if parts[k] == nil && e.Sectors == size {
				ks = append(ks, k)
			}
		}
		for _, inst := range cands {
			if !taken[inst] && inst.Header.Capacity == size {
				is = append(is, inst)
			}
		}
		return ks, is
	}
	// Guest content, for sizes still ambiguous.
	starts := make([]uint64, len(exts)) // first grain of each extent
	for k := 1; k < len(exts); k++ {
		starts[k] = starts[k-1] + exts[k-1].Sectors/flatGrainSize
	}
	var total uint64
	for _, e := range exts {
		total += e.Sectors
	}
	shifts := guestShifts(cands, taken, image, int64(total)*vmdk.SectorSize)
	for k, e := range exts {
		if parts[k] != nil {
			continue
		}
		if ks, is := left(e.Sectors); len(ks) == 1 && len(is) == 1 {
			assign(k, is[0], "its size (the only extent and the only file of it)")
			continue
		}
		for _, inst := range cands {
			if s, ok := shifts[inst]; ok && !taken[inst] && inst.Header.Capacity == e.Sectors && s == starts[k] {
				assign(k, inst, fmt.Sprintf("its guest structures, which put its grain 0 at the disk's grain %d", s))
				break
			}
		}
	}
	// Elimination.
	for k, e := range exts {
		if parts[k] == nil {
			if ks, is := left(e.Sectors); len(ks) == 1 && len(is) == 1 {
				assign(k, is[0], "elimination (the only extent of its size left, and the only file of it)")
			}
		}
	}
	for k, e := range exts {
		if parts[k] == nil {
			_, is := left(e.Sectors)
			for _, inst := range is {
				if !slices.Contains(unsure, inst) {
					unsure = append(unsure, inst)
				}
			}
		}
	}
	return parts, how, unsure
}

// guestShifts finds, for each candidate not yet assigned, the one shift
// (disk grain minus extent grain) its placed grains' self-locating guest
// structures agree on.
func guestShifts(cands []*Instance, taken map[*Instance]bool, image io.ReaderAt, diskBytes int64) map[*Instance]uint64 {
	loc := fsprobe.NewLocator(flatGrainSize*vmdk.SectorSize, diskBytes)
	buf := make([]byte, flatGrainSize*vmdk.SectorSize)
	// Claims are keyed by candidate index (high bits) and grain.
	const gbits = 40
	each := func(fn func(key int64, b []byte)) {
		for i, inst := range cands {
			for g, gr := range inst.grains.one {
				if gr.Status != Placed || gr.Source == nil || gr.Source.Compressed || g >= 1<<gbits {
					continue
				}
				clear(buf)
				if _, err := ReadSource(image, gr.Source, buf); err == nil {
					fn(int64(i)<<gbits|int64(g), buf)
				}
			}
		}
	}
	claims := locateGrains(loc, func(fn func([]byte, int64)) { each(func(_ int64, b []byte) { fn(b, -1) }) }, each)
	shift := map[*Instance]uint64{}
	bad := map[*Instance]bool{}
	for key, c := range claims {
		inst, g := cands[key>>gbits], uint64(key&(1<<gbits-1))
		if taken[inst] {
			continue
		}
		gs := loc.Candidates(c)
		if len(gs) != 1 || uint64(gs[0]) < g {
			continue
		}
		s := uint64(gs[0]) - g
		if prev, ok := shift[inst]; ok && prev != s {
			bad[inst] = true
		}
		shift[inst] = s
	}
	for inst := range bad {
		delete(shift, inst)
	}
	return shift
}

// composite makes the instance of a split disk from its assembled parts.
func composite(id int, d *vmdk.Descriptor, descOff int64, exts []vmdk.Extent, parts map[int]*Instance, how map[int]string) *Instance {
	var total uint64
	for _, e := range exts {
		total += e.Sectors
	}
	hdr := vmdk.SparseHeader{Version: 1, Flags: vmdk.FlagValidNewlines, Capacity: total, GrainSize: flatGrainSize, NumGTEsPerGT: vmdk.GTEsPerGT}
	inst := &Instance{ID: id, Variant: d.CreateType, HeaderOffset: -1, Header: &hdr, Descriptor: d, grains: newDecisions(),
		Tables: "each extent's own grain tables (see its part)"}
	inst.Notes = append(inst.Notes, fmt.Sprintf("split disk of %d extents named by the descriptor at image offset %d; %d of them found", len(exts), descOff, len(parts)))
	var start uint64
	for k, e := range exts {
		p := parts[k]
		if p == nil {
			inst.Notes = append(inst.Notes, fmt.Sprintf("extent %d %q: not found (its grains are missing)", k+1, e.FileName))
			inst.grains.setRange(start, start+(e.Sectors+flatGrainSize-1)/flatGrainSize, &Grain{Status: Missing, Reason: Reason{Code: ReasonSplitExtentMissing, Detail: e.FileName}})
		} else {
			p.partOf = id
			if inst.HeaderOffset < 0 {
				inst.HeaderOffset = p.HeaderOffset
			}
			inst.Notes = append(inst.Notes, fmt.Sprintf("extent %d %q is instance %d (header at image offset %d), known by %s", k+1, e.FileName, p.ID, p.HeaderOffset, how[k]))
			n := p.Header.Grains()
			walk(n, []*decisions{p.grains}, func(first, count uint64, per []*Grain) {
				gr := per[0]
				if gr == nil {
					return
				}
				if _, one := p.grains.one[first]; one && count == 1 {
					inst.grains.set(start+first, gr)
					return
				}
				inst.grains.setRange(start+first, start+first+count, gr)
			})
		}
		start += e.Sectors / flatGrainSize
	}
	return inst
}
