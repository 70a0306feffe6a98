package reassemble

import (
	"slices"
	"sort"
)

// decisions holds one instance's (or disk's) grain decisions in memory
// proportional to what was found, not to the capacity a header claims:
// individual grains (placed ones, conflicts) in a map, and ranges with one
// decision (zeros by table, tables lost, past the last record) as spans.
// A grain with neither has no evidence at all and is missing.
type decisions struct {
	one   map[uint64]*Grain
	spans []span // sorted by first, non-overlapping
}

type span struct {
	first, end uint64
	g          *Grain
}

func newDecisions() *decisions { return &decisions{one: make(map[uint64]*Grain)} }

// set decides one grain; it takes precedence over any span covering it.
func (d *decisions) set(g uint64, gr *Grain) { d.one[g] = gr }

// setRange decides [first, end). Ranges must be added in increasing order;
// a range adjacent to the previous one with the same decision extends it.
func (d *decisions) setRange(first, end uint64, gr *Grain) {
	if end <= first {
		return
	}
	if n := len(d.spans); n > 0 {
		last := &d.spans[n-1]
		if first < last.end {
			first = last.end // never overlap: the earlier decision stands
			if end <= first {
				return
			}
		}
		if last.end == first && sameDecision(last.g, gr) {
			last.end = end
			return
		}
	}
	d.spans = append(d.spans, span{first, end, gr})
}

// at returns the decision for grain g, or nil if there is none.
func (d *decisions) at(g uint64) *Grain {
	if gr := d.one[g]; gr != nil {
		return gr
	}
	i := sort.Search(len(d.spans), func(i int) bool { return d.spans[i].end > g })
	if i < len(d.spans) && d.spans[i].first <= g {
		return d.spans[i].g
	}
	return nil
}

func sameDecision(a, b *Grain) bool {
	return a == b || (a != nil && b != nil && a.Source == nil && b.Source == nil && a.Status == b.Status &&
		a.Reason == b.Reason && slices.Equal(a.Evidence, b.Evidence))
}

// walk calls fn for each segment of [0, n) over which every decisions in
// ds is constant, with each one's decision (nil where it has none). A
// segment holding an individually decided grain is exactly that grain.
func walk(n uint64, ds []*decisions, fn func(first, count uint64, per []*Grain)) {
	bounds := []uint64{0, n}
	for _, d := range ds {
		for g := range d.one {
			bounds = append(bounds, g, g+1)
		}
		for _, s := range d.spans {
			bounds = append(bounds, s.first, s.end)
		}
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	per := make([]*Grain, len(ds))
	for i := 0; i+1 < len(bounds) && bounds[i] < n; i++ {
		a, b := bounds[i], min(bounds[i+1], n)
		for j, d := range ds {
			per[j] = d.at(a)
		}
		fn(a, b-a, per)
	}
}
