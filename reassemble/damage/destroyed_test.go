package damage

import (
	"strings"
	"testing"
)

// predictionsOf lays out predictions from a pattern, one character per
// 64 KiB unit from file offset 0: 'c' a confirmed prediction, 'd' a
// destroyed one, 'D' two destroyed ones in the same unit, 'u' one neither
// confirmed nor destroyed, '.' none.
func predictionsOf(pattern string) []Prediction {
	var out []Prediction
	for i, c := range pattern {
		off := int64(i) * testUnit
		switch c {
		case 'c':
			out = append(out, Prediction{Off: off, N: 4096, What: "tail", Outcome: Confirmed})
		case 'd':
			out = append(out, Prediction{Off: off, N: 4096, What: "tail", Outcome: Destroyed})
		case 'D':
			out = append(out, Prediction{Off: off, N: 256, What: "inode", Outcome: Destroyed},
				Prediction{Off: off + 256, N: 256, What: "inode", Outcome: Destroyed})
		case 'u':
			out = append(out, Prediction{Off: off, N: 4096, What: "table", Outcome: Unchecked})
		}
	}
	return out
}

const testUnit = 64 << 10

func TestDestroyedSpans(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern string
		want    [][2]int64
	}{
		{"nothing", "....", nil},
		{"intact", "c.c.c.c", nil},
		{"two destroyed are not a span", "c.d.d.c", nil},
		{"three destroyed between confirmations", "c.d.d.d.c", [][2]int64{{4096, 8 * testUnit}}},
		{"to the file's end", "c..d.d..d..", [][2]int64{{4096, 11 * testUnit}}},
		{"from the data start", "d.d.d.c", [][2]int64{{0, 6 * testUnit}}},
		{"a confirmation between breaks the run", "c.d.d.c.d.d.c", nil},
		{"unchecked ones do not break it", "c.d.u.d.u.d.c", [][2]int64{{4096, 12 * testUnit}}},
		{"one unit is one proof", "c.D.D.c", nil},
		{"one unit is one proof, three units a span", "c.D.D.D", [][2]int64{{4096, 7 * testUnit}}},
		{"two spans", "c.ddd.c.ddd", [][2]int64{{4096, 6 * testUnit}, {6*testUnit + 4096, 11 * testUnit}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p *Policy
			end := int64(len(tc.pattern)) * testUnit
			spans := p.Spans(predictionsOf(tc.pattern), 0, end, testUnit)
			if len(spans) != len(tc.want) {
				t.Fatalf("spans %v, want %v", spans, tc.want)
			}
			for i, s := range spans {
				if s.From != tc.want[i][0] || s.To != tc.want[i][1] || s.Proofs < MinSpanProofs {
					t.Errorf("span %d: %v, want from %d to %d", i, s, tc.want[i][0], tc.want[i][1])
				}
			}
		})
	}
}

// TestDestroyedSpansLatticeExplains: destroyed predictions on chunks an
// accepted lattice explains are the lattice's, not a span's.
func TestDestroyedSpansLatticeExplains(t *testing.T) {
	p := policyOf(lattice(strings.Repeat(".", 64), 0, 2, 8, 1, 0), false)
	p.Decide()
	if len(p.Lattices()) != 1 {
		t.Fatalf("lattices %v, want the planted one", p.Lattices())
	}
	// Three destroyed tails in chunk 10 (on the lattice), none confirmed.
	var preds []Prediction
	for _, off := range []int64{10<<20 + 4096, 10<<20 + 200<<10, 10<<20 + 900<<10} {
		preds = append(preds, Prediction{Off: off, N: 4096, What: "tail", Outcome: Destroyed})
	}
	if s := p.Spans(preds, 0, 64<<20, testUnit); len(s) != 0 {
		t.Errorf("spans %v on a lattice's chunk, want none", s)
	}
	// The same off the lattice (chunk 11) make a span.
	for i := range preds {
		preds[i].Off += 1 << 20
	}
	if s := p.Spans(preds, 0, 64<<20, testUnit); len(s) != 1 {
		t.Errorf("spans %v off the lattice, want one", s)
	}
}

// TestDestroyedSpanReport: a recorded span is in the report's decision.
func TestDestroyedSpanReport(t *testing.T) {
	p := policyOf(strings.Repeat(".", 8), false)
	spans := p.Spans(predictionsOf("c.d.d.d"), 0, 7*testUnit, testUnit)
	spans[0].Grains = 5
	p.Record(spans)
	r := p.Report(5)
	if len(r.Spans) != 1 || r.Spans[0].Grains != 5 || !strings.Contains(r.Decision, "destroyed, by the file's own predictions: file offsets 4096 to") {
		t.Errorf("report %+v", r)
	}
}
