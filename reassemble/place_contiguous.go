package reassemble

import (
	"fmt"
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/fingerprint"
	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/reassemble/damage"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Fingerprints gives the carve's per-block fingerprints (fingerprint.Of).
type Fingerprints interface {
	At(off int64) (uint64, bool)
}

// blockHasher is a Fingerprints that says which hash its fingerprints
// were made with (fingerprint.Hash when it does not).
type blockHasher interface {
	BlockHash(block []byte) uint64
}

// hashLookup is a Fingerprints that gives a block's fingerprint without
// its RandomBit, and without the cost of telling it (pipeline.Fingerprints
// tests randomness by reading the block from the image).
type hashLookup interface {
	HashAt(off int64) (uint64, bool)
}

// hashAt returns how to read fp's fingerprints without their RandomBit.
func hashAt(fp Fingerprints) func(int64) (uint64, bool) {
	if h, ok := fp.(hashLookup); ok {
		return h.HashAt
	}
	return func(off int64) (uint64, bool) {
		v, ok := fp.At(off)
		return v &^ fingerprint.RandomBit, ok
	}
}

// blockHash returns the hash to look a block up among fp with.
func blockHash(fp Fingerprints) func([]byte) uint64 {
	if h, ok := fp.(blockHasher); ok {
		return h.BlockHash
	}
	return fingerprint.Hash
}

// candidate is a grain a trusted grain table places at a file sector.
type candidate struct {
	grain  uint64
	sector uint32
	which  string // "primary" or "redundant" table
	both   bool   // both table copies name this sector
}

// placeCandidates checks every table-placed grain's source and decides it.
//
// First the damage policy (damage.go) looks for intermittent encryption
// in the file: grains on an accepted lattice are Damaged, never read as
// the file's. How random a grain looks decides nothing else.
//
// Where the file is mapped only by the contiguous assumption (no host
// filesystem map), the assumption holds until a structural fact says
// otherwise. Grains are checked in file order; the assumption ends at the
// first grain whose source is impossible for it:
//
//   - all zero, where the writer never allocates a zero grain (qemu-img
//     and our writer; VMware Workstation does, so there it is only noted);
//   - holding another VMDK's header or compressed grain records;
//   - missing a structure the guest's own partition table, boot sector
//     or superblock (placed before it) predicts at that virtual address.
//     A missing structure in a chunk that reads random is first offered
//     to the damage policy as proof of encryption; only if no lattice
//     takes it does it end the assumption.
//
// A file found broken is fragmented, and the break only shows where the
// bytes first betray it, so then no grain at all rests on the assumption
// (see the end of the function). A file with a host map is read through
// the map and only the damage policy applies.
//
// predicted lists the VMDK's own structures (grain directories and
// tables) by file offset: one that reads random is structural proof for
// the damage policy.
//
// It returns the file offset where the contiguous assumption broke, or -1
// (also for a file mapped otherwise): there fragment following
// (map_follow.go) may find where the rest of the file lies.
func placeCandidates(inst *Instance, view *fileView, cands []candidate, x *hitIndex, opts Options, zero *Grain, predicted []structureAt) int64 {
	sort.Slice(cands, func(i, j int) bool { return cands[i].sector < cands[j].sector })
	h := inst.Header
	fileEnd := int64(0) // past the last grain the tables name: the file's used extent
	if len(cands) > 0 {
		fileEnd = int64(cands[len(cands)-1].sector)*vmdk.SectorSize + h.GrainBytes()
	}
	dmg := newDamagePolicy(view, opts.Fingerprints, min(view.size(), fileEnd), inst.flat, opts.workers())
	var guest []structureAt
	if dmg != nil {
		guest = guestPredictions(inst, view, cands)
		if !inst.contiguousOnly() {
			guest = append(guest, hostedTails(inst, view, x, cands)...)
		}
	}
	preds := judgePredicted(view, opts.Fingerprints, dmg, slices.Concat(predicted, guest))
	for _, q := range preds {
		if q.Outcome == damage.Destroyed {
			dmg.Prove(q.Off, q.What)
		}
	}
	dmg.Decide()
	w := &contiguityWalk{inst: inst, view: view, x: x, dmg: dmg, zero: zero,
		contiguous: inst.contiguousOnly(), zeroIsProof: !vmwareWritten(inst.Descriptor), brokenAt: -1,
		guest: &guestProbe{diskSize: int64(h.Capacity) * vmdk.SectorSize}}
	w.guest.add(h.GrainBytes(), inst.expect)
	for _, c := range cands {
		w.decide(c)
	}
	if w.zeroGrains > 0 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d allocated grains hold zeros: VMware's writers store grains the guest zeroed, so they do not end the contiguous assumption", w.zeroGrains))
	}
	w.settleDeferred(cands)
	if !w.contiguous || w.brokenAt < 0 {
		// (Where the contiguous assumption broke, the bytes it read are
		// not known to be the file's: keepOnlyProven decides them.)
		markDestroyed(inst, view, opts.Fingerprints, dmg, cands, preds, int64(h.OverHead)*vmdk.SectorSize, min(view.size(), fileEnd), h.GrainBytes())
	}
	reportDamage(inst, dmg, cands)
	if !w.contiguous {
		return -1
	}
	// A file found broken is fragmented, and nothing says where its first
	// fragment ends: the break is only where the bytes first betray it,
	// and the fragment may have ended several clusters before (the bytes
	// between can be another file's, looking as plausible as ours). So
	// once a break is seen, no grain rests on the contiguous assumption
	// alone. The same holds when the grains the tables name run past the
	// next VMDK header: the file cannot be contiguous there.
	brokenAt, why := w.brokenAt, w.breakReason
	if brokenAt < 0 && len(cands) > 0 && inst.cutByHeader {
		lastEnd := int64(cands[len(cands)-1].sector)*vmdk.SectorSize + h.GrainBytes()
		if lastEnd > inst.size {
			brokenAt = inst.size
			why = fmt.Sprintf("the tables name grains up to file offset %d but another VMDK header lies at file offset %d", lastEnd, inst.size)
		}
	}
	if brokenAt < 0 {
		return -1
	}
	keepOnlyProven(inst, view, cands, brokenAt, why)
	return brokenAt
}

