package fsprobe

// The ext4 host resolver: from superblocks, inodes and extent blocks found
// at image offsets to file maps of the files that look like VMDK extents.
//
// A physical block number P means image offset F + P×B, with F the
// filesystem's start in the image and B its block size. Evidence for (F, B),
// strongest first:
//
//  1. a superblock: primary at F+1024, backup of group g at
//     F + (first_data_block + g×blocks_per_group)×B; enough alone;
//  2. otherwise two independent facts agreeing on one (F, B), each a
//     relation between two things found in the image: a file's logical
//     block 0 lands on a VMDK header ("KDMV" anchor), directly from the
//     inode or through the depth-1 leaf its index entry points at. One fact
//     alone never makes a geometry: any inode's first block can be made to
//     land on any anchor by choosing F.
//
// Independence. A fact is counted once per anchor: two facts from the same
// inode, an inode and its own leaf, or several inodes all landing on the
// same anchor (journal copies of one inode) are one fact. A geometry needs
// facts on two distinct anchors. Even so, two-fact coincidences are common
// in a real inode table (hundreds of small files, each block 0 a free
// choice of F against every anchor), so the anchor solver also obeys:
//
//   - a volume with a valid superblock owns its region [F, F+blocks×B): an
//     inode or extent block lying inside it is explained by a superblock
//     geometry covering it or by nothing, and gives no anchor fact; an
//     anchor geometry whose start lies inside such a region overlaps that
//     volume and is refused. Exception, nesting: a guest filesystem inside
//     a VMDK file of the host (the normal case: a flat or uncompressed
//     sparse VMDK holds the guest's superblock verbatim) names a region
//     that holds the host's own headers and extent blocks, and must not
//     block the host. So a volume whose geometry explains no anchor owns
//     its region only if it is not nested: no geometry solved from the
//     anchors without it, starting before it, maps completely a file
//     whose data holds every copy of its superblock (see ownership);
//   - a VMDK header is the start of one file: an anchor that a superblock
//     geometry already explains is not available to anchor geometries, and
//     each anchor goes to at most one anchor geometry, the one with the
//     most independent facts; an anchor two equally strong geometries
//     claim is ambiguous and goes to neither (no map rather than a guess);
//   - under an anchor geometry an inode is mapped only onto an anchor that
//     geometry was solved from.
//
// Several filesystems may coexist (partitions, a guest filesystem inside a
// file of the host, an old filesystem under a quick-formatted new one):
// each inode is tried under every superblock geometry whose region holds
// it, strongest first, and kept under the first that puts its block 0 on an
// anchor; only inodes outside every superblock region are tried under
// anchor geometries. (Decision: an old filesystem quick-formatted over by a
// new one is therefore only mapped where its inodes lie outside the new
// volume or through its own surviving superblocks: inside the new volume,
// nothing tells a stale inode's geometry from a coincidence. A file whose
// inode is gone altogether, as after a reformat that zeroes the inode
// tables, may still be mapped from its surviving extent-tree leaves,
// checked against the VMDK's own structures: ext4_leaves.go.)

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"vmdkcarve/fs/ext4"
)

// LocatedExt4 is an ext4 record and the image offset of its hit.
type LocatedExt4 struct {
	Offset int64
	Record *ext4.Record
}

// maxExt4FileExtents bounds the extents kept for one file: 2^20 extents of
// at least one block is far more than any real VMDK file has, and bounds
// the memory one crafted tree can claim.
const maxExt4FileExtents = 1 << 20

// ext4Geom is an accepted (F, B) and why.
type ext4Geom struct {
	F, B    int64
	sb      *ext4.Superblock // nil when solved from anchors
	why     string
	facts   int
	anchors map[int64]bool // anchor geometries: the anchors they were solved from and own
	copies  []int64        // superblock geometries: image offsets of the agreeing superblock copies
	owns    bool           // superblock geometries: the volume owns its region (see ownership)
	partial bool           // superblock geometries: trials ran out before explains weighed every inode in the region
}

// end is the end of the volume's region in the image (superblock
// geometries only).
func (g *ext4Geom) end() int64 {
	if g.sb == nil || g.B <= 0 || g.sb.Blocks > uint64(1<<62)/uint64(g.B) {
		return 1 << 62
	}
	return g.F + int64(g.sb.Blocks)*g.B
}

