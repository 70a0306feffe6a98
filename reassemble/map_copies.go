package reassemble

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Copy anchors. Another file of the same virtual disk (a stream copy, a
// clone, another version) may hold, placed by its own tables or markers,
// the grains a followed file still misses. Each 4 KiB block of such a
// grain is a fact about the virtual disk; where the carve fingerprinted a
// block with the same xxhash, and the bytes agree, that image block is a
// candidate for the followed file's block at that virtual offset: an
// anchor like any other, voting for the shift of the piece it lies in. A
// block found at one place is a full anchor; at a few places, each is a
// tail-like candidate (weak); at more, it proves nothing.
//
// A run of grain records no stream took, as its lengths do not tell its
// stream, still names its LBAs and decodes to grains' bytes. Where only
// one stream could hold it (place_stream_runs.go, heldRuns), its blocks are
// candidates for that stream's peers, weak wherever they are found (the
// run may be a lost stream's of the same geometry), so a piece rests on
// them only where minWeakGrains grains agree on its shift. Where several
// streams could, its blocks vote for no shift: they only extend pieces
// their peers' own anchors found (two disks written in virtual order lay
// the same LBAs alike, so records of one line up with the other's file). Where random grains
// leave a stream's runs and a sparse copy's pieces without structures,
// the two corroborate each other: the pieces found by the records place
// the sparse copy's grains, which then attach the runs (attachOrphanRuns
// runs again after).

// Limits of copy anchors.
const (
	// maxCopyPlaces: a block found at more places than this (a pattern
	// many files hold) gives no anchor.
	maxCopyPlaces = 4
	// maxCopyBlocks bounds the copies' blocks looked up (24 bytes each
	// kept, for all files together).
	maxCopyBlocks = 1 << 22
)

// followInput is what placeSparse followed a file with, kept so the file
// can be followed again once its copies are placed.
type followInput struct {
	cands     []candidate
	predicted []structureAt
	zero      *Grain
	broken    int64
	tailScan  *tailScan // the last scan of the image for the file's tails (map_follow.go)
}

// refollowWithCopies follows again every sparse file that lost grains to
// unmapped file offsets, with anchors from the blocks of its copies' placed
// grains, and decides its grains again through the new map.
func refollowWithCopies(instances []*Instance, image io.ReaderAt, x *hitIndex, opts Options) {
	if opts.Fingerprints == nil || x.imageSize <= 0 {
		return
	}
	wb := &wantedBlocks{byHash: map[uint64][]wantedBlock{}, buf: make([]byte, 12+vmdk.MaxCompressedGrain(vmdk.MaxGrainSize*vmdk.SectorSize)),
		hash: blockHash(opts.Fingerprints)}
	var todo []*Instance
	held := heldRuns(instances, x)
	for _, inst := range instances {
		if inst.follow == nil {
			continue
		}
		h := inst.Header
		if inst.HeaderOffset%fingerprint.BlockSize != 0 || h.GrainBytes()%fingerprint.BlockSize != 0 {
			continue // the file's blocks are not on the fingerprints' grid
		}
		before := wb.n
		for _, c := range inst.follow.cands {
			wb.addFromCopies(instances, inst, c, image)
			wb.addFromHeldRecords(held, inst, c, image)
		}
		if wb.n > before {
			todo = append(todo, inst)
		}
	}
	if len(todo) == 0 {
		return
	}
	extra, clearInCopy := wb.anchors(wb.places(x, opts.Fingerprints), image)
	// Each file is followed again from its own anchors and decides only
	// its own grains: several at once.
	var g errgroup.Group
	g.SetLimit(opts.workers())
	for _, inst := range todo {
		if as := extra[inst]; len(as) > 0 {
			g.Go(func() error {
				followAgain(inst, as, clearInCopy[inst], image, x, opts)
				return nil
			})
		}
	}
	g.Wait()
}

// wantedBlocks are the blocks of grains a file lost whose bytes are known
// elsewhere (a copy's placed grain, a held stream record), by fingerprint.
// A block is kept by its full xxhash, not its bytes: the memory is bounded
// by maxCopyBlocks whatever the disks' sizes.
type wantedBlocks struct {
	byHash map[uint64][]wantedBlock
	n      int                 // blocks kept, at most maxCopyBlocks
	buf    []byte              // a grain's bytes, or a record's
	hash   func([]byte) uint64 // the fingerprints' block hash (fingerprint.Hash)
}

type wantedBlock struct {
	inst  *Instance
	file  int64  // file offset of the block in inst
	sum   uint64 // xxhash64 of the block
	clear bool   // a copy's block that does not read random
	weak  bool   // from a record no stream owns
	// extendOnly: from a run several streams could hold
	extendOnly bool
}

// lost reports whether the file's grain is still undecided or missing, and
// there is room for more blocks.
func (wb *wantedBlocks) lost(inst *Instance, g uint64) bool {
	gr := inst.grains.at(g)
	return (gr == nil || gr.Status == Missing) && wb.n < maxCopyBlocks
}

// add keeps the non-zero blocks of b, the bytes of the grain at file
// offset fileOff, as w says.
func (wb *wantedBlocks) add(b []byte, fileOff int64, w wantedBlock, clearIfPlain bool) {
	for k := int64(0); k+fingerprint.BlockSize <= int64(len(b)) && wb.n < maxCopyBlocks; k += fingerprint.BlockSize {
		blk := b[k : k+fingerprint.BlockSize]
		if fp := wb.hash(blk); fp != 0 {
			w.file, w.sum = fileOff+k, xxhash.Sum64(blk)
			w.clear = clearIfPlain && !entropy.RandomLooking(blk)
			wb.byHash[fp] = append(wb.byHash[fp], w)
			wb.n++
		}
	}
}

// addFromCopies keeps the blocks of candidate c's grain from the first
// copy of the disk that placed it from a proven source.
func (wb *wantedBlocks) addFromCopies(instances []*Instance, inst *Instance, c candidate, image io.ReaderAt) {
	if !wb.lost(inst, c.grain) {
		return
	}
	peerGrain(instances, inst, c.grain, func(p *Instance, pg *Grain) bool {
		if pg.Status != Placed || pg.Source == nil || !provenSource(pg) {
			return false
		}
		b, ok := grainData(image, p, c.grain, pg, wb.buf)
		if !ok {
			return false
		}
		wb.add(b, int64(c.sector)*vmdk.SectorSize, wantedBlock{inst: inst}, true)
		return true
	})
}

// addFromHeldRecords keeps the blocks of candidate c's grain from the
// records of unattached stream runs that carry its LBA.
func (wb *wantedBlocks) addFromHeldRecords(held map[*Instance][]heldRun, inst *Instance, c candidate, image io.ReaderAt) {
	if !wb.lost(inst, c.grain) {
		return
	}
	h := inst.Header
	n := grainLength(h, c.grain)
	for _, hr := range heldRecords(held, inst, c.grain*h.GrainSize) {
		m := hr.m
		if int64(m.Grain.DataBytes) != n || wb.n >= maxCopyBlocks {
			continue
		}
		// Read and checked as the emit would read the record.
		rec := &Grain{Hash: m.Grain.Hash, Source: &Source{ImageOffset: m.Offset, FileOffset: -1, Compressed: true, RecordBytes: m.Length}}
		b, ok := grainData(image, inst, c.grain, rec, wb.buf)
		if !ok {
			continue
		}
		wb.add(b, int64(c.sector)*vmdk.SectorSize, wantedBlock{inst: inst, weak: true, extendOnly: !hr.sure}, false)
	}
}

// places finds every wanted block's image offsets (up to maxCopyPlaces
// and one more, to tell a common block) in one walk over the
// fingerprints.
func (wb *wantedBlocks) places(x *hitIndex, fp Fingerprints) map[uint64][]int64 {
	places := map[uint64][]int64{}
	at := hashAt(fp) // every block of the image: not tested for randomness
	for y := int64(0); y+fingerprint.BlockSize <= x.imageSize; y += fingerprint.BlockSize {
		v, ok := at(y)
		if !ok || v == 0 {
			continue
		}
		if _, wanted := wb.byHash[v]; wanted && len(places[v]) <= maxCopyPlaces {
			places[v] = append(places[v], y)
		}
	}
	return places
}

// anchors turns the wanted blocks found at few enough places, confirmed
// by their whole xxhash, into anchors per file; clearInCopy lists, per
// file, the blocks a copy holds in clear.
func (wb *wantedBlocks) anchors(places map[uint64][]int64, image io.ReaderAt) (extra map[*Instance][]anchor, clearInCopy map[*Instance][]structureAt) {
	extra = map[*Instance][]anchor{}
	clearInCopy = map[*Instance][]structureAt{}
	blk := make([]byte, fingerprint.BlockSize)
	for v, ws := range wb.byHash {
		ys := places[v]
		for _, w := range ws {
			if w.clear && !w.weak {
				clearInCopy[w.inst] = append(clearInCopy[w.inst], structureAt{off: w.file, n: fingerprint.BlockSize, what: "a block a copy of the disk holds in clear"})
			}
			if len(ys) > maxCopyPlaces {
				continue
			}
			for _, y := range ys {
				// The fingerprint is 63 bits of the xxhash: the whole
				// hash of the bytes read confirms it.
				if _, err := image.ReadAt(blk, y); err != nil || xxhash.Sum64(blk) != w.sum {
					continue
				}
				kind := "block of a copy's grain"
				if w.weak {
					kind = "block of an unattached stream record"
				}
				extra[w.inst] = append(extra[w.inst], anchor{file: w.file, img: y, n: fingerprint.BlockSize, kind: kind, weak: w.weak || len(ys) > 1, extendOnly: w.extendOnly})
			}
		}
	}
	return extra, clearInCopy
}

// followAgain follows a file again with the anchors its copies gave and,
// if that maps it, decides its grains again through the new map.
func followAgain(inst *Instance, as []anchor, clearInCopy []structureAt, image io.ReaderAt, x *hitIndex, opts Options) {
	// (Found in map order: sorted, so the plan and its reasons do not
	// change from run to run.)
	slices.SortFunc(as, func(a, b anchor) int { return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.img, b.img)) })
	slices.SortFunc(clearInCopy, func(a, b structureAt) int { return cmp.Compare(a.off, b.off) })
	in := inst.follow
	frags, proofs := followFragments(inst, image, x, opts, in.cands, in.predicted, in.broken, as...)
	if frags == nil {
		return
	}
	// A block a copy holds in clear that reads random here, through the
	// new map, is destroyed here: proof for the damage policy, and the
	// grain is not placed. (Another version of the disk may have written
	// random bytes there: then a grain is lost, where trusting it would
	// place cipher text whenever a locker's lattice cannot be proven.)
	proofs = append(proofs, clearInCopy...)
	inst.Notes = append(inst.Notes, fmt.Sprintf("followed again with %d anchors from blocks of its copies' grains", len(as)))
	inst.Fragments, inst.byImage = frags, nil
	view := newFileView(image, frags)
	inst.size = view.size()
	placeCandidates(inst, view, in.cands, x, opts, in.zero, append(slices.Clone(in.predicted), proofs...))
}