// contiguityWalk is placeCandidates' state while it decides a file's
// table-placed grains in file order.
type contiguityWalk struct {
	inst  *Instance
	view  *fileView
	x     *hitIndex
	dmg   *damage.Policy
	guest *guestProbe
	zero  *Grain // the decision for an allocated grain that reads zeros
	// contiguous: mapped by the contiguous assumption alone (no host map);
	// zeroIsProof: the writer never allocates a zero grain.
	contiguous, zeroIsProof bool
	brokenAt                int64 // where the contiguous assumption ended (-1: not yet)
	breakReason             string
	deferred                []contradiction
	zeroGrains              int // allocated zero grains where the writer may store them
	// buf holds the grain being decided: decide and what it calls keep
	// no part of it (the expectations guestProbe adds copy what they
	// keep), so one buffer serves every grain.
	buf []byte
}

// A contradiction is a guest structure missing inside a random chunk,
// decided once the damage policy has seen them all (settleDeferred).
type contradiction struct {
	grain    uint64
	off, img int64
	missed   fsprobe.Expectation // what the guest predicts there
}

// decide decides one grain.
func (w *contiguityWalk) decide(c candidate) {
	inst, h := w.inst, w.inst.Header
	fileOff := int64(c.sector) * vmdk.SectorSize
	if w.brokenAt >= 0 {
		inst.grains.set(c.grain, &Grain{Status: Missing, Reason: Reason{Code: ReasonPastContiguous, Offset: fileOff, Detail: w.breakReason}})
		return
	}
	n := grainLength(h, c.grain)
	if l, ok := w.dmg.On(fileOff, n); ok {
		inst.grains.set(c.grain, damagedGrain(l, fileOff))
		return
	}
	if int64(cap(w.buf)) < n {
		w.buf = make([]byte, n)
	}
	gr, imgOff, buf := readSparseGrain(inst, w.view, c, w.buf[:n])
	if gr.Status == Missing {
		inst.grains.set(c.grain, gr)
		return
	}
	why := ""
	if w.contiguous {
		why = foreignAt(w.x, inst, imgOff, n, buf, w.zeroIsProof)
		if why == "" {
			why = misplacedIn(inst.misplaced, fileOff, n)
		}
		if why == "" && !w.zeroIsProof && entropy.Zero(buf) {
			w.zeroGrains++
		}
	}
	if why == "" {
		if e, missed := w.guest.check(c.grain, h.GrainBytes(), buf); missed {
			g := missedWhy(e)
			switch {
			case w.dmg.RandomAt(fileOff) || w.dmg.RandomAt(fileOff+n-1):
				w.dmg.Prove(fileOff, g)
				w.deferred = append(w.deferred, contradiction{c.grain, fileOff, imgOff, e})
			case w.contiguous:
				why = g
			case inst.anchoredAt(fileOff):
				// The anchors put these bytes here, and the guest
				// says they are not what lies here: not placed.
				inst.grains.set(c.grain, &Grain{Status: Missing, Reason: Reason{Code: ReasonAnchoredMapWrong, Detail: g}})
				return
			}
		}
	}
	if why != "" {
		w.brokenAt, w.breakReason = fileOff, why
		inst.Notes = append(inst.Notes, fmt.Sprintf("the contiguous mapping breaks at file offset %d (image offset %d): %s", fileOff, imgOff, why))
		inst.addBreak(fileOff, imgOff, why)
		inst.cutFragments(fileOff)
		inst.grains.set(c.grain, &Grain{Status: Missing, Reason: Reason{Code: ReasonContiguityBroken, Detail: why}})
		return
	}
	if gr.Status == Zero {
		inst.grains.setRange(c.grain, c.grain+1, w.zero)
		return
	}
	inst.grains.set(c.grain, gr)
}

