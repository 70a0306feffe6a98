package fsprobe

// Host file maps from surviving ext4 extent-tree leaves whose inode is
// lost.
//
// Reformatting an ext4 host (mkfs.ext4 with lazy_itable_init=0) writes a
// new superblock, new group descriptors and zeroed inode tables: the old
// files' inodes are gone. A file with more than 4 extents kept its extent
// tree outside the inode, in extent blocks among the data blocks, and
// those survive. A leaf (depth 0) lists (logical block, physical block,
// length) runs: enough to map its part of a file. What it lacks is its
// owner: no inode, so no file size, and its checksum tail is seeded by the
// old filesystem's UUID and the lost inode's number and generation, so it
// cannot be checked. The owner is found from the other side, the VMDK's
// own structures (VMDKFacts), under the rules below.
//
// Geometry. A physical block P is image offset F + P×B. B is fixed by the
// leaf's own eh_max. F comes, strongest first, from a superblock whose
// volume holds the leaf (a reformat keeps the start and, with the tools'
// defaults, the block size), from a geometry the inode resolver solved
// from anchors, or, only when no volume with a superblock owns the leaf's
// place, from the header itself: F = header − P0×B. That last one fits by
// construction, so it needs more confirmations (minFreeConfirmations). A
// superblock stored in a VMDK's grains (a guest's) does not count as
// owning the leaf's place once proven so, and is never a geometry then
// (ext4_leaves_guests.go).
//
// Starting a map. A leaf whose logical block 0 lands on a VMDK start
// header ("KDMV", an anchor no other host map explains) starts that file's
// map if nothing contradicts it and the VMDK's structures confirm it (see
// confirmations). Two different leaves that both start one anchor, or one
// leaf that starts two, are ambiguous: no map rather than a guess.
//
// Joining. Leaves of one file are consecutive in logical order. The next
// leaf is the one an index block (depth 1) names after the last joined
// leaf; without an index block, the leaf whose first logical block is
// exactly the last one's end (the logical range continues without gap or
// overlap), under the same geometry. It joins only if nothing contradicts
// it and at least one VMDK structure confirms it; two candidates that both
// could join are ambiguous and neither joins; the map then stops there,
// incomplete, and its evidence says why.
//
// Confirmations: structures found where the map puts them and where
// contiguity from the header would not (so they test the leaf, not the
// header): for a monolithicSparse file, grain-table-shaped blocks at the
// places the header's layout gives its grain tables, and the grain
// sectors those tables name lying in a mapped extent; for a stream, grain
// markers in the mapped extents. Contradictions: another VMDK's start
// header inside a mapped extent; a grain-table-shaped block in the
// metadata area where the layout has no table; a table at a table's place
// naming grains inside the metadata; stream markers whose LBAs do not
// increase in file order or exceed the capacity; a leaf lying inside the
// data it maps, or mapping image bytes the map already holds.
//
// Complete. The map is complete (its unmapped ranges are holes of a
// sparse host file) only if joining stopped because no leaf continues the
// file, and the VMDK's metadata ends inside the mapped range:
// monolithicSparse, every grain table is known (found, or lying in a hole)
// and the last grain the tables name starts before the map's end;
// stream, the footer lies in the map (the file ends with the footer and
// the EOS sector). Otherwise the map is incomplete: what it maps is
// placed, the rest is not read as zeros.

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/vmdk"
)

// Bounds on what the leaf solver considers. hits.jsonl is user-editable
// input: every count and length below is checked before it is used.
const (
	// maxLeafBlocks bounds the extent blocks considered (lowest image
	// offsets first): 2^16 leaves of up to 340 runs map far more files
	// than a host holds VMDKs, and bound the solver's memory.
	maxLeafBlocks = 1 << 16
	// maxPredictedGTs bounds the grain tables predicted from one header:
	// 2^17 tables of 512 grains of 64 KiB cover 4 PiB, above any VMDK.
	maxPredictedGTs = 1 << 17
	// maxLeafOverHead bounds a header's overHead (sectors) before it is
	// multiplied into bytes: 2^40 sectors is 512 TiB of metadata.
	maxLeafOverHead = 1 << 40
	// maxLeafCapacity bounds a header's capacity (sectors) before the
	// table count is derived from it: 2^44 sectors is 8 PiB.
	maxLeafCapacity = 1 << 44
	// minLeafConfirmations: every leaf, the first included, must have a
	// VMDK structure where it puts one; a leaf none confirms is not
	// trusted (block 0 on a header alone can be chance).
	minLeafConfirmations = 1
	// minFreeConfirmations: a start whose F was solved from the header
	// itself fits that header by construction; two confirmations through
	// its other extents make chance negligible (each is a structure found
	// at one exact image offset among millions).
	minFreeConfirmations = 2
)

