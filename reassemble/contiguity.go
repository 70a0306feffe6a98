package reassemble

import (
	"fmt"
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Fingerprints gives the carve's per-block fingerprints (see carver.Fingerprint).
type Fingerprints interface {
	At(off int64) (uint64, bool)
}

// fingerprint bits (carver.Fingerprint; reassemble does not import the carver).
const (
	fpBlock     = 4096
	fpRandomBit = 1 << 63
)

// encryptionChunk is the span ransomware families encrypt intermittently
// ("every Nth MiB of the file").
const encryptionChunk = 1 << 20

// candidate is a grain a trusted grain table places at a file sector.
type candidate struct {
	grain  uint64
	sector uint32
	which  string // "primary" or "redundant" table
	both   bool   // both table copies name this sector
}

// placeCandidates checks every table-placed grain's source and decides it.
//
// Where the file is mapped only by the contiguous assumption (no host
// filesystem map), the assumption holds until the bytes say otherwise.
// Grains are checked in file order; the assumption ends at the first grain
// whose source is impossible for it:
//
//   - all zero (writers never allocate a zero grain);
//   - holding another VMDK's header or compressed grain records;
//   - the second of two random-looking grains in a row, in a file whose
//     grains so far were not random (a fragment running into noise), on
//     a disk where no guest filesystem has been recognised (see below);
//   - missing a structure the guest's own partition table, boot sector
//     or superblock (placed before it) predicts at that virtual address.
//
// A file found broken is fragmented, and the break only shows where the
// bytes first betray it, so then no grain at all rests on the assumption
// (see the end of the function). A file with a host map is read through
// the map and none of this applies.
//
// Everywhere, a grain inside a file-aligned MiB whose blocks look random,
// in a file whose other chunks do not, is intermittent encryption damage:
// missing.
func placeCandidates(inst *Instance, view *fileView, cands []candidate, x *hitIndex, opts Options, zero *Grain) {
	sort.Slice(cands, func(i, j int) bool { return cands[i].sector < cands[j].sector })
	h := inst.Header
	contiguous := inst.contiguousOnly()
	fileEnd := int64(0) // past the last grain the tables name: the file's used extent
	if len(cands) > 0 {
		fileEnd = int64(cands[len(cands)-1].sector)*vmdk.SectorSize + h.GrainBytes()
	}
	encrypted := encryptedChunks(inst, view, opts.Fingerprints, fileEnd)
	brokenAt := int64(-1)
	breakReason := ""
	var suspect *held
	guest := &guestProbe{diskSize: int64(h.Capacity) * vmdk.SectorSize}
	var plainSoFar counter // grains placed so far that are not random-looking
	var last struct {      // the last grain placed, in file order
		grain uint64
		buf   []byte
	}
	for _, c := range cands {
		fileOff := int64(c.sector) * vmdk.SectorSize
		if brokenAt >= 0 {
			inst.grains.set(c.grain, &Grain{Status: Missing, Reason: fmt.Sprintf("file offset %d lies past where the file stops being contiguous (%s); no fragment map links it", fileOff, breakReason)})
			continue
		}
		n := grainLength(h, c.grain)
		if k := fileOff / encryptionChunk; encrypted[k] {
			inst.grains.set(c.grain, &Grain{Status: Missing, Reason: fmt.Sprintf("file MiB %d looks random throughout: intermittent encryption", k)})
			continue
		}
		gr, imgOff, buf := readSparseGrain(inst, view, c, n)
		if gr.Status == Missing {
			inst.grains.set(c.grain, gr)
			continue
		}
		if contiguous {
			why := foreignAt(x, inst, imgOff, n, buf)
			if why == "" {
				why = guest.check(c.grain, h.GrainBytes(), buf)
			}
			if why == "" && !guest.volumeFound && randomGrain(buf) && !plainSoFar.empty() {
				// A random-looking grain in a file whose grains so far are
				// not: the file's own compressed data, or the start of
				// someone else's bytes past a fragment's end. Its file
				// successor decides: random again means the mapping has run
				// into foreign bytes; otherwise the grain is held as
				// suspect until the successor is seen.
				if suspect != nil {
					why = fmt.Sprintf("two random-looking grains in a row (file offsets %d and %d) in a file whose grains were not random", suspect.off, fileOff)
					fileOff, imgOff = suspect.off, suspect.img
					inst.grains.set(suspect.c.grain, &Grain{Status: Missing, Reason: "contiguous mapping broken here: " + why})
					suspect = nil
				} else {
					suspect = &held{c: c, gr: gr, off: fileOff, img: imgOff}
					continue
				}
			}
			if why != "" {
				if suspect != nil {
					// Nothing vouches for the suspect before the break.
					inst.grains.set(suspect.c.grain, &Grain{Status: Missing, Reason: "random-looking grain just before the contiguous mapping breaks: " + why})
					suspect = nil
				}
				if last.buf != nil && !cleanBlocks(last.buf) {
					// The fragment's end lies at a host cluster boundary
					// somewhere before the break; a grain whose blocks
					// include zero or random ones may straddle it.
					inst.grains.set(last.grain, &Grain{Status: Missing, Reason: "last grain before the contiguous mapping breaks has zero or random-looking blocks: it may straddle the fragment's end"})
				}
				brokenAt, breakReason = fileOff, why
				inst.Notes = append(inst.Notes, fmt.Sprintf("the contiguous mapping breaks at file offset %d (image offset %d): %s", fileOff, imgOff, why))
				inst.cutFragments(fileOff)
				inst.grains.set(c.grain, &Grain{Status: Missing, Reason: "contiguous mapping broken here: " + why})
				continue
			}
		}
		if suspect != nil {
			// A plain grain follows the random one: the random one is
			// the file's own data.
			inst.grains.set(suspect.c.grain, suspect.gr)
			suspect = nil
		}
		if gr.Status == Zero {
			inst.grains.setRange(c.grain, c.grain+1, zero)
			continue
		}
		if !randomGrain(buf) {
			plainSoFar.n++
		}
		inst.grains.set(c.grain, gr)
		last.grain, last.buf = c.grain, buf
	}
	if suspect != nil {
		// The last grain of the file: nothing after it to vouch for it.
		inst.grains.set(suspect.c.grain, &Grain{Status: Missing, Reason: "random-looking last grain of a file whose grains are not random: its bytes may not be this file's"})
	}
	if !contiguous {
		return
	}
	// A file found broken is fragmented, and nothing says where its first
	// fragment ends: the break is only where the bytes first betray it,
	// and the fragment may have ended several clusters before (the bytes
	// between can be another file's, looking as plausible as ours). So
	// once a break is seen, no grain rests on the contiguous assumption
	// alone. The same holds when the grains the tables name run past the
	// next VMDK header: the file cannot be contiguous there.
	why := breakReason
	if brokenAt < 0 && len(cands) > 0 && inst.cutByHeader {
		lastEnd := int64(cands[len(cands)-1].sector)*vmdk.SectorSize + h.GrainBytes()
		if lastEnd > inst.size {
			brokenAt = inst.size
			why = fmt.Sprintf("the tables name grains up to file offset %d but another VMDK header lies at file offset %d", lastEnd, inst.size)
		}
	}
	if brokenAt < 0 {
		return
	}
	reason := "the file is fragmented (" + why + ") and no host filesystem map says where its pieces lie: the contiguous assumption places nothing"
	inst.Notes = append(inst.Notes, reason)
	var tentative []uint64
	for _, c := range cands {
		if gr := inst.grains.one[c.grain]; gr != nil && gr.Status == Placed {
			tentative = append(tentative, c.grain)
		}
	}
	proven := selfProven(inst, view, tentative)
	for _, g := range tentative {
		if what, ok := proven[g]; ok {
			gr := *inst.grains.one[g]
			gr.Evidence = append(slices.Clone(gr.Evidence), EvFSProbe)
			gr.Reason = "the file is fragmented, but this grain's own guest structures put it here: " + what
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

// selfProven returns, of the grains a table placed at bytes read on the
// contiguous assumption, those whose self-locating guest structures
// (fsprobe.Locator) all name that very grain, with what they are. The
// guest's geometry is learned from the same grains.
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
		func(fn func([]byte)) { read(func(_ uint64, b []byte) { fn(b) }) },
		func(fn func(int64, []byte)) { read(func(g uint64, b []byte) { fn(int64(g), b) }) })
	out := map[uint64]string{}
	for g, c := range claims {
		if cands := loc.Candidates(c); len(cands) == 1 && cands[0] == g {
			out[uint64(g)] = fsprobe.Describe(c)
		}
	}
	return out
}

// Random runs: two random-looking grains in a row end the contiguous
// assumption only while no guest filesystem has been recognised on the
// disk. A recognised guest (an NTFS or ext volume at a partition start)
// has files of its own that may well be random-looking (compressed,
// encrypted, test data from /dev/urandom), and ending the assumption on
// them would lose every grain of a perfectly contiguous file; its own
// structures (the guest predictions) keep watch instead. A disk whose
// content is unknown keeps the rule: a fragment running into random
// foreign bytes shows no other way.

// held is a suspect grain waiting for its file successor.
type held struct {
	c        candidate
	gr       *Grain
	off, img int64
}

type counter struct{ n int }

func (c counter) empty() bool { return c.n == 0 }

// firstStored is the image offset of the first piece that is not a hole.
func firstStored(ps []Piece) int64 {
	for _, p := range ps {
		if p.ImageOffset >= 0 {
			return p.ImageOffset
		}
	}
	return -1
}

// cleanBlocks reports whether no 4 KiB block of a grain is all zero or
// random-looking.
func cleanBlocks(b []byte) bool {
	for off := 0; off < len(b); off += fpBlock {
		blk := b[off:min(off+fpBlock, len(b))]
		if entropy.Zero(blk) || entropy.RandomLooking(blk) {
			return false
		}
	}
	return true
}

// randomGrain reports whether every non-zero 4 KiB block of a grain looks
// random.
func randomGrain(b []byte) bool {
	seen := false
	for off := 0; off < len(b); off += fpBlock {
		blk := b[off:min(off+fpBlock, len(b))]
		if entropy.Zero(blk) {
			continue
		}
		if !entropy.RandomLooking(blk) {
			return false
		}
		seen = true
	}
	return seen
}

// foreignAt says why the bytes at an image range cannot be this
// instance's grain, or "" if nothing says so.
func foreignAt(x *hitIndex, inst *Instance, imgOff, n int64, buf []byte) string {
	if entropy.Zero(buf) && !inst.flat {
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

// readSparseGrain reads a table-placed grain and hashes it. A grain whose
// bytes are not all in the image is missing.
func readSparseGrain(inst *Instance, view *fileView, c candidate, n int64) (*Grain, int64, []byte) {
	fileOff := int64(c.sector) * vmdk.SectorSize
	pieces, err := view.pieces(fileOff, n)
	if err != nil {
		return &Grain{Status: Missing, Reason: fmt.Sprintf("table (%s) names sector %d but %v", c.which, c.sector, err)}, 0, nil
	}
	imgOff := pieces[0].ImageOffset
	if len(pieces) == 1 {
		pieces = nil
	} else {
		imgOff = -2 // several pieces: never a single hole
	}
	buf := make([]byte, n)
	if _, err := view.ReadAt(buf, fileOff); err != nil {
		return &Grain{Status: Missing, Reason: fmt.Sprintf("reading sector %d: %v", c.sector, err)}, 0, nil
	}
	if imgOff == -1 {
		// A hole of a sparse host file: the grain reads as zeros.
		return &Grain{Status: Zero, Evidence: []string{EvTable}, Reason: "grain lies in a hole of the host file"}, imgOff, buf
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
		gr.Reason = "entry from the redundant grain table"
	} else if c.both {
		gr.Reason = "primary and redundant tables agree"
	}
	if entropy.Zero(buf) {
		// Allocated but zero: reads as zeros either way.
		return &Grain{Status: Zero, Evidence: []string{ev}, Reason: "allocated grain holds zeros"}, imgOff, buf
	}
	return gr, imgOff, buf
}

// encryptedChunks finds the file-aligned MiB chunks of an instance whose
// every 4 KiB block looks random while at least one other mapped chunk of
// the file does not: the pattern of intermittent ("every Nth MiB")
// encryption. A file that is random throughout (an encrypted guest
// volume, compressed data) is left alone: nothing contrasts it.
func encryptedChunks(inst *Instance, view *fileView, fp Fingerprints, fileEnd int64) map[int64]bool {
	if fp == nil {
		return nil
	}
	size := min(view.size(), fileEnd)
	random := make(map[int64]bool)
	sawPlain := false
	for k := int64(0); k*encryptionChunk < size; k++ {
		// The random test misses about one random block in 2500, so a
		// MiB counts as random when at least 15 of 16 of its stored
		// blocks are.
		stored, randomBlocks, unknown := 0, 0, false
		for off := k * encryptionChunk; off < min(size, (k+1)*encryptionChunk); off += fpBlock {
			img, err := view.imageOffset(off, fpBlock)
			if err == nil && img == -1 {
				continue // a hole of the host file: encryption cannot touch it
			}
			if err != nil || img%fpBlock != 0 {
				unknown = true
				continue
			}
			v, ok := fp.At(img)
			if !ok {
				unknown = true
				continue
			}
			stored++
			if v&fpRandomBit != 0 {
				randomBlocks++
			} else if v != 0 {
				sawPlain = true
			}
		}
		if !unknown && stored > 0 && randomBlocks*16 >= stored*15 {
			random[k] = true
		}
	}
	if !sawPlain {
		return nil
	}
	if len(random) > 0 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d file MiB chunks look random throughout while the rest of the file does not: treated as encrypted", len(random)))
	}
	return random
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
	diskSize    int64
	pending     map[int64][]fsprobe.Expectation // by grain number
	volumeFound bool                            // a guest filesystem was recognised
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

// check returns why grain g's bytes contradict the guest, or "". A grain
// that confirms an expectation adds what that implies (which may lie in
// this very grain).
func (p *guestProbe) check(g uint64, grainBytes int64, buf []byte) string {
	lo := int64(g) * grainBytes
	hi := lo + int64(len(buf))
	if g == 0 && len(buf) >= 512 {
		p.add(grainBytes, fsprobe.ExpectFromMBR(buf, p.diskSize))
	}
	var why string
	for len(p.pending[int64(g)]) > 0 {
		queue := p.pending[int64(g)]
		delete(p.pending, int64(g))
		for _, e := range queue {
			if e.Offset < lo || e.Offset+int64(e.Len) > hi {
				continue // spans into the next grain: not checkable here
			}
			b := buf[e.Offset-lo : e.Offset-lo+int64(e.Len)]
			if !e.Match(b) {
				if why == "" && !e.Soft {
					why = fmt.Sprintf("the guest's own structures expect %s at virtual offset %d, and this grain does not hold it", e.Desc, e.Offset)
				}
				continue
			}
			p.volumeFound = p.volumeFound || e.Volume
			if e.Then != nil {
				p.add(grainBytes, e.Then(b))
			}
		}
	}
	return why
}