// settleDeferred decides the guest contradictions found in random chunks
// once the damage policy has seen them all: grains on the lattices they
// proved are damaged after all; a contradiction no lattice explains is
// destroyed data in a host-mapped file, and the end of the contiguous
// assumption otherwise.
func (w *contiguityWalk) settleDeferred(cands []candidate) {
	inst, h := w.inst, w.inst.Header
	if len(w.deferred) > 0 && w.dmg.Decide() {
		for _, c := range cands {
			fileOff := int64(c.sector) * vmdk.SectorSize
			if l, ok := w.dmg.On(fileOff, grainLength(h, c.grain)); ok {
				if gr := inst.grains.one[c.grain]; gr != nil && (gr.Status == Placed || gr.Status == Zero) {
					inst.grains.set(c.grain, damagedGrain(l, fileOff))
				}
			}
		}
	}
	for _, d := range w.deferred {
		if _, ok := w.dmg.On(d.off, 1); ok || (w.brokenAt >= 0 && d.off >= w.brokenAt) {
			continue
		}
		if !w.contiguous {
			// Mapped by the host: the bytes are the file's, and the
			// structure the guest put here is gone from them. That grain
			// is proven destroyed, even on no lattice.
			if gr := inst.grains.one[d.grain]; gr != nil && (gr.Status == Placed || gr.Status == Zero) {
				inst.grains.set(d.grain, &Grain{Status: Damaged, Reason: Reason{Code: ReasonStructureDestroyed, Offset: d.off, Detail: fmt.Sprintf("%s (virtual offset %d)", d.missed.Desc, d.missed.Offset)}})
			}
			continue
		}
		// A structure the guest predicts is missing, in a random chunk no
		// lattice explains: the bytes are not the file's.
		w.brokenAt, w.breakReason = d.off, missedWhy(d.missed)
		inst.Notes = append(inst.Notes, fmt.Sprintf("the contiguous mapping breaks at file offset %d (image offset %d): %s", d.off, d.img, w.breakReason))
		inst.addBreak(d.off, d.img, w.breakReason)
		inst.cutFragments(d.off)
		break
	}
}