type ext4Inode struct {
	off int64 // image offset of the inode
	in  *ext4.Inode
	hit *ext4.Record
}

type ext4Ptr struct {
	depth   uint16 // depth of the node holding the entry
	logical uint32
	off     int64 // image offset of the inode or index block holding it
	from    string
}

type ext4Resolver struct {
	anchors map[int64]bool
	blocks  map[int64]*ext4.Node // extent blocks by image offset
	ptrs    map[uint64][]ext4Ptr
	inodes  []ext4Inode
	geoms   []*ext4Geom

	// owned is what inSuper searches: the regions of the superblock
	// volumes that own theirs, merged and sorted; rebuilt when an owns
	// changes (dirty).
	owned []ext4Span
	dirty bool
	// supers is how many of geoms, the first, are superblock geometries.
	supers int
	// explained holds explains' answer per superblock geometry, and
	// bySuper, per inode (index in inodes), the strongest superblock
	// geometry that puts its block 0 on an anchor: computed once, in
	// the order of geoms, not once per question.
	explained map[*ext4Geom]map[int64]bool
	bySuper   []*ext4Geom
	// budget is the trials left (see ext4TrialsPerRecord); capped is set
	// once it ran out.
	budget int
	capped bool
}

// ext4Span is a region [start, end) of the image.
type ext4Span struct{ start, end int64 }

// The resolver's work is bounded (issue 13): a trial is one (volume,
// inode) pair weighed, one vote of an inode or leaf for a geometry
// solved from an anchor, or one volume's region indexed. Real evidence
// weighs each inode under a few volumes and each against the anchors of
// one host; crafted hits (10^4 overlapping superblock volumes, each
// holding every inode) would weigh volumes × inodes. A call gets
// ext4TrialsPerRecord trials per record and anchor found, at least
// ext4MinTrials. Decision, when they run out: no geometry is solved from
// anchors (a solve from part of the votes could accept what the rest
// contest), a volume not fully weighed owns its region (it stands in the
// way of other geometries rather than let them through), inodes not yet
// mapped stay unmapped, and every map made says so in its evidence:
// missing rather than wrong.
const (
	ext4TrialsPerRecord = 64
	ext4MinTrials       = 1 << 25
)

// spend takes n trials; false, and capped set, once they are spent.
func (r *ext4Resolver) spend(n int) bool {
	if r.budget < n {
		r.budget, r.capped = 0, true
		return false
	}
	r.budget -= n
	return true
}

// Ext4Maps turns ext4 structures found in the image into file maps for
// files that look like VMDK extents. anchors are image offsets of VMDK
// start headers ("KDMV") found by the carver. A file is mapped only when
// its logical block 0 lands on an anchor under a geometry that the rules
// in the file comment accept; maps are sorted by their first extent's image
// offset.
func Ext4Maps(records []LocatedExt4, anchors []int64) []FileMap {
	maps, _ := Ext4MapsNoted(records, anchors)
	return maps
}

// Ext4MapsNoted is Ext4Maps, with a note of what the resolver's work
// limit left undone when it was reached (none otherwise): a capped solve
// may make no map at all to carry it, and the report must still say so.
func Ext4MapsNoted(records []LocatedExt4, anchors []int64) ([]FileMap, []string) {
	r := newExt4Resolver(records, anchors)
	var maps []FileMap
	seen := map[string]bool{}
	for i := range r.inodes {
		m, ok := r.mapInode(i)
		if !ok {
			continue
		}
		// The journal keeps copies of inode table blocks: an identical
		// map from a second copy adds nothing.
		key := fmt.Sprint(m.Size, m.Extents)
		if seen[key] {
			continue
		}
		seen[key] = true
		maps = append(maps, m)
	}
	slices.SortStableFunc(maps, func(a, b FileMap) int {
		return cmp.Compare(a.Extents[0].ImageOffset, b.Extents[0].ImageOffset)
	})
	var notes []string
	if r.capped {
		for i := range maps {
			maps[i].Evidence += "; " + r.cappedNote()
		}
		notes = append(notes, r.cappedNote())
	}
	return maps, notes
}

