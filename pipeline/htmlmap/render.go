package htmlmap

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math/bits"
	"slices"
	"strings"

	"vmdkcarve/internal/units"
)

// Drawing geometry, in CSS pixels.
const (
	cellW       = 6  // a cell's width
	cellH       = 8  // a cell's height (a row label's line)
	labelEvery  = 2  // rows between row labels
	labelPx     = 84 // the left margin holding each row's start
	legendLimit = 40 // swatches a strip legend lists (disks beyond are summed)
	// MaxListed bounds the rows of the pieces table and the findings
	// listed (the rest are counted): a hostile case of a million pieces
	// still gives a page of bounded size.
	MaxListed = 1000
)

//go:embed page.html.tmpl
var pageTemplate string

var page = template.Must(template.New("page").Funcs(template.FuncMap{"sev": severityClass, "diskClass": diskClass}).Parse(pageTemplate))

// severityClass is the CSS class of a finding's severity: one of a fixed
// set, whatever the model says.
func severityClass(s string) string {
	switch s {
	case "info", "warning", "error":
		return "sev-" + s
	}
	return "sev-other"
}

// Render writes the page for m. The same model gives the same bytes.
func Render(w io.Writer, m *Map) error {
	return page.Execute(w, buildView(m))
}

// The view is the model digested for the template: everything drawn is
// computed here, the template only lays it out.
type view struct {
	Map      *Map
	Size     string
	Strip    grid
	Pieces   []pieceRow
	PiecesN  int
	Omitted  int
	Disks    []diskView
	Findings []Finding
	Dropped  int // findings beyond MaxListed
}

// grid is one drawn strip or map.
type grid struct {
	Cells  int
	CellH  int
	Width  int
	Height int
	Rects  []rect
	Rows   []rowLabel
	Legend []legendItem
	Label  string // the SVG's accessible name
}

type rect struct {
	X, Y, W int
	Class   string
	Title   string
}

type rowLabel struct {
	Y    int
	Text string
}

type legendItem struct {
	Class, Name, Figure, Help string
}

type pieceRow struct {
	Start, End, Size, Disk, Label string
}

type diskView struct {
	Disk
	CapacityText string
	GrainText    string
	Grains       uint64
	Map          grid
}

type classInfo struct {
	Class Class
	Help  string
}

// classes are the grain classes in legend order (ties for a cell's
// dominant class go to the earlier), with what each means.
var classes = []classInfo{
	{ClassTable, "placed by the VMDK's own grain table"},
	{ClassMarker, "placed by a stream grain marker's LBA"},
	{ClassHost, "linked to the image by the host filesystem's map of the file"},
	{ClassAnchored, "linked to the image by a fragment found from anchors"},
	{ClassFlat, "at its own offset in a flat extent"},
	{ClassFsprobe, "grain tables lost: located by its own guest structures"},
	{ClassOrder, "grain tables lost: in write order between two proven grains"},
	{ClassCopy, "corroborated by an identical copy"},
	{ClassPlaced, "placed on other evidence"},
	{ClassZero, "proven to read as zeros"},
	{ClassMissing, "no trustworthy source: written as a hole"},
	{ClassConflict, "sources disagree: written as a hole"},
	{ClassDamaged, "proven destroyed (an encryption lattice, or cipher text where the guest predicts a structure): written as a hole"},
	{ClassUnlisted, "no decision in the report"}, // last: classIndex's fallback
}

// classIndex is the index of class c; a class this page does not know
// says nothing it can draw, and is drawn as unlisted.
func classIndex(c Class) int {
	for i, ci := range classes {
		if ci.Class == c {
			return i
		}
	}
	return len(classes) - 1
}

func buildView(m *Map) *view {
	v := &view{Map: m, Size: sizeText(m.Evidence.Size)}
	v.Strip = buildStrip(m)
	for _, s := range sortedSegments(m.Segments) {
		if s.Kind != Piece {
			continue
		}
		v.PiecesN++
		if len(v.Pieces) == MaxListed {
			v.Omitted++
			continue
		}
		v.Pieces = append(v.Pieces, pieceRow{hex(s.Start), hex(s.End), units.Bytes(s.End - s.Start), diskName(m, s.Disk), s.Label})
	}
	for _, d := range m.Disks {
		v.Disks = append(v.Disks, buildDisk(d))
	}
	v.Findings = m.Findings
	if len(v.Findings) > MaxListed {
		v.Findings, v.Dropped = v.Findings[:MaxListed], len(v.Findings)-MaxListed
	}
	return v
}

