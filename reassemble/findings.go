package reassemble

import (
	"maps"
	"slices"
	"strings"

	"vmdkcarve/findings"
	"vmdkcarve/vmdk"
)

// Findings lists what a user should know about the disk: the damage found
// in each of its files and what was decided for it, then the disk's own
// as merged from its copies, sorted (findings.Sort). They are derived from
// the plan's structured records (each instance's fields, damage report and
// grain decisions' reason codes; the disk's runs), never from its words.
// Call it on a plan from Plan: a plan read back from JSON has lost the
// per-instance decisions, and its findings count fewer grains.
func (d *Disk) Findings() []findings.Finding {
	var out []findings.Finding
	for _, inst := range slices.Concat(d.Instances, d.Parts) {
		for _, f := range instanceFindings(inst, len(d.Instances)) {
			out = append(out, f.On(d.ID, inst.ID))
		}
	}
	for _, f := range diskFindings(d) {
		out = append(out, f.On(d.ID, 0))
	}
	findings.Sort(out)
	return out
}

// reasonGroup is what an instance's grains decided for one reason code.
type reasonGroup struct {
	grains uint64
	first  uint64 // the first grain
	reason Reason // the first grain's reason
}

// reasonGroups are an instance's decided grains by reason code.
type reasonGroups map[ReasonCode]*reasonGroup

// groupReasons groups an instance's decided grains by reason code.
func groupReasons(inst *Instance) reasonGroups {
	out := reasonGroups{}
	if inst.grains == nil || inst.Header == nil {
		return out
	}
	walk(inst.Header.Grains(), []*decisions{inst.grains}, func(g, count uint64, per []*Grain) {
		gr := per[0]
		if gr == nil || gr.Reason.Code == "" {
			return
		}
		if r := out[gr.Reason.Code]; r != nil {
			r.grains += count
			return
		}
		out[gr.Reason.Code] = &reasonGroup{grains: count, first: g, reason: gr.Reason}
	})
	return out
}

func (m reasonGroups) count(codes ...ReasonCode) uint64 {
	var n uint64
	for _, c := range codes {
		if r := m[c]; r != nil {
			n += r.grains
		}
	}
	return n
}

// instanceFindings derives one file's findings; copies is how many
// copies its disk has.
func instanceFindings(inst *Instance, copies int) []findings.Finding {
	var out []findings.Finding
	groups := groupReasons(inst)
	if inst.HeaderLost {
		switch {
		case inst.HeaderFrom == HeaderFromGuest:
			out = append(out, findings.MetadataLost(inst.HeaderOffset, inst.Counts.Placed))
		case inst.HeaderFrom == HeaderFromRecords:
			out = append(out, findings.StreamAdopted(inst.HeaderOffset, inst.Counts.ByEvidence[EvMarker]))
		case inst.HeaderDamaged != "":
			out = append(out, findings.HeaderDamaged(inst.HeaderOffset, inst.HeaderFrom, inst.HeaderDamaged))
		default:
			out = append(out, findings.HeaderLost(inst.HeaderOffset, inst.HeaderFrom))
		}
	}
	if inst.CapacityBound != "" && inst.Header != nil {
		out = append(out, findings.CapacityBounded(inst.Header.Capacity, inst.CapacityBound))
	}
	if tc := inst.TableCopies; tc != nil {
		if tc.Redundant > 0 {
			out = append(out, findings.PrimaryTablesLost(tc.Redundant, tc.Tables, tc.PrimaryDirectory))
		}
		// The grains the lost tables left missing, and those last-resort
		// placement proved instead.
		missing := groups.count(ReasonDirectoriesLost, ReasonTableLost, ReasonZeroTableOrphans)
		fsprobe, order := inst.Counts.ByEvidence[EvFSProbe], inst.Counts.ByEvidence[EvOrder]
		switch {
		case tc.Wiped > 0:
			out = append(out, findings.TablesWiped(tc.Wiped, fsprobe, order, missing))
		case tc.Lost > 0 || tc.Tables == 0:
			out = append(out, findings.TablesLost(tc.Lost, tc.Tables, fsprobe, order, missing))
		}
	}
	if r := groups[ReasonZeroEntriesOrphans]; r != nil {
		out = append(out, findings.ZeroEntriesDistrusted(r.grains, r.reason.Other, r.reason.Detail))
	}
	if st := inst.StreamTable; st != nil && !st.Trusted && st.Disagree > 0 {
		out = append(out, findings.StreamTableUntrusted(st.Agree, st.Disagree))
	}
	if h := inst.Header; h != nil && h.Compressed() && h.GDOffset == vmdk.GDAtEnd && inst.FooterOffset == 0 && inst.HeaderFrom != HeaderFromRecords {
		out = append(out, findings.StreamFooterLost(inst.HeaderOffset))
	}
	if dm := inst.Damage; dm != nil && len(dm.Lattices) > 0 {
		var ls, proofs []string
		for _, l := range dm.Lattices {
			ls = append(ls, l.String())
			if !slices.Contains(proofs, l.Proof) {
				proofs = append(proofs, l.Proof)
			}
		}
		out = append(out, findings.EncryptionLattice(strings.Join(ls, "; "), strings.Join(proofs, "; "), dm.DamagedGrains))
	}
	if r := groups[ReasonStructureDestroyed]; r != nil {
		out = append(out, findings.StructureDestroyed(r.grains, r.reason.Detail))
	}
	if r := groups[ReasonDestroyedSpan]; r != nil {
		spans := 1
		if dm := inst.Damage; dm != nil {
			spans = max(spans, len(dm.Spans))
		}
		out = append(out, findings.DestroyedSpan(r.grains, spans, r.reason.Detail))
	}
	for _, b := range inst.Breaks {
		out = append(out, findings.FragmentBreak(b.FileOffset, b.ImageOffset, b.Why))
	}
	var anchored, anchors, hosted int
	for _, f := range inst.Fragments {
		switch f.Link {
		case LinkAnchored:
			anchored++
			anchors += f.Anchors
		case LinkHost:
			hosted++
		}
	}
	if anchored > 1 {
		out = append(out, findings.FragmentsFollowed(anchored, anchors))
	}
	if inst.HostMap != nil && hosted > 1 {
		out = append(out, findings.HostMapUsed(hosted, inst.HostMap.Record))
	}
	if inst.UnplacedGrains > 0 || inst.TrailingSlots > 0 {
		out = append(out, findings.UnplacedSlots(inst.UnplacedGrains, inst.TrailingSlots))
	}
	if inst.UnprovenExtentOf != 0 {
		out = append(out, findings.SplitExtentUnproven(inst.UnprovenExtentOf))
	}
	for _, e := range splitExtentsLost(inst) {
		out = append(out, findings.SplitExtentLost(e.name, e.grains))
	}
	// (A copy of an empty disk places nothing and loses nothing.)
	if c := inst.Counts; c.Placed == 0 && c.Missing+c.Conflict+c.Damaged > 0 {
		out = append(out, findings.NothingPlaced(inst.Counts.Grains, copies))
	}
	return out
}

