package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"vmdkcarve/findings"
	"vmdkcarve/internal/units"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// maxListed bounds the ranges and guest problems printed per line: the
// report (kept with --case, or printed by --json) lists them all.
const maxListed = 6

// The layout of the text: a label column, then text wrapped to width.
const (
	width  = 80
	indent = "          " // under the label column
)

// printFindings says in plain words what repair found and did: the
// repair's own lines (what was written, grain counts, where the missing
// grains are, the guest check, the other disks), then each coded finding
// of the input and the written disk, its sentences first and its code
// after them.
func printFindings(w io.Writer, res *pipeline.RepairResult) {
	rep := res.Disk
	d := rep.Disk
	gb := int64(d.GrainSize) * vmdk.SectorSize
	c := d.Counts
	out := "-"
	if len(res.Outputs) > 0 {
		out = res.Outputs[0].Path
	}
	fmt.Fprintf(w, "repaired  %s -> %s (%s)\n", res.Input, out, res.Format)
	if ev := rep.Evidence; ev.SHA256 != "" {
		// What the input was when it was read (it is opened read-only,
		// so a later hash that matches shows it was not changed).
		fmt.Fprintf(w, "input     opened read-only; its sha256:\n          %s\n", ev.SHA256)
	}
	var variants []string
	for _, inst := range d.Instances {
		if !slices.Contains(variants, inst.Variant) {
			variants = append(variants, inst.Variant)
		}
	}
	from := "a " + strings.Join(variants, "+") + " file"
	switch {
	case len(d.Instances) > 1:
		from = fmt.Sprintf("%d copies (%s)", len(d.Instances), strings.Join(variants, ", "))
	case len(d.Instances) == 0:
		from = fmt.Sprintf("%d extents of a split disk", len(d.Parts))
	}
	para(w, "disk", fmt.Sprintf("%02d: %s virtual, %d grains of %s, from %s; %s", d.ID,
		units.Bytes(int64(d.Capacity)*vmdk.SectorSize), c.Grains, units.Bytes(gb), from, res.Chosen))
	if desc := d.Descriptor; desc != nil && (desc.ParentFileNameHint != "" || (desc.ParentCID != 0xffffffff && desc.ParentCID != 0)) {
		parent := desc.ParentFileNameHint
		if parent == "" {
			parent = "not named"
		}
		para(w, "snapshot", fmt.Sprintf("The file is a snapshot (delta) of a parent disk (parentCID %08x, parent %s): it holds only the grains written since; the others are the parent's, not zeros, so the output alone is not the whole disk.", desc.ParentCID, parent))
	}

	para(w, "grains", fmt.Sprintf("%d recovered, %d empty (zeros in the original too), %d missing, %d damaged",
		c.Placed, c.Zero, c.Missing+c.Conflict, c.Damaged))
	if lost := c.Missing + c.Conflict + c.Damaged; lost > 0 {
		para(w, "missing", fmt.Sprintf("%d grains (%s) could be neither recovered nor proven empty. Missing grains read as zeros in the output because no disk format can mark them missing: whatever the guest kept there is lost, unless it was empty. The findings below say why. Where, with the reason each range has in the report:", lost, units.Bytes(int64(lost)*gb)))
		for _, st := range []reassemble.Status{reassemble.Missing, reassemble.Conflict, reassemble.Damaged} {
			for _, g := range groupRuns(d.Runs, st) {
				para(w, "", fmt.Sprintf("%s (%s): %s", st, g.code, g.where(gb)))
			}
		}
	} else {
		para(w, "missing", "none: every grain the disk had was recovered")
	}

	for _, f := range rep.Guest {
		if f.Check == nil {
			continue
		}
		line := fmt.Sprintf("%s filesystem at disk byte %d checked: %d entries walked", f.Kind, f.Offset, f.Check.Entries)
		if f.Check.Files > 0 {
			line += fmt.Sprintf(", %d of %d files read back whole", f.Check.FilesRecovered, f.Check.Files)
		}
		if !f.Check.Walked {
			line += " (the walk did not finish)"
		}
		para(w, "guest", line)
		for i, p := range f.Check.Problems {
			if i == maxListed {
				para(w, "", fmt.Sprintf("... %d more problems in the report", len(f.Check.Problems)-maxListed))
				break
			}
			para(w, "", "problem: "+p)
		}
	}

	printCoded(w, res.Input, res.Findings, d)

	for _, o := range res.Outputs {
		fmt.Fprintf(w, "wrote     %s (%s, %s) sha256 %s\n", o.Path, o.Format, units.Bytes(o.Size), o.SHA256)
	}
	for _, other := range res.Others {
		para(w, "other", fmt.Sprintf("disk %02d (%s, %s): %d grains recovered, not written (--disk %d writes it)",
			other.ID, strings.Join(other.Variants, "+"), units.Bytes(int64(other.Capacity)), other.Counts.Placed, other.ID))
	}
	if res.Case != "" {
		fmt.Fprintf(w, "report    %s\n", filepath.Join(res.Case, strings.TrimSuffix(reportPath(rep), ".vmdk")+".json"))
		para(w, "", fmt.Sprintf("(every grain, its source and the reason; the case's %s lists every finding of the file)", pipeline.FindingsName))
	} else {
		para(w, "report", "not kept (the case was temporary): add --case DIR to keep where every grain came from, or --json to print it")
	}
}

