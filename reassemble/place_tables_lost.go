package reassemble

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/vmdk"
)

// Last-resort placement for a sparse file whose grain tables are lost.
//
// A hosted sparse file appends each grain where it is first written, so
// the grain area is a run of grain-sized slots in write order and nothing
// in the VMDK says which virtual grain a slot holds. Two kinds of evidence
// place a slot anyway, and nothing else does:
//
//   - fsprobe: the slot holds guest structures that locate themselves
//     (fsprobe.Locator): an MBR, an NTFS boot sector or MFT record, an ext4
//     superblock, inode or journal superblock. Every structure in the slot
//     must allow the same virtual grain, and no other slot with different
//     bytes may claim it.
//   - order: writers that copy a disk (qemu-img convert, clones, exports)
//     append grains in virtual order. Where every proven slot (fsprobe
//     anchors and slots a surviving table places) agrees with that order,
//     the slots between two proven ones are placed in order if their
//     number equals the number of virtual grains between (dense), or the
//     number of grains the guest's complete allocation map predicts
//     written there. Nothing is placed past the last proven slot or before
//     the first: both sides must be proven.
//
// Every other non-zero slot is reported as an unplaced grain with its
// image offset, and written nowhere.

// Evidence levels of last-resort placement.
const (
	EvFSProbe = "fsprobe" // the grain's own guest structures prove its address
	EvOrder   = "order"   // write order between two proven grains
)

// Limits of the slot scan.
const (
	// maxAnchorSlots bounds the slots scanned (2^24 grains of 64 KiB is a
	// 1 TiB file); a larger file is scanned up to it.
	maxAnchorSlots = 1 << 24
	// minOrderPoints is the number of proven slots that must agree with
	// write order before order places anything.
	minOrderPoints = 3
)

// Unplaced is a run of consecutive non-zero grain slots no evidence
// placed: where their bytes lie, for an examiner to look at.
type Unplaced struct {
	FileOffset  int64 `json:"file_offset"`
	ImageOffset int64 `json:"image_offset"` // of the first slot; the rest follow contiguously
	Grains      int64 `json:"grains"`
}

// slot is a non-zero grain-sized slot of the grain area.
type slot struct {
	k      int64 // slot index from overHead
	hash   uint64
	grains []int64 // candidate virtual grains its structures allow
	what   string
	claims bool
	// facts is how many independent structures (or file tails) name the
	// slot's grain: with write order not shown, one is not enough (a boot
	// sector or a lone record is a copy found anywhere as easily).
	facts int
}

// lostByTable reports whether a grain's decision is "missing because its
// grain table is lost": the only decisions last-resort placement may
// replace.
func lostByTable(gr *Grain) bool {
	return gr != nil && gr.Status == Missing && gr.tableLost
}

