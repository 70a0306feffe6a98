// Package damage is the damage policy: the one place where rebuild decides
// that bytes a file's own structure places are destroyed rather than
// merely unusual (see the comment on its thresholds). It works on a file's
// chunk classes and the structural proofs found on them; reading the
// classes from the carve's fingerprints is its caller's (reassemble).
package damage

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The damage policy: the one place where rebuild decides that bytes a
// file's own structure places are destroyed rather than merely unusual.
//
// Compressed, encrypted and random data are ordinary guest content, so how
// random a block looks never vetoes a placement. What does is intermittent
// encryption, which ransomware (ESXiArgs, LockBit, BlackCat, Akira, Royal)
// applies to a file in place: chunks of a fixed size at a fixed stride of
// file offsets, often plus the file's head. It is accepted for a file only
// as a lattice (chunk, stride, phase, extent), and only with proof:
//
//   - statistics: every chunk on the lattice reads random while the file's
//     other data chunks between them mostly do not, and the chance that
//     the file's own random chunks line up with some lattice by accident,
//     bounded over every lattice tried, is below latticeSignificance; or
//     that chance is below uncontrastedSignificance and at least
//     minStructuralProofs chunks on the lattice cover predicted structures
//     that read random, however many of the chunks between read random (a
//     guest half of compressed files shows no contrast, yet a locker's
//     lattice through it is no accident); or
//   - structure: at least minStructuralProofs chunks on the lattice cover
//     structures the VMDK's or the guest's own metadata predicts there
//     (grain tables, inode tables, MFT records, ...), which read random.
//
// A file random throughout has no lattice (nothing contrasts it), and a
// random chunk on no accepted lattice is content. Grains on an accepted
// lattice are Damaged; the instance's Damage report names each lattice,
// its proof and its figures, and the best candidate rejected.
const (
	// ChunkSize is the unit a file's bytes are classified in, and
	// the smallest chunk ransomware encrypts ("1 MiB every N MiB"). Wider
	// chunks are found as lattices of consecutive random chunks.
	ChunkSize = 1 << 20
	// randomChunkShare: a chunk reads random when at least 15/16 of its
	// stored 4 KiB blocks look random. The block test misses about one
	// random block in 2500; guest content rarely fills a whole MiB with
	// random data but does at times (that is what the lattice test is for).
	randomChunkNum, randomChunkDen = 15, 16
	// minLatticeChunks is the fewest random chunks a lattice must cover
	// to be accepted on statistics alone.
	minLatticeChunks = 3
	// minStructuralProofs is the number of lattice chunks covering
	// predicted structures that read random which fixes a lattice
	// without statistics.
	minStructuralProofs = 2
	// maxLatticeStride bounds the strides tried, in chunks (256 MiB):
	// the cost of the search is the file's chunks times this.
	maxLatticeStride = 256
	// latticeSignificance bounds the chance, over every lattice tried for
	// one file, that random guest content alone lines up with one: the
	// statistical proof accepts a lattice only below it. The bound is
	// nominal and conservative (sharpChunkChance is the worst case of
	// grain-aligned content; 4 KiB-granular content is 2^8 times less
	// likely per chunk), and a false acceptance loses content, while a
	// missed lattice places cipher text as the guest's.
	latticeSignificance = 1e-3
	// uncontrastedSignificance is the bound the chance must meet for a
	// lattice whose chunks between are half random or more, which must
	// also cover minStructuralProofs predicted structures reading random:
	// two kinds of evidence, each short of its own bar. The chance weighs
	// that share already (each lattice chunk counts as likely as the
	// random share between them, locally, over the lattice's span), so a
	// guest random in long runs (an archive, a media library) gives a
	// chance near 1 there; the bound is nine orders beyond the ordinary
	// one for what the model of sharp chunks misses (content aligned to
	// the file's MiB grid). The red team's ext4 guest, 55% compressed,
	// with 1 MiB encrypted every 8 MiB had a chance of 1.6e-20 and
	// destroyed file tails on it, and was rejected for want of contrast:
	// 159 grains of cipher text placed.
	uncontrastedSignificance = 1e-12
	// sharpChunkChance bounds the chance that guest content fills a
	// sparse file's chunk exactly, with plain blocks just outside both
	// edges ("sharp"). The file's grains are the guest's allocated ones
	// packed in write order, which shifts guest content off the file's
	// MiB grid: an edge lands on it only if it lands on a grain boundary
	// (1 in 16 for 4 KiB-granular content, always for grain-aligned
	// content) that is one of the 1 in 16 on the grid. Both edges: 2^-8 at
	// the most. A locker's chunks are always sharp unless their neighbour
	// is random too. Not used for flat extents, whose offsets are the
	// guest's own (a guest can align its content to MiBs).
	sharpChunkChance = 1.0 / 256
	// maxLatticeWidth bounds the chunks a locker encrypts at each
	// position, in chunks (4 MiB; window packs counts up to 7).
	maxLatticeWidth = 4
	// maxLatticesPerFile bounds the lattices accepted for one file (a
	// head, then a stride, sometimes two passes of a locker).
	maxLatticesPerFile = 4
)

