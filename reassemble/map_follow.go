package reassemble

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"vmdkcarve/fingerprint"
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/vmdk"
)

// Following a fragmented sparse file whose host map is gone
// (PLACEMENT.md, "Anchors").
//
// The grain tables say which virtual grain lies at every file offset, so
// a self-locating guest structure found at image offset x that names its
// virtual offset also names its file offset p: x - p is a shift, a vote
// that the file's bytes around p lie at that shift. A shift backed by
// anchors in minAnchorGrains different grains is a hypothesis; a piece of
// the file is a run of anchors of one shift with nothing between them
// that contradicts it. Anchors are:
//
//   - the file's own header and grain tables, at the header's shift;
//   - every self-locating structure the carve recorded (fsprobe.Locator,
//     learned from the grains of the file's first piece);
//   - the last block of every guest file whose record the structures
//     showed, where its bytes end exactly where the file's size says and
//     zeros follow (tried at the shifts the structures proved).
//
// A piece is mapped from the cluster of its first anchor to the cluster
// of its last: between two anchors of one shift the file is taken as
// contiguous, as long as no structure of another shift lies there. Past a
// piece's last anchor nothing proves where it ends: growing it until its
// shift meets a contradiction (another VMDK's structure, a structure that
// locates elsewhere, a file tail with bytes past its end, an all-zero
// grain where the writer never stores one) bounds it, but a piece with no
// anchors of its own may lie between two found ones, so the file offsets
// between two pieces' anchors stay unmapped and their grains missing,
// never guessed. The report says how far each shift reads.
//
// A file whose every block agrees with its header's shift (no structure
// of another shift in its bytes, no contradiction) stays contiguous: the
// other shifts are copies of its bytes elsewhere.

// LinkAnchored is a fragment found by shift votes.
const LinkAnchored = "anchored"

// EvAnchored: the grain's file offset was linked to the image by anchors.
const EvAnchored = "anchored"

// Thresholds of fragment following.
const (
	// clusterBytes is the host cluster: pieces of a file start at its
	// multiples in file offset and (relative to the file's first byte) in
	// image offset, so every true shift is congruent to the header's.
	clusterBytes = 4096
	// minAnchorGrains: anchors in this many distinct grains make a shift
	// a hypothesis. One grain's structures could be a copy of that grain
	// anywhere (another VMDK of the same guest).
	minAnchorGrains = 2
	// minWeakGrains: a shift backed partly by file tails found by their
	// shape needs anchors in this many distinct grains: two tails agree
	// on a shift by chance far more often than three.
	minWeakGrains = 3
	// maxTailResidues bounds the image scans for file tails: one per
	// position of the guest's blocks within a host cluster.
	maxTailResidues = 4
	// dominantAnchors: of two pieces that claim the same file offsets
	// with different bytes, one keeps them only with this many times the
	// other's own anchors there (a spurious shift backed by a few tails
	// loses to the file's piece; two versions of the guest tie).
	dominantAnchors = 2
	// tailScanChunk is the bytes read at a time by the tail scan.
	tailScanChunk = 4 << 20
	// maxFollowAnchors bounds the anchors kept for one file.
	maxFollowAnchors = 1 << 20
	// maxHypotheses bounds the shifts file tails are tried at.
	maxHypotheses = 1024
	// anchorWindow is the bytes read at each recorded guest structure;
	// structures starting in its first half are read whole.
	anchorWindow = 4096
	// learnWindow is the bytes read at a geometry structure found outside
	// the first piece (a GPT, a group descriptor table follow it).
	learnWindow = 128 << 10
)

// anchor is one vote: a structure at file offset file found at image
// offset img.
type anchor struct {
	file, img int64
	n         int64 // bytes of the structure known to be there
	kind      string
	// weak: a file tail found by its shape alone. Many blocks end in
	// zeros, so alone it is a candidate, never a barrier, and it takes
	// more of them to make a hypothesis (minWeakGrains).
	weak bool
	// extendOnly: weak, and no vote for a shift at all: it joins a piece
	// other anchors found (map_copies.go, a run of records several
	// streams could hold).
	extendOnly bool
}

func (a anchor) shift() int64 { return a.img - a.file }

// run is a piece hypothesis: anchors of one shift, in file order.
type run struct {
	shift   int64
	anchors []anchor
}

func (r *run) lo() int64 { return r.anchors[0].file }
func (r *run) hi() int64 {
	a := r.anchors[len(r.anchors)-1]
	return a.file + a.n
}

// follower holds what following one file needs.
type follower struct {
	inst        *Instance
	image       io.ReaderAt
	imageSize   int64
	x           *hitIndex
	gb          int64
	sectorOf    map[uint64]uint32 // virtual grain → file sector, from the tables
	slotGrain   map[int64]uint64  // file offset of a grain slot → virtual grain
	slots       []int64           // file offsets of the grains the tables name, sorted
	zeroIsProof bool
	tails       map[int64]fsprobe.Tail // by file offset of the block
	byImg       []anchor               // every anchor, by image offset
	hyp         map[int64]bool         // the shifts that are hypotheses
	fp          Fingerprints
	tailOffs    []int64 // the tails' file offsets, sorted (tailOffsets)
	notes       []string
	workers     int                 // chunks of the image scanned ahead (scanChunks)
	scans       *semaphore.Weighted // chunks scanned at once, shared by the files followed at once
}

