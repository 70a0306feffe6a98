package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/findings"
	"vmdkcarve/pipeline/htmlmap"
	"vmdkcarve/reassemble"
)

func TestGrainClass(t *testing.T) {
	for _, tc := range []struct {
		status   reassemble.Status
		evidence []string
		want     htmlmap.Class
	}{
		{reassemble.Placed, []string{"table"}, htmlmap.ClassTable},
		{reassemble.Placed, []string{"table", "anchored"}, htmlmap.ClassAnchored},
		{reassemble.Placed, []string{"table", "host", "copy"}, htmlmap.ClassHost},
		{reassemble.Placed, []string{"marker", "table"}, htmlmap.ClassMarker},
		{reassemble.Placed, []string{"flat"}, htmlmap.ClassFlat},
		{reassemble.Placed, []string{"flat", "host"}, htmlmap.ClassHost},
		{reassemble.Placed, []string{"fsprobe", "host"}, htmlmap.ClassFsprobe},
		{reassemble.Placed, []string{"order", "fsprobe"}, htmlmap.ClassOrder},
		{reassemble.Placed, []string{"copy"}, htmlmap.ClassCopy},
		{reassemble.Placed, nil, htmlmap.ClassPlaced},
		{reassemble.Zero, []string{"table"}, htmlmap.ClassZero},
		{reassemble.Zero, []string{"stream"}, htmlmap.ClassZero},
		{reassemble.Missing, nil, htmlmap.ClassMissing},
		{reassemble.Conflict, []string{"table"}, htmlmap.ClassConflict},
		{reassemble.Damaged, nil, htmlmap.ClassDamaged},
		{"something new", []string{"table"}, htmlmap.ClassUnlisted},
	} {
		if got := grainClass(tc.status, tc.evidence); got != tc.want {
			t.Errorf("grainClass(%s, %v) = %s, want %s", tc.status, tc.evidence, got, tc.want)
		}
	}
}

// TestLatticeDamageInImage: a lattice's chunks land where the fragments
// put those file offsets, split where a chunk straddles two pieces, and
// nowhere for the file offsets no piece maps.
func TestLatticeDamageInImage(t *testing.T) {
	const mib = 1 << 20
	l := reassemble.Lattice{Chunk: mib, Stride: 4 * mib, Phase: 1 * mib, End: 12 * mib, Head: 64 << 10}
	if got, want := latticeRanges(l), [][2]int64{{0, 64 << 10}, {1 * mib, 2 * mib}, {5 * mib, 6 * mib}, {9 * mib, 10 * mib}}; !slices.Equal(got, want) {
		t.Errorf("latticeRanges = %v, want %v", got, want)
	}
	for _, bad := range []reassemble.Lattice{{Chunk: mib, Stride: 0, End: 1 << 40}, {Chunk: 0, Stride: mib, End: 1 << 40}, {Chunk: mib, Stride: mib, Phase: -1, End: mib}} {
		if got := latticeRanges(bad); len(got) != 0 {
			t.Errorf("latticeRanges(%+v) = %v", bad, got)
		}
	}
	if got := latticeRanges(reassemble.Lattice{Chunk: mib, Stride: mib, End: 1 << 62}); len(got) != maxLatticeChunks {
		t.Errorf("a lattice over 4 EiB gives %d chunks, want the bound %d", len(got), maxLatticeChunks)
	}
	frags := []reassemble.Fragment{
		{FileOffset: 0, ImageOffset: 100 * mib, Length: 5*mib + mib/2},
		{FileOffset: 5*mib + mib/2, ImageOffset: 40 * mib, Length: 2 * mib},
		// file offsets 7.5..9 MiB are not mapped
		{FileOffset: 9 * mib, ImageOffset: 70 * mib, Length: 3 * mib},
	}
	var got [][2]int64
	for _, r := range latticeRanges(l) {
		got = append(got, imageRanges(frags, r)...)
	}
	want := [][2]int64{
		{100 * mib, 100*mib + 64<<10},
		{101 * mib, 102 * mib},
		{105 * mib, 105*mib + mib/2}, {40 * mib, 40*mib + mib/2},
		{70 * mib, 71 * mib},
	}
	if !slices.Equal(got, want) {
		t.Errorf("image ranges %v, want %v", got, want)
	}
}