// Thresholds are the damage policy's named thresholds, echoed into
// the case manifest so a report says which policy decided it.
type Thresholds struct {
	ChunkBytes          int64   `json:"chunk_bytes"`
	RandomChunkShare    string  `json:"random_chunk_share"`
	MinLatticeChunks    int     `json:"min_lattice_chunks"`
	MinStructuralProofs int     `json:"min_structural_proofs"`
	MaxStrideChunks     int     `json:"max_stride_chunks"`
	Significance        float64 `json:"significance"`
	// UncontrastedSignificance is the bound for a lattice without
	// contrast (its chunks between half random or more).
	UncontrastedSignificance float64 `json:"uncontrasted_significance"`
}

// PolicyThresholds returns the thresholds in force.
func PolicyThresholds() Thresholds {
	return Thresholds{ChunkSize, fmt.Sprintf("%d/%d", randomChunkNum, randomChunkDen), minLatticeChunks,
		minStructuralProofs, maxLatticeStride, latticeSignificance, uncontrastedSignificance}
}

// Lattice is an intermittent encryption pattern accepted (or rejected) for
// one file: Chunk bytes at file offsets Phase, Phase+Stride, … below End,
// and Head bytes from the file's start.
type Lattice struct {
	Chunk  int64 `json:"chunk"`
	Stride int64 `json:"stride"`
	Phase  int64 `json:"phase"`
	End    int64 `json:"end"`
	Head   int64 `json:"head,omitempty"`
	// Chunks are the lattice positions that read random (every one with
	// data does); OffLattice the data chunks between them, OffRandom how
	// many of those read random.
	Chunks     int `json:"chunks"`
	OffLattice int `json:"off_lattice"`
	OffRandom  int `json:"off_random"`
	// Tried is the number of lattices (stride, phase) tried for the file;
	// Chance bounds the probability that the file's random chunks line up
	// with one of them by accident (Tried × q^Chunks, q the off-lattice
	// random rate with a prior of one random and one plain chunk).
	Tried  int     `json:"tried"`
	Chance float64 `json:"chance"`
	// Structures lists the predicted structures found random on the
	// lattice's chunks.
	Structures []string `json:"structures,omitempty"`
	Proof      string   `json:"proof"`
}

// String names the lattice as an examiner reads it.
func (l Lattice) String() string {
	s := fmt.Sprintf("%s every %s from file offset %d to %d", size(l.Chunk), size(l.Stride), l.Phase, l.End)
	if l.Head > 0 {
		s = fmt.Sprintf("the first %s, then %s", size(l.Head), s)
	}
	return s
}

func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// Report is the damage policy's account of one file.
type Report struct {
	// DataChunks are the file's chunks holding stored bytes, RandomChunks
	// those of them that read random.
	DataChunks   int       `json:"data_chunks"`
	RandomChunks int       `json:"random_chunks"`
	Lattices     []Lattice `json:"lattices,omitempty"`
	// Rejected is the strongest candidate lattice that was not accepted,
	// with its figures: why the file's random chunks were left as content.
	Rejected *Lattice `json:"best_rejected,omitempty"`
	// Spans are the stretches of the file its own predictions prove
	// destroyed (destroyed.go).
	Spans         []Span `json:"destroyed_spans,omitempty"`
	DamagedGrains uint64 `json:"damaged_grains,omitempty"`
	Decision      string `json:"decision"`
}