// followFragments maps a sparse file with no host map from its anchors.
// broken is where its contiguous assumption was seen to break, or -1. It
// returns the new fragments, or nil when the file is contiguous as far as
// the anchors and blocks tell (or nothing can vote).
//
// proofs are the guest's file tails inside the new fragments, for the
// damage policy (tailProofs).
//
// extra are anchors found by the caller (map_copies.go).
func followFragments(inst *Instance, image io.ReaderAt, x *hitIndex, opts Options, cands []candidate, predicted []structureAt, broken int64, extra ...anchor) (frags []Fragment, proofs []structureAt) {
	f := newFollower(inst, image, x, opts, cands)
	if f == nil {
		return nil, nil
	}
	fileEnd := int64(0)
	if n := len(f.slots); n > 0 {
		fileEnd = f.slots[n-1] + f.gb
	}
	limit := fileEnd
	if broken >= 0 {
		limit = broken
	}
	loc := f.learned(limit)
	if broken < 0 {
		inst.misplaced = f.misplaced(loc)
	}
	if loc.Volumes() == 0 {
		if broken >= 0 {
			inst.Notes = append(inst.Notes, "fragment following: the file's first piece shows no guest volume, so no structure can vote for a shift")
		}
		return nil, nil
	}
	anchors, windows := f.structureAnchors(loc)
	H := inst.HeaderOffset
	anchors = append(anchors, anchor{file: 0, img: H, n: vmdk.SectorSize, kind: "VMDK header"})
	for _, s := range predicted {
		if s.off+s.n <= limit {
			anchors = append(anchors, anchor{file: s.off, img: H + s.off, n: s.n, kind: "VMDK grain table"})
		}
	}
	anchors = append(anchors, extra...)
	f.setHypotheses(anchors)
	f.learnTails(limit, windows, f.runs(anchors))
	if broken < 0 {
		// Contiguous from the header as far as every block tells (no
		// structure of another shift in its bytes, no file tail with
		// bytes past its end; zero grains are placeCandidates' to see):
		// the other shifts are copies of its bytes elsewhere (other
		// files of the same guest), not its pieces, and the image is not
		// scanned for tails.
		q, why := f.reachPlain(H, 0, (fileEnd+clusterBytes-1)/clusterBytes*clusterBytes)
		if m := inst.misplaced; len(m) > 0 && (why == "" || m[0].off < q) {
			q, why = m[0].off, m[0].what
		}
		if why == "" {
			return nil, f.tailProofs(inst.Fragments)
		}
		if why == whyOutsideImage {
			// The image ends before the file does, and nothing before
			// that contradicts its header's shift: the file was cut
			// (a truncated copy, an image of part of a disk), not moved.
			// It is contiguous as far as the image holds it; the grains
			// past the image's end are missing for want of bytes.
			inst.Notes = append(inst.Notes, fmt.Sprintf("fragment following: the file is contiguous from its header to the image's end, at file offset %d: the image holds no more of it", q))
			return nil, nil
		}
		f.notes = append(f.notes, fmt.Sprintf("fragment following: the file is not contiguous from its header: at file offset %d, %s", q, why))
		inst.addBreak(q, H+q, why)
	}
	found, scanned := f.scanTails()
	anchors = append(anchors, found...)
	if !scanned {
		// Too many positions to scan the image for: the tails are tried
		// at the shifts the structures back instead.
		shifts := f.hypotheses(anchors)
		if len(shifts) > maxHypotheses {
			shifts = shifts[:maxHypotheses]
		}
		anchors = append(anchors, f.tailAnchors(shifts)...)
	}
	if len(anchors) > maxFollowAnchors {
		anchors = anchors[:maxFollowAnchors]
	}
	f.setHypotheses(anchors)
	runs := f.runs(anchors)
	if len(runs) == 0 || runs[0].lo() != 0 || runs[0].shift != H {
		inst.Notes = append(inst.Notes, "fragment following: the file's own header is contested by other anchors: nothing is followed")
		return nil, nil
	}
	frags = f.fragments(runs)
	inst.Notes = append(inst.Notes, f.notes...)
	return frags, f.tailProofs(frags)
}

// newFollower sets up the following of a sparse file from its table
// candidates, or returns nil when there is nothing to follow.
//
// The cluster grid is the file's own: a host filesystem puts a file's
// pieces at cluster boundaries of its volume, and a volume may start at
// any sector (an MBR partition at sector 63), so a file at an image offset
// that is no multiple of 4 KiB is followed as any other, its shifts
// congruent to its header's. Only the lookups in the carve's fingerprints,
// which cover the image's own 4 KiB blocks, are then not available: the
// follower tests the bytes themselves where it must (randomBlock) and
// scans blocks the fingerprints would have let it skip (mayHoldTail,
// random).
// A file not followed was left with the contiguity walk's few checks
// near the guest's start, and a truncated file's tables then placed
// whatever follows it in the image.
func newFollower(inst *Instance, image io.ReaderAt, x *hitIndex, opts Options, cands []candidate) *follower {
	f := &follower{inst: inst, image: image, imageSize: x.imageSize, x: x, gb: inst.Header.GrainBytes(),
		sectorOf: make(map[uint64]uint32, len(cands)), slotGrain: make(map[int64]uint64, len(cands)),
		zeroIsProof: !vmwareWritten(inst.Descriptor), fp: opts.Fingerprints, workers: opts.workers(), scans: opts.scans}
	if f.imageSize <= 0 || f.gb <= 0 {
		return nil
	}
	for _, c := range cands {
		f.sectorOf[c.grain] = c.sector
		f.slotGrain[int64(c.sector)*vmdk.SectorSize] = c.grain
		f.slots = append(f.slots, int64(c.sector)*vmdk.SectorSize)
	}
	slices.Sort(f.slots)
	return f
}

// learnTails keeps the guest's file tails (f.tails, by file offset) from
// the records in the file's own pieces, the spans its structures prove:
// another version of the guest elsewhere holds records of the same
// numbers with other sizes.
func (f *follower) learnTails(limit int64, windows []hitWindow, spans []*run) {
	own := f.learned(limit)
	for _, w := range windows {
		for _, r := range spans {
			if w.img >= r.lo()+r.shift && w.img < r.hi()+r.shift {
				own.Locate(w.b) // (for the records it keeps)
				break
			}
		}
	}
	for _, t := range own.Tails() {
		if p, ok := f.fileOf(t.Addr, int64(t.Block)); ok {
			if f.tails == nil {
				f.tails = map[int64]fsprobe.Tail{}
			}
			f.tails[p] = t
		}
	}
}

