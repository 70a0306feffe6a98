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
//     block 0 lands on a VMDK header ("KDMV" anchor), or an index entry's
//     child block number lands on an extent block found there. One fact
//     alone never makes a geometry: any inode's first block can be made to
//     land on any anchor by choosing F.
//
// Several filesystems may coexist (partitions, an old filesystem under a
// quick-formatted new one whose superblock no longer describes the old
// inodes): each inode is tried under every accepted geometry, strongest
// first, and kept under the first that puts its block 0 on an anchor.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// LocatedExt4 is an ext4 record and the image offset of its hit.
type LocatedExt4 struct {
	Offset int64
	Record *Ext4Record
}

// maxExt4FileExtents bounds the extents kept for one file: 2^20 extents of
// at least one block is far more than any real VMDK file has, and bounds
// the memory one crafted tree can claim.
const maxExt4FileExtents = 1 << 20

// ext4Geom is an accepted (F, B) and why.
type ext4Geom struct {
	F, B  int64
	sb    *Ext4Superblock // nil when solved from anchors
	why   string
	facts int
}

type ext4Inode struct {
	off int64 // image offset of the inode
	in  *Ext4Inode
	hit *Ext4Record
}

type ext4Ptr struct {
	depth   uint16 // depth of the node holding the entry
	logical uint32
	from    string
}

type ext4Resolver struct {
	anchors map[int64]bool
	blocks  map[int64]*Ext4Node // extent blocks by image offset
	ptrs    map[uint64][]ext4Ptr
	inodes  []ext4Inode
	geoms   []*ext4Geom
}