// Class is what one chunk of a file holds, from the fingerprints.
type Class uint8

const (
	Unknown Class = iota // not mapped, or fingerprints missing: says nothing
	Empty                // only holes of the host file
	Plain                // stored bytes, not random
	Random               // stored bytes, at least 15/16 of the blocks random-looking
)

// Policy holds one file's chunk classes, the structural proofs
// found on them, and the lattices accepted.
type Policy struct {
	class    []Class
	proofs   map[int][]string // chunk → predicted structures reading random there
	lattices []Lattice
	damaged  []bool // per chunk: on an accepted lattice
	// first and last are the classes of each chunk's first and last 4 KiB
	// block (unknown for a hole): where a random chunk's edges lie.
	first, last []Class
	flat        bool // a flat extent: file offsets are the guest's own
	rejected    *Lattice
	spans       []Span // destroyed spans (Spans, Record)
}

// New makes the policy of a file from its chunks' classes and the classes
// of each chunk's first and last 4 KiB block (ChunkOf); flat: the file is
// a flat extent, whose offsets are the guest's own.
func New(class, first, last []Class, flat bool) *Policy {
	return &Policy{class: class, damaged: make([]bool, len(class)), proofs: map[int][]string{}, first: first, last: last, flat: flat}
}

// ChunkOf classifies one chunk from its 4 KiB blocks' classes, in file
// order: Unknown if a block is (it says nothing), Empty if every block is
// a hole of the host file, Random when at least randomChunkNum /
// randomChunkDen of the stored blocks read random, else Plain. first and
// last are the classes of its first and last block when they hold bytes
// (Unknown otherwise): where a random chunk's edges lie.
func ChunkOf(blocks []Class) (c, first, last Class) {
	stored, random := 0, 0
	for i, b := range blocks {
		if b == Empty {
			continue // a hole of the host file: no bytes to encrypt
		}
		if b == Unknown {
			return Unknown, first, last
		}
		stored++
		if b == Random {
			random++
		}
		if i == 0 {
			first = b
		}
		if i == len(blocks)-1 {
			last = b
		}
	}
	switch {
	case stored == 0:
		return Empty, first, last
	case random*randomChunkDen >= stored*randomChunkNum:
		return Random, first, last
	}
	return Plain, first, last
}

// Lattices returns the lattices accepted for the file.
func (p *Policy) Lattices() []Lattice {
	if p == nil {
		return nil
	}
	return p.lattices
}

// RandomAt reports whether the chunk holding file offset off reads random
// and lies on no accepted lattice.
func (p *Policy) RandomAt(off int64) bool {
	if p == nil || off < 0 {
		return false
	}
	k := off / ChunkSize
	return k < int64(len(p.class)) && p.class[k] == Random && !p.damaged[k]
}

// prove records a predicted structure found random at file offset off.
func (p *Policy) Prove(off int64, what string) {
	if !p.RandomAt(off) {
		return
	}
	k := int(off / ChunkSize)
	if !slices.Contains(p.proofs[k], what) {
		p.proofs[k] = append(p.proofs[k], what)
	}
}

// on returns the accepted lattice destroying any of [off, off+n), if any.
func (p *Policy) On(off, n int64) (*Lattice, bool) {
	if p == nil || n <= 0 {
		return nil, false
	}
	for k := off / ChunkSize; k <= (off+n-1)/ChunkSize && k < int64(len(p.damaged)); k++ {
		if k >= 0 && p.damaged[k] {
			return p.latticeOf(k), true
		}
	}
	return nil, false
}

func (p *Policy) latticeOf(k int64) *Lattice {
	at := k * ChunkSize
	for i := range p.lattices {
		l := &p.lattices[i]
		if at < l.Head || (at >= l.Phase && at < l.End && (at-l.Phase)%l.Stride < l.Chunk) {
			return l
		}
	}
	return &p.lattices[0]
}

// decide searches for lattices until none more is accepted. It returns
// whether it accepted any new one.
func (p *Policy) Decide() bool {
	if p == nil {
		return false
	}
	found := false
	for len(p.lattices) < maxLatticesPerFile {
		l, ok := p.best()
		if !ok {
			break
		}
		p.accept(l)
		found = true
	}
	return found
}