// learned makes a Locator that knows the guest's geometry from the
// geometry structures the carve found (partition tables, boot sectors,
// $MFT record 0, primary superblocks) that lie where the header's shift
// puts a grain of the file, and that say they belong there (a partition
// table in grain 0's slot, a boot sector at the virtual offset its hidden
// sectors name): the file's first piece, up to limit. Structures found
// elsewhere may be any guest's: a volume of another disk would locate its
// structures through this file's tables as readily as through its own.
func (f *follower) learned(limit int64) *fsprobe.Locator {
	loc := fsprobe.NewLocator(f.gb, int64(f.inst.Header.Capacity)*vmdk.SectorSize)
	H := f.inst.HeaderOffset
	for _, y := range f.x.geometry {
		p := y - H
		if p < 0 || p >= limit {
			continue
		}
		v, ok := f.virtualOf(p)
		if !ok {
			continue
		}
		start := y
		switch {
		case f.x.volumeAt[y-ext4.SuperblockOffset]:
			start = y - ext4.SuperblockOffset // a primary superblock: Learn wants its block
		case f.x.volumeAt[y]:
			// An NTFS boot sector names its own place (LearnAt checks it).
		case f.x.mbrAt(y) && v != 0:
			continue // a partition table is sector 0
		}
		if b := f.read(start, learnWindow); b != nil {
			loc.LearnAt(b, v-(y-start))
		}
	}
	loc.Prepare()
	return loc
}

// misplaced lists the geometry structures the header's shift reads where
// they cannot lie (fsprobe.Locator.Misplaced), by file offset: bytes that
// are not the file's there.
func (f *follower) misplaced(loc *fsprobe.Locator) []structureAt {
	var out []structureAt
	for _, m := range loc.Misplaced() {
		if p, ok := f.fileOf(m.Offset, vmdk.SectorSize); ok {
			out = append(out, structureAt{off: p, n: vmdk.SectorSize,
				what: fmt.Sprintf("%s is read at virtual offset %d, where it cannot lie", m.What, m.Offset)})
		}
	}
	slices.SortFunc(out, func(a, b structureAt) int { return cmp.Compare(a.off, b.off) })
	return out
}

// virtualOf maps a file offset in a grain slot the tables name to its
// virtual offset.
func (f *follower) virtualOf(p int64) (int64, bool) {
	i := sort.Search(len(f.slots), func(i int) bool { return f.slots[i]+f.gb > p })
	if i == len(f.slots) || f.slots[i] > p {
		return 0, false
	}
	g, ok := f.slotGrain[f.slots[i]]
	return int64(g)*f.gb + p - f.slots[i], ok
}

// read reads up to n image bytes at off (cut at the image's end), or nil.
func (f *follower) read(off, n int64) []byte {
	if off < 0 || off >= f.imageSize {
		return nil
	}
	b := make([]byte, min(n, f.imageSize-off))
	if _, err := f.image.ReadAt(b, off); err != nil && err != io.EOF {
		return nil
	}
	return b
}

// fileOf maps a virtual range to the file offset the tables give it, if
// the range lies in one allocated grain.
func (f *follower) fileOf(v, n int64) (int64, bool) {
	if v < 0 || n <= 0 {
		return 0, false
	}
	g := uint64(v / f.gb)
	if (v+n-1)/f.gb != v/f.gb {
		return 0, false
	}
	sec, ok := f.sectorOf[g]
	if !ok {
		return 0, false
	}
	return int64(sec)*vmdk.SectorSize + v%f.gb, true
}

// structureAnchors locates the guest structures the carve recorded and
// turns each into anchors, one per virtual offset it may lie at. It also
// returns the windows read that held located structures.
func (f *follower) structureAnchors(loc *fsprobe.Locator) ([]anchor, []hitWindow) {
	offs := slices.Clone(f.x.guest)
	slices.Sort(offs)
	type found struct {
		img    int64
		claims []fsprobe.Claim
	}
	var all []found
	var located []hitWindow
	covered := int64(-1)
	for _, y := range offs {
		if y < covered {
			continue
		}
		b := f.read(y, anchorWindow)
		if b == nil {
			continue
		}
		covered = y + anchorWindow/2
		if c := loc.Locate(b); len(c) > 0 {
			all = append(all, found{y, c})
			located = append(located, hitWindow{y, b})
		}
	}
	// Claims located through records seen anywhere resolve only now.
	seen := map[[2]int64]bool{}
	var out []anchor
	for _, fd := range all {
		for _, c := range fd.claims {
			img := fd.img + int64(c.At)
			for _, a := range loc.Addresses(c) {
				p, ok := f.fileOf(a, vmdk.SectorSize)
				if !ok || seen[[2]int64{img, p}] || len(out) >= maxFollowAnchors {
					continue
				}
				seen[[2]int64{img, p}] = true
				out = append(out, anchor{file: p, img: img, n: vmdk.SectorSize, kind: kindOf(c.What)})
			}
		}
	}
	return out, located
}

// hitWindow is image bytes read at a recorded guest structure that held
// structures the Locator placed.
type hitWindow struct {
	img int64
	b   []byte
}

// kindOf is a claim's kind without its number ("ext4 inode 12" → "ext4
// inode"), for the report's anchor counts.
func kindOf(what string) string {
	fields := strings.Fields(what)
	for len(fields) > 1 && strings.Trim(fields[len(fields)-1], "0123456789") == "" {
		fields = fields[:len(fields)-1]
	}
	return strings.Join(fields, " ")
}

// congruent reports whether a shift can be a piece's: on the header's
// cluster grid.
func (f *follower) congruent(s int64) bool {
	return (s-f.inst.HeaderOffset)%clusterBytes == 0
}