// cappedNote says what running out of trials left undone.
func (r *ext4Resolver) cappedNote() string {
	return fmt.Sprintf("the ext4 resolver's work limit (%d trials for %d inodes and %d anchors) was reached: no geometry was solved from VMDK headers, and some inodes were not weighed under every volume (crafted or overlapping superblocks?)",
		max(ext4MinTrials, ext4TrialsPerRecord*(len(r.inodes)+len(r.geoms)+len(r.blocks)+len(r.anchors))), len(r.inodes), len(r.anchors))
}

// newExt4Resolver indexes the records and accepts the geometries (see the
// file comment): superblocks first, then those solved from anchors.
func newExt4Resolver(records []LocatedExt4, anchors []int64) *ext4Resolver {
	r := &ext4Resolver{anchors: map[int64]bool{}, blocks: map[int64]*ext4.Node{}, ptrs: map[uint64][]ext4Ptr{}}
	for _, a := range anchors {
		r.anchors[a] = true
	}
	var supers []LocatedExt4
	for _, l := range records {
		rec := l.Record
		// Records come from a case file a user may edit: one the parser
		// could not have made (a block size of 0) is no evidence.
		if rec == nil || l.Offset < 0 || rec.Validate() != nil {
			continue
		}
		switch {
		case rec.Super != nil:
			supers = append(supers, l)
		case rec.Node != nil:
			if _, ok := validExtentBlock(l.Offset, rec.Node); !ok {
				continue // hits are user-editable: a node the parser could not have made
			}
			r.blocks[l.Offset] = rec.Node
			if rec.Node.Depth > 0 {
				for _, e := range rec.Node.Entries {
					r.ptrs[e.Start] = append(r.ptrs[e.Start], ext4Ptr{rec.Node.Depth, e.Logical, l.Offset, fmt.Sprintf("index block at image offset %d", l.Offset)})
				}
			}
		default:
			for i := range rec.Inodes {
				in := &rec.Inodes[i]
				ino := ext4Inode{off: l.Offset + int64(in.At), in: in, hit: rec}
				r.inodes = append(r.inodes, ino)
				if in.Root.Depth > 0 {
					for _, e := range in.Root.Entries {
						r.ptrs[e.Start] = append(r.ptrs[e.Start], ext4Ptr{in.Root.Depth, e.Logical, ino.off, fmt.Sprintf("inode at image offset %d", ino.off)})
					}
				}
			}
		}
	}
	slices.SortFunc(r.inodes, func(a, b ext4Inode) int { return cmp.Compare(a.off, b.off) })
	r.superGeoms(supers)
	r.supers = len(r.geoms)
	r.budget = max(ext4MinTrials, ext4TrialsPerRecord*(len(r.inodes)+len(r.geoms)+len(r.blocks)+len(r.anchors)))
	r.explained = map[*ext4Geom]map[int64]bool{}
	r.bySuper = make([]*ext4Geom, len(r.inodes))
	r.ownership()
	r.anchorGeoms()
	return r
}

// superGeoms accepts one geometry per distinct (F, B, UUID) among the
// superblocks. A metadata_csum superblock whose checksum fails is damaged
// and ignored: one flipped bit in s_log_block_size would misplace every
// block.
func (r *ext4Resolver) superGeoms(supers []LocatedExt4) {
	type key struct {
		F, B int64
		uuid string
	}
	byKey := map[key]*ext4Geom{}
	for _, l := range supers {
		s := l.Record.Super
		if s.MetadataCsum && !s.CsumOK {
			continue
		}
		F := l.Offset - s.GroupStart()
		if F < 0 {
			continue
		}
		k := key{F, int64(s.BlockSize), s.UUID}
		if g := byKey[k]; g != nil {
			g.facts++
			g.copies = append(g.copies, l.Offset)
			continue
		}
		what := "primary superblock"
		if s.Group != 0 {
			what = fmt.Sprintf("superblock backup of group %d", s.Group)
		}
		g := &ext4Geom{F: F, B: int64(s.BlockSize), sb: s, facts: 1, copies: []int64{l.Offset},
			why: fmt.Sprintf("%s at image offset %d gives fs start %d, %d-byte blocks", what, l.Offset, F, s.BlockSize)}
		byKey[k] = g
		r.geoms = append(r.geoms, g)
	}
	for _, g := range r.geoms {
		if g.facts > 1 {
			g.why += fmt.Sprintf(" (%d superblock copies agree)", g.facts)
		}
	}
	slices.SortStableFunc(r.geoms, func(a, b *ext4Geom) int {
		return cmp.Or(cmp.Compare(b.facts, a.facts), cmp.Compare(a.F, b.F), cmp.Compare(a.B, b.B))
	})
}