// reportDamage keeps the damage policy's state and report with the
// instance, counting the grains it left damaged.
func reportDamage(inst *Instance, dmg *damage.Policy, cands []candidate) {
	damaged := uint64(0)
	for _, c := range cands {
		if gr := inst.grains.one[c.grain]; gr != nil && gr.Status == Damaged {
			damaged++
		}
	}
	inst.damage = dmg
	inst.Damage = dmg.Report(damaged)
	if inst.Damage != nil && len(inst.Damage.Lattices) > 0 {
		inst.Notes = append(inst.Notes, inst.Damage.Decision)
	}
}

// keepOnlyProven: in a file found broken at brokenAt (for why), no grain
// rests on the contiguous assumption alone: the grains placed stay only
// where their own guest structures prove them (selfProven), and never the
// last one before the break. cands are in file order.
func keepOnlyProven(inst *Instance, view *fileView, cands []candidate, brokenAt int64, why string) {
	h := inst.Header
	reason := Reason{Code: ReasonFragmentedNoMap, Detail: why}
	inst.Notes = append(inst.Notes, reason.String())
	var tentative []uint64
	for _, c := range cands {
		if gr := inst.grains.one[c.grain]; gr != nil && gr.Status == Placed {
			tentative = append(tentative, c.grain)
		}
	}
	// The fragment's end lies at a host cluster boundary somewhere before
	// the break: the last grain placed before it may straddle that end,
	// so its own structures cannot vouch for it (cands are in file order).
	for i := len(cands) - 1; i >= 0; i-- {
		c := cands[i]
		if int64(c.sector)*vmdk.SectorSize >= brokenAt {
			continue
		}
		if gr := inst.grains.one[c.grain]; gr != nil && gr.Status == Placed {
			inst.grains.set(c.grain, &Grain{Status: Missing, Reason: Reason{Code: ReasonStraddlesBreak}})
			tentative = slices.DeleteFunc(tentative, func(g uint64) bool { return g == c.grain })
			break
		}
	}
	proven := selfProven(inst, view, tentative)
	for _, g := range tentative {
		if what, ok := proven[g]; ok {
			gr := *inst.grains.one[g]
			gr.Evidence = append(slices.Clone(gr.Evidence), EvFSProbe)
			gr.Reason = Reason{Code: ReasonSelfProven, Detail: what}
			inst.grains.set(g, &gr)
			continue
		}
		inst.grains.set(g, &Grain{Status: Missing, Reason: reason})
	}
	if len(proven) > 0 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d grains kept: their own guest structures (fsprobe) prove the bytes the contiguous assumption read for them", len(proven)))
	}
	inst.cutFragments(int64(h.OverHead) * vmdk.SectorSize)
}

// misplacedIn says why file bytes [off, off+n) are not the file's when a
// structure in ms lies there, or "".
func misplacedIn(ms []structureAt, off, n int64) string {
	for _, m := range ms {
		if m.off < off+n && m.off+m.n > off {
			return m.what
		}
	}
	return ""
}

// structureAt is a structure the VMDK's own metadata predicts at a file
// offset (a grain directory or table), for the damage policy.
type structureAt struct {
	off, n int64
	what   string
	// check, for a structure of the guest (a file's last block, an
	// fsprobe.Expectation): whether the bytes read there hold it (match)
	// or cannot (mismatch), for judgePredicted.
	check func(b []byte) (match, mismatch bool)
}

// blocksRandom reports whether every 4 KiB block holding [off, off+n) of
// the file reads random in the carve's fingerprints.
func blocksRandom(view *fileView, fp Fingerprints, off, n int64) bool {
	if fp == nil || n <= 0 {
		return false
	}
	bc := newBlockClassifier(view, fp)
	for b := off / fingerprint.BlockSize * fingerprint.BlockSize; b < off+n; b += fingerprint.BlockSize {
		if bc.class(b, fingerprint.BlockSize) != damage.Random {
			return false
		}
	}
	return true
}

// damagedGrain is the decision for a grain on an accepted lattice.
func damagedGrain(l *Lattice, fileOff int64) *Grain {
	return &Grain{Status: Damaged, Reason: Reason{Code: ReasonEncryptionLattice, Offset: fileOff, Detail: fmt.Sprintf("%s (%s)", l, l.Proof)}}
}

