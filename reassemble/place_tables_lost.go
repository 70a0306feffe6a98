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
// virtual grains. The stages: read the slots and locate their guest
// structures (slotScan), take the slots that prove their grain as anchors
// (structures, then file tails), place them, and, where write order is
// shown, the slots between them (orderByPoints).
func placeByAnchors(inst *Instance, view *fileView, x *hitIndex, owner map[uint32]uint64) {
	sc := newSlotScan(inst, view, x, owner)
	if sc == nil || !sc.learn() {
		return
	}
	sc.locate()
	contradicted, ambiguous := sc.claim()
	if inst.contiguousOnly() && contradicted > 0 {
		// Slots whose own structures disagree are not one grain of this
		// disk: the contiguous assumption has run into other bytes (a
		// fragment's end), and no slot is sure to be this file's.
		inst.Notes = append(inst.Notes, fmt.Sprintf("grain tables lost: %d slots hold guest structures that disagree with each other, so the file is not contiguous where assumed and no host map says where it lies: nothing is placed from its slots", contradicted))
		return
	}
	sc.claimByTails()
	anchors, conflicts := sc.anchors()
	unordered := sc.unordered(anchors)
	if unordered {
		anchors = slices.DeleteFunc(anchors, func(a slotAnchor) bool { return sc.slots[a.idx[0]].facts < minUnorderedFacts })
	}
	sc.placeAnchors(anchors)
	inst.Notes = append(inst.Notes, fmt.Sprintf("grain tables lost: %d non-zero grain slots scanned; %d placed by their own guest structures; %d slots whose structures disagree, %d that could lie at several grains, %d grains claimed by slots with different bytes",
		len(sc.slots), len(sc.placed), contradicted, ambiguous, conflicts))
	if !unordered {
		sc.placeByOrder()
	}
	inst.Unplaced, inst.UnplacedGrains, inst.TrailingSlots = unplacedRuns(sc.slots, sc.placed, sc.points, sc.imgOf, sc.first, sc.gb)
	inst.MetadataGrains, inst.MetadataPlaced = metadataFraction(inst, sc.loc)
}

// slotScan is the state of last-resort placement over one file's grain
// slots.
type slotScan struct {
	inst      *Instance
	view      *fileView
	x         *hitIndex
	gb        int64
	grains    uint64
	first     int64           // file offset of slot 0 (the grain area's start)
	count     int64           // slots read at most
	tableSlot map[int64]int64 // slot → virtual grain, for slots a surviving table places
	buf       []byte
	scanned   int64 // slots before it were all read
	loc       *fsprobe.Locator
	slots     []slot
	imgOf     map[int64]int64 // slot → image offset
	claimants map[int64][]int // grain → indexes in slots of the slots that prove it
	placed    map[int64]int64 // slot → grain, every placement
	points    [][2]int64      // (slot, grain) proven: anchors and table-placed slots
}

// newSlotScan sets the scan up, or returns nil when the file has no grain
// area to read.
func newSlotScan(inst *Instance, view *fileView, x *hitIndex, owner map[uint32]uint64) *slotScan {
	h := inst.Header
	gb := h.GrainBytes()
	grains := h.Grains()
	first := int64(h.OverHead) * vmdk.SectorSize
	if h.OverHead == 0 || gb <= 0 {
		return nil
	}
	// A sparse file holds each grain at most once: no more slots than the
	// disk has grains are read, however far the mapped range runs.
	count := min((view.size()-first)/gb, maxAnchorSlots, int64(grains))
	if count <= 0 {
		return nil
	}
	sc := &slotScan{inst: inst, view: view, x: x, gb: gb, grains: grains, first: first, count: count,
		tableSlot: map[int64]int64{}, buf: make([]byte, gb), imgOf: map[int64]int64{}, claimants: map[int64][]int{}, placed: map[int64]int64{}}
	for sec, g := range owner {
		if gr := inst.grains.at(g); gr != nil && gr.Status == Placed && (int64(sec)*vmdk.SectorSize-first)%gb == 0 {
			sc.tableSlot[(int64(sec)*vmdk.SectorSize-first)/gb] = int64(g)
		}
	}
	return sc
}

// open reports whether grain g is one last-resort placement may decide.
func (sc *slotScan) open(g int64) bool {
	return g >= 0 && uint64(g) < sc.grains && lostByTable(sc.inst.grains.at(uint64(g)))
}

