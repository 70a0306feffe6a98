package htmlmap

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// hostile strings a case file could carry (a descriptor's text, a path,
// a note quoting a filename): each tries to leave its context.
var hostile = []string{
	`</title><script>alert(1)</script>`,
	`"><img src=x onerror=alert(2)>`,
	`' onmouseover='alert(3)`,
	`javascript:alert(4)`,
	`</style><style>body{background:url(http://evil.example/x)}</style>`,
	`<svg onload=alert(5)>`,
	"\x00\xff\xfe bad utf-8 \u202e",
	`{{.Map}}`,
}

func sampleMap() *Map {
	m := &Map{
		Title: "case", Tool: "vmdkcarve test",
		Evidence: Evidence{Path: "/evidence/image.dd", Size: 64 << 20, SHA256: "ab12"},
		Segments: []Segment{
			{Start: 1 << 20, End: 9 << 20, Kind: Piece, Disk: 1, Label: "disk-01 piece one"},
			{Start: 20 << 20, End: 24 << 20, Kind: Piece, Disk: 1, Label: "disk-01 piece two"},
			{Start: 30 << 20, End: 40 << 20, Kind: Piece, Disk: 2, Label: "disk-02 piece"},
			{Start: 21 << 20, End: 22 << 20, Kind: Damaged, Disk: 1, Label: "lattice"},
			{Start: 50 << 20, End: 51 << 20, Kind: Unreadable, Label: "not rescued"},
		},
		Disks: []Disk{
			{ID: 1, Name: "disk-01", Capacity: 12 << 20, GrainSize: 64 << 10, Runs: []GrainRun{
				{0, 100, ClassTable}, {100, 20, ClassAnchored}, {120, 50, ClassMissing}, {170, 22, ClassDamaged}}},
			{ID: 2, Name: "disk-02", Capacity: 10 << 20, GrainSize: 64 << 10, Runs: []GrainRun{
				{0, 80, ClassMarker}, {80, 80, ClassZero}}},
		},
		Table: Table{Columns: []string{"disk", "grains"}, Rows: []Row{{1, []string{"disk-01", "192"}}, {2, []string{"disk-02", "160"}}}},
		Findings: []Finding{
			{Code: "grains-missing", Severity: "warning", Message: "disk-01: 50 grains missing", Action: "read the runs"},
			{Code: "grains-damaged", Severity: "error", Message: "disk-01: 22 grains damaged"},
		},
	}
	return m
}

func render(t *testing.T, m *Map) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRenderEscapes puts hostile strings in every string of the model:
// none may come out as markup, and the page never holds a script, an
// event handler or an external URL.
func TestRenderEscapes(t *testing.T) {
	for i, h := range hostile {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := sampleMap()
			m.Title, m.Tool, m.Evidence.Path, m.Evidence.SHA256 = h, h, h, h
			for i := range m.Segments {
				m.Segments[i].Label = h
			}
			m.Segments = append(m.Segments, Segment{Start: 0, End: 100, Kind: SegmentKind(h), Label: h})
			for i := range m.Disks {
				m.Disks[i].Name = h
				m.Disks[i].Runs = append(m.Disks[i].Runs, GrainRun{First: 1, Count: 1, Class: Class(h)})
			}
			m.Table.Columns = []string{h, h}
			m.Table.Rows = append(m.Table.Rows, Row{Disk: 0, Cells: []string{h, h}})
			m.Findings = append(m.Findings, Finding{Code: h, Severity: h, Message: h, Action: h})
			out := render(t, m)
			checkMarkup(t, out)
			if strings.Contains(out, h) && strings.ContainsAny(h, `<>"'&`) {
				t.Errorf("%q comes out unescaped", h)
			}
			if !strings.Contains(out, "grains-missing") {
				t.Error("the ordinary findings are gone")
			}
		})
	}
}

func context(s, sub string) string {
	i := strings.Index(strings.ToLower(s), sub)
	return s[max(0, i-120):min(len(s), i+120)]
}

// The page's markup, all of it from the template: the elements and
// attributes it may hold.
var (
	tagPattern  = regexp.MustCompile(`<[^>]*>`)
	tagShape    = regexp.MustCompile(`^<(/?)([a-z0-9]+)((?: [a-zA-Z-]+="[^"<>]*")*)>$`)
	attrPattern = regexp.MustCompile(` ([a-zA-Z-]+)="([^"]*)"`)
	classValue  = regexp.MustCompile(`^[a-z0-9 -]*$`)
	elements    = strings.Fields("html head meta title style body header h1 h2 h3 dl dt dd nav a main section p figure figcaption svg text rect ul li span b details summary table caption thead tbody tr th td ol code div")
	attributes  = strings.Fields("lang charset http-equiv content name class id href x y width height viewBox role aria-label aria-labelledby text-anchor scope")
)