// setHypotheses settles the shifts that are hypotheses and indexes the
// anchors by image offset, for runs and contradicts.
func (f *follower) setHypotheses(anchors []anchor) {
	f.hyp = map[int64]bool{}
	for _, s := range f.hypotheses(anchors) {
		f.hyp[s] = true
	}
	f.byImg = slices.Clone(anchors)
	sort.Slice(f.byImg, func(i, j int) bool { return f.byImg[i].img < f.byImg[j].img })
}

// hypotheses returns the shifts backed by anchors in minAnchorGrains
// distinct grains, most backed first.
func (f *follower) hypotheses(anchors []anchor) []int64 {
	type support struct{ all, strong map[int64]bool }
	by := map[int64]*support{}
	for _, a := range anchors {
		s := a.shift()
		if !f.congruent(s) || a.extendOnly {
			continue
		}
		if by[s] == nil {
			by[s] = &support{map[int64]bool{}, map[int64]bool{}}
		}
		by[s].all[a.file/f.gb] = true
		if !a.weak {
			by[s].strong[a.file/f.gb] = true
		}
	}
	var out []int64
	for s, sp := range by {
		// The header's shift is the file's own, whatever backs it.
		if len(sp.strong) >= minAnchorGrains || len(sp.all) >= minWeakGrains || s == f.inst.HeaderOffset {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if len(by[out[i]].all) != len(by[out[j]].all) {
			return len(by[out[i]].all) > len(by[out[j]].all)
		}
		return out[i] < out[j]
	})
	return out
}

// tailAnchors tries every known file tail at every hypothesis's shift.
func (f *follower) tailAnchors(shifts []int64) []anchor {
	var out []anchor
	for _, p := range slices.Sorted(maps.Keys(f.tails)) {
		t := f.tails[p]
		for _, s := range shifts {
			if !f.mayHoldTail(p+s, int64(t.Block)) {
				continue
			}
			if b := f.read(p+s, int64(t.Block)); b != nil {
				if ok, _ := t.TailMatch(b); ok {
					out = append(out, anchor{file: p, img: p + s, n: int64(t.Block), kind: "guest file tail", weak: true})
				}
			}
		}
	}
	return out
}

// scanTails finds the blocks of the image shaped like a known file tail
// (non-zero bytes ending exactly where the file's size says): one pass over
// the image per position of the tails within a host cluster, reading only
// blocks the carve's fingerprints do not show random (a tail's zeros are
// not random).
//
// scanned is false when the tails lie at more positions within a cluster
// than maxTailResidues: then nothing was scanned.
func (f *follower) scanTails() (out []anchor, scanned bool) {
	type key struct{ block, used int }
	byShape := map[key][]int64{}
	residues := map[int64]bool{}
	for p, t := range f.tails {
		byShape[key{t.Block, t.Used}] = append(byShape[key{t.Block, t.Used}], p)
		residues[((f.inst.HeaderOffset+p)%clusterBytes+clusterBytes)%clusterBytes] = true
	}
	if len(residues) > maxTailResidues {
		f.notes = append(f.notes, fmt.Sprintf("fragment following: the guest's file tails lie at %d positions within a host cluster: the image is not scanned for them", len(residues)))
		return nil, false
	}
	for _, ps := range byShape {
		slices.Sort(ps)
	}
	// The same tails are scanned for again when a file is followed again
	// (after its break, with its copies): the image is read once for them.
	cacheKey := f.tailsKey()
	if c := f.inst.follow; c != nil && c.tailScan != nil && c.tailScan.key == cacheKey {
		return c.tailScan.anchors, true
	}
	sizes := slices.Sorted(maps.Keys(f.blockSizes()))
	// A block that reads random holds no tail. Its bytes are in hand: they
	// are tested here, not by At, which would read them from the image
	// again.
	var hash func(int64) (uint64, bool)
	if f.fp != nil {
		hash = hashAt(f.fp)
	}
	out = f.scanChunks(slices.Sorted(maps.Keys(residues)), func(b []byte, off int64, out []anchor, limit int) []anchor {
		for at := 0; at+clusterBytes <= len(b); at += clusterBytes {
			y := off + int64(at)
			if hash != nil && y%fingerprint.BlockSize == 0 {
				if v, ok := hash(y); ok && v != 0 && fingerprint.Random(b[at:at+clusterBytes]) {
					continue
				}
			}
			for _, bs := range sizes {
				if at+bs > len(b) {
					continue
				}
				blk := b[at : at+bs]
				last := len(blk) - 1
				for last >= 0 && blk[last] == 0 {
					last--
				}
				if last < 0 || last == len(blk)-1 {
					continue
				}
				for _, p := range byShape[key{bs, last + 1}] {
					if len(out) < limit {
						out = append(out, anchor{file: p, img: y, n: int64(bs), kind: "guest file tail", weak: true})
					}
				}
			}
		}
		return out
	})
	if c := f.inst.follow; c != nil {
		c.tailScan = &tailScan{key: cacheKey, anchors: out}
	}
	return out, true
}