// leafBlock is a validated extent-tree block.
type leafBlock struct {
	off     int64
	node    *ext4.Node
	B       int64
	first   uint32 // logical block of the first entry
	end     uint64 // logical block after the last entry (leaves)
	physEnd uint64 // largest Start+Len (leaves), Start+1 (index blocks)
}

// validExtentBlock checks a node read from hits (not necessarily from the
// parser) as the parser would: capacity, entry count, sorted and
// non-overlapping entries, lengths and block numbers in range.
func validExtentBlock(off int64, n *ext4.Node) (leafBlock, bool) {
	B := n.BlockSize()
	if B == 0 || len(n.Entries) == 0 || len(n.Entries) > int(n.Max) || n.Depth > ext4.MaxDepth {
		return leafBlock{}, false
	}
	l := leafBlock{off: off, node: n, B: B, first: n.Entries[0].Logical}
	var next uint64
	for _, e := range n.Entries {
		if uint64(e.Logical) < next || e.Start == 0 || e.Start >= 1<<48 {
			return leafBlock{}, false
		}
		if n.Depth > 0 {
			next = uint64(e.Logical) + 1
			l.physEnd = max(l.physEnd, e.Start+1)
			continue
		}
		if e.Len == 0 || e.Len > ext4.MaxExtentLen {
			return leafBlock{}, false
		}
		next = uint64(e.Logical) + uint64(e.Len)
		if next > 1<<32 {
			return leafBlock{}, false
		}
		l.physEnd = max(l.physEnd, e.Start+uint64(e.Len))
	}
	l.end = next
	return l, true
}

// leafGeom is a geometry a leaf is read under.
type leafGeom struct {
	F, B   int64
	blocks uint64    // volume blocks, 0 when unknown (anchor geometries)
	own    bool      // from a superblock (FileMap.OwnGeometry)
	vol    *ext4Geom // the superblock volume (own geometries)
	// aside are the superblock volumes set aside for a geometry not
	// their own: each must be proven a guest before a file it started
	// is kept (see geoms).
	aside []*ext4Geom
	need  int // confirmations a start under it needs
	why   string
}

// holds reports whether block l can belong to the volume g describes: same
// block size, on a block boundary after its start, inside the volume, and
// every block it names addressable (checked before multiplying).
func (g leafGeom) holds(l *leafBlock) bool {
	if l.B != g.B || l.off < g.F || (l.off-g.F)%g.B != 0 {
		return false
	}
	if g.blocks > 0 && (uint64((l.off-g.F)/g.B) >= g.blocks || l.physEnd > g.blocks) {
		return false
	}
	return l.physEnd <= uint64((1<<62-g.F)/g.B)
}

// image is the image offset of physical block p (holds checked the bound).
func (g leafGeom) image(p uint64) int64 { return g.F + int64(p)*g.B }

// extents maps a leaf's initialized runs under g, merging runs contiguous
// in both the file and the image. Unwritten runs read as zeros: holes.
func (g leafGeom) extents(l *leafBlock) []MappedExtent {
	var out []MappedExtent
	for _, e := range l.node.Entries {
		if e.Uninit {
			continue
		}
		fo, io, n := int64(e.Logical)*g.B, g.image(e.Start), int64(e.Len)*g.B
		if k := len(out) - 1; k >= 0 && out[k].FileOffset+out[k].Length == fo && out[k].ImageOffset+out[k].Length == io {
			out[k].Length += n
			continue
		}
		out = append(out, MappedExtent{FileOffset: fo, ImageOffset: io, Length: n})
	}
	return out
}

// indexNext is what an index block says follows a leaf.
type indexNext struct {
	parent  int64  // image offset of the index block
	logical uint32 // the next entry's logical block
	child   int64  // the next entry's child, as an image offset
}

