package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"vmdkcarve/internal/units"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// maxListed bounds the runs and notes printed per heading: the report
// (kept with --case) lists them all.
const maxListed = 6

// printFindings says in plain words what repair found and did. It reads
// the disk report alone (its counts, its instances' notes and its runs'
// reasons), so that it can be switched to the report's coded findings
// without touching anything else.
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
	fmt.Fprintf(w, "disk      %02d: %s virtual, %d grains of %s; %s\n", d.ID, units.Bytes(int64(d.Capacity)*vmdk.SectorSize), c.Grains, units.Bytes(gb), res.Chosen)

	// What was found, and what was damaged in it.
	for _, inst := range d.Instances {
		how := "header intact"
		if inst.HeaderLost {
			how = "header lost (inferred from what survives)"
		}
		fmt.Fprintf(w, "found     %s at byte %d of the file, %s; grain tables: %s\n", inst.Variant, inst.HeaderOffset, how, inst.Tables)
		notes := inst.Notes
		for i, n := range notes {
			if i == maxListed {
				fmt.Fprintf(w, "          ... %d more notes in the report\n", len(notes)-maxListed)
				break
			}
			fmt.Fprintf(w, "  note    %s\n", n)
		}
	}
	for _, n := range d.Notes {
		fmt.Fprintf(w, "  note    %s\n", n)
	}
	if desc := d.Descriptor; desc != nil && (desc.ParentFileNameHint != "" || (desc.ParentCID != 0xffffffff && desc.ParentCID != 0)) {
		parent := desc.ParentFileNameHint
		if parent == "" {
			parent = "not named"
		}
		fmt.Fprintf(w, "snapshot  the file is a snapshot (delta) of a parent disk (parentCID %08x, parent %s):\n", desc.ParentCID, parent)
		fmt.Fprintf(w, "          it holds only the grains written since; the others are the parent's, not\n")
		fmt.Fprintf(w, "          zeros, so the output alone is not the whole disk\n")
	}

	// What was done, grain by grain.
	fmt.Fprintf(w, "grains    %d recovered, %d empty (zeros in the original too), %d missing, %d damaged\n",
		c.Placed, c.Zero, c.Missing+c.Conflict, c.Damaged)
	for _, g := range groupRuns(d.Runs, reassemble.Placed) {
		fmt.Fprintf(w, "  placed  %d grains: %s\n", g.grains, g.reason)
	}
	lost := c.Missing + c.Conflict + c.Damaged
	if lost > 0 {
		fmt.Fprintf(w, "missing   %d grains (%s) could be neither recovered nor proven empty.\n", lost, units.Bytes(int64(lost)*gb))
		fmt.Fprintf(w, "          They read as zeros in the output: a disk image has no way to mark data\n")
		fmt.Fprintf(w, "          missing, so whatever the guest kept there is lost (unless it was empty).\n")
		fmt.Fprintf(w, "          Why, and where:\n")
		for _, st := range []reassemble.Status{reassemble.Missing, reassemble.Conflict, reassemble.Damaged} {
			for _, g := range groupRuns(d.Runs, st) {
				fmt.Fprintf(w, "  %-7s %d grains: %s\n", st, g.grains, g.reason)
				fmt.Fprintf(w, "          at %s\n", g.where(gb))
			}
		}
	} else {
		fmt.Fprintf(w, "missing   none: every grain the disk had was recovered\n")
	}

	for _, f := range rep.Guest {
		if f.Check == nil {
			continue
		}
		line := fmt.Sprintf("guest     %s at byte %d: %d entries walked", f.Kind, f.Offset, f.Check.Entries)
		if f.Check.Files > 0 {
			line += fmt.Sprintf(", %d of %d files read back whole", f.Check.FilesRecovered, f.Check.Files)
		}
		if !f.Check.Walked {
			line += " (the walk did not finish)"
		}
		fmt.Fprintln(w, line)
		for i, p := range f.Check.Problems {
			if i == maxListed {
				break
			}
			fmt.Fprintf(w, "  problem %s\n", p)
		}
	}

	for _, o := range res.Outputs {
		fmt.Fprintf(w, "wrote     %s (%s, %s) sha256 %s\n", o.Path, o.Format, units.Bytes(o.Size), o.SHA256)
	}
	for _, other := range res.Others {
		fmt.Fprintf(w, "other     disk %02d: %s, %d grains recovered, not written (--disk %d writes it)\n", other.ID, units.Bytes(int64(other.Capacity)), other.Counts.Placed, other.ID)
	}
	if res.Case != "" {
		fmt.Fprintf(w, "report    %s (every grain, its source and the reason)\n", filepath.Join(res.Case, strings.TrimSuffix(reportPath(rep), ".vmdk")+".json"))
	} else {
		fmt.Fprintf(w, "report    not kept (the case was temporary): add --case DIR to keep where every grain came from\n")
	}
}

// reportPath is the case-relative path of the report's disk.
func reportPath(rep *pipeline.DiskReport) string {
	if len(rep.Output) > 0 {
		return rep.Output[0].Path
	}
	return fmt.Sprintf("%s/disk-%02d.vmdk", pipeline.DisksDirName, rep.Disk.ID)
}

// runGroup is the runs of one status decided for one kind of reason.
type runGroup struct {
	code   reassemble.ReasonCode
	reason string // the first run's reason, as an example
	grains uint64
	runs   []reassemble.Run
}

// groupRuns groups the runs of status st by reason code, the largest group
// first.
func groupRuns(runs []reassemble.Run, st reassemble.Status) []*runGroup {
	var groups []*runGroup
	for _, r := range runs {
		if r.Status != st {
			continue
		}
		i := slices.IndexFunc(groups, func(g *runGroup) bool { return g.code == r.Code })
		if i < 0 {
			reason := r.Reason
			if reason == "" {
				reason = string(r.Code)
			}
			if reason == "" {
				reason = "no reason recorded"
			}
			groups = append(groups, &runGroup{code: r.Code, reason: reason})
			i = len(groups) - 1
		}
		groups[i].grains += r.Count
		groups[i].runs = append(groups[i].runs, r)
	}
	slices.SortStableFunc(groups, func(a, b *runGroup) int {
		switch {
		case a.grains > b.grains:
			return -1
		case a.grains < b.grains:
			return 1
		}
		return 0
	})
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