// scanChunks reads the image in chunks of tailScanChunk bytes from each
// residue r (offsets r, r + tailScanChunk, ...), those mayHoldTail allows,
// and returns what scan appends for them, in that order, up to
// maxFollowAnchors anchors: as one loop over the chunks would, a residue's
// scan ending at its first read error. Chunks are scanned several at a
// time (each appending to a list of its own, capped at what is still
// wanted when it starts), at most twice f.workers ahead of the one taken
// next, and only as many at once as f.scans allows (shared by every
// file followed at the same time, so that the chunks' buffers are bounded
// for the whole plan).
func (f *follower) scanChunks(residues []int64, scan func(b []byte, off int64, out []anchor, limit int) []anchor) []anchor {
	type chunk struct {
		residue int64
		anchors []anchor
		failed  bool // its read failed: the residue's scan ends
	}
	workers := max(f.workers, 1)
	running := f.scans
	if running == nil {
		running = semaphore.NewWeighted(int64(workers))
	}
	pending := make(chan chan chunk, 2*workers) // chunks in image order, each when scanned
	var found atomic.Int64                      // anchors taken so far
	var stop atomic.Bool                        // enough taken: no chunk need be started
	go func() {
		defer close(pending)
		for _, r := range residues {
			for off := r; off < f.imageSize; off += tailScanChunk {
				if stop.Load() {
					return
				}
				done := make(chan chunk, 1)
				pending <- done
				limit := maxFollowAnchors - int(found.Load())
				go func() {
					running.Acquire(context.Background(), 1) // (never fails: no cancel)
					defer running.Release(1)
					c := chunk{residue: r}
					n := min(tailScanChunk, f.imageSize-off)
					if f.mayHoldTail(off, n) {
						buf := chunkBufs.Get().(*[tailScanChunk]byte)
						defer chunkBufs.Put(buf)
						k, err := f.image.ReadAt(buf[:n], off)
						if err != nil && err != io.EOF {
							c.failed = true
						} else {
							c.anchors = scan(buf[:k], off, nil, limit)
						}
					}
					done <- c
				}()
			}
		}
	}()
	var out []anchor
	failed := map[int64]bool{}
	for done := range pending {
		c := <-done
		switch {
		case failed[c.residue] || stop.Load():
		case c.failed:
			failed[c.residue] = true
		default:
			out = append(out, c.anchors[:min(len(c.anchors), maxFollowAnchors-len(out))]...)
			found.Store(int64(len(out)))
			if len(out) >= maxFollowAnchors {
				stop.Store(true)
			}
		}
	}
	return out
}

// chunkBufs are the chunks' buffers (scanChunks), as many in use as
// chunks are scanned at once.
var chunkBufs = sync.Pool{New: func() any { return new([tailScanChunk]byte) }}

// tailScan is the result of a scan of the image for a set of file tails.
type tailScan struct {
	key     string // tailsKey of the tails scanned for
	anchors []anchor
}

// tailsKey names the follower's set of tails (place, block, bytes used).
func (f *follower) tailsKey() string {
	var b strings.Builder
	for _, p := range f.tailOffsets() {
		t := f.tails[p]
		fmt.Fprintf(&b, "%d/%d/%d;", p, t.Block, t.Used)
	}
	return b.String()
}

// mayHoldTail reports whether image bytes [off, off+n) may hold a block
// shaped like a file tail: by the carve's fingerprints, unless every block
// there is all zero or reads random (a tail is neither), when the range is
// on their grid.
func (f *follower) mayHoldTail(off, n int64) bool {
	if f.fp == nil || off%fingerprint.BlockSize != 0 {
		return true
	}
	for y := off; y < off+n; y += fingerprint.BlockSize {
		v, ok := f.fp.At(y)
		if !ok || (v != 0 && v&fingerprint.RandomBit == 0) {
			return true
		}
	}
	return false
}

// blockSizes are the tails' block sizes.
func (f *follower) blockSizes() map[int]bool {
	out := map[int]bool{}
	for _, t := range f.tails {
		out[t.Block] = true
	}
	return out
}

// random reports whether the carve fingerprinted the block at y random.
func (f *follower) random(y int64) bool {
	if f.fp == nil || y%fingerprint.BlockSize != 0 {
		return false
	}
	h, ok := f.fp.At(y)
	return ok && h&fingerprint.RandomBit != 0
}

// runs turns anchors into disjoint pieces: each hypothesis's anchors in
// file order, split wherever a structure lies between them that does not
// agree, then contested where two pieces claim the same file offsets or
// the same image bytes.
func (f *follower) runs(anchors []anchor) []*run {
	hyp := f.hyp // (setHypotheses over the same anchors)
	sorted := slices.Clone(anchors)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].file != sorted[j].file {
			return sorted[i].file < sorted[j].file
		}
		return sorted[i].img < sorted[j].img
	})
	// Each shift's anchors in file order; only the anchors between two
	// consecutive ones are looked at, so the work is the anchors inside
	// the pieces' spans, not every anchor for every shift.
	byShift := map[int64][]int{}
	for i, a := range sorted {
		if hyp[a.shift()] {
			byShift[a.shift()] = append(byShift[a.shift()], i)
		}
	}
	var runs []*run
	for _, s := range slices.Sorted(maps.Keys(byShift)) {
		idx := byShift[s]
		cur := &run{shift: s, anchors: []anchor{sorted[idx[0]]}}
		for k := 1; k < len(idx); k++ {
			for j := idx[k-1] + 1; j < idx[k]; j++ {
				// Another shift's structure inside this piece's span: it
				// splits the piece unless the piece's own bytes there
				// are the same structure (a copy elsewhere, as another
				// VMDK of the same guest holds). A tail found by its
				// shape is a candidate, not a structure: pieces it backs
				// meet this one in the contest.
				if b := sorted[j]; b.shift() != s && !b.weak && !f.same(b, s) {
					runs = append(runs, cur)
					cur = &run{shift: s}
					break
				}
			}
			cur.anchors = append(cur.anchors, sorted[idx[k]])
		}
		runs = append(runs, cur)
	}
	runs = slices.DeleteFunc(runs, func(r *run) bool { return len(r.anchors) == 0 })
	var whole []*run
	for _, r := range runs {
		whole = append(whole, f.splitAtTails(r)...)
	}
	// A part backed by tails alone must be a hypothesis by itself: a
	// candidate or two cut off from the rest prove nothing, and anchors
	// that only extend pieces none.
	whole = slices.DeleteFunc(whole, func(r *run) bool {
		grains := map[int64]bool{}
		for _, a := range r.anchors {
			if !a.weak {
				return false
			}
			if !a.extendOnly {
				grains[a.file/f.gb] = true
			}
		}
		return len(grains) < minWeakGrains
	})
	return f.contest(whole)
}