// best finds the strongest lattice among the chunks not yet damaged: the
// structural proof first (most proofs, then most chunks), else the
// smallest chance; but a proven statistical lattice over more chunks than
// the structural one goes first. Two structural proofs fit a sparse
// lattice through a few of a locker's chunks (1 MiB every 56 MiB inside
// 1 MiB every 8 MiB, on the red team's ext4 guest), and once it took
// them, the real lattice, cut into runs, no longer met its bound: the
// larger is accepted first, and the other is judged again without its
// chunks. A candidate that fails both proofs is remembered as the best
// rejected.
func (p *Policy) best() (Lattice, bool) {
	data, rnd := p.prefixCounts()
	if rnd[len(p.class)] < minStructuralProofs {
		return Lattice{}, false
	}
	cands, tried := p.candidates()
	var bestStat, bestStruct *Lattice
	for _, c := range cands {
		l, proof := p.judge(c, data, rnd, tried)
		// Proofs are worded only for the lattices kept: there are many
		// candidates.
		switch {
		case proof == structuralProof:
			if bestStruct == nil || len(l.Structures) > len(bestStruct.Structures) ||
				(len(l.Structures) == len(bestStruct.Structures) && c.on > bestStruct.Chunks) {
				l.Proof = fmt.Sprintf("structure: %d chunks on the lattice cover structures the metadata predicts there, and read random", c.proofs)
				bestStruct = &l
			}
		case proof == statisticalProof:
			if bestStat == nil || l.Chance < bestStat.Chance {
				threshold := latticeSignificance
				if !contrasts(l) {
					threshold = uncontrastedSignificance
				}
				l.Proof = fmt.Sprintf("statistics: all %d chunks on the lattice read random (%d with plain blocks just outside both edges), %d of the %d data chunks between them do; chance of that by accident at most %.1e over %d lattices tried (threshold %.0e)",
					c.on, c.sharp, l.OffRandom, l.OffLattice, l.Chance, tried, threshold)
				bestStat = &l
			}
		default:
			if p.rejected == nil || l.Chance < p.rejected.Chance || (l.Chance == p.rejected.Chance && c.on > p.rejected.Chunks) {
				l.Proof = "rejected: " + rejection(c, l)
				p.rejected = &l
			}
		}
	}
	switch {
	case bestStruct != nil && (bestStat == nil || bestStat.Chunks <= bestStruct.Chunks):
		return *bestStruct, true
	case bestStat != nil:
		return *bestStat, true
	}
	return p.sharpPair()
}

// prefixCounts returns prefix counts of the data and random chunks,
// leaving out those already on an accepted lattice (they prove nothing
// more): data[k] chunks of the first k are data, rnd[k] random.
func (p *Policy) prefixCounts() (data, rnd []int) {
	n := len(p.class)
	data, rnd = make([]int, n+1), make([]int, n+1)
	for k, c := range p.class {
		data[k+1], rnd[k+1] = data[k], rnd[k]
		if p.damaged[k] {
			continue
		}
		if c == Plain || c == Random {
			data[k+1]++
		}
		if c == Random {
			rnd[k+1]++
		}
	}
	return data, rnd
}

// latticeCandidate is the longest run of random windows on one lattice
// (stride, phase, width, in chunks), from window first to window last.
type latticeCandidate struct {
	stride, phase, width, first, last, on, sharp, proofs int
	onChunks, onRandom                                   int // chunks inside the windows, data and random
}

// candidates returns, for every width, stride and phase, the longest run
// of random windows on the lattice that has enough windows to be judged,
// and how many lattices were tried (the chance's multiplier).
func (p *Policy) candidates() (cands []latticeCandidate, tried int) {
	n := len(p.class)
	for w := 1; w <= maxLatticeWidth; w++ {
		wins := p.windows(w)
		for s := w + 1; s <= maxLatticeStride && s < n; s++ {
			for ph := 0; ph < s; ph++ {
				tried++
				if best := longestRun(wins, s, ph, w); best.on >= minStructuralProofs {
					cands = append(cands, best)
				}
			}
		}
	}
	return cands, tried
}

