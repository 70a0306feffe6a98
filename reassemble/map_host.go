package reassemble

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"vmdkcarve/fsprobe"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// hostMaps asks the host-level probes where the files that start at a
// VMDK header lie, from the NTFS and ext4 structures the carve found;
// notes say what a probe's work limit left undone.
func hostMaps(image io.ReaderAt, hits []signatures.Hit, anchors []int64) (maps []fsprobe.FileMap, notes []string) {
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
	if len(ntfs) > 0 {
		maps = append(maps, fsprobe.NTFSMaps(ntfs, anchors)...)
	}
	if len(ext4) > 0 {
		m, n := fsprobe.Ext4MapsNoted(ext4, anchors)
		maps, notes = append(maps, m...), append(notes, n...)
		// Files whose inode is lost (a reformatted host): their surviving
		// extent-tree leaves, checked against the VMDK's own structures.
		maps = append(maps, fsprobe.Ext4LeafMaps(ext4, vmdkFacts(image, hits, anchors), maps)...)
	}
	return hostVolumesOnly(maps, hits), notes
}

// vmdkFacts collects what the carve found of the VMDK files' own
// structures: the headers at the anchors, stream footers, grain-table
// blocks and decoded grain markers.
func vmdkFacts(image io.ReaderAt, hits []signatures.Hit, anchors []int64) fsprobe.VMDKFacts {
	start := map[int64]bool{}
	for _, a := range anchors {
		start[a] = true
	}
	f := fsprobe.VMDKFacts{Image: image}
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
func flatMaps(image io.ReaderAt, hits []signatures.Hit, x *hitIndex) []fsprobe.FileMap {
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
	maps, _ := hostMaps(image, hits, anchors) // the header pass notes a capped probe
	for _, m := range maps {
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

// Host volumes and guest volumes. The probes know nothing of VMDKs: they
// solve a volume from any boot sector, superblock, $MFT record or inode
// they are given, and a guest volume stored verbatim in a sparse VMDK's
// grains is solved like the host's. Extrapolated past its own file, such a
// volume puts its files' first clusters on whatever lies beyond, and now
// and then that is a VMDK header (even its own file's): the header's file
// gets a "host" map of a guest's small file, and none of its grains. Three
// facts hold for every real host volume V and every file H in it:
//
//  1. V starts before H's first byte and ends after it: V < H < V + size.
//     Not even V = H: a volume's first cluster or block holds its own boot
//     sector or superblock, never a file's start.
//  2. The structures a map rests on (the boot sectors, superblock copies
//     and $MFT record copies its volume was solved from, and the file's own
//     MFT record or inode) are host metadata, which no VMDK's grains hold;
//     and a guest volume fits in its virtual disk.
//  3. The file is a VMDK file: a whole number of sectors, at least the
//     metadata its header counts (overHead × 512 bytes).
//
// So a map breaking 1 or 3 is dropped (with it, the other maps of an ext4
// volume solved from anchors alone, if fewer than two are left: each was
// one of the two facts that solved it), and so is a map every structure of
// which lies in the grain area of a sparse VMDK whose capacity its volume
// fits in: its volume is a guest. The grain area of an uncompressed sparse
// header at H is where its grains lie: where a host map of its file (from
// another volume) puts file offsets from overHead × 512 on; and, unless
// the map's own volume maps H's file, under the contiguous assumption from
// H itself (a host keeps no blocks for the zeros a sparse VMDK pads its
// metadata with, so the grains move up into what contiguity calls the
// metadata) to its largest grain, which the grain tables in its metadata
// name (else every grain stored), or to the next header. Stream grains are
// deflated: no guest structure is found verbatim in them.
//
// Decision: one structure outside every grain area keeps a map. A host
// volume keeps its boot sector or primary superblock before its files'
// headers, so a fragmented file whose contiguous range spans host
// metadata drops no map of a volume solved from them; a volume solved
// from anchors alone rests on its file's inode or record only, and is
// dropped if that lies in another file's contiguous range.

// grainArea is an image range holding a sparse VMDK's grains.
type grainArea struct {
	lo, hi   int64
	header   int64     // the VMDK header the range belongs to
	capacity int64     // bytes of the VMDK's virtual disk
	by       volumeKey // the volume whose map gave the range; zero for the contiguous range
}

// volumeKey names the volume a map came from.
type volumeKey struct {
	fs    string
	start int64
}

func volumeOf(m *fsprobe.FileMap) volumeKey { return volumeKey{m.FS, m.Volume} }

// hostVolumesOnly drops the maps that no host volume can have given (see
// above): those breaking rule 1 or 3; then those of guest volumes, judged
// first against the contiguous grain areas, then also against the grain
// areas the surviving maps give their files; then the rest of an anchor
// geometry left with fewer than two of its facts.
func hostVolumesOnly(maps []fsprobe.FileMap, hits []signatures.Hit) []fsprobe.FileMap {
	starts := make(map[int64]*vmdk.SparseHeader) // every valid header, by offset
	for i := range hits {
		if h := &hits[i]; h.Kind == signatures.KindSparseHeader && h.Verdict == signatures.Valid && h.Sparse != nil && trustworthy(h) {
			starts[h.Offset] = h.Sparse
		}
	}
	var held []fsprobe.FileMap
	for i := range maps {
		if m := &maps[i]; holdsItsFile(m) && isVMDKFile(m, starts[m.Extents[0].ImageOffset]) {
			held = append(held, *m)
		}
	}
	sparse := sparseHeaders(hits)
	contiguous := contiguousGrainAreas(sparse, hits)
	first := notInGrains(held, contiguous)
	kept := notInGrains(first, append(contiguous, mappedGrainAreas(first, sparse)...))
	return anchoredStillSolved(maps, kept)
}

// holdsItsFile is rule 1 for the file the map starts at.
func holdsItsFile(m *fsprobe.FileMap) bool {
	if len(m.Extents) == 0 {
		return false
	}
	h := m.Extents[0].ImageOffset
	return m.Volume < h && (m.VolumeSize <= 0 || h-m.Volume < m.VolumeSize)
}

// isVMDKFile is rule 3: a complete map's size is its file's, and a VMDK
// file is a whole number of sectors holding at least the metadata its
// header (h, if one is at the map's start) counts.
func isVMDKFile(m *fsprobe.FileMap, h *vmdk.SparseHeader) bool {
	if !m.Complete {
		return true
	}
	return m.Size%vmdk.SectorSize == 0 && (h == nil || m.Size >= int64(h.OverHead)*vmdk.SectorSize)
}

// anchoredStillSolved drops the remaining maps of an ext4 volume solved
// from anchors alone once fewer than two of the headers it put files on
// keep their map: each such map is one of the independent facts the
// geometry needed two of (fsprobe/ext4_host.go), and a dropped one was a
// coincidence. Only the probes' own inode maps (they name their inode in
// Structures) count.
func anchoredStillSolved(all, kept []fsprobe.FileMap) []fsprobe.FileMap {
	anchored := func(m *fsprobe.FileMap) bool { return m.FS == "ext4" && !m.OwnGeometry && len(m.Structures) > 0 }
	type count struct{ all, kept map[int64]bool }
	per := make(map[volumeKey]*count)
	for _, c := range []struct {
		maps []fsprobe.FileMap
		kept bool
	}{{all, false}, {kept, true}} {
		for i := range c.maps {
			m := &c.maps[i]
			if !anchored(m) || len(m.Extents) == 0 {
				continue
			}
			k := volumeOf(m)
			if per[k] == nil {
				per[k] = &count{map[int64]bool{}, map[int64]bool{}}
			}
			if c.kept {
				per[k].kept[m.Extents[0].ImageOffset] = true
			} else {
				per[k].all[m.Extents[0].ImageOffset] = true
			}
		}
	}
	var out []fsprobe.FileMap
	for i := range kept {
		m := &kept[i]
		if anchored(m) {
			if c := per[volumeOf(m)]; len(c.kept) < len(c.all) && len(c.kept) < 2 {
				continue
			}
		}
		out = append(out, *m)
	}
	return out
}

// notInGrains keeps the maps with a structure outside every grain area: a
// contiguous area is skipped for the maps of a volume that maps its file,
// a mapped one for the maps of the volume that mapped it.
func notInGrains(maps []fsprobe.FileMap, areas []grainArea) []fsprobe.FileMap {
	mapped := make(map[volumeKey]map[int64]bool) // the headers each volume maps
	for i := range maps {
		k := volumeOf(&maps[i])
		if mapped[k] == nil {
			mapped[k] = make(map[int64]bool)
		}
		mapped[k][maps[i].Extents[0].ImageOffset] = true
	}
	index := newAreaIndex(areas)
	var out []fsprobe.FileMap
	for i := range maps {
		m := &maps[i]
		self := volumeOf(m)
		counts := func(a *grainArea) bool {
			if m.VolumeSize > a.capacity {
				return false // bigger than the disk: not its guest
			}
			if a.by == (volumeKey{}) {
				return !mapped[self][a.header]
			}
			return a.by != self
		}
		outside := slices.ContainsFunc(m.Structures, func(s int64) bool { return !index.holds(s, counts) })
		if len(m.Structures) == 0 || outside {
			out = append(out, *m)
		}
	}
	return out
}

// areaIndex finds the grain areas holding an image offset: the areas by
// start, with the furthest end among each one and those before it, so
// that a search stops at the first area before which none reaches the
// offset.
type areaIndex struct {
	areas []grainArea
	reach []int64 // reach[i]: the largest hi of areas[:i+1]
}

func newAreaIndex(areas []grainArea) *areaIndex {
	x := &areaIndex{areas: slices.Clone(areas)}
	slices.SortFunc(x.areas, func(a, b grainArea) int { return cmp.Compare(a.lo, b.lo) })
	x.reach = make([]int64, len(x.areas))
	for i, a := range x.areas {
		x.reach[i] = a.hi
		if i > 0 {
			x.reach[i] = max(a.hi, x.reach[i-1])
		}
	}
	return x
}

// holds reports whether an area that counts holds image offset s.
func (x *areaIndex) holds(s int64, counts func(*grainArea) bool) bool {
	i, _ := slices.BinarySearchFunc(x.areas, s+1, func(a grainArea, t int64) int { return cmp.Compare(a.lo, t) })
	for i--; i >= 0 && x.reach[i] > s; i-- {
		if a := &x.areas[i]; s < a.hi && counts(a) {
			return true
		}
	}
	return false
}

// sparseHeaders returns the valid uncompressed sparse headers among hits,
// by image offset.
func sparseHeaders(hits []signatures.Hit) map[int64]*vmdk.SparseHeader {
	out := make(map[int64]*vmdk.SparseHeader)
	for i := range hits {
		h := &hits[i]
		if h.Kind == signatures.KindSparseHeader && h.Verdict == signatures.Valid && h.Sparse != nil &&
			trustworthy(h) && !h.Sparse.Compressed() {
			out[h.Offset] = h.Sparse
		}
	}
	return out
}

// maxStoredBytes is the most grain bytes a sparse file of header s can
// hold: every grain once.
func maxStoredBytes(s *vmdk.SparseHeader) int64 {
	return int64(min(s.Grains(), uint64(math.MaxInt64/2)/uint64(max(s.GrainBytes(), 1)))) * s.GrainBytes()
}

// contiguousGrainAreas gives each uncompressed sparse header its grain
// area under the contiguous assumption: from the header to its largest
// grain, which the grain-table blocks in its metadata name
// (every grain stored when none is found), cut at the next header.
func contiguousGrainAreas(sparse map[int64]*vmdk.SparseHeader, hits []signatures.Hit) []grainArea {
	var headers []int64 // every header, start or footer, of any kind: a file starts or ends there
	var tables []*signatures.Hit
	for i := range hits {
		h := &hits[i]
		switch {
		case h.Kind == signatures.KindSparseHeader && h.Verdict == signatures.Valid && h.Sparse != nil && h.Offset >= 0:
			headers = append(headers, h.Offset)
		case h.Kind == signatures.KindGT && h.Table != nil && h.Offset >= 0:
			tables = append(tables, h)
		}
	}
	slices.Sort(headers)
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].Offset < tables[j].Offset })
	var out []grainArea
	for _, at := range headers {
		s := sparse[at]
		if s == nil {
			continue
		}
		meta := int64(s.OverHead) * vmdk.SectorSize // Validate bounds overHead
		lo, hi := at, at+meta+maxStoredBytes(s)
		// The largest grain the file's own tables name, in its metadata.
		largest := int64(-1)
		for i := sort.Search(len(tables), func(i int) bool { return tables[i].Offset >= at }); i < len(tables) && tables[i].Offset < at+meta; i++ {
			largest = max(largest, int64(tables[i].Table.Last))
		}
		if largest >= 0 {
			hi = min(hi, at+largest*vmdk.SectorSize+s.GrainBytes())
		}
		if i := sort.Search(len(headers), func(i int) bool { return headers[i] > at }); i < len(headers) {
			hi = min(hi, headers[i])
		}
		if hi > lo {
			out = append(out, grainArea{lo: lo, hi: hi, header: at, capacity: int64(s.Capacity) * vmdk.SectorSize})
		}
	}
	return out
}

// mappedGrainAreas gives the grain areas the maps say: the image ranges
// of each uncompressed sparse file's bytes from overHead × 512 on.
func mappedGrainAreas(maps []fsprobe.FileMap, sparse map[int64]*vmdk.SparseHeader) []grainArea {
	var out []grainArea
	for i := range maps {
		m := &maps[i]
		if len(m.Extents) == 0 {
			continue
		}
		s := sparse[m.Extents[0].ImageOffset]
		if s == nil {
			continue
		}
		meta := int64(s.OverHead) * vmdk.SectorSize
		for _, e := range m.Extents {
			lo, hi := e.ImageOffset, e.ImageOffset+e.Length
			if e.FileOffset+e.Length <= meta {
				continue
			}
			if e.FileOffset < meta {
				lo += meta - e.FileOffset
			}
			out = append(out, grainArea{lo: lo, hi: hi, header: m.Extents[0].ImageOffset, capacity: int64(s.Capacity) * vmdk.SectorSize, by: volumeOf(m)})
		}
	}
	return out
}