// checkMarkup parses every tag of a page: each must be an element the
// template writes, with only its attributes, quoted, and links only
// within the page. Escaped text holds no '<', so every '<' opens a tag.
func checkMarkup(t *testing.T, out string) {
	t.Helper()
	body := out[strings.Index(out, "<html"):]
	for _, tag := range tagPattern.FindAllString(body, -1) {
		m := tagShape.FindStringSubmatch(tag)
		if m == nil {
			t.Errorf("tag of unexpected shape: %s", tag)
			continue
		}
		if !slices.Contains(elements, m[2]) {
			t.Errorf("element %s not from the template: %s", m[2], tag)
		}
		for _, a := range attrPattern.FindAllStringSubmatch(m[3], -1) {
			name, value := a[1], a[2]
			if !slices.Contains(attributes, name) && !strings.HasPrefix(name, "data-") {
				t.Errorf("attribute %s not from the template: %s", name, tag)
			}
			if name == "href" && !strings.HasPrefix(value, "#") {
				t.Errorf("a link out of the page: %s", tag)
			}
			if name == "class" && !classValue.MatchString(value) {
				t.Errorf("class %q", value)
			}
		}
	}
	if strings.Count(out, "<style>") != 1 {
		t.Errorf("%d style elements", strings.Count(out, "<style>"))
	}
	style := out[strings.Index(out, "<style>"):strings.Index(out, "</style>")]
	for _, bad := range []string{"url(", "@import", "<"} {
		if strings.Contains(style[1:], bad) {
			t.Errorf("the style sheet holds %q", bad)
		}
	}
}