// sortedSegments returns the valid segments by start, then end, kind and
// disk, so the pieces table does not depend on the model's order.
func sortedSegments(segs []Segment) []Segment {
	out := make([]Segment, 0, len(segs))
	for _, s := range segs {
		if s.Start >= 0 && s.End > s.Start {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Segment) int {
		switch {
		case a.Start != b.Start:
			return cmp.Compare(a.Start, b.Start)
		case a.End != b.End:
			return cmp.Compare(a.End, b.End)
		case a.Kind != b.Kind:
			return strings.Compare(string(a.Kind), string(b.Kind))
		}
		return a.Disk - b.Disk
	})
	return out
}

// stripKey is what a strip cell's bytes can hold: a kind and, for pieces
// and damage, the disk.
type stripKey struct {
	kind SegmentKind
	disk int
}

// kindRank is the precedence of segment kinds where they overlap.
func kindRank(k SegmentKind) int {
	switch k {
	case Unreadable:
		return 0
	case Damaged:
		return 1
	case Piece:
		return 2
	}
	return 3
}

func buildStrip(m *Map) grid {
	segs := sortedSegments(m.Segments)
	// Keys: every (kind, disk) present, by precedence then disk; foreign
	// is the gap key, last.
	keyFor := func(s Segment) (stripKey, bool) {
		switch s.Kind {
		case Unreadable, Foreign:
			return stripKey{s.Kind, 0}, true
		case Damaged, Piece:
			return stripKey{s.Kind, s.Disk}, true
		}
		return stripKey{}, false // a kind this page does not know is not drawn
	}
	index := map[stripKey]int{{Foreign, 0}: 0}
	for _, s := range segs {
		if k, ok := keyFor(s); ok {
			index[k] = 0
		}
	}
	keys := slices.SortedFunc(maps.Keys(index), func(a, b stripKey) int {
		if r := kindRank(a.kind) - kindRank(b.kind); r != 0 {
			return r
		}
		return a.disk - b.disk
	})
	for i, k := range keys {
		index[k] = i
	}
	keyOf := func(s Segment) int {
		if k, ok := keyFor(s); ok {
			return index[k]
		}
		return -1
	}
	// Labels are kept once each, by first use.
	var labels []string
	labelIndex := map[string]int{}
	layers := make([][]span, 4)
	for _, s := range segs {
		key := keyOf(s)
		if key < 0 {
			continue
		}
		li := -1
		if s.Label != "" {
			i, ok := labelIndex[s.Label]
			if !ok {
				i = len(labels)
				labels = append(labels, s.Label)
				labelIndex[s.Label] = i
			}
			li = i
		}
		r := kindRank(s.Kind)
		layers[r] = append(layers[r], span{uint64(s.Start), uint64(s.End), key, li})
	}
	total := uint64(max(m.Evidence.Size, 0))
	var spans []span
	for _, l := range layers {
		spans = union(spans, subtract(normalize(l, total), spans))
	}
	n := cellCount(total, minStripCell)
	cells := aggregate(total, n, spans, len(keys)-1, len(keys))

	name := func(key int) string {
		k := keys[key]
		switch k.kind {
		case Piece:
			return diskName(m, k.disk)
		case Damaged:
			if k.disk == 0 {
				return "damaged"
			}
			return diskName(m, k.disk) + " damaged"
		}
		return string(k.kind)
	}
	class := func(key int) string {
		k := keys[key]
		switch k.kind {
		case Piece:
			return diskClass(k.disk)
		case Damaged:
			return "s-damaged"
		case Unreadable:
			return "s-unreadable"
		}
		return "s-foreign"
	}
	title := func(cl []cell) string {
		first, last := cl[0], cl[len(cl)-1]
		var b strings.Builder
		fmt.Fprintf(&b, "image %s..%s (%s)", hex(int64(first.start)), hex(int64(last.end)), units.Bytes(int64(last.end-first.start)))
		sums, order := sumParts(cl)
		for i, key := range order {
			sep := ": "
			if i > 0 {
				sep = ", "
			}
			fmt.Fprintf(&b, "%s%s %s", sep, units.Bytes(int64(sums[key])), name(key))
		}
		writeLabels(&b, cl, labels)
		return b.String()
	}
	g := drawGrid(cells, class, title, func(c cell) string { return hex(int64(c.start)) })
	g.Label = fmt.Sprintf("the evidence image, %s, in %d cells of about %s each", sizeText(m.Evidence.Size), n, units.Bytes(int64(perCell(total, n))))

	// The legend: what holds how much of the image, by key.
	totals := make([]uint64, len(keys))
	for _, s := range spans {
		totals[s.key] += s.end - s.start
	}
	var covered uint64
	for _, t := range totals {
		covered += t
	}
	totals[len(keys)-1] += total - min(covered, total)
	// The legend lists the disks' pieces first, then what is not theirs.
	legendOrder := make([]int, len(keys))
	for i := range legendOrder {
		legendOrder[i] = i
	}
	slices.SortStableFunc(legendOrder, func(a, b int) int {
		rank := func(k stripKey) int { return []int{1, 2, 0, 3}[kindRank(k.kind)] }
		return rank(keys[a]) - rank(keys[b])
	})
	for _, key := range legendOrder {
		t := totals[key]
		if t == 0 && keys[key].kind != Foreign {
			continue
		}
		help := map[SegmentKind]string{
			Piece:      "pieces of the disk's files",
			Damaged:    "bytes of a disk's file proven destroyed",
			Unreadable: "not read by the imaging tool: unknown, not zeros",
			Foreign:    "no rebuilt disk's file found here",
		}[keys[key].kind]
		g.Legend = append(g.Legend, legendItem{class(key), name(key), units.Bytes(int64(t)), help})
	}
	if len(g.Legend) > legendLimit {
		// Many disks: the last swatch sums the rest (every cell's
		// tooltip still names its own).
		rest := g.Legend[legendLimit-1:]
		g.Legend = append(g.Legend[:legendLimit-1:legendLimit-1],
			legendItem{"s-more", fmt.Sprintf("%d more", len(rest)), "", "entries not listed: each cell's tooltip names what it holds"})
	}
	return g
}