// splitAtTails splits a piece where a file tail between its anchors reads
// bytes past the file's end in a block that does not read random: those
// bytes are not the file's, so the piece is not contiguous there. (In a
// random block the tail may be the file's, destroyed by encryption: that
// is for the damage policy, see tailProofs.)
func (f *follower) splitAtTails(r *run) []*run {
	out := []*run{{shift: r.shift}}
	next := 0
	offs := f.tailOffsets()
	from := sort.Search(len(offs), func(i int) bool { return offs[i] > r.lo() })
	for _, p := range offs[from:] {
		if p >= r.hi() {
			break
		}
		t := f.tails[p]
		b := f.read(p+r.shift, int64(t.Block))
		if b == nil {
			continue
		}
		if _, mismatch := t.TailMatch(b); !mismatch || f.randomBlock(p+r.shift, b) {
			continue
		}
		cur := out[len(out)-1]
		for next < len(r.anchors) && r.anchors[next].file+r.anchors[next].n <= p {
			cur.anchors = append(cur.anchors, r.anchors[next])
			next++
		}
		for next < len(r.anchors) && r.anchors[next].file < p+int64(t.Block) {
			next++ // (an anchor in the very block: cannot be)
		}
		f.notes = append(f.notes, fmt.Sprintf("fragment following: shift %d is cut at file offset %d: the %s reads bytes past the file's end there", r.shift, p, t.What))
		out = append(out, &run{shift: r.shift})
	}
	out[len(out)-1].anchors = append(out[len(out)-1].anchors, r.anchors[next:]...)
	return slices.DeleteFunc(out, func(r *run) bool { return len(r.anchors) == 0 })
}

// tailOffsets are the file offsets of the known tails, sorted.
func (f *follower) tailOffsets() []int64 {
	if f.tailOffs == nil {
		f.tailOffs = slices.Sorted(maps.Keys(f.tails))
	}
	return f.tailOffs
}

// randomBlock reports whether the block b read at image offset y reads
// random (by the carve's fingerprint where it has one).
func (f *follower) randomBlock(y int64, b []byte) bool {
	if f.fp != nil && y%fingerprint.BlockSize == 0 {
		if h, ok := f.fp.At(y); ok {
			return h&fingerprint.RandomBit != 0
		}
	}
	return entropy.RandomLooking(b)
}

// tailProofs lists the file tails inside mapped fragments as structures
// the guest predicts there, for the damage policy (judgePredicted): one
// that ends as the file does confirms the bytes around it, one with bytes
// past the file's end that reads random is destroyed.
func (f *follower) tailProofs(frags []Fragment) []structureAt {
	var out []structureAt
	for _, p := range f.tailOffsets() {
		t := f.tails[p]
		i := sort.Search(len(frags), func(i int) bool { return frags[i].FileOffset+frags[i].Length > p })
		if i < len(frags) && frags[i].FileOffset <= p && p+int64(t.Block) <= frags[i].FileOffset+frags[i].Length {
			out = append(out, structureAt{off: p, n: int64(t.Block), what: "the " + t.What, check: t.TailMatch})
		}
	}
	return out
}

// same reports whether the image at shift s holds the bytes anchor a
// found elsewhere.
func (f *follower) same(a anchor, s int64) bool {
	x, y := f.read(a.img, a.n), f.read(a.file+s, a.n)
	return x != nil && y != nil && bytes.Equal(x, y)
}

// contest settles pieces that claim the same file offsets or the same
// image bytes: the one with more anchors in the contested range keeps it,
// a tie leaves it to neither.
func (f *follower) contest(runs []*run) []*run {
	for rounds := 0; rounds < 4*len(runs)+16; rounds++ {
		a, b, lo, hi, byImage := overlapping(runs)
		if a == nil {
			break
		}
		key := func(x anchor) int64 { return x.file }
		if byImage {
			key = func(x anchor) int64 { return x.img }
		}
		var na, nb int
		if !byImage && f.identical(a.shift, b.shift, lo, hi) {
			// The same bytes at both places: a copy, not a rival. The
			// piece with more anchors in all keeps the range.
			na, nb = len(a.anchors), len(b.anchors)
			if na == nb {
				na++ // (the one found first: lower in the file)
			}
		} else {
			// Only anchors the rival's bytes do not repeat count: a
			// copy or another version of the guest repeats most of them.
			// The range goes to a piece with dominantAnchors times the
			// rival's; else to neither.
			na, nb = f.unique(a, b.shift, key, lo, hi), f.unique(b, a.shift, key, lo, hi)
			switch {
			case na >= dominantAnchors*max(nb, 1):
				nb = 0
			case nb >= dominantAnchors*max(na, 1):
				na = 0
			default:
				na, nb = 0, 0
			}
		}
		// The piece holding the file's own header is the file's: it
		// never gives way.
		switch {
		case f.isHead(a):
			na, nb = 1, 0
		case f.isHead(b):
			na, nb = 0, 1
		}
		var keep []*run
		for _, r := range runs {
			switch {
			case r == a && na <= nb, r == b && nb <= na:
				keep = append(keep, split(r, key, lo, hi)...)
			default:
				keep = append(keep, r)
			}
		}
		switch {
		case na == nb:
			f.notes = append(f.notes, fmt.Sprintf("fragment following: shifts %d and %d claim the same bytes with %d anchors each there: neither places them", a.shift, b.shift, na))
		case na < nb:
			f.notes = append(f.notes, contestNote(a, b, na, nb))
		default:
			f.notes = append(f.notes, contestNote(b, a, nb, na))
		}
		runs = keep
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].lo() < runs[j].lo() })
	return runs
}

// unique counts the anchors of r in [lo, hi) whose bytes shift s does not
// hold at the same file offset.
func (f *follower) unique(r *run, s int64, key func(anchor) int64, lo, hi int64) int {
	n := 0
	for _, a := range r.anchors {
		if key(a)+a.n > lo && key(a) < hi && !a.extendOnly && !f.same(a, s) {
			n++
		}
	}
	return n
}