// heldRecord is a record of a held run, and whether the run is sure.
type heldRecord struct {
	m    *signatures.Hit
	sure bool
}

// heldRecords returns the records of LBA lba in the runs held by inst's
// peers (streams of its capacity and grain size).
func heldRecords(held map[*Instance][]heldRun, inst *Instance, lba uint64) []heldRecord {
	var out []heldRecord
	for _, s := range slices.SortedFunc(maps.Keys(held), func(a, b *Instance) int { return cmp.Compare(a.HeaderOffset, b.HeaderOffset) }) {
		if s == inst || s.Header.Capacity != inst.Header.Capacity || s.Header.GrainSize != inst.Header.GrainSize {
			continue
		}
		for _, hr := range held[s] {
			// A run's LBAs ascend.
			run := hr.records
			i := sort.Search(len(run), func(i int) bool { return run[i].Grain.LBA >= lba })
			if i < len(run) && run[i].Grain.LBA == lba && !run[i].Grain.Zero {
				out = append(out, heldRecord{run[i], hr.sure})
			}
		}
	}
	return out
}

// peerGrain calls fn with grain g of every other instance of inst's
// geometry (capacity and grain size) that decided it, until fn returns
// true: the disk's other copies, and any other disk of that geometry
// (callers tell them apart by their bytes).
func peerGrain(instances []*Instance, inst *Instance, g uint64, fn func(p *Instance, gr *Grain) bool) {
	for _, p := range instances {
		if p == inst || p.Header.Capacity != inst.Header.Capacity || p.Header.GrainSize != inst.Header.GrainSize {
			continue
		}
		if gr := p.grains.at(g); gr != nil && fn(p, gr) {
			return
		}
	}
}