// placeByAnchors places what it can prove of the grains whose tables are
// lost. owner maps the grain sectors surviving tables name to their
// virtual grains.
func placeByAnchors(inst *Instance, view *fileView, x *hitIndex, owner map[uint32]uint64) {
	h := inst.Header
	gb := h.GrainBytes()
	grains := h.Grains()
	open := func(g int64) bool { return g >= 0 && uint64(g) < grains && lostByTable(inst.grains.at(uint64(g))) }
	first := int64(h.OverHead) * vmdk.SectorSize
	if h.OverHead == 0 || gb <= 0 {
		return
	}
	// A sparse file holds each grain at most once: no more slots than the
	// disk has grains are read, however far the mapped range runs.
	count := min((view.size()-first)/gb, maxAnchorSlots, int64(grains))
	if count <= 0 {
		return
	}
	tableSlot := map[int64]int64{} // slot → virtual grain, for slots a surviving table places
	for sec, g := range owner {
		if gr := inst.grains.at(g); gr != nil && gr.Status == Placed && (int64(sec)*vmdk.SectorSize-first)%gb == 0 {
			tableSlot[(int64(sec)*vmdk.SectorSize-first)/gb] = int64(g)
		}
	}
	buf := make([]byte, gb)
	scanned := int64(0) // slots before it were all read
	// each calls fn for every non-zero slot no table owns, up to the first
	// slot holding another VMDK's structures (the file cannot go on there).
	each := func(fn func(k, img int64, b []byte)) {
		for k := int64(0); k < count; k++ {
			scanned = k
			if _, owned := tableSlot[k]; owned {
				continue
			}
			off := first + k*gb
			if _, err := view.ReadAt(buf, off); err != nil {
				return
			}
			if entropy.Zero(buf) {
				continue
			}
			img, _ := view.imageOffset(off, gb)
			if why := foreignAt(x, inst, img, gb, buf, false); why != "" {
				return
			}
			fn(k, img, buf)
		}
		scanned = count
	}
	loc := fsprobe.NewLocator(gb, int64(h.Capacity)*vmdk.SectorSize)
	// The guest's geometry comes from the slots holding the structures the
	// carve recorded (partition tables, boot sectors, $MFT record 0,
	// primary superblocks): a read of a few slots, not a pass over the file.
	for _, k := range grainsHolding(inst, x.geometry, first, gb, count) {
		if _, err := view.ReadAt(buf, first+k*gb); err == nil && !entropy.Zero(buf) {
			loc.Learn(buf)
		}
	}
	loc.Prepare()
	if inst.headless && loc.Volumes() != 1 {
		// A file found from one guest volume's structure alone: slots that
		// show other volumes too are not sure to be one file's.
		inst.Notes = append(inst.Notes, fmt.Sprintf("the slots show %d guest volumes, not the one this file was found from: nothing is placed", loc.Volumes()))
		return
	}
	var slots []slot
	imgOf := map[int64]int64{}
	claimsOf := map[int][]fsprobe.Claim{} // by index in slots
	each(func(k, img int64, b []byte) {
		if claims := loc.Locate(b); len(claims) > 0 {
			claimsOf[len(slots)] = claims
		}
		slots = append(slots, slot{k: k, hash: xxhash.Sum64(b)})
		imgOf[k] = img
	})
	// Some structures are located through records found in any grain
	// (a directory's, the journal's): candidates once all were seen.
	for i, claims := range claimsOf {
		s := &slots[i]
		s.claims, s.grains, s.what, s.facts = true, loc.Candidates(claims), fsprobe.Describe(claims), len(claims)
		if len(s.grains) == 0 && !slices.ContainsFunc(claims, loc.Possible) {
			// Nothing here can lie at any grain of this disk: not its
			// bytes (noise, another disk), which proves nothing.
			s.claims = false
		}
	}
	for _, n := range loc.Notes() {
		inst.Notes = append(inst.Notes, "guest: "+n)
	}

	// Anchors: one candidate grain, claimed by no slot with other bytes.
	claimants := map[int64][]int{}
	ambiguous, contradicted := 0, 0
	for i, s := range slots {
		switch {
		case !s.claims:
		case len(s.grains) == 0:
			contradicted++
		case len(s.grains) > 1:
			ambiguous++
		default:
			claimants[s.grains[0]] = append(claimants[s.grains[0]], i)
		}
	}
	if inst.contiguousOnly() && contradicted > 0 {
		// Slots whose own structures disagree are not one grain of this
		// disk: the contiguous assumption has run into other bytes (a
		// fragment's end), and no slot is sure to be this file's.
		inst.Notes = append(inst.Notes, fmt.Sprintf("grain tables lost: %d slots hold guest structures that disagree with each other, so the file is not contiguous where assumed and no host map says where it lies: nothing is placed from its slots", contradicted))
		return
	}
	// Data anchors: a slot with no structure of its own that holds, at
	// their places within a grain, the last blocks of minTailAnchors
	// guest files that all lie in one grain (bytes ending where each
	// file's size says, zeros after) is that grain.
	if tails, places := tailsByShape(loc.Tails(), gb); len(tails) > 0 {
		for i := range slots {
			sl := &slots[i]
			if sl.claims {
				continue
			}
			if _, err := view.ReadAt(buf, first+sl.k*gb); err != nil {
				continue
			}
			if g, n := tailGrain(buf, tails, places, gb); n >= minTailAnchors {
				sl.what, sl.facts = fmt.Sprintf("the last blocks of %d guest files lie in it where their sizes say", n), n
				claimants[g] = append(claimants[g], i)
			}
		}
	}
	placed := map[int64]int64{} // slot → grain, every placement below
	var points [][2]int64       // (slot, grain) proven: anchors and table-placed slots
	for k, g := range tableSlot {
		points = append(points, [2]int64{k, g})
	}
	conflicts := 0
	type anchor struct {
		g   int64
		idx []int
	}
	var anchors []anchor
	for g, idx := range claimants {
		same := true
		for _, i := range idx[1:] {
			same = same && slots[i].hash == slots[idx[0]].hash
		}
		if !same {
			conflicts++
			continue
		}
		if open(g) {
			anchors = append(anchors, anchor{g, idx})
		}
	}
	sort.Slice(anchors, func(i, j int) bool { return anchors[i].g < anchors[j].g })
	unordered := false // write order not shown: anchors only
	if inst.contiguousOnly() {
		// Without a host map a slot is one grain of this file only where
		// the file is contiguous, and nothing says where it is. The
		// proven slots must show it: at least minOrderPoints of them,
		// every one in write order with room for the slots between. A
		// file written in guest order, or running into other bytes,
		// places nothing.
		all := append([][2]int64(nil), points...)
		for _, a := range anchors {
			all = append(all, [2]int64{slots[a.idx[0]].k, a.g})
		}
		if why := orderProblem(all); why != "" {
			// A slot whose own structures name its grain is that grain
			// wherever it lies (fsprobe); only write order needs the
			// slots to be this file's, in order.
			inst.Notes = append(inst.Notes, fmt.Sprintf("grain tables lost and no host map: %d slots locate themselves, but %s, so write order is not shown: only the slots whose own structures name their grain are placed", len(anchors), why))
			unordered = true
		}
	}
	if unordered {
		anchors = slices.DeleteFunc(anchors, func(a anchor) bool { return slots[a.idx[0]].facts < minUnorderedFacts })
	}
	for _, a := range anchors {
		s := slots[a.idx[0]]
		reason := "its own guest structures say where it lies: " + s.what
		if len(a.idx) > 1 {
			reason += fmt.Sprintf(" (%d identical slots claim it)", len(a.idx))
		}
		setSlot(inst, view, first, gb, uint64(a.g), s, EvFSProbe, reason)
		placed[s.k] = a.g
		points = append(points, [2]int64{s.k, a.g})
	}
	inst.Notes = append(inst.Notes, fmt.Sprintf("grain tables lost: %d non-zero grain slots scanned; %d placed by their own guest structures; %d slots whose structures disagree, %d that could lie at several grains, %d grains claimed by slots with different bytes",
		len(slots), len(placed), contradicted, ambiguous, conflicts))

	anchored := len(placed)
	if unordered {
		inst.Unplaced, inst.UnplacedGrains, inst.TrailingSlots = unplacedRuns(slots, placed, points, imgOf, first, gb)
		inst.MetadataGrains, inst.MetadataPlaced = metadataFraction(inst, loc)
		return
	}
	for k, g := range placed {
		if _, err := view.ReadAt(buf, first+k*gb); err == nil {
			loc.Anchored(g, buf)
		}
	}
	var inScan [][2]int64
	for _, p := range points {
		if p[0] < scanned {
			inScan = append(inScan, p)
		}
	}
	points = inScan
	// The grain area's ends are proven boundaries too: slot 0 follows the
	// metadata, and a complete host map gives the file's size, so the
	// last slot is known. Brackets may end there (they are not counted as
	// proven grains).
	var head, tail []([2]int64)
	if !inst.headless {
		// (A file found from its guest alone starts its slots at a proven
		// grain, not at the grain area's start.)
		head = [][2]int64{{-1, -1}}
	}
	if m := inst.HostMap; m != nil && m.Complete && scanned == count && (m.Size-first)%gb == 0 && (m.Size-first)/gb == count {
		tail = [][2]int64{{count, int64(grains)}}
	}
	ends := [2][][2]int64{head, tail}
	orderByPoints(inst, view, loc, slots, points, ends, placed, open, first, gb)
	inst.Notes = append(inst.Notes, fmt.Sprintf("%d grains placed by write order between proven grains", len(placed)-anchored))
	inst.Unplaced, inst.UnplacedGrains, inst.TrailingSlots = unplacedRuns(slots, placed, points, imgOf, first, gb)
	inst.MetadataGrains, inst.MetadataPlaced = metadataFraction(inst, loc)
}