// vmwareWritten reports whether a descriptor is VMware's own (Workstation,
// ESXi): they write ddb.longContentID, qemu-img and our writer do not.
// VMware's writers allocate grains the guest zeroed, so there an
// allocated zero grain is no sign that the bytes are not the file's.
func vmwareWritten(d *vmdk.Descriptor) bool {
	if d == nil {
		return false
	}
	_, ok := d.DDB["ddb.longContentID"]
	return ok
}

// selfProven returns, of the grains a table placed at bytes read on the
// contiguous assumption, those whose self-locating guest structures
// (fsprobe.Locator) all name that very grain, from its first host cluster
// to its last, with what they are. The guest's geometry is learned from
// the same grains.
func selfProven(inst *Instance, view *fileView, grains []uint64) map[uint64]string {
	if len(grains) == 0 {
		return nil
	}
	h := inst.Header
	loc := fsprobe.NewLocator(h.GrainBytes(), int64(h.Capacity)*vmdk.SectorSize)
	read := func(fn func(g uint64, b []byte)) {
		for _, g := range grains {
			gr := inst.grains.one[g]
			if gr == nil || gr.Source == nil || gr.Source.Compressed {
				continue
			}
			b := make([]byte, grainLength(h, g))
			if _, err := view.ReadAt(b, gr.Source.FileOffset); err == nil && xxhash.Sum64(b) == gr.Hash {
				fn(g, b)
			}
		}
	}
	claims := locateGrains(loc,
		func(fn func([]byte, int64)) { read(func(g uint64, b []byte) { fn(b, int64(g)*h.GrainBytes()) }) },
		func(fn func(int64, []byte)) { read(func(g uint64, b []byte) { fn(int64(g), b) }) })
	out := map[uint64]string{}
	for g, c := range claims {
		if cands := loc.Candidates(c); len(cands) == 1 && cands[0] == g && spansGrain(c, grainLength(h, uint64(g))) {
			out[uint64(g)] = fsprobe.Describe(c)
		}
	}
	return out
}

// spansGrain reports whether claims lie in both the first and the last
// host cluster of a grain of n bytes: a structure proves the cluster it
// lies in, and a file's piece may end at any cluster inside the grain
// (an MBR proves grain 0's first sector, not the 60 KiB after it).
func spansGrain(claims []fsprobe.Claim, n int64) bool {
	first, last := false, false
	for _, c := range claims {
		first = first || int64(c.At) < clusterBytes
		last = last || int64(c.At) >= n-clusterBytes
	}
	return first && last
}

// firstStored is the image offset of the first piece that is not a hole.
func firstStored(ps []Piece) int64 {
	for _, p := range ps {
		if p.ImageOffset >= 0 {
			return p.ImageOffset
		}
	}
	return -1
}

// foreignAt says why the bytes at an image range cannot be this
// instance's grain, or "" if nothing says so.
func foreignAt(x *hitIndex, inst *Instance, imgOff, n int64, buf []byte, zeroIsProof bool) string {
	if zeroIsProof && entropy.Zero(buf) && !inst.flat {
		return "an all-zero grain where the table says an allocated grain lies (writers never allocate zero grains)"
	}
	i := sort.Search(len(x.foreign), func(i int) bool { return x.foreign[i].Offset >= imgOff })
	for ; i < len(x.foreign) && x.foreign[i].Offset < imgOff+n; i++ {
		f := x.foreign[i]
		if f.Offset == inst.HeaderOffset {
			continue
		}
		return fmt.Sprintf("a %s at image offset %d", f.Kind, f.Offset)
	}
	return ""
}