// provenSource reports whether a copy's grain was placed by more than the
// contiguous assumption (its stream marker, a host map, anchors): only
// such bytes may vouch for another file's blocks, or one file's wrong
// guess would become another's.
func provenSource(gr *Grain) bool {
	for _, e := range gr.Evidence {
		switch e {
		case EvMarker, EvHost, EvAnchored, EvCopy:
			return true
		}
	}
	return false
}

// grainData reads a placed grain's bytes from its source (inflating a
// stream record, in buf) and checks them against the decision's hash, as
// the emit does.
func grainData(image io.ReaderAt, inst *Instance, g uint64, gr *Grain, buf []byte) ([]byte, bool) {
	s := gr.Source
	n := grainLength(inst.Header, g)
	if !s.Compressed {
		out := make([]byte, n)
		if _, err := ReadSource(image, s, out); err != nil || xxhash.Sum64(out) != gr.Hash {
			return nil, false
		}
		return out, true
	}
	if s.RecordBytes <= 0 || s.RecordBytes > int64(len(buf)) {
		return nil, false
	}
	rec := buf[:max(s.RecordBytes, 12)]
	k, err := ReadSource(image, s, rec)
	if err != nil {
		return nil, false
	}
	out := make([]byte, inst.Header.GrainBytes())
	m, d, err := vmdk.DecodeGrain(rec[:k], out)
	if err != nil || m.LBA != g*inst.Header.GrainSize || int64(d) < n || xxhash.Sum64(out[:d]) != gr.Hash {
		return nil, false
	}
	return out[:n], true
}