// printNothing is printFindings when nothing could be recovered: what
// was not written, and the findings that say why.
func printNothing(w io.Writer, in, out string, res *pipeline.RepairResult) {
	fmt.Fprintf(w, "nothing could be recovered from %s: no grain of a VMware disk was proven; %s was not written\n", in, out)
	fmt.Fprintln(w, "(if the file is a small text descriptor, repair the data file it names instead: NAME-flat.vmdk, NAME-s001.vmdk, ...)")
	if res != nil {
		printCoded(w, in, res.Findings, nil)
	}
}

// printCoded lists the findings, errors first: each one's two sentences
// (what it means, what was done) lead, its severity stands in the label
// column and its code follows in brackets, for the README's table and
// for scripts. d is the disk written (nil: none), so that a finding
// about one of its copies names the copy only when it has several.
func printCoded(w io.Writer, in string, fs []findings.Finding, d *reassemble.Disk) {
	if len(fs) == 0 {
		return
	}
	errs, warns, infos := findings.Count(fs)
	para(w, "findings", fmt.Sprintf("%d %s, %d %s, %d info. The code in brackets is explained in the README (Finding codes); an image offset is a byte of %s.",
		errs, pluralWord(errs, "error", "errors"), warns, pluralWord(warns, "warning", "warnings"), infos, filepath.Base(in)))
	sorted := slices.Clone(fs)
	slices.SortStableFunc(sorted, func(a, b findings.Finding) int { return a.Severity.Rank() - b.Severity.Rank() })
	for _, f := range sorted {
		tag := []string{string(f.Code)}
		switch {
		case d == nil && f.Disk != 0:
			tag = append(tag, fmt.Sprintf("disk %02d", f.Disk))
		case d != nil && f.Disk != 0 && f.Disk != d.ID:
			tag = append(tag, fmt.Sprintf("disk %02d", f.Disk))
		}
		if f.Instance != 0 && (d == nil || len(d.Instances) > 1) {
			tag = append(tag, fmt.Sprintf("copy %d", f.Instance))
		}
		text := strings.TrimSpace(f.Message + " " + f.Action)
		para(w, "  "+string(f.Severity), text+" ["+strings.Join(tag, ", ")+"]")
	}
}

// para prints text under label, wrapped to width at spaces.
func para(w io.Writer, label, text string) {
	lines := wrap(text, width-len(indent))
	for i, line := range lines {
		head := indent
		if i == 0 && label != "" {
			head = label + " "
			if len(head) < len(indent) {
				head = label + indent[len(label):]
			}
		}
		fmt.Fprintf(w, "%s%s\n", head, line)
	}
}

// wrap breaks text into lines of at most lim bytes at spaces, greedily (a
// word longer than lim has a line of its own). By hand, not with
// github.com/kr/text: its minimal-raggedness Wrap allocates a table of
// n×n for n words, and a finding's text carries strings from the
// evidence (error messages, file names) of any length.
func wrap(text string, lim int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(text) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > lim {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 || len(lines) == 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// reportPath is the case-relative path of the report's disk.
func reportPath(rep *pipeline.DiskReport) string {
	if len(rep.Output) > 0 {
		return rep.Output[0].Path
	}
	return fmt.Sprintf("%s/disk-%02d.vmdk", pipeline.DisksDirName, rep.Disk.ID)
}

// runGroup is the runs of one status decided for one reason code.
type runGroup struct {
	code reassemble.ReasonCode
	runs []reassemble.Run
}

// groupRuns groups the runs of status st by reason code, in the order of
// their first run.
func groupRuns(runs []reassemble.Run, st reassemble.Status) []*runGroup {
	var groups []*runGroup
	for _, r := range runs {
		if r.Status != st {
			continue
		}
		i := slices.IndexFunc(groups, func(g *runGroup) bool { return g.code == r.Code })
		if i < 0 {
			groups = append(groups, &runGroup{code: r.Code})
			i = len(groups) - 1
		}
		groups[i].runs = append(groups[i].runs, r)
	}
	for _, g := range groups {
		if g.code == "" {
			g.code = "no reason recorded"
		}
	}
	return groups
}

// where lists the group's first ranges of grains (adjacent runs merged)
// as virtual byte offsets, exact, for dd and hex editors.
func (g *runGroup) where(grainBytes int64) string {
	type span struct{ first, end uint64 }
	var spans []span
	for _, r := range g.runs {
		if n := len(spans); n > 0 && spans[n-1].end == r.FirstGrain {
			spans[n-1].end += r.Count
			continue
		}
		spans = append(spans, span{r.FirstGrain, r.FirstGrain + r.Count})
	}
	var parts []string
	for i, s := range spans {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more ranges", len(spans)-maxListed))
			break
		}
		grains := fmt.Sprintf("grain %d", s.first)
		if s.end-s.first > 1 {
			grains = fmt.Sprintf("grains %d-%d", s.first, s.end-1)
		}
		parts = append(parts, fmt.Sprintf("%d-%d (%s)", int64(s.first)*grainBytes, int64(s.end)*grainBytes-1, grains))
	}
	return "virtual bytes " + strings.Join(parts, ", ")
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
