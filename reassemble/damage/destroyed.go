package damage

import (
	"cmp"
	"fmt"
	"slices"
)

// Destroyed structures and destroyed spans: damage proven by the file's
// own predictions, lattice or not.
//
// A structure the VMDK or the guest predicts at a file offset (a grain
// table, a guest file's last block with zeros past its end) that reads
// random there is not there: the bytes at that place are not the guest's.
// That proves the grain holding it damaged, whatever the lattice search
// finds (Destroyed predictions; the caller marks their grains). It
// proves nothing about its neighbours, which may be intact guest content
// that happens to read random.
//
// Several such proofs in a row, with no prediction confirmed between them,
// prove more: the file is destroyed over the stretch they lie in (a copy
// cut short and followed by noise, a region overwritten with random
// bytes). The stretch is bounded only by what the bytes confirm: it runs
// from the end of the last confirmed prediction before the first proof
// (or the file's data start) to the first confirmed prediction after the
// last (or the file's end). Inside it, a block that reads random is taken
// as destroyed (its grain is damaged); a block that does not read random
// was not written by whatever destroyed the span, and is left to the
// placement's other checks (it may be intact guest text between destroyed
// parts). Randomness alone never opens a span: only predictions do, and a
// guest whose content is random throughout (BitLocker, compressed files)
// confirms its predictions where it is intact.
const (
	// MinSpanProofs is the fewest destroyed predictions, with no confirmed
	// one between them, that prove the stretch they lie in destroyed.
	// One or two may be stale guest records (a file rewritten in place,
	// an inode whose block was not yet written); three in a row, with no
	// intact one between, are not.
	MinSpanProofs = 3
)

// Outcome is what the bytes at a predicted structure's place show.
type Outcome uint8

const (
	Unchecked Outcome = iota // neither: the bytes neither hold it nor read random
	Confirmed                // the structure is there
	Destroyed                // the bytes read random where the structure is predicted
)

// Prediction is a structure the file's metadata predicts at a file
// offset, with what the bytes there show.
type Prediction struct {
	Off, N  int64
	What    string
	Outcome Outcome
}

// Span is a stretch of a file proven destroyed by Proofs destroyed
// predictions with none confirmed between them: file offsets [From, To).
type Span struct {
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Proofs int    `json:"proofs"`
	First  string `json:"first_proof"` // the first proof's structure
	// Bounds says what bounds the span on each side.
	Bounds string `json:"bounds"`
	// Grains is how many grains of the span read random and were damaged.
	Grains uint64 `json:"damaged_grains"`
}

// String names the span as an examiner reads it.
func (s Span) String() string {
	return fmt.Sprintf("file offsets %d to %d (%d destroyed predictions, the first %s; %s)", s.From, s.To, s.Proofs, s.First, s.Bounds)
}

// Spans finds the destroyed spans among a file's predictions (any order),
// whose data lies in file offsets [start, end) in units (grains) of unit
// bytes from start. Proofs count once per unit: the predictions in one
// unit (the inodes of one inode table block) fall with it together, so
// they are one proof, not several. Destroyed predictions on
// chunks an accepted lattice already explains do not count: the lattice
// says where the destruction lies (p may be nil).
func (p *Policy) Spans(preds []Prediction, start, end, unit int64) []Span {
	ps := slices.Clone(preds)
	slices.SortFunc(ps, func(a, b Prediction) int { return cmp.Or(cmp.Compare(a.Off, b.Off), cmp.Compare(a.Outcome, b.Outcome)) })
	var out []Span
	from, fromWhat := start, "the file's data start"
	unit = max(unit, 1)
	var run []Prediction // the first destroyed prediction of each unit, in order
	closeRun := func(to int64, toWhat string) {
		if len(run) >= MinSpanProofs && to > from {
			out = append(out, Span{From: from, To: to, Proofs: len(run), First: run[0].What,
				Bounds: fmt.Sprintf("from %s to %s", fromWhat, toWhat)})
		}
		run = nil
	}
	for _, q := range ps {
		if q.Off < start || q.Off >= end {
			continue
		}
		switch q.Outcome {
		case Confirmed:
			closeRun(q.Off, q.What+", intact")
			if q.Off+q.N > from {
				from, fromWhat = q.Off+q.N, q.What+", intact"
			}
		case Destroyed:
			_, explained := p.On(q.Off, max(q.N, 1))
			sameUnit := len(run) > 0 && (run[len(run)-1].Off-start)/unit == (q.Off-start)/unit
			if !explained && !sameUnit {
				run = append(run, q)
			}
		}
	}
	closeRun(end, "the file's end")
	return out
}

// Record keeps the spans found for the file (with their damaged grains)
// for its report.
func (p *Policy) Record(spans []Span) {
	if p != nil {
		p.spans = append(p.spans, spans...)
	}
}