// minUnorderedFacts is the structures (or file tails) that must name a
// slot's grain for it to be placed where write order is not shown.
const minUnorderedFacts = 2

// minTailAnchors is the guest files' last blocks a slot must hold, all
// naming one grain, for them to place it.
const minTailAnchors = 2

// tailShape is where in a grain a file tail lies and how much of its
// block the file fills.
type tailShape struct {
	at          int64 // offset of the block within its grain
	block, used int
}

// tailsByShape indexes file tails by their shape, so that a slot costs one
// look per place a tail may lie in it, not one per tail.
func tailsByShape(tails []fsprobe.Tail, gb int64) (map[tailShape][]fsprobe.Tail, [][2]int64) {
	out := map[tailShape][]fsprobe.Tail{}
	places := map[[2]int64]bool{} // (offset, block size)
	for _, t := range tails {
		if o := t.Addr % gb; o+int64(t.Block) <= gb {
			out[tailShape{o, t.Block, t.Used}] = append(out[tailShape{o, t.Block, t.Used}], t)
			places[[2]int64{o, int64(t.Block)}] = true
		}
	}
	return out, slices.SortedFunc(maps.Keys(places), func(a, b [2]int64) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
}

// tailGrain returns the grain the file tails a slot's bytes match name,
// and how many match; 0 when they name several grains.
func tailGrain(b []byte, tails map[tailShape][]fsprobe.Tail, places [][2]int64, gb int64) (int64, int) {
	g, n := int64(-1), 0
	for _, pl := range places {
		blk := b[pl[0] : pl[0]+pl[1]]
		last := len(blk) - 1
		for last >= 0 && blk[last] == 0 {
			last--
		}
		if last < 0 || last == len(blk)-1 {
			continue // all zero, or no zeros at its end: no tail
		}
		for _, t := range tails[tailShape{pl[0], int(pl[1]), last + 1}] {
			if g >= 0 && t.Addr/gb != g {
				return 0, 0
			}
			g, n = t.Addr/gb, n+1
		}
	}
	return g, n
}

// locateGrains runs a Locator over a set of grains: learn yields the
// grains the guest's geometry is learned from (with their virtual
// offsets, -1 where not known: fsprobe.Locator.LearnAt), each every grain to look
// in (by a key of the caller's). It returns the claims found, by key.
func locateGrains(loc *fsprobe.Locator, learn func(fn func(b []byte, virt int64)), each func(fn func(key int64, b []byte))) map[int64][]fsprobe.Claim {
	learn(loc.LearnAt)
	loc.Prepare()
	claims := map[int64][]fsprobe.Claim{}
	each(func(k int64, b []byte) {
		if c := loc.Locate(b); len(c) > 0 {
			claims[k] = c
		}
	})
	return claims
}

// grainsHolding returns the grains of an instance's file (at file offset
// from, of gb bytes each, fewer than n) holding one of the image offsets.
func grainsHolding(inst *Instance, offs []int64, from, gb, n int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, off := range offs {
		fo, ok := inst.fileOffsetOf(off)
		if !ok || fo < from {
			continue
		}
		if g := (fo - from) / gb; g < n && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}

// setSlot places virtual grain g from slot s.
func setSlot(inst *Instance, view *fileView, first, gb int64, g uint64, s slot, ev, reason string) {
	fileOff := first + s.k*gb
	n := grainLength(inst.Header, g)
	pieces, err := view.pieces(fileOff, n)
	if err != nil {
		return
	}
	src := &Source{Instance: inst.ID, ImageOffset: firstStored(pieces), FileOffset: fileOff}
	if len(pieces) > 1 {
		src.Pieces = pieces
	}
	hash := s.hash
	if n != gb {
		// The disk's last grain is short: hash what is emitted.
		b := make([]byte, n)
		if _, err := view.ReadAt(b, fileOff); err != nil {
			return
		}
		hash = xxhash.Sum64(b)
	}
	inst.grains.set(g, &Grain{Status: Placed, Evidence: append([]string{ev}, inst.linkEvidence(fileOff)...), Hash: hash, Copies: 1, Source: src, Reason: reason})
}

// orderByPoints places the slots between consecutive proven points when
// every point agrees with write order.
func orderByPoints(inst *Instance, view *fileView, loc *fsprobe.Locator, slots []slot, points [][2]int64, ends [2][][2]int64, placed map[int64]int64, open func(int64) bool, first, gb int64) {
	if why := orderProblem(points); why != "" {
		inst.Notes = append(inst.Notes, "write order not used: "+why)
		return
	}
	points = append(append(slices.Clone(ends[0]), points...), ends[1]...)
	last := int64(inst.Header.Grains()) // the tail end's grain
	bySlot := map[int64]slot{}
	for _, s := range slots {
		bySlot[s.k] = s
	}
	alloc := loc.Allocation()
	if !alloc.Complete {
		inst.Notes = append(inst.Notes, "guest allocation map incomplete ("+alloc.Why+"): write order places only where the grains between two proven ones are all present")
	}
	for i := 1; i < len(points); i++ {
		k1, g1, k2, g2 := points[i-1][0], points[i-1][1], points[i][0], points[i][1]
		n := k2 - k1 - 1
		if n <= 0 || n > g2-g1-1 {
			continue // nothing between, or (at an end) more slots than grains
		}
		var targets []int64
		how := ""
		switch {
		case n == g2-g1-1:
			for g := g1 + 1; g < g2; g++ {
				targets = append(targets, g)
			}
			how = fmt.Sprintf("the %d slots between %s and %s fill every grain between them", n, bound(g1, last), bound(g2, last))
		case alloc.Complete:
			lo := sort.Search(len(alloc.Grains), func(j int) bool { return alloc.Grains[j] > g1 })
			hi := sort.Search(len(alloc.Grains), func(j int) bool { return alloc.Grains[j] >= g2 })
			if int64(hi-lo) != n {
				continue
			}
			targets = alloc.Grains[lo:hi]
			how = fmt.Sprintf("the %d slots between %s and %s match the %d grains the guest's allocation map says are written between them", n, bound(g1, last), bound(g2, last), n)
		default:
			continue
		}
		ok := true
		for j, g := range targets {
			s, nonZero := bySlot[k1+1+int64(j)]
			if !open(g) || (nonZero && s.claims) {
				// A decided grain, or a slot whose own structures did not
				// prove this grain: the interval is not what order says.
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for j, g := range targets {
			k := k1 + 1 + int64(j)
			s, nonZero := bySlot[k]
			if !nonZero {
				inst.grains.set(uint64(g), &Grain{Status: Zero, Evidence: []string{EvOrder}, Reason: "its slot in write order holds zeros: " + how})
				placed[k] = g
				continue
			}
			setSlot(inst, view, first, gb, uint64(g), s, EvOrder, how)
			placed[k] = g
		}
		if how != "" && int64(len(targets)) < g2-g1-1 {
			for g := g1 + 1; g < g2; g++ {
				if j := sort.Search(len(targets), func(j int) bool { return targets[j] >= g }); (j == len(targets) || targets[j] != g) && open(g) {
					inst.grains.set(uint64(g), &Grain{Status: Zero, Evidence: []string{EvOrder}, Reason: "no slot in write order holds it (the guest never wrote it): " + how})
				}
			}
		}
	}
}

// bound names one side of a write-order bracket.
func bound(g, end int64) string {
	switch g {
	case -1:
		return "the start of the grain area"
	case end:
		return "the end of the file (its host map's size)"
	}
	return fmt.Sprintf("the slot of grain %d", g)
}

// orderProblem sorts the proven (slot, grain) points by slot and says why
// they do not show write order, or "" if they do: enough of them, grains
// rising with slots, and room between every two for the slots between.
func orderProblem(points [][2]int64) string {
	sort.Slice(points, func(i, j int) bool { return points[i][0] < points[j][0] })
	if len(points) < minOrderPoints {
		return fmt.Sprintf("%d proven grains, %d needed", len(points), minOrderPoints)
	}
	for i := 1; i < len(points); i++ {
		if points[i][1] <= points[i-1][1] {
			return fmt.Sprintf("slot %d holds grain %d but slot %d holds grain %d", points[i-1][0], points[i-1][1], points[i][0], points[i][1])
		}
		if points[i][0]-points[i-1][0] > points[i][1]-points[i-1][1] {
			return fmt.Sprintf("%d slots lie between the slots of grains %d and %d, which have only %d grains between them", points[i][0]-points[i-1][0]-1, points[i-1][1], points[i][1], points[i][1]-points[i-1][1]-1)
		}
	}
	return ""
}

// maxUnplacedRuns bounds the unplaced runs listed in a report.
const maxUnplacedRuns = 4096

// unplacedRuns lists the non-zero slots nothing placed, up to the last
// proven slot; the slots past it are only counted (the grain area's end is
// not known: they may be another file's bytes).
func unplacedRuns(slots []slot, placed map[int64]int64, points [][2]int64, imgOf map[int64]int64, first, gb int64) (runs []Unplaced, inside, trailing int64) {
	last := int64(-1)
	for _, p := range points {
		last = max(last, p[0])
	}
	for _, s := range slots {
		if _, ok := placed[s.k]; ok {
			continue
		}
		if s.k > last {
			trailing++
			continue
		}
		inside++
		img := imgOf[s.k]
		if n := len(runs); n > 0 && runs[n-1].FileOffset+runs[n-1].Grains*gb == first+s.k*gb && runs[n-1].ImageOffset+runs[n-1].Grains*gb == img {
			runs[n-1].Grains++
			continue
		}
		if len(runs) < maxUnplacedRuns {
			runs = append(runs, Unplaced{FileOffset: first + s.k*gb, ImageOffset: img, Grains: 1})
		}
	}
	return runs, inside, trailing
}

// metadataFraction counts the grains expected to hold guest metadata and
// how many of them are now placed.
func metadataFraction(inst *Instance, loc *fsprobe.Locator) (total, placed int64) {
	for _, g := range loc.MetadataGrains() {
		total++
		if gr := inst.grains.at(uint64(g)); gr != nil && gr.Status == Placed {
			placed++
		}
	}
	return total, placed
}