// Thresholds of the copy check: a copy agrees with the file on at least
// minAgreeBefore grains before the first that differs (or it is another
// disk), and from there on differs on brokenShare of the grains both hold
// (or it is another version, differing here and there).
const (
	minAgreeBefore = 2
	brokenShare    = 0.8
)

// checkAgainstCopies holds every sparse file still mapped by the
// contiguous assumption alone against the disk's other files whose grains
// are proven (stream markers, host maps, anchors): a grain the file reads
// differently from such a copy shows the assumption wrong there, and then,
// as for any break, no grain rests on it alone. A grain the copy holds
// with the same bytes is kept: its bytes are right wherever they lie.
func checkAgainstCopies(instances []*Instance) {
	for _, inst := range instances {
		in := inst.follow
		if in == nil || !inst.contiguousOnly() || inst.Header.Compressed() {
			continue
		}
		proven := func(g uint64) (found *Grain) {
			peerGrain(instances, inst, g, func(_ *Instance, pg *Grain) bool {
				if (pg.Status == Placed || pg.Status == Zero) && provenSource(pg) {
					found = pg
				}
				return found != nil
			})
			return found
		}
		cands := slices.Clone(in.cands)
		slices.SortFunc(cands, func(a, b candidate) int { return int(a.sector) - int(b.sector) })
		// The grains both hold, in file order: whether they agree.
		type cmp struct {
			off   int64
			agree bool
		}
		var seq []cmp
		for _, c := range cands {
			gr, pg := inst.grains.at(c.grain), proven(c.grain)
			if gr == nil || pg == nil || (gr.Status != Placed && gr.Status != Zero) {
				continue
			}
			seq = append(seq, cmp{int64(c.sector) * vmdk.SectorSize, gr.Status == pg.Status && (gr.Status != Placed || gr.Hash == pg.Hash)})
		}
		first := slices.IndexFunc(seq, func(c cmp) bool { return !c.agree })
		if first < minAgreeBefore {
			// Disagreeing from the start: another disk of the same
			// geometry, not a copy of this one.
			continue
		}
		rest, differ := len(seq)-first, 0
		for _, c := range seq[first:] {
			if !c.agree {
				differ++
			}
		}
		if rest < minAgreeBefore || float64(differ) < brokenShare*float64(rest) {
			// Scattered differences: another version of the disk.
			continue
		}
		broken := seq[first].off
		reason := Reason{Code: ReasonCopyContradicts, Offset: broken}
		inst.Notes = append(inst.Notes, reason.String())
		kept := 0
		for _, c := range cands {
			gr := inst.grains.at(c.grain)
			if gr == nil || (gr.Status != Placed && gr.Status != Zero) {
				continue
			}
			if pg := proven(c.grain); pg != nil && gr.Status == pg.Status && gr.Hash == pg.Hash {
				g := *gr
				g.Evidence = append(slices.Clone(g.Evidence), EvCopy)
				inst.grains.set(c.grain, &g)
				kept++
				continue
			}
			inst.grains.set(c.grain, &Grain{Status: Missing, Reason: reason})
		}
		if kept > 0 {
			inst.Notes = append(inst.Notes, fmt.Sprintf("%d grains kept: a proven copy holds the same bytes", kept))
		}
		inst.cutFragments(int64(inst.Header.OverHead) * vmdk.SectorSize)
	}
}
