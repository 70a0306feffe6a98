package fsprobe

// Guest volumes and the leaf solver (ext4_leaves.go). A VMDK's grains hold
// its guest's disk verbatim, and with it the guest's ext4 superblocks: the
// carve finds them like the host's. The volume such a superblock describes
// starts inside the VMDK's first grains and, read as if the file were
// contiguous there, spans the host blocks that follow, the host's leaves
// among them. It must never act as the host's (PLACEMENT.md): under it
// the host's leaves put nothing on the headers, and its region would keep
// away the geometry solved from the header itself.
//
// So a leaf whose place superblock volumes hold or own may be read under
// a geometry not theirs only if each of them may be a guest's: its
// geometry puts no file's block 0 on a VMDK header, neither an inode in
// its region nor a leaf it holds (mayBeGuest). A host volume's geometry
// does, for the files it holds; a guest's, extrapolated over the host's
// blocks, lands them anywhere. Without that condition a host full of
// VMDKs (a reformatted one, its new superblock holding the old leaves)
// offers every leaf a geometry per header, and by chance some find a few
// grain tables where they put them. The start then sets those volumes
// aside (leafGeom.aside), and the file it starts is kept only once each
// of them is proven a guest: every copy of its superblock found lies in
// grain data (file offsets from overHead × 512 on) of this file's map or
// of a map kept before it. A host's superblocks are its own metadata, never in a
// file's data; a volume with one copy outside every grain area may be the
// host's, and the file waits for a later proof or stays unmapped (missing
// rather than wrong). A volume proven a guest is no geometry for any later
// start. The reverse is refused too: a map under a superblock volume's own
// geometry that puts a copy of that superblock in the file's bytes.
//
// The set-aside start needs what any start not under a superblock needs
// (minFreeConfirmations VMDK structures where the map, and not contiguity
// from the header, puts them, for a geometry solved from the header). The proof adds a condition; it never
// replaces one.

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/vmdk"
)

// maxLeafRounds bounds the rounds of starts (Ext4LeafMaps): a file waits
// a round only for a volume that a file kept later in the round proves a
// guest; chains of such proofs longer than this are not expected of any
// real host and end in files left unmapped.
const maxLeafRounds = 8

// grainSpans are image ranges, sorted by start and merged.
type grainSpans []ext4Span

// add merges spans in.
func (g *grainSpans) add(spans []ext4Span) {
	if len(spans) == 0 {
		return
	}
	all := append(*g, spans...)
	slices.SortFunc(all, func(a, b ext4Span) int { return cmp.Compare(a.start, b.start) })
	merged := all[:0]
	for _, s := range all {
		if k := len(merged) - 1; k >= 0 && s.start <= merged[k].end {
			merged[k].end = max(merged[k].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	*g = merged
}

// holds reports whether [off, off+n) lies inside one span.
func (g grainSpans) holds(off, n int64) bool {
	i := sort.Search(len(g), func(i int) bool { return g[i].end > off })
	return i < len(g) && g[i].start <= off && off+n <= g[i].end
}

// spansFrom returns the image ranges of a map's bytes from file offset
// from on.
func spansFrom(m *FileMap, from int64) grainSpans {
	var out []ext4Span
	for _, e := range m.Extents {
		if e.Length <= 0 || e.FileOffset+e.Length <= from {
			continue
		}
		out = append(out, ext4Span{e.ImageOffset + max(0, from-e.FileOffset), e.ImageOffset + e.Length})
	}
	var g grainSpans
	g.add(out)
	return g
}

// grainSpans returns the image ranges of a map's grain data: its file's
// bytes from its header's overHead × 512 on. None when no header is known
// at the map's start.
func (s *leafSolver) grainSpans(m *FileMap) grainSpans {
	if len(m.Extents) == 0 {
		return nil
	}
	h := s.starts[m.Extents[0].ImageOffset]
	if h == nil || h.OverHead > maxLeafOverHead {
		return nil
	}
	return spansFrom(m, int64(h.OverHead)*vmdk.SectorSize)
}

// inGrains reports whether every copy of volume v's superblock lies in one
// of the span sets.
func inGrains(v *ext4Geom, sets ...grainSpans) bool {
	for _, c := range v.copies {
		if !slices.ContainsFunc(sets, func(g grainSpans) bool { return g.holds(c, ext4.SuperblockSize) }) {
			return false
		}
	}
	return len(v.copies) > 0
}

// guestWhy says why volume v is a guest.
func guestWhy(v *ext4Geom, where string) string {
	offs := make([]string, len(v.copies))
	for i, c := range v.copies {
		offs[i] = fmt.Sprint(c)
	}
	return fmt.Sprintf("the ext4 volume at fs start %d (%d-byte blocks) is a guest's, not the host's: every copy of its superblock (image offsets %s) lies in %s", v.F, v.B, strings.Join(offs, ", "), where)
}

// proveGuests marks the superblock volumes that lie in the grains of the
// files kept so far.
func (s *leafSolver) proveGuests() {
	if len(s.grains) == 0 {
		return
	}
	for _, v := range s.r.geoms {
		if v.sb != nil && s.guests[v] == "" && inGrains(v, s.grains) {
			s.guests[v] = guestWhy(v, "the grain data of the VMDK files mapped")
		}
	}
}

// guestVolumes checks a grown file against the rules in the file comment:
// ok when it may be kept, with notes for its evidence.
func (s *leafSolver) guestVolumes(f *leafFile, m FileMap) (notes []string, ok bool) {
	if v := f.g.vol; v != nil {
		if s.guests[v] != "" {
			return nil, false // proven a guest since the start: wait for a start without it
		}
		bytes := spansFrom(&m, 0)
		return nil, !slices.ContainsFunc(v.copies, func(c int64) bool { return bytes.holds(c, 1) })
	}
	own := s.grainSpans(&m)
	for _, v := range f.g.aside {
		switch {
		case s.guests[v] != "":
			notes = append(notes, s.guests[v])
		case inGrains(v, own, s.grains):
			notes = append(notes, guestWhy(v, "the grain data of this map or of the VMDK files mapped before it"))
		default:
			return nil, false
		}
	}
	return notes, true
}

// mayBeGuest reports whether volume v may be a guest's (see the file
// comment): proven one, or a volume whose geometry puts no file's block 0
// on a VMDK header.
func (s *leafSolver) mayBeGuest(v *ext4Geom) bool {
	if s.guests[v] != "" {
		return true
	}
	ok, done := s.candidates[v]
	if !done {
		explained, _ := s.r.explains(v)
		ok = len(explained) == 0 && !s.startsOnHeader(v)
		s.candidates[v] = ok
	}
	return ok
}

// startsOnHeader reports whether volume v's geometry puts the block 0 of
// a leaf it holds on a VMDK header.
func (s *leafSolver) startsOnHeader(v *ext4Geom) bool {
	g := leafGeom{F: v.F, B: v.B, blocks: v.sb.Blocks}
	return slices.ContainsFunc(s.byFirst[0], func(i int) bool {
		l := &s.blocks[i]
		e := l.node.Entries[0]
		return !e.Uninit && g.holds(l) && s.starts[g.image(e.Start)] != nil
	})
}