// inSuper reports whether an image offset lies inside the region of a
// volume with an accepted superblock that owns its region.
func (r *ext4Resolver) inSuper(off int64) bool {
	if r.dirty {
		r.indexOwned()
	}
	i := sort.Search(len(r.owned), func(i int) bool { return r.owned[i].end > off })
	return i < len(r.owned) && r.owned[i].start <= off
}

// indexOwned rebuilds the index inSuper searches: a search per offset,
// not a scan of every volume (crafted hits overlap thousands).
func (r *ext4Resolver) indexOwned() {
	r.dirty = false
	r.spend(len(r.geoms)) // the index is built even when this fails: inSuper must stay right
	r.owned = r.owned[:0]
	for _, g := range r.geoms {
		if g.sb != nil && g.owns && g.F < g.end() {
			r.owned = append(r.owned, ext4Span{g.F, g.end()})
		}
	}
	slices.SortFunc(r.owned, func(a, b ext4Span) int { return cmp.Compare(a.start, b.start) })
	merged := r.owned[:0]
	for _, s := range r.owned {
		if k := len(merged) - 1; k >= 0 && s.start <= merged[k].end {
			merged[k].end = max(merged[k].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	r.owned = merged
}

// setOwns sets g.owns and marks the index stale if that changed it.
func (r *ext4Resolver) setOwns(g *ext4Geom, owns bool) {
	if g.owns != owns {
		g.owns, r.dirty = owns, true
	}
}

// superAnchors returns the anchors some superblock geometry explains: an
// inode inside its region puts its block 0 there.
func (r *ext4Resolver) superAnchors() map[int64]bool {
	out := map[int64]bool{}
	for _, g := range r.geoms {
		as, _ := r.explains(g)
		for a := range as {
			out[a] = true
		}
	}
	return out
}

// explains returns the anchors a superblock geometry explains: an inode
// inside its region puts its block 0 there. It is asked first for every
// superblock geometry in the order of r.geoms (ownership), which is what
// makes bySuper the strongest; the second answer full says whether every
// inode in the region was weighed (see ext4TrialsPerRecord).
func (r *ext4Resolver) explains(g *ext4Geom) (out map[int64]bool, full bool) {
	if out, ok := r.explained[g]; ok {
		return out, !g.partial
	}
	out = map[int64]bool{}
	r.explained[g] = out
	if g.sb == nil {
		return out, true
	}
	// Only the inodes inside the volume's region can fit (r.inodes is
	// sorted by offset): a search, not a scan of every inode for every
	// volume (a datastore of many guests has many).
	lo := sort.Search(len(r.inodes), func(i int) bool { return r.inodes[i].off >= g.F })
	hi := sort.Search(len(r.inodes), func(i int) bool { return r.inodes[i].off >= g.end() })
	for i := lo; i < hi; i++ {
		if !r.spend(1) {
			g.partial = true
			break
		}
		ino := r.inodes[i]
		if !r.fits(ino, g) {
			continue
		}
		if off, ok := r.block0(ino.in, g); ok && r.anchors[off] {
			out[off] = true
			if r.bySuper[i] == nil {
				r.bySuper[i] = g
			}
		}
	}
	return out, !g.partial
}

// ownership decides which superblock volumes own their region (see the
// file comment). A volume whose geometry explains an anchor owns it. One
// that explains none owns it unless it is nested: a trial solve from the
// anchors, with only the anchored volumes owning their regions, gives a
// geometry that starts before it and maps, completely, a VMDK-like file
// whose data holds every copy of its superblock found. Such a volume is a
// guest filesystem inside that file (a flat or sparse VMDK's data holds
// the guest's structures verbatim): its region lies in the outer volume's
// files, and it does not stand in the way of the outer geometry.
func (r *ext4Resolver) ownership() {
	var idle []*ext4Geom
	for _, g := range r.geoms {
		as, full := r.explains(g)
		// Not fully weighed: owns, standing in the way rather than
		// letting a geometry through (see ext4TrialsPerRecord).
		r.setOwns(g, len(as) > 0 || !full)
		if !g.owns {
			idle = append(idle, g)
		}
	}
	if len(idle) == 0 {
		return
	}
	supers := slices.Clone(r.geoms)
	r.anchorGeoms()
	trial := r.geoms[len(supers):]
	for _, s := range idle {
		r.setOwns(s, true)
		for _, g := range trial {
			if r.capped {
				break // the rest own their regions
			}
			if g.F < s.F && r.holds(g, s.copies) {
				r.setOwns(s, false)
				s.why += fmt.Sprintf("; nested in a file of the volume at fs start %d (%d-byte blocks): does not own its region", g.F, g.B)
				break
			}
		}
	}
	r.geoms = supers
}

// holds reports whether every image range [off, off+1024) in offs lies in
// the data of one file that anchor geometry g maps completely.
func (r *ext4Resolver) holds(g *ext4Geom, offs []int64) bool {
	var maps []FileMap
	for _, ino := range r.inodes {
		if !r.spend(1) {
			return false
		}
		if !r.fits(ino, g) {
			continue
		}
		if off, ok := r.block0(ino.in, g); ok && g.anchors[off] {
			if m := r.buildMap(ino, g); m.Complete {
				maps = append(maps, m)
			}
		}
	}
	for _, m := range maps {
		all := true
		for _, off := range offs {
			in := false
			for _, e := range m.Extents {
				if off >= e.ImageOffset && off+ext4.SuperblockSize <= e.ImageOffset+e.Length {
					in = true
					break
				}
			}
			if !in {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// anchorGeoms solves (F, B) from anchors for the files no superblock
// geometry explains and accepts those with facts on two distinct anchors,
// under the rules in the file comment.
//
// Memory: one candidate per (inode or leaf with block 0 outside every
// superblock region, free anchor, block size): bounded by what was found
// times the anchors.
func (r *ext4Resolver) anchorGeoms() {
	if r.capped {
		return
	}
	owned := r.superAnchors()
	var anchors []int64
	for a := range r.anchors {
		if !owned[a] {
			anchors = append(anchors, a)
		}
	}
	if len(anchors) < 2 {
		return
	}
	slices.Sort(anchors)
	v := &geomVotes{r: r, cands: map[geomKey]*geomCand{}}
	v.fromInodes(anchors)
	v.fromLeaves(anchors)
	accepted := v.accept()
	if r.capped {
		return // solved from part of the votes: nothing (see ext4TrialsPerRecord)
	}
	r.geoms = append(r.geoms, accepted...)
}

// geomKey is a geometry hypothesis: the volume's start and block size.
type geomKey struct{ F, B int64 }

// geomCand is a hypothesis and its facts, one per anchor (see
// Independence): the first relation found for each anchor describes it.
type geomCand struct {
	geomKey
	facts map[int64]geomFact
}

// geomFact is a relation that puts block 0 on an anchor, kept small (a
// crafted image makes millions) and worded only for a geometry accepted:
// an inode at off, or the index entry in from pointing at block, an
// extent block at off.
type geomFact struct {
	from       string // "" for an inode
	block, off int64
}

func (f geomFact) text(a int64) string {
	if f.from == "" {
		return fmt.Sprintf("inode at image offset %d puts block 0 on the VMDK header at %d", f.off, a)
	}
	return fmt.Sprintf("the index entry in the %s points at block %d, an extent block at image offset %d that puts block 0 on the VMDK header at %d", f.from, f.block, f.off, a)
}

// maxExt4AnchorFacts bounds the facts the anchor solver keeps (their
// memory): a host's inodes outside every superblock volume × its VMDK
// headers × the block sizes. Past it the resolver is capped (see
// ext4TrialsPerRecord): no geometry is solved from anchors.
const maxExt4AnchorFacts = 1 << 22

// geomVotes collects the hypotheses anchorGeoms weighs, in the order
// found.
type geomVotes struct {
	r     *ext4Resolver
	cands map[geomKey]*geomCand
	order []*geomCand
	facts int
}

// add records a fact on anchor a for the geometry (F, B).
func (v *geomVotes) add(F, B, a int64, fact geomFact) {
	if !v.r.spend(1) || F < 0 || F%512 != 0 || v.r.inSuper(F) {
		return // a volume starting inside a superblock's volume overlaps it
	}
	k := geomKey{F, B}
	c := v.cands[k]
	if c == nil {
		c = &geomCand{geomKey: k, facts: map[int64]geomFact{}}
		v.cands[k] = c
		v.order = append(v.order, c)
	}
	if _, ok := c.facts[a]; !ok {
		if v.facts++; v.facts > maxExt4AnchorFacts {
			v.r.spend(v.r.budget + 1) // capped
			return
		}
		c.facts[a] = fact
	}
}

// fromInodes: files whose root is a leaf have their block 0 in the inode.
func (v *geomVotes) fromInodes(anchors []int64) {
	for _, ino := range v.r.inodes {
		if v.r.capped {
			return
		}
		if ino.in.Root.Depth != 0 || v.r.inSuper(ino.off) {
			continue
		}
		e, ok := firstExtent(&ino.in.Root)
		if !ok {
			continue
		}
		for _, B := range ext4.BlockSizes {
			for _, a := range anchors {
				if F := a - int64(e.Start)*B; F <= ino.off {
					v.add(F, B, a, geomFact{off: ino.off})
				}
			}
		}
	}
}

// fromLeaves: leaves holding a file's block 0. The leaf's block size is
// fixed by its eh_max; the index entry that points at it must be found
// too, and the leaf and its parent together are one fact.
func (v *geomVotes) fromLeaves(anchors []int64) {
	r := v.r
	offs := make([]int64, 0, len(r.blocks))
	for off := range r.blocks {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	for _, off := range offs {
		if r.capped {
			return
		}
		n := r.blocks[off]
		e, ok := firstExtent(n)
		if n.Depth != 0 || !ok || r.inSuper(off) {
			continue
		}
		B := n.BlockSize()
		for _, a := range anchors {
			F := a - int64(e.Start)*B
			if F < 0 || F%512 != 0 || (off-F)%B != 0 || off < F {
				continue
			}
			for _, p := range r.ptrs[uint64((off-F)/B)] {
				if p.depth == 1 && p.logical == 0 && p.off >= F && !r.inSuper(p.off) {
					v.add(F, B, a, geomFact{from: p.from, block: (off - F) / B, off: off})
				}
			}
		}
	}
}

// accept takes the strongest first: repeatedly the hypotheses with the
// most facts on anchors still free; an anchor two of them claim is
// ambiguous and blocked for everyone. A hypothesis needs facts on two
// anchors of its own.
func (v *geomVotes) accept() []*ext4Geom {
	taken := map[int64]bool{}
	free := func(c *geomCand) []int64 {
		var out []int64
		for a := range c.facts {
			if !taken[a] {
				out = append(out, a)
			}
		}
		slices.Sort(out)
		return out
	}
	live := v.order[:0:0]
	for _, c := range v.order {
		if len(c.facts) >= 2 {
			live = append(live, c)
		}
	}
	var out []*ext4Geom
	for len(live) > 0 {
		if !v.r.spend(len(live)) {
			return nil
		}
		best := 0
		for _, c := range live {
			best = max(best, len(free(c)))
		}
		if best < 2 {
			break
		}
		var top, rest []*geomCand
		claims := map[int64]int{}
		for _, c := range live {
			if len(free(c)) == best {
				top = append(top, c)
				for _, a := range free(c) {
					claims[a]++
				}
			} else {
				rest = append(rest, c)
			}
		}
		for _, c := range top {
			var mine []int64
			for _, a := range free(c) {
				if claims[a] == 1 {
					mine = append(mine, a)
				}
			}
			if len(mine) < 2 {
				continue
			}
			g := &ext4Geom{F: c.F, B: c.B, facts: len(mine), anchors: map[int64]bool{}}
			var why []string
			for _, a := range mine {
				g.anchors[a] = true
				why = append(why, c.facts[a].text(a))
			}
			g.why = fmt.Sprintf("no superblock; fs start %d, %d-byte blocks from %d independent facts on distinct VMDK headers: %s", c.F, c.B, len(mine), strings.Join(why, "; "))
			out = append(out, g)
		}
		for a := range claims {
			taken[a] = true // accepted, or contested: either way no longer free
		}
		live = rest
	}
	return out
}

// firstExtent is a node's entry for logical block 0, if it has one that is
// initialized.
func firstExtent(n *ext4.Node) (ext4.Entry, bool) {
	if len(n.Entries) == 0 || n.Entries[0].Logical != 0 || n.Entries[0].Uninit {
		return ext4.Entry{}, false
	}
	return n.Entries[0], true
}

// fits reports whether an inode can belong to the filesystem g describes:
// inside a superblock geometry's region; for an anchor geometry, after its
// start and outside every superblock region (a volume with a superblock
// owns its region).
func (r *ext4Resolver) fits(ino ext4Inode, g *ext4Geom) bool {
	if ino.off < g.F {
		return false
	}
	if g.sb != nil {
		return ino.off < g.end()
	}
	return !r.inSuper(ino.off)
}

// child returns the extent block an index entry points at under g, if it
// was found and its header fits: block size, one level down.
func (r *ext4Resolver) child(parent *ext4.Node, e ext4.Entry, g *ext4Geom) (*ext4.Node, int64) {
	if e.Start > uint64(1<<62)/uint64(g.B) {
		return nil, 0
	}
	off := g.F + int64(e.Start)*g.B
	n := r.blocks[off]
	if n == nil || n.BlockSize() != g.B || n.Depth+1 != parent.Depth || n.Entries[0].Logical < e.Logical {
		return nil, off
	}
	return n, off
}

// block0 follows logical block 0 down the tree and returns its image offset.
func (r *ext4Resolver) block0(in *ext4.Inode, g *ext4Geom) (int64, bool) {
	n := &in.Root
	for range ext4.MaxDepth + 1 {
		if len(n.Entries) == 0 || n.Entries[0].Logical != 0 {
			return 0, false
		}
		e := n.Entries[0]
		if n.Depth == 0 {
			if e.Uninit || e.Start > uint64(1<<62)/uint64(g.B) {
				return 0, false
			}
			return g.F + int64(e.Start)*g.B, true
		}
		if n, _ = r.child(n, e, g); n == nil {
			return 0, false
		}
	}
	return 0, false
}

// walk collects the initialized leaf extents of the subtree under n whose
// logical blocks lie in [lo, hi), and says whether every block was found
// and verified. verify checks a child block's tail checksum (nil: none).
func (r *ext4Resolver) walk(n *ext4.Node, lo, hi uint64, g *ext4Geom, verify func(*ext4.Node) bool, out *[]ext4.Entry, notes *[]string) bool {
	complete := true
	for i, e := range n.Entries {
		end := hi
		if i+1 < len(n.Entries) {
			end = min(hi, uint64(n.Entries[i+1].Logical))
		}
		if uint64(e.Logical) < lo || uint64(e.Logical) >= hi {
			complete = false
			*notes = append(*notes, fmt.Sprintf("entry for block %d is outside its parent's range", e.Logical))
			continue
		}
		if n.Depth == 0 {
			if e.Uninit {
				continue // unwritten: reads as zeros, a hole
			}
			if uint64(e.Logical)+uint64(e.Len) > hi {
				complete = false
				continue
			}
			if len(*out) >= maxExt4FileExtents {
				*notes = append(*notes, fmt.Sprintf("more than %d extents: the rest are left out", maxExt4FileExtents))
				return false
			}
			*out = append(*out, e)
			continue
		}
		c, off := r.child(n, e, g)
		if c == nil {
			complete = false
			*notes = append(*notes, fmt.Sprintf("extent block %d (image offset %d) not found", e.Start, off))
			continue
		}
		if verify != nil && !verify(c) {
			complete = false
			*notes = append(*notes, fmt.Sprintf("extent block %d at image offset %d fails its checksum", e.Start, off))
			continue
		}
		if !r.walk(c, uint64(e.Logical), end, g, verify, out, notes) {
			complete = false
		}
	}
	return complete
}

// mapInode maps inode i under the strongest geometry that puts its block
// 0 on an anchor: the superblock geometry explains found, else the first
// geometry solved from anchors that fits.
func (r *ext4Resolver) mapInode(i int) (FileMap, bool) {
	ino := r.inodes[i]
	if g := r.bySuper[i]; g != nil {
		return r.buildMap(ino, g), true
	}
	for _, g := range r.geoms[r.supers:] {
		if !r.spend(1) {
			break
		}
		if !r.fits(ino, g) {
			continue
		}
		off, ok := r.block0(ino.in, g)
		if !ok || !r.anchors[off] || (g.sb == nil && !g.anchors[off]) {
			continue
		}
		return r.buildMap(ino, g), true
	}
	return FileMap{}, false
}

func (r *ext4Resolver) buildMap(ino ext4Inode, g *ext4Geom) FileMap {
	in := ino.in
	evidence := []string{g.why}
	record := fmt.Sprintf("inode at image offset %d", ino.off)
	var verify func(*ext4.Node) bool
	if s := g.sb; s != nil && s.MetadataCsum {
		if inum, ok := r.inodeNumber(ino, g); ok {
			record = fmt.Sprintf("inode %d at image offset %d", inum, ino.off)
			evidence = append(evidence, fmt.Sprintf("inode checksum verifies as inode %d, consistent with its place in an inode table", inum))
			verify = func(n *ext4.Node) bool { return n.VerifyTail(s.CsumSeed, inum, in.Generation) }
		} else if in.Root.Depth > 0 {
			evidence = append(evidence, "inode number unknown: extent block checksums not checked")
		}
	}
	var ext []ext4.Entry
	var notes []string
	complete := r.walk(&in.Root, 0, 1<<32, g, verify, &ext, &notes)
	if in.Root.Depth > 0 {
		if complete {
			evidence = append(evidence, "every extent block found"+map[bool]string{true: " and its checksum verified", false: ""}[verify != nil])
		}
	}
	evidence = append(evidence, notes...)
	slices.SortFunc(ext, func(a, b ext4.Entry) int { return cmp.Compare(a.Logical, b.Logical) })
	size := int64(in.Size)
	var out []MappedExtent
	for _, e := range ext {
		fo := int64(e.Logical) * g.B
		if fo >= size {
			break // blocks preallocated past the end of the file
		}
		n := min(int64(e.Len)*g.B, size-fo)
		io := g.F + int64(e.Start)*g.B
		if k := len(out) - 1; k >= 0 && out[k].FileOffset+out[k].Length == fo && out[k].ImageOffset+out[k].Length == io {
			out[k].Length += n
			continue
		}
		out = append(out, MappedExtent{FileOffset: fo, ImageOffset: io, Length: n})
	}
	m := FileMap{FS: "ext4", Record: record, Size: size, Extents: out, Complete: complete, Evidence: strings.Join(evidence, "; "), OwnGeometry: g.sb != nil,
		Volume: g.F, Structures: append(slices.Clone(g.copies), ino.off)}
	if g.sb != nil && g.sb.Blocks <= uint64(1<<62)/uint64(g.B) {
		m.VolumeSize = int64(g.sb.Blocks) * g.B
	}
	return m
}

// inodeNumber recovers an inode's number from its 32-bit checksum under a
// superblock's seed and accepts it only if it is in range and its slot in
// an inode table (tables start on a block boundary) matches where the
// inode lies relative to the filesystem start. A corrupt checksum solves to
// a random number that passes both with odds about
// inodes/2^32 × isz/B.
func (r *ext4Resolver) inodeNumber(ino ext4Inode, g *ext4Geom) (uint32, bool) {
	s := g.sb
	inum, ok := ino.in.SolveInodeNumber(s.CsumSeed, s.InodeSize)
	if !ok || inum == 0 || inum > s.Inodes {
		return 0, false
	}
	slot := int64((inum-1)%s.InodesPerGroup) * int64(s.InodeSize) % g.B
	if (ino.off-g.F)%g.B != slot {
		return 0, false
	}
	return inum, true
}
