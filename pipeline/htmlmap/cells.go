package htmlmap

import (
	"cmp"
	"math/bits"
	"slices"
)

// The size of the page is bounded whatever the case: a strip or a disk
// map is drawn as at most MaxCells cells, each standing for an equal share
// of the image's bytes or the disk's grains, coloured by the class that
// holds most of it, with the exact figures in its tooltip.
const (
	// MaxCells bounds the cells of the strip and of each disk map.
	MaxCells = 4096
	// Columns is the cells per row: a strip or map reads left to right,
	// top to bottom, like text.
	Columns = 128
	// minStripCell is the fewest image bytes a strip cell stands for
	// (a sector): a small image gets fewer cells, never fractions of a
	// sector.
	minStripCell = 512
	// maxCellLabels bounds the segment labels one cell's tooltip lists.
	maxCellLabels = 3
)

// span is the half-open range [start, end) of positions (image bytes or
// disk grains) holding key, with the index of its label (-1: none).
type span struct {
	start, end uint64
	key        int
	label      int
}

// part is how much of a cell one key holds.
type part struct {
	key int
	n   uint64
}

// cell is one drawn cell: its range, what holds it (parts, most first,
// then by key), and the labels of the spans in it.
type cell struct {
	start, end uint64
	parts      []part
	labels     []int
	moreLabels int // labels in the cell beyond maxCellLabels
}

func (c *cell) dominant() int { return c.parts[0].key }

// pure reports whether one key holds the whole cell.
func (c *cell) pure() bool { return len(c.parts) == 1 }

// cellCount is how many cells stand for total positions when a cell must
// hold at least minPer of them.
func cellCount(total, minPer uint64) int {
	if total == 0 {
		return 0
	}
	n := total / minPer
	if total%minPer != 0 {
		n++
	}
	return int(min(n, MaxCells))
}

// bound is where cell c of n starts: floor(c × total / n), without
// overflow for any total (c ≤ n, so the quotient fits).
func bound(total uint64, c, n int) uint64 {
	hi, lo := bits.Mul64(uint64(c), total)
	q, _ := bits.Div64(hi, lo, uint64(n))
	return q
}

// normalize clips spans to [0, total), sorts them by start (then key and
// label, so the result does not depend on the input's order) and makes
// them disjoint: where two overlap, the one that starts first keeps the
// overlap.
func normalize(spans []span, total uint64) []span {
	out := make([]span, 0, len(spans))
	for _, s := range spans {
		s.end = min(s.end, total)
		if s.start < s.end {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b span) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		if a.key != b.key {
			return a.key - b.key
		}
		return a.label - b.label
	})
	k, cur := 0, uint64(0)
	for _, s := range out {
		s.start = max(s.start, cur)
		if s.start >= s.end {
			continue
		}
		out[k] = s
		k++
		cur = s.end
	}
	return out[:k]
}

// subtract returns the parts of a (sorted, disjoint) that no span of b
// (sorted, disjoint) covers.
func subtract(a, b []span) []span {
	var out []span
	j := 0
	for _, s := range a {
		for j < len(b) && b[j].end <= s.start {
			j++
		}
		start := s.start
		for k := j; k < len(b) && b[k].start < s.end; k++ {
			if b[k].start > start {
				out = append(out, span{start, b[k].start, s.key, s.label})
			}
			start = max(start, b[k].end)
		}
		if start < s.end {
			out = append(out, span{start, s.end, s.key, s.label})
		}
	}
	return out
}

// union merges two sorted, disjoint span lists that do not overlap each
// other.
func union(a, b []span) []span {
	out := make([]span, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j == len(b) || (i < len(a) && a[i].start < b[j].start) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// aggregate cuts [0, total) into n cells and counts, for each, the
// positions each key holds. spans are sorted and disjoint; positions no
// span covers hold gapKey. keys is one more than the largest key. The
// work is linear in spans plus cells.
func aggregate(total uint64, n int, spans []span, gapKey, keys int) []cell {
	cells := make([]cell, n)
	for c := range cells {
		cells[c].start, cells[c].end = bound(total, c, n), bound(total, c+1, n)
	}
	slot := make([]int, keys) // key → index+1 in the current cell's parts
	c := 0
	add := func(start, end uint64, key, label int) {
		for start < end && c < n {
			cl := &cells[c]
			upto := min(end, cl.end)
			if i := slot[key]; i > 0 {
				cl.parts[i-1].n += upto - start
			} else {
				cl.parts = append(cl.parts, part{key, upto - start})
				slot[key] = len(cl.parts)
			}
			if label >= 0 && !slices.Contains(cl.labels, label) {
				if len(cl.labels) < maxCellLabels {
					cl.labels = append(cl.labels, label)
				} else {
					cl.moreLabels++
				}
			}
			start = upto
			if upto == cl.end {
				for _, p := range cl.parts {
					slot[p.key] = 0
				}
				c++
			}
		}
	}
	pos := uint64(0)
	for _, s := range spans {
		if s.start > pos {
			add(pos, s.start, gapKey, -1)
		}
		add(s.start, s.end, s.key, s.label)
		pos = s.end
	}
	add(pos, total, gapKey, -1)
	for i := range cells {
		slices.SortFunc(cells[i].parts, func(a, b part) int {
			if a.n != b.n {
				return cmp.Compare(b.n, a.n)
			}
			return a.key - b.key
		})
	}
	return cells
}
