package reassemble

import (
	"fmt"
	"sort"

	"vmdkcarve/fsprobe"
	"vmdkcarve/signatures"
)

// hostMaps asks the host-level probes where the files that start at a
// VMDK header lie, from the NTFS and ext4 structures the carve found.
func hostMaps(hits []signatures.Hit, anchors []int64) []fsprobe.FileMap {
	var ntfs []fsprobe.LocatedNTFS
	var ext4 []fsprobe.LocatedExt4
	for i := range hits {
		h := &hits[i]
		switch {
		case h.NTFS != nil:
			ntfs = append(ntfs, fsprobe.LocatedNTFS{Offset: h.Offset, Record: h.NTFS})
		case h.Ext4 != nil:
			ext4 = append(ext4, fsprobe.LocatedExt4{Offset: h.Offset, Record: h.Ext4})
		}
	}
	var maps []fsprobe.FileMap
	if len(ntfs) > 0 {
		maps = append(maps, fsprobe.NTFSMaps(ntfs, anchors)...)
	}
	if len(ext4) > 0 {
		maps = append(maps, fsprobe.Ext4Maps(ext4, anchors)...)
		// Files whose inode is lost (a reformatted host): their surviving
		// extent-tree leaves, checked against the VMDK's own structures.
		maps = append(maps, fsprobe.Ext4LeafMaps(ext4, vmdkFacts(hits, anchors), maps)...)
	}
	return maps
}

// vmdkFacts collects what the carve found of the VMDK files' own
// structures: the headers at the anchors, stream footers, grain-table
// blocks and decoded grain markers.
func vmdkFacts(hits []signatures.Hit, anchors []int64) fsprobe.VMDKFacts {
	start := map[int64]bool{}
	for _, a := range anchors {
		start[a] = true
	}
	var f fsprobe.VMDKFacts
	for i := range hits {
		h := &hits[i]
		if h.Verdict != signatures.Valid {
			continue
		}
		switch {
		case h.Kind == signatures.KindSparseHeader && h.Sparse != nil && start[h.Offset]:
			f.Starts = append(f.Starts, fsprobe.VMDKHeaderAt{Offset: h.Offset, Header: h.Sparse})
		case h.Kind == signatures.KindSparseHeader && h.Sparse != nil && h.Sparse.IsStreamFooterCandidate():
			f.Footers = append(f.Footers, fsprobe.VMDKHeaderAt{Offset: h.Offset, Header: h.Sparse})
		case h.Kind == signatures.KindGT && h.Table != nil:
			f.Tables = append(f.Tables, fsprobe.GTAt{Offset: h.Offset, First: h.Table.First, Last: h.Table.Last})
		case h.Kind == signatures.KindGrainMarker && h.Grain != nil:
			f.Markers = append(f.Markers, fsprobe.MarkerAt{Offset: h.Offset, LBA: h.Grain.LBA})
		}
	}
	return f
}

// flatMaps asks the host probes where the files starting at a partition
// table lie (a flat extent's file starts with its guest's sector 0). Only
// maps from volumes whose geometry is their own (superblock, boot sector)
// are kept: a guest's sector 0 stored inside a sparse grain would
// otherwise let the probes solve a host geometry from the guest's own
// inodes.
func flatMaps(hits []signatures.Hit, x *hitIndex) []fsprobe.FileMap {
	var anchors []int64
	for _, h := range x.mbrs {
		if h.Offset > 0 {
			anchors = append(anchors, h.Offset)
		}
	}
	if len(anchors) == 0 {
		return nil
	}
	var out []fsprobe.FileMap
	for _, m := range hostMaps(hits, anchors) {
		if m.OwnGeometry {
			out = append(out, m)
		}
	}
	return out
}

// mapFor returns the best host map of the file whose first byte is at the
// image offset of a header: complete maps first.
func mapFor(maps []fsprobe.FileMap, header int64) *fsprobe.FileMap {
	var best *fsprobe.FileMap
	for i := range maps {
		m := &maps[i]
		if len(m.Extents) == 0 || m.Extents[0].FileOffset != 0 || m.Extents[0].ImageOffset != header {
			continue
		}
		if best == nil || (m.Complete && !best.Complete) {
			best = m
		}
	}
	return best
}

// fragmentsFromMap turns a host map into the instance's fragment list. In
// a complete map, the ranges of the file no extent covers are holes of a
// sparse host file: they read as zeros.
func fragmentsFromMap(m *fsprobe.FileMap) ([]Fragment, int64) {
	ev := fmt.Sprintf("%s %s: %s", m.FS, m.Record, m.Evidence)
	exts := append([]fsprobe.MappedExtent(nil), m.Extents...)
	sort.Slice(exts, func(i, j int) bool { return exts[i].FileOffset < exts[j].FileOffset })
	var out []Fragment
	next := int64(0)
	for _, e := range exts {
		if e.Length <= 0 || e.FileOffset < next {
			continue // overlapping or empty extents are not trusted
		}
		if e.FileOffset > next && m.Complete {
			out = append(out, Fragment{FileOffset: next, ImageOffset: -1, Length: e.FileOffset - next, Evidence: "hole in the host file (" + ev + ")", Link: LinkHole})
		}
		out = append(out, Fragment{FileOffset: e.FileOffset, ImageOffset: e.ImageOffset, Length: e.Length, Evidence: ev, Link: LinkHost})
		next = e.FileOffset + e.Length
	}
	size := next
	if m.Complete && m.Size > next {
		out = append(out, Fragment{FileOffset: next, ImageOffset: -1, Length: m.Size - next, Evidence: "hole at the end of the host file (" + ev + ")", Link: LinkHole})
		size = m.Size
	}
	return out, size
}