// sumParts adds up the parts of consecutive cells, returning the sums by
// key and the keys, most first.
func sumParts(cl []cell) (map[int]uint64, []int) {
	sums := map[int]uint64{}
	var order []int
	for _, c := range cl {
		for _, p := range c.parts {
			if _, ok := sums[p.key]; !ok {
				order = append(order, p.key)
			}
			sums[p.key] += p.n
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		if sums[a] != sums[b] {
			return cmp.Compare(sums[b], sums[a])
		}
		return a - b
	})
	return sums, order
}

func writeLabels(b *strings.Builder, cl []cell, labels []string) {
	var seen []int
	more := 0
	for _, c := range cl {
		more += c.moreLabels
		for _, l := range c.labels {
			if slices.Contains(seen, l) {
				continue
			}
			if len(seen) == maxCellLabels {
				more++
				continue
			}
			seen = append(seen, l)
		}
	}
	for _, l := range seen {
		b.WriteString("\n")
		b.WriteString(labels[l])
	}
	if more > 0 {
		fmt.Fprintf(b, "\n(and %d more)", more)
	}
}

func buildDisk(d Disk) diskView {
	dv := diskView{Disk: d, CapacityText: sizeText(d.Capacity), GrainText: sizeText(d.GrainSize)}
	var total uint64
	if d.GrainSize > 0 && d.Capacity > 0 {
		total = uint64(d.Capacity) / uint64(d.GrainSize)
		if uint64(d.Capacity)%uint64(d.GrainSize) != 0 {
			total++
		}
	} else {
		for _, r := range d.Runs {
			if end := r.First + r.Count; end >= r.First {
				total = max(total, end)
			}
		}
	}
	dv.Grains = total
	spans := make([]span, 0, len(d.Runs))
	for _, r := range d.Runs {
		end := r.First + r.Count
		if end < r.First { // wraps: a hostile count
			end = ^uint64(0)
		}
		spans = append(spans, span{r.First, end, classIndex(r.Class), -1})
	}
	spans = normalize(spans, total)
	gap := classIndex(ClassUnlisted)
	n := cellCount(total, 1)
	cells := aggregate(total, n, spans, gap, len(classes))
	grainBytes := max(d.GrainSize, 1)
	class := func(key int) string { return "c-" + string(classes[key].Class) }
	title := func(cl []cell) string {
		first, last := cl[0], cl[len(cl)-1]
		var b strings.Builder
		if last.end-first.start == 1 {
			fmt.Fprintf(&b, "grain %d", first.start)
		} else {
			fmt.Fprintf(&b, "grains %d..%d", first.start, last.end-1)
		}
		fmt.Fprintf(&b, " (virtual %s..%s)", hex(mulClamp(first.start, grainBytes)), hex(mulClamp(last.end, grainBytes)))
		sums, order := sumParts(cl)
		for i, key := range order {
			sep := ": "
			if i > 0 {
				sep = ", "
			}
			fmt.Fprintf(&b, "%s%d %s", sep, sums[key], classes[key].Class)
		}
		return b.String()
	}
	dv.Map = drawGrid(cells, class, title, func(c cell) string { return fmt.Sprintf("grain %d", c.start) })
	dv.Map.Label = fmt.Sprintf("grain map of %s: %d grains in %d cells of about %d grains each", d.Name, total, n, perCell(total, n))
	counts := make([]uint64, len(classes))
	for _, s := range spans {
		counts[s.key] += s.end - s.start
	}
	var listed uint64
	for _, c := range counts {
		listed += c
	}
	counts[gap] += total - min(listed, total)
	for key, c := range counts {
		if c > 0 {
			dv.Map.Legend = append(dv.Map.Legend, legendItem{class(key), string(classes[key].Class), fmt.Sprintf("%d", c), classes[key].Help})
		}
	}
	return dv
}