// longestRun finds the longest run of random windows on one lattice: its
// extent ends at a window holding a plain chunk (a locker that stops
// part-way, a file's plain head before the phase).
func longestRun(wins []window, s, ph, w int) latticeCandidate {
	best := latticeCandidate{}
	c := latticeCandidate{stride: s, phase: ph, width: w, first: -1}
	for k := ph; k < len(wins); k += s {
		win := wins[k]
		if win.plain() {
			if c.on > 0 {
				if c.on > best.on {
					best = c
				}
				c = latticeCandidate{stride: s, phase: ph, width: w, first: -1}
			}
			continue
		}
		if win.random() == 0 {
			continue // says nothing either way
		}
		if c.first < 0 {
			c.first = k
		}
		c.last = k
		c.on++
		c.onChunks += win.random()
		c.onRandom += win.random()
		c.proofs += win.proofs()
		if win.sharp() {
			c.sharp++
		}
	}
	if c.on > best.on {
		best = c
	}
	return best
}

// The proofs judge can find for a candidate.
const (
	noProof = iota
	structuralProof
	statisticalProof
)

// judge makes a candidate a Lattice with its figures and says which proof
// it meets, structure first.
func (p *Policy) judge(c latticeCandidate, data, rnd []int, tried int) (Lattice, int) {
	off := data[c.last+c.width] - data[c.first] - c.onChunks
	offRandom := rnd[c.last+c.width] - rnd[c.first] - c.onRandom
	q := float64(offRandom+1) / float64(off+2)
	chance := math.Min(1, float64(tried)*math.Pow(q, float64(c.on-c.sharp))*math.Pow(min(q, sharpChunkChance), float64(c.sharp)))
	// A window of several random chunks is about as likely from content
	// as one (random content comes in runs), so each window counts once.
	l := Lattice{Chunk: int64(c.width) * ChunkSize, Stride: int64(c.stride) * ChunkSize, Phase: int64(c.first) * ChunkSize,
		End: int64(c.last+c.width) * ChunkSize, Chunks: c.on, OffLattice: off, OffRandom: offRandom, Tried: tried, Chance: chance}
	switch {
	case contrasts(l) && c.proofs >= minStructuralProofs:
		l.Structures = p.structuresOn(c.first, c.last, c.stride, c.width)
		return l, structuralProof
	case contrasts(l) && c.on >= minLatticeChunks && chance <= latticeSignificance:
		return l, statisticalProof
	case c.on >= minLatticeChunks && chance <= uncontrastedSignificance && c.proofs >= minStructuralProofs:
		return l, statisticalProof
	}
	return l, noProof
}

// contrasts: "mostly do not". The data chunks between the lattice's must
// show the contrast, or the file is simply random there.
func contrasts(l Lattice) bool { return l.OffLattice > 0 && 2*l.OffRandom <= l.OffLattice }

// rejection says why a candidate meets neither proof.
func rejection(c latticeCandidate, l Lattice) string {
	var why []string
	if !contrasts(l) {
		why = append(why, fmt.Sprintf("%d of the %d data chunks between its chunks read random too: no contrast (then its chance must be below %.0e)", l.OffRandom, l.OffLattice, uncontrastedSignificance))
	}
	if c.on < minLatticeChunks {
		why = append(why, fmt.Sprintf("only %d chunks on it (at least %d needed)", c.on, minLatticeChunks))
	} else if l.Chance > latticeSignificance {
		why = append(why, fmt.Sprintf("chance %.1e of it by accident is above %.0e", l.Chance, latticeSignificance))
	}
	if c.proofs < minStructuralProofs {
		why = append(why, fmt.Sprintf("%d chunks on it cover predicted structures (%d needed)", c.proofs, minStructuralProofs))
	}
	return strings.Join(why, "; ")
}

// window is what the chunks [k, k+w) of a file hold, for the lattice
// search, packed in a byte (the search walks every stride and phase over
// them): how many of its chunks read random (the others say nothing:
// holes, unknown, already damaged) and hold structural proofs, a plain
// chunk among them, and whether it is sharp (plain blocks just outside
// both edges; never in a flat extent).
type window uint8

const (
	windowCountBits = 3 // counts up to maxLatticeWidth
	windowCount     = 1<<windowCountBits - 1
	windowPlain     = 1 << (2 * windowCountBits)
	windowSharp     = windowPlain << 1
)

func (w window) random() int { return int(w & windowCount) }
func (w window) proofs() int { return int(w >> windowCountBits & windowCount) }
func (w window) plain() bool { return w&windowPlain != 0 }
func (w window) sharp() bool { return w&windowSharp != 0 }