// each calls fn for every non-zero slot no table owns, up to the first
// slot holding another VMDK's structures (the file cannot go on there).
func (sc *slotScan) each(fn func(k, img int64, b []byte)) {
	for k := int64(0); k < sc.count; k++ {
		sc.scanned = k
		if _, owned := sc.tableSlot[k]; owned {
			continue
		}
		off := sc.first + k*sc.gb
		if _, err := sc.view.ReadAt(sc.buf, off); err != nil {
			return
		}
		if entropy.Zero(sc.buf) {
			continue
		}
		img, _ := sc.view.imageOffset(off, sc.gb)
		if why := foreignAt(sc.x, sc.inst, img, sc.gb, sc.buf, false); why != "" {
			return
		}
		fn(k, img, sc.buf)
	}
	sc.scanned = sc.count
}

// learn gives the Locator the guest's geometry from the slots holding the
// structures the carve recorded (partition tables, boot sectors, $MFT
// record 0, primary superblocks): a read of a few slots, not a pass over
// the file. It reports whether placement goes on.
func (sc *slotScan) learn() bool {
	inst := sc.inst
	sc.loc = fsprobe.NewLocator(sc.gb, int64(inst.Header.Capacity)*vmdk.SectorSize)
	for _, k := range grainsHolding(inst, sc.x.geometry, sc.first, sc.gb, sc.count) {
		if _, err := sc.view.ReadAt(sc.buf, sc.first+k*sc.gb); err == nil && !entropy.Zero(sc.buf) {
			sc.loc.Learn(sc.buf)
		}
	}
	sc.loc.Prepare()
	if inst.headless && sc.loc.Volumes() != 1 {
		// A file found from one guest volume's structure alone: slots that
		// show other volumes too are not sure to be one file's.
		inst.Notes = append(inst.Notes, fmt.Sprintf("the slots show %d guest volumes, not the one this file was found from: nothing is placed", sc.loc.Volumes()))
		return false
	}
	return true
}

// locate reads every slot and locates its guest structures.
func (sc *slotScan) locate() {
	claimsOf := map[int][]fsprobe.Claim{} // by index in slots
	sc.each(func(k, img int64, b []byte) {
		if claims := sc.loc.Locate(b); len(claims) > 0 {
			claimsOf[len(sc.slots)] = claims
		}
		sc.slots = append(sc.slots, slot{k: k, hash: xxhash.Sum64(b)})
		sc.imgOf[k] = img
	})
	// Some structures are located through records found in any grain
	// (a directory's, the journal's): candidates once all were seen.
	for i, claims := range claimsOf {
		s := &sc.slots[i]
		s.claims, s.grains, s.what, s.facts = true, sc.loc.Candidates(claims), fsprobe.Describe(claims), len(claims)
		if len(s.grains) == 0 && !slices.ContainsFunc(claims, sc.loc.Possible) {
			// Nothing here can lie at any grain of this disk: not its
			// bytes (noise, another disk), which proves nothing.
			s.claims = false
		}
	}
	for _, n := range sc.loc.Notes() {
		sc.inst.Notes = append(sc.inst.Notes, "guest: "+n)
	}
}

// claim makes every slot whose structures allow one grain a claimant of
// it, and counts the slots whose structures allow none (contradicted) or
// several (ambiguous).
func (sc *slotScan) claim() (contradicted, ambiguous int) {
	for i, s := range sc.slots {
		switch {
		case !s.claims:
		case len(s.grains) == 0:
			contradicted++
		case len(s.grains) > 1:
			ambiguous++
		default:
			sc.claimants[s.grains[0]] = append(sc.claimants[s.grains[0]], i)
		}
	}
	return contradicted, ambiguous
}

// claimByTails: a slot with no structure of its own that holds, at their
// places within a grain, the last blocks of minTailAnchors guest files
// that all lie in one grain (bytes ending where each file's size says,
// zeros after) is that grain's claimant (a data anchor).
func (sc *slotScan) claimByTails() {
	tails, places := tailsByShape(sc.loc.Tails(), sc.gb)
	if len(tails) == 0 {
		return
	}
	for i := range sc.slots {
		sl := &sc.slots[i]
		if sl.claims {
			continue
		}
		if _, err := sc.view.ReadAt(sc.buf, sc.first+sl.k*sc.gb); err != nil {
			continue
		}
		if g, n := tailGrain(sc.buf, tails, places, sc.gb); n >= minTailAnchors {
			sl.what, sl.facts = fmt.Sprintf("the last blocks of %d guest files lie in it where their sizes say", n), n
			sc.claimants[g] = append(sc.claimants[g], i)
		}
	}
}

// slotAnchor is a grain proven by the slots (identical bytes) that claim
// it.
type slotAnchor struct {
	g   int64
	idx []int
}