// readSparseGrain reads a table-placed grain into buf (its length) and
// hashes it, returning buf filled. A grain whose bytes are not all in the
// image is missing.
func readSparseGrain(inst *Instance, view *fileView, c candidate, buf []byte) (*Grain, int64, []byte) {
	fileOff := int64(c.sector) * vmdk.SectorSize
	n := int64(len(buf))
	pieces, err := view.pieces(fileOff, n)
	if err != nil {
		return &Grain{Status: Missing, Reason: Reason{Code: ReasonTableEntryInvalid, Table: c.which, Offset: int64(c.sector), Detail: err.Error()}}, 0, nil
	}
	imgOff := pieces[0].ImageOffset
	if len(pieces) == 1 {
		pieces = nil
	} else {
		imgOff = -2 // several pieces: never a single hole
	}
	if _, err := view.ReadAt(buf, fileOff); err != nil {
		return &Grain{Status: Missing, Reason: Reason{Code: ReasonSectorUnreadable, Offset: int64(c.sector), Detail: err.Error()}}, 0, nil
	}
	if imgOff == -1 {
		// A hole of a sparse host file: the grain reads as zeros.
		return &Grain{Status: Zero, Evidence: []string{EvTable}, Reason: Reason{Code: ReasonHostHole}}, imgOff, buf
	}
	ev := EvTable
	if inst.flat {
		ev = EvFlat
	}
	gr := &Grain{Status: Placed, Evidence: append([]string{ev}, inst.linkEvidence(fileOff)...), Hash: xxhash.Sum64(buf), Copies: 1,
		Source: &Source{Instance: inst.ID, ImageOffset: imgOff, FileOffset: fileOff, Pieces: pieces}}
	if pieces != nil {
		gr.Source.ImageOffset = firstStored(pieces)
	}
	if c.which == "redundant" {
		gr.Reason = Reason{Code: ReasonRedundantTable}
	} else if c.both {
		gr.Reason = Reason{Code: ReasonTablesAgree}
	}
	if entropy.Zero(buf) {
		// Allocated but zero: reads as zeros either way.
		return &Grain{Status: Zero, Evidence: []string{ev}, Reason: Reason{Code: ReasonAllocatedZeros}}, imgOff, buf
	}
	return gr, imgOff, buf
}

// foreignKinds are structures that never lie inside a sparse extent's grain
// area at a sector boundary unless the file has ended there.
func isForeign(h *signatures.Hit) bool {
	switch h.Kind {
	case signatures.KindSparseHeader, signatures.KindCOWD, signatures.KindSESparse:
		return h.Verdict == signatures.Valid
	case signatures.KindGrainMarker:
		return h.Verdict == signatures.Valid
	}
	return false
}

// guestProbe checks grains placed on the contiguous assumption against
// what the guest's own structures, placed before them, predict. Pending
// predictions are kept by the grain that holds them, so each grain costs
// only its own.
type guestProbe struct {
	diskSize int64
	pending  map[int64][]fsprobe.Expectation // by grain number
}

func (p *guestProbe) add(grainBytes int64, es []fsprobe.Expectation) {
	if p.pending == nil {
		p.pending = make(map[int64][]fsprobe.Expectation)
	}
	for _, e := range es {
		if e.Offset >= 0 && e.Offset < p.diskSize {
			g := e.Offset / grainBytes
			p.pending[g] = append(p.pending[g], e)
		}
	}
}

// check returns the first expectation grain g's bytes contradict, if any
// (a soft one never counts). A grain that confirms an expectation adds
// what that implies (which may lie in this very grain).
func (p *guestProbe) check(g uint64, grainBytes int64, buf []byte) (missed fsprobe.Expectation, ok bool) {
	lo := int64(g) * grainBytes
	hi := lo + int64(len(buf))
	if g == 0 && len(buf) >= 512 {
		p.add(grainBytes, fsprobe.ExpectFromMBR(buf, p.diskSize))
	}
	for len(p.pending[int64(g)]) > 0 {
		queue := p.pending[int64(g)]
		delete(p.pending, int64(g))
		for _, e := range queue {
			if e.Offset < lo || e.Offset+int64(e.Len) > hi {
				continue // spans into the next grain: not checkable here
			}
			b := buf[e.Offset-lo : e.Offset-lo+int64(e.Len)]
			if !e.Match(b) {
				if !ok && !e.Soft {
					missed, ok = e, true
				}
				continue
			}
			if e.Then != nil {
				p.add(grainBytes, e.Then(b))
			}
		}
	}
	return missed, ok
}

// missedWhy says why a grain that does not hold what the guest predicts
// there contradicts the mapping that read it.
func missedWhy(e fsprobe.Expectation) string {
	return fmt.Sprintf("the guest's own structures expect %s at virtual offset %d, and this grain does not hold it", e.Desc, e.Offset)
}