// TestRenderElements: the ids and classes a reader (and the browser
// test) finds the parts by, with the figures the model holds.
func TestRenderElements(t *testing.T) {
	out := render(t, sampleMap())
	checkMarkup(t, out)
	for _, want := range []string{
		`id="evidence-strip" data-pieces="3"`,
		`class="disk-map" id="disk-1" data-disk="1"`,
		`class="disk-map" id="disk-2" data-disk="2"`,
		`id="disk-table"`, `<tr data-disk="1"><th scope="row"><span class="sw p1"></span><a href="#disk-1">disk-01</a></th><td>192</td></tr>`,
		`id="findings"`, `<li class="finding sev-warning" data-code="grains-missing">`, `class="finding sev-error" data-code="grains-damaged"`,
		`<b>table</b> 100`, `<b>anchored</b> 20`, `<b>missing</b> 50`, `<b>damaged</b> 22`, `<b>marker</b> 80`, `<b>zero</b> 80`,
		`<b>disk-01</b> 11.0 MiB`, `<b>disk-01 damaged</b> 1.0 MiB`, `<b>unreadable</b> 1.0 MiB`, `<b>foreign</b> 41.0 MiB`,
		`<title>grains 0..99 (virtual 0x0..0x640000): 100 table</title>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// The damaged MiB inside piece two is drawn damaged, not as the piece.
	if !strings.Contains(out, `image 0x1500000..0x1600000 (1.0 MiB): 1.0 MiB disk-01 damaged`) {
		t.Errorf("the damaged area is not drawn over the piece:\n%s", context(out, "0x1500000"))
	}
}

// TestRenderDeterministic: the same model gives the same bytes, whatever
// the order of its segments and runs.
func TestRenderDeterministic(t *testing.T) {
	a := render(t, sampleMap())
	if b := render(t, sampleMap()); a != b {
		t.Fatal("two renders of one model differ")
	}
	m := sampleMap()
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(m.Segments), func(i, j int) { m.Segments[i], m.Segments[j] = m.Segments[j], m.Segments[i] })
	for _, d := range m.Disks {
		r.Shuffle(len(d.Runs), func(i, j int) { d.Runs[i], d.Runs[j] = d.Runs[j], d.Runs[i] })
	}
	if b := render(t, m); a != b {
		t.Fatal("the order of segments or runs changes the page")
	}
}

// TestRenderBounded: a huge disk of a million alternating runs and an
// image of 1 PiB with 100 000 pieces still draw at most MaxCells cells
// each, in a page of bounded size, every cell's tooltip exact.
func TestRenderBounded(t *testing.T) {
	m := sampleMap()
	m.Evidence.Size = 1 << 50
	m.Segments = nil
	for i := range int64(100_000) {
		m.Segments = append(m.Segments, Segment{Start: i << 33, End: i<<33 + 1<<32, Kind: Piece, Disk: int(i % 50), Label: fmt.Sprint("piece ", i)})
	}
	runs := make([]GrainRun, 0, 1_000_000)
	for i := range uint64(1_000_000) {
		runs = append(runs, GrainRun{i * 3, 3, []Class{ClassTable, ClassMissing, ClassZero, ClassDamaged}[i%4]})
	}
	m.Disks = []Disk{{ID: 1, Name: "big", Capacity: 1 << 40, GrainSize: 64 << 10, Runs: runs}}
	out := render(t, m)
	if n := strings.Count(out, "<rect"); n > 2*MaxCells {
		t.Errorf("%d rectangles for one strip and one map of at most %d cells each", n, MaxCells)
	}
	for _, want := range []string{fmt.Sprintf(`data-cells="%d"`, MaxCells), `data-pieces="100000"`, `<p class="note">99000 more pieces are not listed.</p>`} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if len(out) > 8<<20 {
		t.Errorf("page is %d bytes", len(out))
	}
	// 2^24 grains in 4096 cells: the first cell is grains 0..4095, a
	// third of the runs of three in each class but the spill.
	if !strings.Contains(out, "<title>grains 0..4095 (virtual 0x0..0x10000000): 1026 table, 1024 missing, 1023 zero, 1023 damaged</title>") {
		t.Errorf("first cell's tooltip:\n%s", context(out, "grains 0..4095"))
	}
}

// TestRenderHostileNumbers: negative, reversed, overflowing and zero
// figures give a page, not a panic.
func TestRenderHostileNumbers(t *testing.T) {
	for _, m := range []*Map{
		{},
		{Evidence: Evidence{Size: -5}, Segments: []Segment{{Start: -10, End: 5, Kind: Piece, Disk: -3}, {Start: 9, End: 2, Kind: Damaged}}},
		{Evidence: Evidence{Size: 1<<63 - 1}, Segments: []Segment{{Start: 0, End: 1<<63 - 1, Kind: Piece, Disk: 1}, {Start: 1<<63 - 2, End: 1<<63 - 1, Kind: Unreadable}}},
		{Evidence: Evidence{Size: 3}, Segments: []Segment{{Start: 1, End: 2, Kind: Piece}}},
		{Disks: []Disk{
			{ID: 1, Capacity: -1, GrainSize: 0, Runs: []GrainRun{{^uint64(0) - 1, 10, ClassTable}, {5, ^uint64(0), ClassZero}}},
			{ID: 2, Capacity: 1<<63 - 1, GrainSize: 1, Runs: []GrainRun{{0, ^uint64(0), ClassMissing}}},
			{ID: 3, Capacity: 100, GrainSize: 1 << 40},
		}},
	} {
		out := render(t, m)
		if !strings.Contains(out, `id="evidence-strip"`) || !strings.Contains(out, `id="findings"`) {
			t.Errorf("page lacks its sections")
		}
	}
}

// TestAggregate checks the cells against sums done by hand, and the
// invariants on random spans: cells tile [0, total), each cell's parts add
// up to its length, most first.
func TestAggregate(t *testing.T) {
	cells := aggregate(10, 4, []span{{1, 4, 0, 7}, {6, 10, 1, -1}}, 2, 3)
	want := []struct {
		start, end uint64
		parts      []part
	}{
		{0, 2, []part{{0, 1}, {2, 1}}},
		{2, 5, []part{{0, 2}, {2, 1}}},
		{5, 7, []part{{1, 1}, {2, 1}}},
		{7, 10, []part{{1, 3}}},
	}
	for i, w := range want {
		c := cells[i]
		if c.start != w.start || c.end != w.end || !slices.Equal(c.parts, w.parts) {
			t.Errorf("cell %d: [%d,%d) %v, want [%d,%d) %v", i, c.start, c.end, c.parts, w.start, w.end, w.parts)
		}
	}
	if !slices.Equal(cells[0].labels, []int{7}) || cells[2].labels != nil {
		t.Errorf("labels %v %v", cells[0].labels, cells[2].labels)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		total := uint64(r.IntN(5000) + 1)
		var spans []span
		for range r.IntN(40) {
			a, b := uint64(r.IntN(6000)), uint64(r.IntN(6000))
			spans = append(spans, span{min(a, b), max(a, b), r.IntN(5), -1})
		}
		checkCells(t, total, normalize(spans, total))
	}
}

func checkCells(t *testing.T, total uint64, spans []span) {
	t.Helper()
	n := cellCount(total, 1)
	cells := aggregate(total, n, spans, 5, 6)
	var pos uint64
	held := make([]uint64, 6)
	for i, c := range cells {
		if c.start != pos || c.end <= c.start {
			t.Fatalf("total %d: cell %d is [%d,%d) after %d", total, i, c.start, c.end, pos)
		}
		var sum uint64
		for j, p := range c.parts {
			sum += p.n
			held[p.key] += p.n
			if j > 0 && p.n > c.parts[j-1].n {
				t.Fatalf("cell %d parts not most first: %v", i, c.parts)
			}
		}
		if sum != c.end-c.start {
			t.Fatalf("cell %d: parts %v add up to %d of %d", i, c.parts, sum, c.end-c.start)
		}
		pos = c.end
	}
	if pos != total || len(cells) > MaxCells {
		t.Fatalf("cells end at %d of %d, %d cells", pos, total, len(cells))
	}
	want := make([]uint64, 6)
	var covered uint64
	for _, s := range spans {
		want[s.key] += s.end - s.start
		covered += s.end - s.start
	}
	want[5] += total - covered
	if !slices.Equal(held, want) {
		t.Fatalf("keys hold %v, spans %v", held, want)
	}
}

// TestLayers: where kinds overlap the stronger wins, and within a kind
// the span that starts first.
func TestLayers(t *testing.T) {
	pieces := normalize([]span{{0, 10, 2, -1}, {5, 20, 3, -1}}, 100)
	damaged := normalize([]span{{8, 12, 1, -1}}, 100)
	unreadable := normalize([]span{{11, 15, 0, -1}}, 100)
	var got []span
	for _, l := range [][]span{unreadable, damaged, pieces} {
		got = union(got, subtract(l, got))
	}
	want := []span{{0, 8, 2, -1}, {8, 11, 1, -1}, {11, 15, 0, -1}, {15, 20, 3, -1}}
	if !slices.Equal(got, want) {
		t.Errorf("layers %v, want %v", got, want)
	}
}

// FuzzAggregate: spans of any shape give cells that tile the range and
// account for every position once.
func FuzzAggregate(f *testing.F) {
	f.Add(uint64(10), []byte{1, 4, 0, 6, 10, 1})
	f.Add(uint64(1<<62), []byte{0, 255, 3, 200, 100, 1, 7, 7, 7})
	f.Fuzz(func(t *testing.T, total uint64, b []byte) {
		if total == 0 {
			return
		}
		scale := max(total/256, 1)
		var spans []span
		for i := 0; i+2 < len(b) && len(spans) < 1000; i += 3 {
			spans = append(spans, span{uint64(b[i]) * scale, uint64(b[i+1]) * scale, int(b[i+2] % 5), -1})
		}
		checkCells(t, total, normalize(spans, total))
	})
}

// FuzzRender: any strings and figures give a page whose markup is all
// the template's.
func FuzzRender(f *testing.F) {
	f.Add("case", int64(64<<20), int64(1<<20), int64(9<<20), 1, "piece", int64(12<<20), int64(64<<10), uint64(0), uint64(100), "table")
	f.Add(hostile[0], int64(-1), int64(1<<62), int64(-5), -7, hostile[1], int64(1<<62), int64(1), ^uint64(0), uint64(7), hostile[2])
	f.Fuzz(func(t *testing.T, s string, size, start, end int64, disk int, label string, capacity, grain int64, first, count uint64, class string) {
		m := &Map{Title: s, Tool: s, Evidence: Evidence{Path: s, Size: size, SHA256: s},
			Segments: []Segment{{Start: start, End: end, Kind: Piece, Disk: disk, Label: label}, {Start: end, End: start, Kind: SegmentKind(s), Disk: disk, Label: s}},
			Disks:    []Disk{{ID: disk, Name: label, Capacity: capacity, GrainSize: grain, Runs: []GrainRun{{first, count, Class(class)}, {count, first, ClassZero}}}},
			Table:    Table{Columns: []string{s}, Rows: []Row{{disk, []string{label, s}}}},
			Findings: []Finding{{s, class, label, s}},
		}
		var b bytes.Buffer
		if err := Render(&b, m); err != nil {
			t.Fatal(err)
		}
		if strings.Count(b.String(), "<rect") > 2*MaxCells {
			t.Fatalf("%d rectangles", strings.Count(b.String(), "<rect"))
		}
		checkMarkup(t, b.String())
	})
}

// BenchmarkRender renders a full strip and one full map (4096 cells each,
// every other cell mixed).
func BenchmarkRender(b *testing.B) {
	m := sampleMap()
	m.Evidence.Size = 1 << 40
	m.Segments = nil
	for i := range int64(20_000) {
		m.Segments = append(m.Segments, Segment{Start: i << 26, End: i<<26 + 1<<25, Kind: Piece, Disk: int(i % 5), Label: fmt.Sprint("piece ", i)})
	}
	var runs []GrainRun
	for i := range uint64(100_000) {
		runs = append(runs, GrainRun{i * 3, 3, []Class{ClassTable, ClassMissing, ClassZero}[i%3]})
	}
	m.Disks = []Disk{{ID: 1, Name: "big", Capacity: 1 << 40, GrainSize: 64 << 10, Runs: runs}}
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := Render(&out, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Len()), "page-bytes")
}