// leafFile is one file's map under construction.
type leafFile struct {
	anchor int64
	h      *vmdk.SparseHeader
	g      leafGeom
	leaves []int // in solver.blocks, in logical order
	exts   []MappedExtent
	// byImage holds the extents sorted by image offset.
	byImage []MappedExtent
	end     uint64 // logical block after the last joined leaf
	gts     []predictedGT
	state   []gtState // by index in gts
	// samples are file offsets of grains the tables found name, sorted.
	samples []int64
	maxLast uint32 // largest grain sector the tables found name
	lastLBA int64  // stream: LBA of the last marker in file order; -1 none
	footer  int64  // stream: file offset of the footer; -1 none
	// Confirmations so far, by kind.
	nGT, nSample, nMarker, nIndex int
	nRead, nEmpty                 int // predicted tables read, of them empty (readTables)
	notes                         []string
	forced                        bool // joining stopped on an ambiguity, a contradiction or a lost leaf
}

// leafEval is what one candidate leaf would add to a file.
type leafEval struct {
	exts     []MappedExtent
	state    map[int]gtState
	samples  []int64
	maxLast  uint32
	lastLBA  int64
	footer   int64
	nGT      int
	nSample  int
	nMarker  int
	contra   string
	confirms int
}

type leafSolver struct {
	r       *ext4Resolver
	blocks  []leafBlock      // validated extent blocks, by image offset
	byOff   map[int64]int    // index in blocks
	byFirst map[uint32][]int // leaves by first logical block
	used    map[int]bool     // leaves a map holds
	next    map[string]map[int64]indexNext
	starts  map[int64]*vmdk.SparseHeader
	anchors []int64 // the keys of starts, sorted
	footers []VMDKHeaderAt
	tables  []GTAt
	markers []MarkerAt
	image   io.ReaderAt // nil: hits only
	// grains holds the image ranges of the grain data of the files
	// mapped so far (known maps and leaf maps kept), and guests the
	// superblock volumes every found copy of which lies in them, with why.
	grains grainSpans
	guests map[*ext4Geom]string
	// candidates caches mayBeGuest's answer for volumes not proven.
	candidates map[*ext4Geom]bool
	// tableReads caches readTable's answers: a round of starts maps a
	// waiting file again (Ext4LeafMaps).
	tableReads map[tableKey]tableRead
}

// Ext4LeafMaps builds maps, from surviving extent-tree leaves, of the VMDK
// files that start at facts.Starts and that no map in known explains
// (their inode is lost), under the rules in the file comment. records
// are the carve's ext4 structures, as for Ext4Maps.
func Ext4LeafMaps(records []LocatedExt4, facts VMDKFacts, known []FileMap) []FileMap {
	s := newLeafSolver(records, facts)
	if s == nil {
		return nil
	}
	mapped := map[int64]bool{}
	for _, m := range known {
		if len(m.Extents) > 0 && m.Extents[0].FileOffset == 0 {
			mapped[m.Extents[0].ImageOffset] = true
			s.grains.add(s.grainSpans(&m))
		}
	}
	s.proveGuests()
	type kept struct {
		vol *ext4Geom // the superblock volume it was started under, if any
		m   FileMap
	}
	var files []kept
	// Rounds: a file whose start waits for a volume to be proven a guest
	// is tried again once a file kept later proved one (see guestVolumes).
	for range maxLeafRounds {
		guests, waiting := len(s.guests), false
		for _, f := range s.startFiles(mapped) {
			s.grow(f)
			m := s.fileMap(f)
			notes, ok := s.guestVolumes(f, m)
			if !ok {
				waiting = true
				for _, i := range f.leaves {
					s.used[i] = false
				}
				continue
			}
			if len(notes) > 0 {
				m.Evidence += "; " + strings.Join(notes, "; ")
			}
			mapped[f.anchor] = true
			s.grains.add(s.grainSpans(&m))
			s.proveGuests()
			files = append(files, kept{f.g.vol, m})
		}
		if !waiting || len(s.guests) == guests {
			break
		}
	}
	// A file started under a superblock volume that a later file proved a
	// guest was read under a guest's geometry: no map rather than that.
	var out []FileMap
	for _, k := range files {
		if k.vol == nil || s.guests[k.vol] == "" {
			out = append(out, k.m)
		}
	}
	return out
}

