package reassemble

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"vmdkcarve/fingerprint"
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
	"vmdkcarve/reassemble/damage"
	"vmdkcarve/vmdk"
)

// The damage policy's types, as the reports show them (package damage).
type (
	Lattice          = damage.Lattice
	DamageReport     = damage.Report
	DamageThresholds = damage.Thresholds
)

// DamagePolicyThresholds are the damage policy's named thresholds.
func DamagePolicyThresholds() DamageThresholds { return damage.PolicyThresholds() }

// newDamagePolicy classifies the chunks of the first size bytes of a file
// from the carve's fingerprints (nil: no policy, nothing is damaged),
// up to workers ranges of chunks at once (each chunk's class is its own
// blocks' alone, so the split changes nothing).
func newDamagePolicy(view *fileView, fp Fingerprints, size int64, flat bool, workers int) *damage.Policy {
	if fp == nil || size <= 0 {
		return nil
	}
	n := int((size + damage.ChunkSize - 1) / damage.ChunkSize)
	class, first, last := make([]damage.Class, n), make([]damage.Class, n), make([]damage.Class, n)
	classify := func(from, to int) {
		bc := newBlockClassifier(view, fp)
		blocks := make([]damage.Class, 0, damage.ChunkSize/fingerprint.BlockSize)
		for k := from; k < to; k++ {
			blocks = blocks[:0]
			lo, hi := int64(k)*damage.ChunkSize, min(size, int64(k+1)*damage.ChunkSize)
			for off := lo; off < hi; off += fingerprint.BlockSize {
				b := bc.class(off, min(fingerprint.BlockSize, size-off))
				blocks = append(blocks, b)
				if b == damage.Unknown {
					break // (the chunk says nothing)
				}
			}
			class[k], first[k], last[k] = damage.ChunkOf(blocks)
		}
	}
	// A range of chunks is worth a goroutine from minChunksPerWorker on.
	const minChunksPerWorker = 16
	workers = max(1, min(workers, n/minChunksPerWorker))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { classify(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
	return damage.New(class, first, last, flat)
}

// blockClassifier tells what a file's 4 KiB blocks hold (class), for one
// goroutine: it keeps the window of image bytes the blocks it must read
// come from.
type blockClassifier struct {
	view  *fileView
	fp    Fingerprints
	hash  func(int64) (uint64, bool) // fp without the randomness test
	win   []byte                     // image bytes [winAt, winAt+len(win))
	winAt int64
}

// classifyWindow is how many image bytes an unaligned block's read
// brings in at once: the policy walks a file's blocks in order, so one
// read serves the 16 blocks after it, as pipeline.Fingerprints reads 16
// blocks at once for their random bits.
const classifyWindow = 16 * fingerprint.BlockSize

func newBlockClassifier(view *fileView, fp Fingerprints) *blockClassifier {
	return &blockClassifier{view: view, fp: fp, hash: hashAt(fp)}
}

// class is what the file's 4 KiB block at off (n bytes of it in the file)
// holds: a hole of the host file (Empty), not known (unmapped, unreadable
// or no fingerprint), plain or random-looking.
//
// The carve's fingerprints cover the image's own 4 KiB blocks, so they
// tell a file's block only where the file lies at a multiple of 4 KiB in
// the image. A file at any other sector (an MBR partition at sector 63
// puts every file of its volume there) straddles two image blocks with
// each of its own: class then reads the block's bytes from the image and
// tests them as the carve tests a block (fingerprint.Of: all-zero is
// plain, fingerprint.Random is random), provided the fingerprints know
// both image blocks it straddles (an unreadable area says nothing). The
// cost is what the aligned case costs: the fingerprints' random bits are
// themselves tested from the image's bytes (pipeline.Fingerprints), each
// block once; here every block the policy consults is read once, in
// windows of classifyWindow bytes into the classifier's one buffer, so
// memory stays bounded whatever the file's size.
func (bc *blockClassifier) class(off, n int64) damage.Class {
	img, err := bc.view.imageOffset(off, n)
	switch {
	case err == nil && img == -1:
		return damage.Empty
	case err != nil || n <= 0:
		return damage.Unknown
	case img%fingerprint.BlockSize != 0:
		return bc.readClass(img, n)
	}
	v, ok := bc.fp.At(img)
	switch {
	case !ok:
		return damage.Unknown
	case v&fingerprint.RandomBit != 0:
		return damage.Random
	}
	return damage.Plain
}

// readClass classifies the n bytes at image offset img, not at a 4 KiB
// boundary, from the bytes themselves.
func (bc *blockClassifier) readClass(img, n int64) damage.Class {
	if _, ok := bc.hash(img); !ok {
		return damage.Unknown
	}
	if _, ok := bc.hash(img + n - 1); !ok {
		return damage.Unknown
	}
	b, ok := bc.bytesAt(img, n)
	if !ok {
		return damage.Unknown // (a short read: the bytes say nothing)
	}
	// (fingerprint.Of's test: an all-zero block never reads random, so
	// it is plain here as Of's 0 is.)
	if fingerprint.Random(b) {
		return damage.Random
	}
	return damage.Plain
}

// bytesAt returns the image's n bytes (n <= classifyWindow) at img from
// the classifier's window, reading a new window at img when the last
// one does not hold them; false if the image holds fewer than n bytes
// there (a read short of the window's end only ends the window early).
func (bc *blockClassifier) bytesAt(img, n int64) ([]byte, bool) {
	if img < bc.winAt || img+n > bc.winAt+int64(len(bc.win)) {
		if bc.win == nil {
			bc.win = make([]byte, classifyWindow)
		}
		m, _ := bc.view.image.ReadAt(bc.win[:cap(bc.win)], img)
		bc.win, bc.winAt = bc.win[:m], img
		if int64(m) < n {
			return nil, false
		}
	}
	return bc.win[img-bc.winAt:][:n], true
}

// inheritLattices applies the lattices proven on some files to the other
// files of the evidence (damage.Policy.Inherit), and marks the grains
// placed on them damaged.
func inheritLattices(instances []*Instance) {
	type proven struct {
		l    Lattice
		from int
	}
	var ls []proven
	for _, inst := range instances {
		for _, l := range inst.damage.Lattices() {
			if !strings.HasPrefix(l.Proof, "inherited") {
				ls = append(ls, proven{l, inst.ID})
			}
		}
	}
	if len(ls) == 0 {
		return
	}
	for _, inst := range instances {
		p := inst.damage
		if p == nil || len(p.Lattices()) > 0 {
			continue
		}
		for _, c := range ls {
			if c.from != inst.ID && p.Inherit(c.l, c.from) {
				break
			}
		}
		if len(p.Lattices()) == 0 {
			continue
		}
		gb := inst.Header.GrainBytes()
		damaged := uint64(0)
		for g, gr := range inst.grains.one {
			if gr.Status == Damaged {
				damaged++
				continue
			}
			if gr.Status != Placed || gr.Source == nil || gr.Source.Compressed {
				continue
			}
			if l, ok := p.On(gr.Source.FileOffset, gb); ok {
				inst.grains.set(g, damagedGrain(l, gr.Source.FileOffset))
				damaged++
			}
		}
		inst.Damage = p.Report(damaged)
		inst.Notes = append(inst.Notes, inst.Damage.Decision)
	}
}

// judgePredicted checks the structures the VMDK and the guest predict in a
// file (predicted, in any order, a structure listed twice counted once)
// against the bytes the file's map reads at their places, for the damage
// policy (damage/destroyed.go):
//
//   - a guest file's last block (tail) that ends as the file does, its
//     last byte where the size says and zeros after, is Confirmed: random
//     bytes do not end so;
//   - a tail with bytes past the file's end whose blocks read random is
//     Destroyed: the block is not the file's, and random bytes are not
//     another structure's (bytes past the end that do not read random are
//     the follower's contradiction, not damage);
//   - any other structure (a grain table, a block a copy holds in clear)
//     is Destroyed when it lies in a chunk that reads random and its
//     blocks do. Only those are read: there is one per grain table, and
//     the tables were read already.
//
// A tail is read once, its block's bytes (the guest's block size); the
// tails are those of the guest files whose records the follower found,
// bounded there (fsprobe's maxTails).
func judgePredicted(view *fileView, fp Fingerprints, dmg *damage.Policy, predicted []structureAt) []damage.Prediction {
	if dmg == nil || fp == nil {
		return nil
	}
	var out []damage.Prediction
	seen := map[int64]bool{}
	var buf []byte
	for _, s := range predicted {
		if seen[s.off] || s.n <= 0 {
			continue
		}
		seen[s.off] = true
		q := damage.Prediction{Off: s.off, N: s.n, What: s.what}
		switch {
		case s.check != nil:
			if int64(cap(buf)) < s.n {
				buf = make([]byte, s.n)
			}
			b := buf[:s.n]
			if _, err := view.ReadAt(b, s.off); err != nil {
				break
			}
			match, mismatch := s.check(b)
			switch {
			case match:
				q.Outcome = damage.Confirmed
			case mismatch && blocksRandom(view, fp, s.off, s.n):
				q.Outcome = damage.Destroyed
			}
		case dmg.RandomAt(s.off) && blocksRandom(view, fp, s.off, s.n):
			q.Outcome = damage.Destroyed
		}
		out = append(out, q)
	}
	return out
}

// markDestroyed decides the grains a file's own predictions prove
// destroyed (damage/destroyed.go), lattice or not, where they are placed
// (or zero) so far: the grain holding a destroyed prediction, and in a
// destroyed span, every grain with a 4 KiB block inside the span that
// reads random. A grain in a span none of whose blocks there reads random
// stays as placed: whatever destroyed the span wrote random bytes, and it
// may be intact guest text between destroyed parts (the placement's own
// checks have not contradicted it). preds are judgePredicted's; the
// file's data lies in [start, end) in grains of grainBytes; cands are in
// file order.
func markDestroyed(inst *Instance, view *fileView, fp Fingerprints, dmg *damage.Policy, cands []candidate, preds []damage.Prediction, start, end, grainBytes int64) {
	if dmg == nil {
		return
	}
	h := inst.Header
	slotEnd := func(i int) int64 { return int64(cands[i].sector)*vmdk.SectorSize + grainLength(h, cands[i].grain) }
	decided := func(g uint64) bool {
		gr := inst.grains.one[g]
		return gr == nil || (gr.Status != Placed && gr.Status != Zero)
	}
	for _, q := range preds {
		if q.Outcome != damage.Destroyed {
			continue
		}
		i := sort.Search(len(cands), func(i int) bool { return slotEnd(i) > q.Off })
		if i == len(cands) || int64(cands[i].sector)*vmdk.SectorSize > q.Off || decided(cands[i].grain) {
			continue
		}
		inst.grains.set(cands[i].grain, &Grain{Status: Damaged, Reason: Reason{Code: ReasonStructureDestroyed, Offset: q.Off, Detail: q.What}})
	}
	spans := dmg.Spans(preds, start, end, grainBytes)
	bc := newBlockClassifier(view, fp)
	for k := range spans {
		s := &spans[k]
		for i := sort.Search(len(cands), func(i int) bool { return slotEnd(i) > s.From }); i < len(cands); i++ {
			c := cands[i]
			lo := int64(c.sector) * vmdk.SectorSize
			if lo >= s.To {
				break
			}
			gr := inst.grains.one[c.grain]
			if decided(c.grain) || gr.Status != Placed {
				continue // (a zero grain reads no random block)
			}
			for b := lo; b < min(slotEnd(i), s.To); b += fingerprint.BlockSize {
				if b+fingerprint.BlockSize <= s.From {
					continue
				}
				if bc.class(b, min(fingerprint.BlockSize, slotEnd(i)-b)) == damage.Random {
					inst.grains.set(c.grain, &Grain{Status: Damaged, Reason: Reason{Code: ReasonDestroyedSpan, Offset: b, Detail: s.String()}})
					s.Grains++
					break
				}
			}
		}
	}
	dmg.Record(spans)
}

// maxGuestPredictions bounds the guest's own predictions guestPredictions
// evaluates for one file (each a read of at most 64 KiB, most of a few
// hundred bytes): an ext4 volume predicts a few inodes per group and its
// superblock backups, an NTFS volume its first MFT records.
const maxGuestPredictions = 1 << 16

// guestPredictions evaluates the guest's own predictions (fsprobe's
// Expectations, the very ones the contiguity walk checks: a partition
// table's volumes, a superblock's backups, group descriptors and inodes,
// a boot sector's MFT records) through the file's map, for the damage
// policy: each one whose grain the tables place becomes a structure with
// its check. A disk without a partition table is tried as an ext or NTFS
// volume at its start; those two guesses are soft (a disk of cipher text
// contradicts neither), and only what a match predicts counts.
func guestPredictions(inst *Instance, view *fileView, cands []candidate) []structureAt {
	h := inst.Header
	gb := h.GrainBytes()
	diskSize := int64(h.Capacity) * vmdk.SectorSize
	if gb <= 0 || len(cands) == 0 {
		return nil
	}
	sectorOf := make(map[uint64]uint32, len(cands))
	for _, c := range cands {
		sectorOf[c.grain] = c.sector
	}
	fileOf := func(v, n int64) (int64, bool) {
		if v < 0 || n <= 0 || v/gb != (v+n-1)/gb {
			return 0, false
		}
		sec, ok := sectorOf[uint64(v/gb)]
		return int64(sec)*vmdk.SectorSize + v%gb, ok
	}
	read := func(v, n int64) ([]byte, int64, bool) {
		p, ok := fileOf(v, n)
		if !ok {
			return nil, 0, false
		}
		b := make([]byte, n)
		if _, err := view.ReadAt(b, p); err != nil {
			return nil, 0, false
		}
		return b, p, true
	}
	var queue []fsprobe.Expectation
	if b, _, ok := read(0, min(gb, 64<<10)); ok && len(b) >= vmdk.SectorSize {
		queue = fsprobe.ExpectFromMBR(b, diskSize)
	}
	if len(queue) == 0 {
		for _, e := range slices.Concat(fsprobe.ExpectExt4Volume(0), fsprobe.ExpectNTFSVolume(0)) {
			e.Soft = true
			queue = append(queue, e)
		}
	}
	var out []structureAt
	for done := 0; len(queue) > 0 && done < maxGuestPredictions; done++ {
		e := queue[0]
		queue = queue[1:]
		if e.Len <= 0 || e.Len > 64<<10 || e.Offset < 0 || e.Offset+int64(e.Len) > diskSize {
			continue
		}
		b, p, ok := read(e.Offset, int64(e.Len))
		if !ok {
			continue
		}
		if e.Match(b) {
			if e.Then != nil {
				queue = append(queue, e.Then(b)...)
			}
		}
		if e.Soft {
			continue
		}
		match := e.Match
		out = append(out, structureAt{off: p, n: int64(e.Len), what: e.Desc, check: func(b []byte) (bool, bool) {
			ok := match(b)
			return ok, !ok
		}})
	}
	return out
}

// hostedTails lists the guest's file tails in a file its host maps, as
// the follower lists them in a file it follows (tailProofs), for the
// damage policy: the guest's geometry is learned from the geometry
// structures the carve found inside the file (a partition table in grain
// 0, a boot sector or primary superblock where the tables put its
// volume's start), its records from the guest structures found inside
// it, each read through the host's map (learnWindow and anchorWindow
// bytes, once per structure), and a tail is listed where the tables place
// its block.
func hostedTails(inst *Instance, view *fileView, x *hitIndex, cands []candidate) []structureAt {
	h := inst.Header
	gb := h.GrainBytes()
	if gb <= 0 || len(cands) == 0 || len(x.guest) == 0 {
		return nil
	}
	sectorOf := make(map[uint64]uint32, len(cands))
	slots := make([]int64, 0, len(cands))
	slotGrain := make(map[int64]uint64, len(cands))
	for _, c := range cands {
		p := int64(c.sector) * vmdk.SectorSize
		sectorOf[c.grain], slotGrain[p] = c.sector, c.grain
		slots = append(slots, p)
	}
	slices.Sort(slots)
	virtualOf := func(p int64) (int64, bool) {
		i := sort.Search(len(slots), func(i int) bool { return slots[i]+gb > p })
		if i == len(slots) || slots[i] > p {
			return 0, false
		}
		return int64(slotGrain[slots[i]])*gb + p - slots[i], true
	}
	read := func(p, n int64) []byte {
		b := make([]byte, max(0, min(n, view.size()-p)))
		if len(b) == 0 {
			return nil
		}
		if _, err := view.ReadAt(b, p); err != nil {
			return nil
		}
		return b
	}
	loc := fsprobe.NewLocator(gb, int64(h.Capacity)*vmdk.SectorSize)
	for _, y := range x.geometry {
		start := y
		switch {
		case x.volumeAt[y-ext4.SuperblockOffset]:
			start = y - ext4.SuperblockOffset // a primary superblock: its block
		case x.volumeAt[y]:
			// An NTFS boot sector names its own place (LearnAt checks it).
		}
		p, ok := inst.fileOffsetOf(start)
		if !ok {
			continue
		}
		v, ok := virtualOf(p)
		if !ok || (x.mbrAt(y) && v != 0) {
			continue // (a partition table is sector 0)
		}
		if b := read(p, learnWindow); b != nil {
			loc.LearnAt(b, v)
		}
	}
	loc.Prepare()
	if loc.Volumes() == 0 {
		return nil
	}
	offs := slices.Sorted(slices.Values(x.guest))
	covered := int64(-1)
	for _, y := range offs {
		p, ok := inst.fileOffsetOf(y)
		if !ok || y < covered {
			continue
		}
		if b := read(p, anchorWindow); b != nil {
			covered = y + anchorWindow/2
			loc.Locate(b)
		}
	}
	var out []structureAt
	for _, t := range loc.Tails() {
		g := uint64(t.Addr / gb)
		sec, ok := sectorOf[g]
		if !ok || (t.Addr+int64(t.Block)-1)/gb != t.Addr/gb {
			continue
		}
		out = append(out, structureAt{off: int64(sec)*vmdk.SectorSize + t.Addr%gb, n: int64(t.Block), what: "the " + t.What, check: t.TailMatch})
	}
	return out
}
