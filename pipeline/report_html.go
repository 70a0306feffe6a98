package pipeline

import (
	"bufio"
	"cmp"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"vmdkcarve/findings"

	"vmdkcarve/internal/units"
	"vmdkcarve/pipeline/htmlmap"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// ReportHTMLName is the case's map: CASE/report.html.
const ReportHTMLName = "report.html"

// maxLatticeChunks bounds the chunks of one encryption lattice drawn on
// the evidence strip (a lattice of 1 MiB every 2 MiB over a 2 TiB file
// has a million; the strip has 4096 cells).
const maxLatticeChunks = 1 << 20

// writeReportHTML writes CASE/report.html for the disks a rebuild
// emitted (res.Disks, planned in disks).
func writeReportHTML(c *Case, disks []*reassemble.Disk, res *RebuildResult) error {
	m := buildMap(c, disks, res)
	f, err := CreateAtomic(filepath.Join(c.Dir, ReportHTMLName))
	if err != nil {
		return err
	}
	defer f.Abort()
	w := bufio.NewWriter(f)
	if err := htmlmap.Render(w, m); err != nil {
		return fmt.Errorf("pipeline: rendering %s: %w", ReportHTMLName, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("pipeline: writing %s: %w", ReportHTMLName, err)
	}
	return f.Commit()
}

// buildMap is the page's model of a rebuilt case.
func buildMap(c *Case, disks []*reassemble.Disk, res *RebuildResult) *htmlmap.Map {
	ev := c.Manifest.Evidence
	m := &htmlmap.Map{
		Title:    filepath.Base(c.Dir),
		Tool:     Tool + " " + Version,
		Evidence: htmlmap.Evidence{Path: ev.Path, Size: ev.Size, SHA256: ev.SHA256},
	}
	for _, a := range ev.Unreadable {
		m.Segments = append(m.Segments, htmlmap.Segment{Start: a.Start, End: a.End, Kind: htmlmap.Unreadable,
			Label: unreadableLabel(ev, a)})
	}
	byID := map[int]*reassemble.Disk{}
	for _, d := range disks {
		byID[d.ID] = d
	}
	m.Table.Columns = []string{"disk", "capacity", "copies", "variants", "grains", "placed", "zero", "missing", "conflicting", "damaged", "placed by", "guest", "files whole", "versions"}
	for _, s := range res.Disks {
		d := byID[s.ID]
		if d == nil {
			continue
		}
		name := diskName(d.ID)
		m.Disks = append(m.Disks, mapDisk(d, name))
		m.Segments = append(m.Segments, diskSegments(d, name)...)
		m.Table.Rows = append(m.Table.Rows, tableRow(s, name))
	}
	m.Findings = mapFindings(res.Findings)
	return m
}

func mapDisk(d *reassemble.Disk, name string) htmlmap.Disk {
	md := htmlmap.Disk{ID: d.ID, Name: name, Capacity: sectorsToBytes(d.Capacity), GrainSize: sectorsToBytes(d.GrainSize)}
	md.Runs = make([]htmlmap.GrainRun, 0, len(d.Runs))
	for _, r := range d.Runs {
		md.Runs = append(md.Runs, htmlmap.GrainRun{First: r.FirstGrain, Count: r.Count, Class: grainClass(r.Status, r.Evidence)})
	}
	return md
}

// grainClass is the class a grain is drawn in: for a placed grain, the
// evidence its place rests on last. The table names a grain's file
// offset; what links that file offset to the image (a host map, an
// anchored fragment) is the weaker, more telling step, so it wins; the
// last-resort levels (order, fsprobe) win over everything.
func grainClass(st reassemble.Status, evidence []string) htmlmap.Class {
	switch st {
	case reassemble.Zero:
		return htmlmap.ClassZero
	case reassemble.Missing:
		return htmlmap.ClassMissing
	case reassemble.Conflict:
		return htmlmap.ClassConflict
	case reassemble.Damaged:
		return htmlmap.ClassDamaged
	case reassemble.Placed:
	default:
		return htmlmap.ClassUnlisted
	}
	for _, l := range []struct {
		ev    string
		class htmlmap.Class
	}{
		{reassemble.EvOrder, htmlmap.ClassOrder},
		{reassemble.EvFSProbe, htmlmap.ClassFsprobe},
		{reassemble.EvAnchored, htmlmap.ClassAnchored},
		{reassemble.EvHost, htmlmap.ClassHost},
		{reassemble.EvFlat, htmlmap.ClassFlat},
		{reassemble.EvMarker, htmlmap.ClassMarker},
		{reassemble.EvTable, htmlmap.ClassTable},
		{reassemble.EvCopy, htmlmap.ClassCopy},
	} {
		if slices.Contains(evidence, l.ev) {
			return l.class
		}
	}
	return htmlmap.ClassPlaced
}

// diskSegments are where the files of disk d lie in the image (every
// fragment of every instance and part), and the bytes of them an
// accepted encryption lattice destroyed.
func diskSegments(d *reassemble.Disk, name string) []htmlmap.Segment {
	var segs []htmlmap.Segment
	seen := map[int]bool{}
	for _, inst := range slices.Concat(d.Instances, d.Parts) {
		if inst == nil || seen[inst.ID] {
			continue
		}
		seen[inst.ID] = true
		frags := make([]reassemble.Fragment, 0, len(inst.Fragments))
		for _, f := range inst.Fragments {
			if f.ImageOffset < 0 || f.Length <= 0 || f.FileOffset < 0 {
				continue // a hole of the host file: no bytes in the image
			}
			frags = append(frags, f)
			label := fmt.Sprintf("%s, instance %d (%s): file %#x..%#x, %s", name, inst.ID, inst.Variant, f.FileOffset, f.FileOffset+f.Length, f.Link)
			if f.Anchors > 0 {
				label += fmt.Sprintf(" by %d anchors", f.Anchors)
			}
			segs = append(segs, htmlmap.Segment{Start: f.ImageOffset, End: f.ImageOffset + f.Length, Kind: htmlmap.Piece, Disk: d.ID, Label: label})
		}
		if inst.Damage == nil {
			continue
		}
		slices.SortFunc(frags, func(a, b reassemble.Fragment) int { return cmp.Compare(a.FileOffset, b.FileOffset) })
		for _, l := range inst.Damage.Lattices {
			label := fmt.Sprintf("%s, instance %d: intermittent encryption, %s", name, inst.ID, l)
			for _, r := range latticeRanges(l) {
				for _, img := range imageRanges(frags, r) {
					segs = append(segs, htmlmap.Segment{Start: img[0], End: img[1], Kind: htmlmap.Damaged, Disk: d.ID, Label: label})
				}
			}
		}
	}
	return segs
}

// latticeRanges are the file ranges a lattice covers: its head, and
// Chunk bytes at Phase, Phase+Stride, ... below End (at most
// maxLatticeChunks of them).
func latticeRanges(l reassemble.Lattice) [][2]int64 {
	var out [][2]int64
	if l.Head > 0 {
		out = append(out, [2]int64{0, l.Head})
	}
	if l.Chunk <= 0 || l.Stride <= 0 || l.Phase < 0 {
		return out
	}
	for k, off := 0, l.Phase; off < l.End && k < maxLatticeChunks; k, off = k+1, off+l.Stride {
		out = append(out, [2]int64{off, min(off+l.Chunk, l.End)})
		if off > math.MaxInt64-l.Stride {
			break
		}
	}
	return out
}

// imageRanges maps the file range r through fragments sorted by file
// offset to the image ranges holding it.
func imageRanges(frags []reassemble.Fragment, r [2]int64) [][2]int64 {
	var out [][2]int64
	i, _ := slices.BinarySearchFunc(frags, r[0], func(f reassemble.Fragment, off int64) int {
		return cmp.Compare(f.FileOffset+f.Length, off+1)
	})
	for ; i < len(frags) && frags[i].FileOffset < r[1]; i++ {
		f := frags[i]
		lo, hi := max(r[0], f.FileOffset), min(r[1], f.FileOffset+f.Length)
		if lo < hi {
			out = append(out, [2]int64{f.ImageOffset + lo - f.FileOffset, f.ImageOffset + hi - f.FileOffset})
		}
	}
	return out
}

func tableRow(s DiskSummary, name string) htmlmap.Row {
	c := s.Counts
	var by []string
	for _, ev := range slices.Sorted(maps.Keys(c.ByEvidence)) {
		by = append(by, fmt.Sprintf("%s %d", ev, c.ByEvidence[ev]))
	}
	dash := func(v []string) string {
		if len(v) == 0 {
			return "-"
		}
		return strings.Join(v, ", ")
	}
	return htmlmap.Row{Disk: s.ID, Cells: []string{
		name, units.Bytes(int64(min(s.Capacity, math.MaxInt64))), fmt.Sprint(s.Sources), dash(s.Variants),
		fmt.Sprint(c.Grains), fmt.Sprint(c.Placed), fmt.Sprint(c.Zero), fmt.Sprint(c.Missing), fmt.Sprint(c.Conflict), fmt.Sprint(c.Damaged),
		dash(by), dash(s.GuestKind), s.Files, cmp.Or(s.Versions, "-"),
	}}
}

// mapFindings are the page's findings: the case's findings (evidence
// first, then by disk, as findings.Sort orders them), each about a disk
// named by it.
func mapFindings(fs []findings.Finding) []htmlmap.Finding {
	out := make([]htmlmap.Finding, 0, len(fs))
	for _, f := range fs {
		msg := f.Message
		if f.Disk != 0 {
			msg = fmt.Sprintf("%s: %s", diskName(f.Disk), msg)
		}
		out = append(out, htmlmap.Finding{Code: string(f.Code), Severity: string(f.Severity), Message: msg, Action: f.Action})
	}
	return out
}

// unreadableLabel says why an unreadable area (of the union,
// Evidence.Unreadable) is unknown: the words of every source that
// reported a part of it.
func unreadableLabel(ev Evidence, r Range) string {
	var words []string
	for _, a := range ev.UnreadableAreas {
		if a.Start < r.End && r.Start < a.End {
			if w := areaWords(a.Source); !slices.Contains(words, w) {
				words = append(words, w)
			}
		}
	}
	if len(words) == 0 {
		// A case recorded before areas had sources: only a mapfile gave them.
		return areaWords(AreaMapfile)
	}
	return strings.Join(words, "; ")
}

// diskName is the name of disk id's files (disks/disk-NN.vmdk).
func diskName(id int) string { return fmt.Sprintf("disk-%02d", id) }

// sectorsToBytes converts a sector count to bytes, saturated.
func sectorsToBytes(n uint64) int64 {
	if n > math.MaxInt64/vmdk.SectorSize {
		return math.MaxInt64
	}
	return int64(n) * vmdk.SectorSize
}