// windows classifies every window of w chunks of the file, by its start.
func (p *Policy) windows(w int) []window {
	n := len(p.class)
	if n < w {
		return nil
	}
	out := make([]window, n-w+1)
	for k := range out {
		var random, proofs int
		var win window
		for j := k; j < k+w; j++ {
			switch cl := p.class[j]; {
			case p.damaged[j] || cl == Unknown || cl == Empty:
			case cl == Random:
				random++
				if len(p.proofs[j]) > 0 {
					proofs++
				}
			default:
				win |= windowPlain
			}
		}
		if !p.flat && k > 0 && k+w < n && p.last[k-1] == Plain && p.first[k+w] == Plain {
			win |= windowSharp
		}
		out[k] = win | window(random) | window(proofs)<<windowCountBits
	}
	return out
}

// structuresOn lists the structural proofs on a lattice's windows.
func (p *Policy) structuresOn(first, last, stride, width int) []string {
	var out []string
	for k := first; k <= last; k += stride {
		for j := k; j < k+width; j++ {
			if !p.damaged[j] {
				out = append(out, p.proofs[j]...)
			}
		}
	}
	return out
}

// sharpPair accepts, in a sparse file, a lattice of the file's only two
// random chunks when each is bounded by plain blocks on both sides: too
// few chunks for statistics, but guest content lands on the file's MiB
// grid on both edges about once in 2^16 (a sparse file's grains are the
// guest's allocated ones packed in write order, which shifts guest
// content off that grid), while a locker's chunks always do. Not for a
// flat extent, whose file offsets are the guest's own: a guest can align
// its content to MiBs.
func (p *Policy) sharpPair() (Lattice, bool) {
	if p.flat || len(p.lattices) > 0 {
		return Lattice{}, false
	}
	var ks []int
	for k, c := range p.class {
		if c == Random {
			ks = append(ks, k)
		}
	}
	if len(ks) != minStructuralProofs {
		return Lattice{}, false
	}
	for _, k := range ks {
		if k == 0 || k+1 >= len(p.class) || p.last[k-1] != Plain || p.first[k+1] != Plain {
			return Lattice{}, false
		}
	}
	d := ks[1] - ks[0]
	if d < 2 {
		return Lattice{}, false
	}
	off := 0
	for k := ks[0] + 1; k < ks[1]; k++ {
		if p.class[k] == Plain {
			off++
		}
	}
	// The pair is not searched for (it is the file's only random
	// chunks), so no lattices-tried factor.
	chance := sharpChunkChance * sharpChunkChance
	return Lattice{Chunk: ChunkSize, Stride: int64(d) * ChunkSize, Phase: int64(ks[0]) * ChunkSize,
		End: int64(ks[1]+1) * ChunkSize, Chunks: 2, OffLattice: off, Tried: 1, Chance: chance,
		Proof: fmt.Sprintf("sharp pair: the file's only two random chunks, each bounded by plain blocks on both sides, at file MiBs %d and %d; chance of that from guest content about %.1e", ks[0], ks[1], chance)}, true
}

// accept marks a lattice's chunks damaged, widened to the chunk width the
// locker used (consecutive random chunks at every position) and extended
// with a random head at the file's start.
func (p *Policy) accept(l Lattice) {
	s := int(l.Stride / ChunkSize)
	first, last := int(l.Phase/ChunkSize), int((l.End-l.Chunk)/ChunkSize) // the first and last windows' starts
	positions := func() []int {
		var ks []int
		for k := first; k <= last; k += s {
			if !p.damaged[k] {
				ks = append(ks, k)
			}
		}
		return ks
	}
	ks := positions()
	width := int(l.Chunk / ChunkSize)
	for width < s-1 {
		all := true
		for _, k := range ks {
			if k+width >= len(p.class) || p.class[k+width] != Random || p.damaged[k+width] {
				all = false
				break
			}
		}
		if !all {
			break
		}
		width++
	}
	for _, k := range ks {
		for w := range width {
			if k+w < len(p.class) && p.class[k+w] == Random {
				p.damaged[k+w] = true
			}
		}
	}
	l.Chunk = int64(width) * ChunkSize
	l.End = int64(last+width) * ChunkSize // last is the last window's start
	// A head: the random chunks from the file's start, when the lattice
	// is proven (lockers encrypt the head to kill the file's metadata).
	head := 0
	for head < len(p.class) && head < first && p.class[head] == Random && !p.damaged[head] {
		head++
	}
	if head > 0 && len(p.lattices) == 0 {
		for k := range head {
			p.damaged[k] = true
		}
		l.Head = int64(head) * ChunkSize
	}
	p.lattices = append(p.lattices, l)
}