type lostExtent struct {
	name   string
	grains uint64
}

// splitExtentsLost lists the extents of a split disk's instance that were
// not found, in order, with their grains.
func splitExtentsLost(inst *Instance) []lostExtent {
	var out []lostExtent
	if inst.grains == nil || inst.Header == nil {
		return nil
	}
	walk(inst.Header.Grains(), []*decisions{inst.grains}, func(_, count uint64, per []*Grain) {
		gr := per[0]
		if gr == nil || gr.Reason.Code != ReasonSplitExtentMissing {
			return
		}
		if n := len(out); n > 0 && out[n-1].name == gr.Reason.Detail {
			out[n-1].grains += count
			return
		}
		out = append(out, lostExtent{gr.Reason.Detail, count})
	})
	return out
}

// diskFindings derives the findings of the disk as merged from its
// copies, from its runs.
func diskFindings(d *Disk) []findings.Finding {
	var out []findings.Finding
	if len(d.Instances) > 1 {
		out = append(out, findings.CopiesMerged(len(d.Instances), d.Counts.ByEvidence[EvCopy]))
	}
	if v := d.Versions; v != nil {
		out = append(out, findings.VersionsFound(v.Group, v.Position, len(v.Disks), v.Order))
	}
	type group struct{ grains, first uint64 }
	conflicts := map[ReasonCode]*group{}
	var missing = map[string]uint64{}
	var unreadable *group
	for _, r := range d.Runs {
		switch r.Status {
		case Conflict:
			if g := conflicts[r.Code]; g != nil {
				g.grains += r.Count
			} else {
				conflicts[r.Code] = &group{r.Count, r.FirstGrain}
			}
		case Missing:
			missing[string(r.Code)] += r.Count
			if r.Code == ReasonSectorUnreadable {
				if unreadable == nil {
					unreadable = &group{0, r.FirstGrain}
				}
				unreadable.grains += r.Count
			}
		}
	}
	other := map[string]uint64{}
	var others uint64
	for _, c := range slices.Sorted(maps.Keys(conflicts)) {
		g := conflicts[c]
		switch c {
		case ReasonTablesDisagree:
			out = append(out, findings.TableCopiesDisagree(g.grains, g.first))
		case ReasonCopiesDisagree:
			out = append(out, findings.CopiesDisagree(g.grains, g.first))
		default:
			other[string(c)] += g.grains
			others += g.grains
		}
	}
	if others > 0 {
		out = append(out, findings.GrainConflict(others, other))
	}
	if d.Counts.Missing > 0 {
		out = append(out, findings.GrainsMissing(d.Counts.Missing, d.Counts.Grains, missing))
	}
	if unreadable != nil {
		out = append(out, findings.GrainsUnreadable(unreadable.grains, unreadable.first))
	}
	return out
}