// TestWriteReportHTML builds the map of a small planned disk and writes
// it: the strip holds the disk's pieces (not its host holes) and its
// damage, the table its row, the findings its missing grains.
func TestWriteReportHTML(t *testing.T) {
	dir := t.TempDir()
	c := &Case{Dir: dir, Manifest: &Manifest{Evidence: Evidence{Path: "/ev/<img>.dd", Size: 64 << 20, Unreadable: []Range{{60 << 20, 61 << 20}}}}}
	d := &reassemble.Disk{ID: 2, Capacity: 8 << 11, GrainSize: 128,
		Instances: []*reassemble.Instance{{ID: 5, Variant: "monolithicSparse",
			Fragments: []reassemble.Fragment{
				{FileOffset: 0, ImageOffset: 1 << 20, Length: 4 << 20, Link: "host"},
				{FileOffset: 4 << 20, ImageOffset: -1, Length: 1 << 20, Link: "hole"},
				{FileOffset: 5 << 20, ImageOffset: 30 << 20, Length: 4 << 20, Link: "host"},
			},
			Damage: &reassemble.DamageReport{Lattices: []reassemble.Lattice{{Chunk: 1 << 20, Stride: 8 << 20, Phase: 6 << 20, End: 9 << 20}}},
		}},
		Counts: reassemble.Counts{Grains: 128, Placed: 100, Missing: 12, Damaged: 16, ByEvidence: map[string]uint64{"table": 100, "host": 100}},
		Runs: []reassemble.Run{
			{FirstGrain: 0, Count: 100, Status: reassemble.Placed, Evidence: []string{"table", "host"}},
			{FirstGrain: 100, Count: 12, Status: reassemble.Missing},
			{FirstGrain: 112, Count: 16, Status: reassemble.Damaged},
		},
		Notes: []string{"a note with <b>markup</b>"},
	}
	res := &RebuildResult{Disks: []DiskSummary{{ID: 2, Capacity: 8 << 20, Sources: 1, Counts: d.Counts, Files: "-", Metadata: "-"}}}
	res.Findings = append(evidenceFindings(c.Manifest.Evidence), d.Findings()...)
	findings.Sort(res.Findings)
	if err := writeReportHTML(c, []*reassemble.Disk{d}, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ReportHTMLName))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{
		`data-pieces="2"`, `class="disk-map" id="disk-2" data-disk="2"`, `<tr data-disk="2">`,
		`data-code="grains-missing"`, `data-code="encryption-lattice"`, `data-code="unreadable-area"`, `disk-02: `,
		`<b>host</b> 100`, `<b>missing</b> 12`, `<b>damaged</b> 16`,
		`<b>disk-02</b> 7.0 MiB`, `<b>disk-02 damaged</b> 1.0 MiB`, `<b>unreadable</b> 1.0 MiB`,
		`disk-02, instance 5 (monolithicSparse): file 0x500000..0x900000, host`,
		`/ev/&lt;img&gt;.dd`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	// The same case gives the same page.
	if err := writeReportHTML(c, []*reassemble.Disk{d}, res); err != nil {
		t.Fatal(err)
	}
	if again, err := os.ReadFile(filepath.Join(dir, ReportHTMLName)); err != nil || string(again) != page {
		t.Errorf("a second write differs (%v)", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestUnreadableLabel: an unreadable area of the strip is worded by every
// source that reported a part of it.
func TestUnreadableLabel(t *testing.T) {
	ev := Evidence{UnreadableAreas: []UnreadableArea{
		{Start: 0, End: 4096, Source: AreaMapfile},
		{Start: 2048, End: 8192, Source: AreaEWFChunk},
		{Start: 1 << 20, End: 2 << 20, Source: AreaEWFError2},
	}}
	for _, tc := range []struct {
		r    Range
		want string
	}{
		{Range{0, 8192}, areaWords(AreaMapfile) + "; " + areaWords(AreaEWFChunk)},
		{Range{1 << 20, 2 << 20}, areaWords(AreaEWFError2)},
	} {
		if got := unreadableLabel(ev, tc.r); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.r, got, tc.want)
		}
	}
	if got := unreadableLabel(Evidence{}, Range{0, 512}); got != areaWords(AreaMapfile) {
		t.Errorf("a case without sources: %q", got)
	}
}