// anchors returns the grains claimed only by slots of one content and
// still open, in grain order, and counts the grains claimed by slots with
// different bytes.
func (sc *slotScan) anchors() (anchors []slotAnchor, conflicts int) {
	for k, g := range sc.tableSlot {
		sc.points = append(sc.points, [2]int64{k, g})
	}
	for g, idx := range sc.claimants {
		same := true
		for _, i := range idx[1:] {
			same = same && sc.slots[i].hash == sc.slots[idx[0]].hash
		}
		if !same {
			conflicts++
			continue
		}
		if sc.open(g) {
			anchors = append(anchors, slotAnchor{g, idx})
		}
	}
	sort.Slice(anchors, func(i, j int) bool { return anchors[i].g < anchors[j].g })
	return anchors, conflicts
}

// unordered reports whether write order is not shown: without a host map
// a slot is one grain of this file only where the file is contiguous, and
// nothing says where it is. The proven slots must show it: at least
// minOrderPoints of them, every one in write order with room for the
// slots between. A file written in guest order, or running into other
// bytes, places only its anchors.
func (sc *slotScan) unordered(anchors []slotAnchor) bool {
	if !sc.inst.contiguousOnly() {
		return false
	}
	all := append([][2]int64(nil), sc.points...)
	for _, a := range anchors {
		all = append(all, [2]int64{sc.slots[a.idx[0]].k, a.g})
	}
	why := orderProblem(all)
	if why == "" {
		return false
	}
	// A slot whose own structures name its grain is that grain wherever
	// it lies (fsprobe); only write order needs the slots to be this
	// file's, in order.
	sc.inst.Notes = append(sc.inst.Notes, fmt.Sprintf("grain tables lost and no host map: %d slots locate themselves, but %s, so write order is not shown: only the slots whose own structures name their grain are placed", len(anchors), why))
	return true
}

// placeAnchors places the anchors' grains from their slots.
func (sc *slotScan) placeAnchors(anchors []slotAnchor) {
	for _, a := range anchors {
		s := sc.slots[a.idx[0]]
		reason := Reason{Code: ReasonSelfLocated, Detail: s.what}
		if len(a.idx) > 1 {
			reason.Other = int64(len(a.idx))
		}
		setSlot(sc.inst, sc.view, sc.first, sc.gb, uint64(a.g), s, EvFSProbe, reason)
		sc.placed[s.k] = a.g
		sc.points = append(sc.points, [2]int64{s.k, a.g})
	}
}

// placeByOrder places the slots between proven ones by write order
// (orderByPoints), within the part of the file that was scanned.
func (sc *slotScan) placeByOrder() {
	inst := sc.inst
	anchored := len(sc.placed)
	for k, g := range sc.placed {
		if _, err := sc.view.ReadAt(sc.buf, sc.first+k*sc.gb); err == nil {
			sc.loc.Anchored(g, sc.buf)
		}
	}
	var inScan [][2]int64
	for _, p := range sc.points {
		if p[0] < sc.scanned {
			inScan = append(inScan, p)
		}
	}
	sc.points = inScan
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
	if m := inst.HostMap; m != nil && m.Complete && sc.scanned == sc.count && (m.Size-sc.first)%sc.gb == 0 && (m.Size-sc.first)/sc.gb == sc.count {
		tail = [][2]int64{{sc.count, int64(sc.grains)}}
	}
	ends := [2][][2]int64{head, tail}
	orderByPoints(inst, sc.view, sc.loc, sc.slots, sc.points, ends, sc.placed, sc.open, sc.first, sc.gb)
	inst.Notes = append(inst.Notes, fmt.Sprintf("%d grains placed by write order between proven grains", len(sc.placed)-anchored))
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
func setSlot(inst *Instance, view *fileView, first, gb int64, g uint64, s slot, ev string, reason Reason) {
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
				inst.grains.set(uint64(g), &Grain{Status: Zero, Evidence: []string{EvOrder}, Reason: Reason{Code: ReasonWriteOrderZero, Detail: how}})
				placed[k] = g
				continue
			}
			setSlot(inst, view, first, gb, uint64(g), s, EvOrder, Reason{Code: ReasonWriteOrder, Detail: how})
			placed[k] = g
		}
		if how != "" && int64(len(targets)) < g2-g1-1 {
			for g := g1 + 1; g < g2; g++ {
				if j := sort.Search(len(targets), func(j int) bool { return targets[j] >= g }); (j == len(targets) || targets[j] != g) && open(g) {
					inst.grains.set(uint64(g), &Grain{Status: Zero, Evidence: []string{EvOrder}, Reason: Reason{Code: ReasonWriteOrderUnwritten, Detail: how}})
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