// drawGrid lays cells out in rows of Columns and merges each row's runs
// of cells that one key holds whole into one rectangle with one tooltip;
// a mixed cell is a rectangle of its own, coloured by its dominant key.
func drawGrid(cells []cell, class func(int) string, title func([]cell) string, rowText func(cell) string) grid {
	g := grid{Cells: len(cells), CellH: cellH}
	rows := (len(cells) + Columns - 1) / Columns
	g.Width = labelPx + min(len(cells), Columns)*cellW
	g.Height = max(rows, 1) * cellH
	for r := range rows {
		row := cells[r*Columns : min((r+1)*Columns, len(cells))]
		if r%labelEvery == 0 {
			g.Rows = append(g.Rows, rowLabel{Y: r*cellH + cellH - 1, Text: rowText(row[0])})
		}
		for i := 0; i < len(row); {
			j := i + 1
			if row[i].pure() {
				for j < len(row) && row[j].pure() && row[j].dominant() == row[i].dominant() {
					j++
				}
			}
			g.Rects = append(g.Rects, rect{X: labelPx + i*cellW, Y: r * cellH, W: (j - i) * cellW,
				Class: class(row[i].dominant()), Title: title(row[i:j])})
			i = j
		}
	}
	return g
}

// diskClass is the CSS class of disk id's colour on the strip.
func diskClass(id int) string { return fmt.Sprintf("p%d", (id%8+8)%8) }

func diskName(m *Map, id int) string {
	for _, d := range m.Disks {
		if d.ID == id && d.Name != "" {
			return d.Name
		}
	}
	return fmt.Sprintf("disk %d", id)
}

func hex(n int64) string { return fmt.Sprintf("%#x", n) }

func sizeText(n int64) string {
	if n < 1024 {
		return units.Bytes(n)
	}
	return fmt.Sprintf("%s (%d bytes)", units.Bytes(n), n)
}

// perCell is about how much one of n cells stands for.
func perCell(total uint64, n int) uint64 {
	if n == 0 {
		return 0
	}
	return total / uint64(n)
}

// mulClamp is a × b, saturated at the largest int64.
func mulClamp(a uint64, b int64) int64 {
	hi, lo := bits.Mul64(a, uint64(b))
	if hi != 0 || lo > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(lo)
}