// identical reports whether file offsets [lo, hi) read the same bytes at
// shifts s1 and s2.
func (f *follower) identical(s1, s2, lo, hi int64) bool {
	for off := lo; off < hi; off += tailScanChunk {
		n := min(tailScanChunk, hi-off)
		a, b := f.read(off+s1, n), f.read(off+s2, n)
		if a == nil || b == nil || int64(len(a)) != n || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}

// overlapping finds two pieces that claim the same file offsets, or the
// same image bytes, and the range they both claim: a sweep in file order,
// then in image order, so one call costs R log R for R pieces.
func overlapping(runs []*run) (a, b *run, lo, hi int64, byImage bool) {
	for _, img := range []bool{false, true} {
		lo := func(r *run) int64 {
			if img {
				return r.lo() + r.shift
			}
			return r.lo()
		}
		hi := func(r *run) int64 { return lo(r) + r.hi() - r.lo() }
		sorted := slices.Clone(runs)
		sort.Slice(sorted, func(i, j int) bool { return lo(sorted[i]) < lo(sorted[j]) })
		var reach *run // the piece reaching furthest so far
		for _, r := range sorted {
			if reach != nil && lo(r) < hi(reach) {
				return reach, r, lo(r), min(hi(reach), hi(r)), img
			}
			if reach == nil || hi(r) > hi(reach) {
				reach = r
			}
		}
	}
	return nil, nil, 0, 0, false
}

// isHead reports whether a piece holds the file's header.
func (f *follower) isHead(r *run) bool {
	return r.shift == f.inst.HeaderOffset && r.lo() == 0
}

// count is the anchors of r in [lo, hi).
func count(r *run, key func(anchor) int64, lo, hi int64) int {
	n := 0
	for _, a := range r.anchors {
		if key(a)+a.n > lo && key(a) < hi {
			n++
		}
	}
	return n
}

// split returns the parts of r below and above a contested range.
func split(r *run, key func(anchor) int64, lo, hi int64) []*run {
	below, above := &run{shift: r.shift}, &run{shift: r.shift}
	for _, a := range r.anchors {
		switch {
		case key(a)+a.n <= lo:
			below.anchors = append(below.anchors, a)
		case key(a) >= hi:
			above.anchors = append(above.anchors, a)
		}
	}
	var out []*run
	for _, p := range []*run{below, above} {
		if len(p.anchors) > 0 {
			out = append(out, p)
		}
	}
	return out
}

func contestNote(loser, winner *run, nl, nw int) string {
	if nl == nw {
		return fmt.Sprintf("fragment following: shifts %d and %d claim the same bytes with %d anchors each: neither places them", loser.shift, winner.shift, nl)
	}
	return fmt.Sprintf("fragment following: shift %d gives up file offsets %d..%d to shift %d (%d anchors against %d)", loser.shift, loser.lo(), loser.hi(), winner.shift, nl, nw)
}

// whyOutsideImage is contradicts' word for a block the image does not
// reach.
const whyOutsideImage = "outside the image"

// contradicts says why file block q (clusterBytes at file offset q) cannot
// lie at shift s, or "".
func (f *follower) contradicts(q, s int64) string {
	y := q + s
	if y < 0 || y+clusterBytes > f.imageSize {
		return whyOutsideImage
	}
	if why := foreignAt(f.x, f.inst, y, clusterBytes, nil, false); why != "" {
		return why
	}
	i := sort.Search(len(f.byImg), func(i int) bool { return f.byImg[i].img >= y })
	for ; i < len(f.byImg) && f.byImg[i].img < y+clusterBytes; i++ {
		a := f.byImg[i]
		if a.shift() != s && (!a.weak || f.hyp[a.shift()]) && !f.alsoAt(a.img, s) {
			return fmt.Sprintf("a %s at image offset %d belongs at file offset %d", a.kind, a.img, a.file)
		}
	}
	for p := q; p < q+clusterBytes; p += vmdk.SectorSize {
		if t, ok := f.tails[p]; ok {
			// In a block that reads random the tail may be the file's,
			// destroyed by encryption: that is the damage policy's to
			// decide (splitAtTails, tailProofs).
			if b := f.read(p+s, int64(t.Block)); b != nil {
				if _, mismatch := t.TailMatch(b); mismatch && !f.randomBlock(p+s, b) {
					return fmt.Sprintf("the %s would hold bytes past the file's end", t.What)
				}
			}
		}
	}
	return ""
}

// alsoAt reports whether some anchor at image offset img has shift s (a
// structure with several possible places, one of them this shift's).
func (f *follower) alsoAt(img, s int64) bool {
	i := sort.Search(len(f.byImg), func(i int) bool { return f.byImg[i].img >= img })
	for ; i < len(f.byImg) && f.byImg[i].img == img; i++ {
		if f.byImg[i].shift() == s {
			return true
		}
	}
	return false
}

// zeroGrainEdge reports whether block q is the edge of a grain slot
// (its last block growing up, its first growing down) whose grain reads
// all zero at shift s, where the writer never stores a zero grain. Only
// edges are read: one grain read per grain crossed.
func (f *follower) zeroGrainEdge(q, s int64, up bool) bool {
	if !f.zeroIsProof {
		return false
	}
	i := sort.Search(len(f.slots), func(i int) bool { return f.slots[i]+f.gb > q })
	if i == len(f.slots) || f.slots[i] > q {
		return false
	}
	start := f.slots[i]
	if (up && q != start+f.gb-clusterBytes) || (!up && q != start) {
		return false
	}
	b := f.read(start+s, f.gb)
	return b != nil && int64(len(b)) == f.gb && entropy.Zero(b)
}

// reach grows a piece of shift s from block from towards block to (one
// cluster at a time, down when to < from) and returns the first block it
// cannot hold, with why. An all-zero grain at the shift stops it too: the
// piece cannot hold all of it.
func (f *follower) reach(s, from, to int64) (int64, string) {
	step := int64(clusterBytes)
	if to < from {
		step = -step
	}
	for q := from; q != to; q += step {
		if why := f.contradicts(q, s); why != "" {
			return q, why
		}
		if f.zeroGrainEdge(q, s, step > 0) {
			return q, "an all-zero grain where the writer never stores one"
		}
	}
	return to, ""
}

// reachPlain is reach without the zero-grain test, for a file whose
// grains placeCandidates reads anyway.
func (f *follower) reachPlain(s, from, to int64) (int64, string) {
	for q := from; q < to; q += clusterBytes {
		if why := f.contradicts(q, s); why != "" {
			return q, why
		}
	}
	return to, ""
}

// fragments puts the boundaries between consecutive pieces and builds the
// file map.
func (f *follower) fragments(runs []*run) []Fragment {
	var out []Fragment
	emit := func(off, end, shift int64, link, ev string) {
		if end <= off {
			return
		}
		if n := len(out); n > 0 && out[n-1].Link == link && out[n-1].FileOffset+out[n-1].Length == off && out[n-1].ImageOffset-out[n-1].FileOffset == shift && out[n-1].Evidence == ev {
			out[n-1].Length += end - off
			return
		}
		out = append(out, Fragment{FileOffset: off, ImageOffset: off + shift, Length: end - off, Evidence: ev, Link: link})
	}
	up := func(v int64) int64 { return (v + clusterBytes - 1) / clusterBytes * clusterBytes }
	down := func(v int64) int64 { return v / clusterBytes * clusterBytes }
	// start[i], end[i]: the file range piece i holds for sure.
	start := make([]int64, len(runs))
	end := make([]int64, len(runs))
	bound := make([]string, len(runs)) // what placed the boundary after piece i
	decided := 0                       // boundaries the blocks placed
	for i, r := range runs {
		start[i], end[i] = down(r.lo()), up(r.hi())
	}
	for i := 0; i+1 < len(runs); i++ {
		z1, z2 := end[i], start[i+1]
		if z2 == z1 {
			bound[i] = fmt.Sprintf("at file offset %d, where the pieces' anchored clusters meet", z2)
			decided++
			continue
		}
		if z2 < z1 {
			// Both pieces have anchors in clusters [z2, z1): a cluster
			// lies at one place, so they are the file's own piece's (the
			// header's, which never gives way) or neither's.
			if f.isHead(runs[i]) {
				start[i+1] = z1
				bound[i] = fmt.Sprintf("at file offset %d: the file's first piece keeps clusters both pieces have anchors in", z1)
				decided++
			} else {
				end[i], start[i+1] = z2, z1
				bound[i] = fmt.Sprintf("not known: both pieces have anchors in file offsets %d..%d, which are not mapped", z2, z1)
			}
			continue
		}
		if s := runs[i].shift; s == runs[i+1].shift {
			// One shift on both sides: between two anchors of one shift
			// the file is contiguous unless something there contradicts
			// it (as inside a piece).
			if _, why := f.reach(s, z1, z2); why == "" {
				bound[i] = fmt.Sprintf("at file offset %d: the pieces on both sides have shift %d and nothing between contradicts it", z2, s)
				decided++
				end[i] = z2
				continue
			}
		}
		// Where each shift first meets a contradiction says how far the
		// pieces can reach, not where they end: a piece with no anchors
		// may lie between them, so nothing between is mapped.
		e1, why1 := f.reach(runs[i].shift, z1, z2)
		e2, why2 := f.reach(runs[i+1].shift, z2-clusterBytes, z1-clusterBytes)
		bound[i] = fmt.Sprintf("not known: file offsets %d..%d lie between the pieces' anchors and are not mapped (%s; %s)", z1, z2,
			reachNote(runs[i].shift, "up to", e1, why1), reachNote(runs[i+1].shift, "down to", e2+clusterBytes, why2))
	}
	for i, r := range runs {
		kinds := map[string]int{}
		for _, a := range r.anchors {
			kinds[a.kind]++
		}
		var ks []string
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			ks = append(ks, fmt.Sprintf("%d %s", kinds[k], k))
		}
		ev := fmt.Sprintf("shift %d backed by %d anchors (%s)", r.shift, len(r.anchors), strings.Join(ks, ", "))
		if i+1 < len(runs) {
			ev += "; boundary with the next piece " + bound[i]
		}
		if start[i] == 0 && r.shift == f.inst.HeaderOffset {
			ev = "the file's first piece, from its header: " + ev
		}
		emit(start[i], end[i], r.shift, LinkAnchored, ev)
		if n := len(out); n > 0 && out[n-1].FileOffset == start[i] && end[i] > start[i] {
			out[n-1].Anchors, out[n-1].AnchorKinds = len(r.anchors), kinds
			if i+1 < len(runs) {
				out[n-1].Boundary = bound[i]
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FileOffset < out[j].FileOffset })
	f.notes = append(f.notes, fmt.Sprintf("fragment following: %d pieces found by their anchors, %d boundaries decided by the blocks, %d left in doubt", len(runs), decided, len(runs)-1-decided))
	return out
}

// reachNote says how far a shift reads without a contradiction.
func reachNote(shift int64, dir string, at int64, why string) string {
	if why == "" {
		return fmt.Sprintf("shift %d meets no contradiction %s file offset %d", shift, dir, at)
	}
	return fmt.Sprintf("shift %d reads %s file offset %d, where it meets %s", shift, dir, at, why)
}

// mbrAt reports whether the carve found a partition table at image offset
// off.
func (x *hitIndex) mbrAt(off int64) bool {
	i := sort.Search(len(x.mbrs), func(i int) bool { return x.mbrs[i].Offset >= off })
	return i < len(x.mbrs) && x.mbrs[i].Offset == off
}