// Ext4Maps turns ext4 structures found in the image into file maps for
// files that look like VMDK extents. anchors are image offsets of VMDK
// start headers ("KDMV") found by the carver. A file is mapped only when
// its logical block 0 lands on an anchor under a geometry that the rules
// in the file comment accept; maps are sorted by their first extent's image
// offset.
func Ext4Maps(records []LocatedExt4, anchors []int64) []FileMap {
	r := &ext4Resolver{anchors: map[int64]bool{}, blocks: map[int64]*Ext4Node{}, ptrs: map[uint64][]ext4Ptr{}}
	for _, a := range anchors {
		r.anchors[a] = true
	}
	var supers []LocatedExt4
	for _, l := range records {
		rec := l.Record
		if rec == nil {
			continue
		}
		switch {
		case rec.Super != nil:
			supers = append(supers, l)
		case rec.Node != nil:
			r.blocks[l.Offset] = rec.Node
			if rec.Node.Depth > 0 {
				for _, e := range rec.Node.Entries {
					r.ptrs[e.Start] = append(r.ptrs[e.Start], ext4Ptr{rec.Node.Depth, e.Logical, fmt.Sprintf("index block at image offset %d", l.Offset)})
				}
			}
		default:
			for i := range rec.Inodes {
				in := &rec.Inodes[i]
				ino := ext4Inode{off: l.Offset + int64(in.At), in: in, hit: rec}
				r.inodes = append(r.inodes, ino)
				if in.Root.Depth > 0 {
					for _, e := range in.Root.Entries {
						r.ptrs[e.Start] = append(r.ptrs[e.Start], ext4Ptr{in.Root.Depth, e.Logical, fmt.Sprintf("inode at image offset %d", ino.off)})
					}
				}
			}
		}
	}
	slices.SortFunc(r.inodes, func(a, b ext4Inode) int { return cmp.Compare(a.off, b.off) })
	r.superGeoms(supers)
	r.anchorGeoms()

	var maps []FileMap
	seen := map[string]bool{}
	for _, ino := range r.inodes {
		m, ok := r.mapInode(ino)
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
	return maps
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
			continue
		}
		what := "primary superblock"
		if s.Group != 0 {
			what = fmt.Sprintf("superblock backup of group %d", s.Group)
		}
		g := &ext4Geom{F: F, B: int64(s.BlockSize), sb: s, facts: 1,
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

// anchorGeoms solves (F, B) from anchors for the files no superblock
// geometry explains and accepts those with two independent facts.
//
// Memory: one candidate per (unexplained inode or leaf with block 0,
// anchor, block size): bounded by what was found times the anchors.
func (r *ext4Resolver) anchorGeoms() {
	if len(r.anchors) == 0 {
		return
	}
	anchors := make([]int64, 0, len(r.anchors))
	for a := range r.anchors {
		anchors = append(anchors, a)
	}
	slices.Sort(anchors)
	type key struct{ F, B int64 }
	type cand struct {
		facts []string
		seen  map[string]bool
	}
	cands := map[key]*cand{}
	var order []key
	add := func(F, B int64, fact string) {
		if F < 0 || F%512 != 0 {
			return
		}
		k := key{F, B}
		c := cands[k]
		if c == nil {
			c = &cand{seen: map[string]bool{}}
			cands[k] = c
			order = append(order, k)
		}
		if !c.seen[fact] {
			c.seen[fact] = true
			c.facts = append(c.facts, fact)
		}
	}
	// Files whose root is a leaf: their block 0 is in the inode.
	for _, ino := range r.inodes {
		if ino.in.Root.Depth != 0 || r.explained(ino) {
			continue
		}
		e, ok := firstExtent(&ino.in.Root)
		if !ok {
			continue
		}
		for _, B := range Ext4BlockSizes {
			for _, a := range anchors {
				if F := a - int64(e.Start)*B; F <= ino.off {
					add(F, B, fmt.Sprintf("inode at image offset %d puts block 0 on the VMDK header at %d", ino.off, a))
				}
			}
		}
	}
	// Leaves holding a file's block 0: the leaf's block size is fixed by
	// its eh_max; the index entry that points at it is the second fact.
	offs := make([]int64, 0, len(r.blocks))
	for off := range r.blocks {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	for _, off := range offs {
		n := r.blocks[off]
		e, ok := firstExtent(n)
		if n.Depth != 0 || !ok {
			continue
		}
		B := n.BlockSize()
		for _, a := range anchors {
			F := a - int64(e.Start)*B
			if F < 0 || F%512 != 0 || (off-F)%B != 0 || off < F {
				continue
			}
			for _, p := range r.ptrs[uint64((off-F)/B)] {
				if p.depth == 1 && p.logical == 0 {
					add(F, B, fmt.Sprintf("extent block at image offset %d puts block 0 on the VMDK header at %d", off, a))
					add(F, B, fmt.Sprintf("the index entry in the %s points at block %d, an extent block at image offset %d", p.from, (off-F)/B, off))
				}
			}
		}
	}
	var weak []*ext4Geom
	for _, k := range order {
		c := cands[k]
		if len(c.facts) < 2 {
			continue
		}
		weak = append(weak, &ext4Geom{F: k.F, B: k.B, facts: len(c.facts),
			why: fmt.Sprintf("no superblock; fs start %d, %d-byte blocks from %d facts: %s", k.F, k.B, len(c.facts), strings.Join(c.facts, "; "))})
	}
	slices.SortStableFunc(weak, func(a, b *ext4Geom) int {
		return cmp.Or(cmp.Compare(b.facts, a.facts), cmp.Compare(a.F, b.F), cmp.Compare(a.B, b.B))
	})
	r.geoms = append(r.geoms, weak...)
}

// explained reports whether a superblock geometry already puts the
// inode's block 0 on an anchor (then no anchor geometry is needed for it).
func (r *ext4Resolver) explained(ino ext4Inode) bool {
	for _, g := range r.geoms {
		if g.sb != nil && r.fits(ino, g) {
			if off, ok := r.block0(ino.in, g); ok && r.anchors[off] {
				return true
			}
		}
	}
	return false
}

// firstExtent is a node's entry for logical block 0, if it has one that is
// initialized.
func firstExtent(n *Ext4Node) (Ext4Entry, bool) {
	if len(n.Entries) == 0 || n.Entries[0].Logical != 0 || n.Entries[0].Uninit {
		return Ext4Entry{}, false
	}
	return n.Entries[0], true
}

// fits reports whether an inode can belong to the filesystem g describes.
func (r *ext4Resolver) fits(ino ext4Inode, g *ext4Geom) bool {
	if ino.off < g.F {
		return false
	}
	if g.sb != nil && uint64(ino.off-g.F)/uint64(g.B) >= g.sb.Blocks {
		return false
	}
	return true
}

// child returns the extent block an index entry points at under g, if it
// was found and its header fits: block size, one level down.
func (r *ext4Resolver) child(parent *Ext4Node, e Ext4Entry, g *ext4Geom) (*Ext4Node, int64) {
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
func (r *ext4Resolver) block0(in *Ext4Inode, g *ext4Geom) (int64, bool) {
	n := &in.Root
	for range MaxExt4Depth + 1 {
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
func (r *ext4Resolver) walk(n *Ext4Node, lo, hi uint64, g *ext4Geom, verify func(*Ext4Node) bool, out *[]Ext4Entry, notes *[]string) bool {
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

// mapInode maps one inode under the strongest geometry that puts its
// block 0 on an anchor.
func (r *ext4Resolver) mapInode(ino ext4Inode) (FileMap, bool) {
	for _, g := range r.geoms {
		if !r.fits(ino, g) {
			continue
		}
		if off, ok := r.block0(ino.in, g); !ok || !r.anchors[off] {
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
	var verify func(*Ext4Node) bool
	if s := g.sb; s != nil && s.MetadataCsum {
		if inum, ok := r.inodeNumber(ino, g); ok {
			record = fmt.Sprintf("inode %d at image offset %d", inum, ino.off)
			evidence = append(evidence, fmt.Sprintf("inode checksum verifies as inode %d, consistent with its place in an inode table", inum))
			verify = func(n *Ext4Node) bool { return n.VerifyTail(s.CsumSeed, inum, in.Generation) }
		} else if in.Root.Depth > 0 {
			evidence = append(evidence, "inode number unknown: extent block checksums not checked")
		}
	}
	var ext []Ext4Entry
	var notes []string
	complete := r.walk(&in.Root, 0, 1<<32, g, verify, &ext, &notes)
	if in.Root.Depth > 0 {
		if complete {
			evidence = append(evidence, "every extent block found"+map[bool]string{true: " and its checksum verified", false: ""}[verify != nil])
		}
	}
	evidence = append(evidence, notes...)
	slices.SortFunc(ext, func(a, b Ext4Entry) int { return cmp.Compare(a.Logical, b.Logical) })
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
	return FileMap{FS: "ext4", Record: record, Size: size, Extents: out, Complete: complete, Evidence: strings.Join(evidence, "; ")}
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