func newLeafSolver(records []LocatedExt4, facts VMDKFacts) *leafSolver {
	var anchors []int64
	starts := map[int64]*vmdk.SparseHeader{}
	for _, h := range facts.Starts {
		if h.Header != nil {
			anchors = append(anchors, h.Offset)
			starts[h.Offset] = h.Header
		}
	}
	if len(starts) == 0 {
		return nil
	}
	slices.Sort(anchors)
	anchors = slices.Compact(anchors)
	r := newExt4Resolver(records, anchors)
	s := &leafSolver{r: r, byOff: map[int64]int{}, byFirst: map[uint32][]int{}, used: map[int]bool{},
		next: map[string]map[int64]indexNext{}, starts: starts, anchors: anchors, image: facts.Image, guests: map[*ext4Geom]string{}, candidates: map[*ext4Geom]bool{}, tableReads: map[tableKey]tableRead{}}
	offs := make([]int64, 0, len(r.blocks))
	for off := range r.blocks {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	for _, off := range offs {
		if len(s.blocks) == maxLeafBlocks {
			break
		}
		l, ok := validExtentBlock(off, r.blocks[off])
		if !ok {
			continue
		}
		s.byOff[off] = len(s.blocks)
		if l.node.Depth == 0 {
			s.byFirst[l.first] = append(s.byFirst[l.first], len(s.blocks))
		}
		s.blocks = append(s.blocks, l)
	}
	if len(s.byFirst) == 0 {
		return nil
	}
	byOffset := func(a, b int64) int { return cmp.Compare(a, b) }
	s.footers = slices.Clone(facts.Footers)
	slices.SortFunc(s.footers, func(a, b VMDKHeaderAt) int { return byOffset(a.Offset, b.Offset) })
	s.tables = slices.Clone(facts.Tables)
	slices.SortFunc(s.tables, func(a, b GTAt) int { return byOffset(a.Offset, b.Offset) })
	s.markers = slices.Clone(facts.Markers)
	slices.SortFunc(s.markers, func(a, b MarkerAt) int { return byOffset(a.Offset, b.Offset) })
	return s
}

// geoms returns the geometries a leaf may be read under, strongest first:
// the superblock volumes that hold it, then the geometries solved from
// anchors, then one solved from the anchor itself (block 0 on the
// header). A volume proven a guest (s.guests) is never one of them. The
// later ones are tried only when every superblock volume that holds or
// owns the leaf's place may be a guest's (mayBeGuest), and carry those
// volumes as aside: a file started under them is kept only once each is
// proven a guest volume (guestVolumes), the volume of a superblock stored
// in a VMDK's grains.
func (s *leafSolver) geoms(l *leafBlock, anchor int64) []leafGeom {
	var out []leafGeom
	var aside []*ext4Geom
	for _, g := range s.r.geoms {
		if g.sb == nil {
			continue
		}
		lg := leafGeom{F: g.F, B: g.B, blocks: g.sb.Blocks, own: true, vol: g, need: minLeafConfirmations, why: g.why}
		switch {
		case lg.holds(l):
			if s.guests[g] == "" {
				out = append(out, lg)
			}
			aside = append(aside, g)
		case (g.owns || s.guests[g] != "") && l.off >= g.F && l.off < g.end():
			aside = append(aside, g) // its region (r.inSuper)
		}
	}
	if !slices.ContainsFunc(aside, func(v *ext4Geom) bool { return !s.mayBeGuest(v) }) {
		out = append(out, s.notOwnGeoms(l, anchor, aside)...)
	}
	return out
}

// notOwnGeoms returns the geometries not a superblock volume's own that
// leaf l may be read under to start the file at anchor: those solved from
// anchors, then the one block 0 on the anchor itself gives.
func (s *leafSolver) notOwnGeoms(l *leafBlock, anchor int64, aside []*ext4Geom) []leafGeom {
	var out []leafGeom
	for _, g := range s.r.geoms {
		if g.sb == nil {
			lg := leafGeom{F: g.F, B: g.B, aside: aside, need: minLeafConfirmations, why: g.why}
			if lg.holds(l) {
				out = append(out, lg)
			}
		}
	}
	e := l.node.Entries[0]
	if e.Start <= uint64(anchor/l.B) {
		F := anchor - int64(e.Start)*l.B
		held := "no superblock holds the leaf"
		if len(aside) > 0 {
			held = "only guest superblock volumes hold the leaf's place"
		}
		lg := leafGeom{F: F, B: l.B, aside: aside, need: minFreeConfirmations,
			why: fmt.Sprintf("%s: fs start %d, %d-byte blocks solved from the leaf's block 0 on the VMDK header at %d (its eh_max gives the block size)", held, F, l.B, anchor)}
		if F%vmdk.SectorSize == 0 && lg.holds(l) {
			out = append(out, lg)
		}
	}
	return out
}

// startFiles finds, for every anchor no known map explains, the leaf that
// starts its map (see the file comment), and returns the files started,
// by anchor. An anchor two different leaves start, or whose leaf starts
// another anchor too, gets none.
func (s *leafSolver) startFiles(mapped map[int64]bool) []*leafFile {
	byAnchor := map[int64][]*leafFile{}
	claims := map[int]int{} // leaf → anchors it starts
	for _, i := range s.byFirst[0] {
		l := &s.blocks[i]
		e := l.node.Entries[0]
		if e.Uninit || s.used[i] {
			continue // a leaf a kept map holds explains its own file
		}
		for _, a := range s.anchors {
			if mapped[a] || (a-l.off)%l.B != 0 {
				continue
			}
			for _, g := range s.geoms(l, a) {
				if g.image(e.Start) != a {
					continue
				}
				f := newLeafFile(a, s.starts[a], g)
				ev := s.eval(f, i)
				if ev.contra != "" || ev.confirms < g.need {
					continue
				}
				s.apply(f, i, ev)
				byAnchor[a] = append(byAnchor[a], f)
				claims[i]++
				break // the strongest geometry that starts it
			}
		}
	}
	var out []*leafFile
	for _, a := range s.anchors {
		fs := byAnchor[a]
		if len(fs) == 0 {
			continue
		}
		ok := true
		for _, f := range fs {
			// Copies of one leaf (a journal copy) map the same runs: one start.
			ok = ok && claims[f.leaves[0]] == 1 && slices.Equal(f.exts, fs[0].exts)
		}
		if ok {
			out = append(out, fs[0])
		}
	}
	for _, f := range out {
		s.used[f.leaves[0]] = true
	}
	return out
}

func newLeafFile(anchor int64, h *vmdk.SparseHeader, g leafGeom) *leafFile {
	f := &leafFile{anchor: anchor, h: h, g: g, lastLBA: -1, footer: -1, gts: predictGTs(h)}
	f.state = make([]gtState, len(f.gts))
	return f
}

// grow joins leaves to a started file until none continues it (see the
// file comment).
func (s *leafSolver) grow(f *leafFile) {
	for len(f.leaves) < maxLeafBlocks {
		i, why, ok := s.nextLeaf(f)
		if why != "" {
			f.notes = append(f.notes, why)
		}
		if !ok {
			return
		}
		s.used[i] = true
	}
}

// nextLeaf finds, evaluates and joins the leaf after the file's last one.
// It returns the leaf joined, a note, and whether one was joined; forced
// stops set f.forced.
func (s *leafSolver) nextLeaf(f *leafFile) (int, string, bool) {
	last := &s.blocks[f.leaves[len(f.leaves)-1]]
	if nx, ok := s.indexAfter(f.g, last.off); ok {
		i, found := s.byOff[nx.child]
		if !found || s.blocks[i].node.Depth != 0 || s.used[i] || s.blocks[i].first != nx.logical || uint64(nx.logical) < f.end || !f.g.holds(&s.blocks[i]) {
			f.forced = true
			return 0, fmt.Sprintf("the index block at image offset %d names the extent block at %d next (logical block %d): not found as a leaf that fits", nx.parent, nx.child, nx.logical), false
		}
		ev := s.eval(f, i)
		if ev.contra != "" {
			f.forced = true
			return 0, fmt.Sprintf("the leaf at image offset %d, named next by the index block at %d, is not joined: %s", s.blocks[i].off, nx.parent, ev.contra), false
		}
		s.apply(f, i, ev)
		f.nIndex++
		return i, fmt.Sprintf("leaf at image offset %d joined: named next by the index block at %d", s.blocks[i].off, nx.parent), true
	}
	if f.end >= 1<<32 {
		return 0, "", false
	}
	type cand struct {
		i  int
		ev leafEval
	}
	var ok []cand
	var refused []string
	for _, i := range s.byFirst[uint32(f.end)] {
		l := &s.blocks[i]
		if s.used[i] || !f.g.holds(l) {
			continue
		}
		ev := s.eval(f, i)
		if ev.contra != "" {
			refused = append(refused, fmt.Sprintf("the leaf at image offset %d continues logical block %d but %s", l.off, f.end, ev.contra))
			continue
		}
		if len(ok) > 0 && slices.Equal(ok[0].ev.exts, ev.exts) {
			continue // a copy of the same leaf
		}
		ok = append(ok, cand{i, ev})
	}
	switch {
	case len(ok) > 1:
		f.forced = true
		return 0, fmt.Sprintf("leaves at image offsets %d and %d both continue logical block %d with different runs: ambiguous, neither joined", s.blocks[ok[0].i].off, s.blocks[ok[1].i].off, f.end), false
	case len(ok) == 0 && len(refused) > 0:
		f.forced = true
		return 0, strings.Join(refused, "; "), false
	case len(ok) == 0:
		return 0, "", false // no leaf continues the file
	case ok[0].ev.confirms < minLeafConfirmations:
		f.forced = true
		return 0, fmt.Sprintf("the leaf at image offset %d continues logical block %d but no VMDK structure confirms it: not joined", s.blocks[ok[0].i].off, f.end), false
	}
	why := fmt.Sprintf("leaf at image offset %d joined: continues logical block %d; VMDK structures where it puts them: %d", s.blocks[ok[0].i].off, f.end, ok[0].ev.confirms)
	s.apply(f, ok[0].i, ok[0].ev)
	return ok[0].i, why, true
}

// indexAfter returns what an index block under g says follows the leaf at
// image offset off, when one names it and has a next entry.
func (s *leafSolver) indexAfter(g leafGeom, off int64) (indexNext, bool) {
	key := fmt.Sprint(g.F, g.B)
	m, ok := s.next[key]
	if !ok {
		m = map[int64]indexNext{}
		for i := range s.blocks {
			b := &s.blocks[i]
			if b.node.Depth != 1 || !g.holds(b) {
				continue
			}
			es := b.node.Entries
			for k := 0; k+1 < len(es); k++ {
				m[g.image(es[k].Start)] = indexNext{parent: b.off, logical: es[k+1].Logical, child: g.image(es[k+1].Start)}
			}
		}
		s.next[key] = m
	}
	nx, ok := m[off]
	return nx, ok
}

// eval checks what leaf i would add to file f, without changing f.
func (s *leafSolver) eval(f *leafFile, i int) leafEval {
	l := &s.blocks[i]
	ev := leafEval{exts: f.g.extents(l), state: map[int]gtState{}, maxLast: f.maxLast, lastLBA: f.lastLBA, footer: f.footer}
	if len(f.exts)+len(ev.exts) > maxExt4FileExtents {
		ev.contra = fmt.Sprintf("the file would have more than %d extents", maxExt4FileExtents)
		return ev
	}
	if ev.contra = s.overlaps(f, l, ev.exts); ev.contra != "" {
		return ev
	}
	if f.h.Compressed() {
		s.evalStream(f, &ev)
	} else {
		s.evalSparse(f, l, &ev)
	}
	ev.confirms = ev.nGT + ev.nSample + ev.nMarker
	return ev
}

// overlaps finds the structural contradictions any file has: another
// VMDK's start header in a mapped extent, the leaf inside the data it
// maps, image bytes mapped twice.
func (s *leafSolver) overlaps(f *leafFile, l *leafBlock, exts []MappedExtent) string {
	for _, e := range exts {
		end := e.ImageOffset + e.Length
		if l.off >= e.ImageOffset && l.off < end {
			return fmt.Sprintf("the leaf itself lies inside the data it maps (image offset %d)", l.off)
		}
		for _, a := range inRange(s.anchors, func(a int64) int64 { return a }, e.ImageOffset, end) {
			if a != f.anchor {
				return fmt.Sprintf("it maps file offset %d onto the VMDK header at image offset %d", e.FileOffset+a-e.ImageOffset, a)
			}
		}
		// f.byImage is sorted by image offset and does not overlap itself.
		i := sort.Search(len(f.byImage), func(i int) bool { return f.byImage[i].ImageOffset+f.byImage[i].Length > e.ImageOffset })
		if i < len(f.byImage) && f.byImage[i].ImageOffset < end {
			return fmt.Sprintf("it maps image offset %d, which the file already holds", max(e.ImageOffset, f.byImage[i].ImageOffset))
		}
	}
	return ""
}

// apply joins leaf i to file f with what eval found.
func (s *leafSolver) apply(f *leafFile, i int, ev leafEval) {
	f.leaves = append(f.leaves, i)
	for _, e := range ev.exts {
		if k := len(f.exts) - 1; k >= 0 && f.exts[k].FileOffset+f.exts[k].Length == e.FileOffset && f.exts[k].ImageOffset+f.exts[k].Length == e.ImageOffset {
			f.exts[k].Length += e.Length
			continue
		}
		f.exts = append(f.exts, e)
	}
	for _, e := range ev.exts {
		k := sort.Search(len(f.byImage), func(k int) bool { return f.byImage[k].ImageOffset > e.ImageOffset })
		f.byImage = slices.Insert(f.byImage, k, e)
	}
	f.end = s.blocks[i].end
	for k, st := range ev.state {
		f.state[k] = st
	}
	for _, p := range ev.samples {
		if k, found := slices.BinarySearch(f.samples, p); !found {
			f.samples = slices.Insert(f.samples, k, p)
		}
	}
	f.maxLast, f.lastLBA, f.footer = ev.maxLast, ev.lastLBA, ev.footer
	f.nGT += ev.nGT
	f.nSample += ev.nSample
	f.nMarker += ev.nMarker
}

// fileMap turns a file into its FileMap.
func (s *leafSolver) fileMap(f *leafFile) FileMap {
	var offs []string
	for _, i := range f.leaves {
		offs = append(offs, fmt.Sprint(s.blocks[i].off))
	}
	s.readTables(f)
	complete, size, why := f.complete()
	exts := f.exts
	if complete {
		exts = nil
		for _, e := range f.exts {
			if e.FileOffset >= size {
				break // blocks past the file's end
			}
			e.Length = min(e.Length, size-e.FileOffset)
			exts = append(exts, e)
		}
	}
	what := "leaf at image offset"
	if len(offs) > 1 {
		what = "leaves at image offsets"
	}
	ev := []string{
		f.g.why,
		fmt.Sprintf("the extent-tree %s %s: logical block 0 lands on the VMDK header at image offset %d", what, strings.Join(offs, ", "), f.anchor),
		fmt.Sprintf("found where the map (not contiguity from the header) puts them: %d grain tables, %d grains the tables name, %d grain markers; %d leaves named by an index block", f.nGT, f.nSample, f.nMarker, f.nIndex),
		fmt.Sprintf("%d predicted grain tables no hit found read where confirmed extents put them (%d of them empty)", f.nRead, f.nEmpty),
		"leaf checksums not checked: their seed (the lost inode's number and generation, the old filesystem's UUID) is gone",
	}
	ev = append(ev, f.notes...)
	ev = append(ev, why)
	return FileMap{FS: "ext4", Record: fmt.Sprintf("extent-tree %s %s (inode lost)", what, strings.Join(offs, ", ")),
		Size: size, Extents: exts, Complete: complete, Evidence: strings.Join(ev, "; "), OwnGeometry: f.g.own}
}

// inRange returns the elements of s (sorted by off) with lo <= off < hi.
func inRange[T any](s []T, off func(T) int64, lo, hi int64) []T {
	i := sort.Search(len(s), func(i int) bool { return off(s[i]) >= lo })
	j := sort.Search(len(s), func(i int) bool { return off(s[i]) >= hi })
	if j < i {
		return nil
	}
	return s[i:j]
}