// report summarises the policy's decisions for the instance report.
func (p *Policy) Report(damagedGrains uint64) *Report {
	if p == nil {
		return nil
	}
	r := &Report{Lattices: p.lattices, Rejected: p.rejected, Spans: p.spans, DamagedGrains: damagedGrains}
	for _, c := range p.class {
		if c == Plain || c == Random {
			r.DataChunks++
		}
		if c == Random {
			r.RandomChunks++
		}
	}
	switch {
	case len(p.lattices) > 0:
		var ls []string
		for _, l := range p.lattices {
			ls = append(ls, l.String())
		}
		r.Decision = fmt.Sprintf("intermittent encryption: %s; %d grains on it are damaged", strings.Join(ls, "; "), damagedGrains)
		r.Rejected = nil
	case r.RandomChunks == 0:
		r.Decision = "no chunk reads random"
	default:
		r.Decision = fmt.Sprintf("%d of %d data chunks read random and lie on no proven lattice: guest content, placed", r.RandomChunks, r.DataChunks)
	}
	if len(p.spans) > 0 {
		var ss []string
		for _, s := range p.spans {
			ss = append(ss, s.String())
		}
		r.Decision += fmt.Sprintf("; destroyed, by the file's own predictions: %s (their random blocks' grains are damaged)", strings.Join(ss, "; "))
	}
	return r
}

// inherit applies a lattice proven on another file of the evidence to this
// one, whose own chunks are too few to prove it: a locker encrypts every
// file of a datastore with one pattern (ESXiArgs, LockBit and the others
// walk the whole volume), so once the pattern is proven, a chunk of
// another file at its very positions reading random is the locker's, not
// content. It holds only if every window of this file on the lattice (from
// the same phase to this file's end) that has data reads random, at least
// one does, and the chunks between them mostly do not. The lattice starts
// where it was found (the locker's phase, as file offsets are the same).
func (p *Policy) Inherit(l Lattice, from int) bool {
	if p == nil || len(p.lattices) > 0 || l.Stride <= 0 || l.Chunk <= 0 {
		return false
	}
	s, w, ph := int(l.Stride/ChunkSize), int(l.Chunk/ChunkSize), int(l.Phase/ChunkSize)
	n := len(p.class)
	on, onChunks, onRandom := 0, 0, 0
	var windows []int
	for k := ph; k < n; k += s {
		data, random := 0, 0
		for j := k; j < min(k+w, n); j++ {
			switch p.class[j] {
			case Random:
				data++
				random++
			case Plain:
				data++
			}
		}
		if data == 0 {
			continue
		}
		if random != data {
			return false
		}
		on++
		onChunks += data
		onRandom += random
		windows = append(windows, k)
	}
	off, offRandom := 0, 0
	for _, c := range p.class {
		switch c {
		case Random:
			off++
			offRandom++
		case Plain:
			off++
		}
	}
	off, offRandom = off-onChunks, offRandom-onRandom
	if on == 0 || off == 0 || 2*offRandom > off {
		return false
	}
	for _, k := range windows {
		for j := k; j < min(k+w, n); j++ {
			if p.class[j] == Random {
				p.damaged[j] = true
			}
		}
	}
	last := windows[len(windows)-1]
	p.lattices = append(p.lattices, Lattice{Chunk: l.Chunk, Stride: l.Stride, Phase: int64(windows[0]) * ChunkSize,
		End: int64(min(last+w, n)) * ChunkSize, Chunks: on, OffLattice: off, OffRandom: offRandom, Tried: 1,
		Proof: fmt.Sprintf("inherited: the lattice is proven on instance %d (%s); all %d of this file's windows on it read random, %d of its %d other data chunks do", from, l.Proof, on, offRandom, off)})
	return true
}
