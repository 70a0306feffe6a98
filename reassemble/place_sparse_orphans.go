package reassemble

import (
	"fmt"
	"sort"

	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/vmdk"
)

// When is a zero grain table entry proof that the grain is unallocated?
//
// A hosted sparse file appends each grain where it is first written and
// never frees a slot, so every grain-sized slot of its grain area belongs
// to some virtual grain. A slot holding data that no table entry names
// (an orphan) means entries were lost: a zero entry of a table that could
// have lost it is then no proof of zeros, and its grain is missing. The
// orphans stay open to other evidence (their own guest structures, write
// order, copies), as when whole tables are lost.
//
// Each grain table is judged by how its copies stand:
//
//   - tableSingle: only one copy is readable (the other's directory or
//     table is lost, or the file has no redundant copy);
//   - tableDiffer: both copies are readable and differ in some entry (one
//     of them was damaged, the entries are combined);
//   - tablePair: both copies are readable and identical, which shows the
//     table intact unless the file says otherwise.
//
// Orphans are counted two ways:
//
//   - slots: non-zero slots no entry names, between the grain area's start
//     and the last slot an entry names (the area is dense up to there), or,
//     when the host filesystem's map gives the file's end, up to that end;
//   - located: non-zero slots no entry names anywhere in the mapped range
//     that hold guest structures the carve recorded (partition tables,
//     boot sectors, superblocks) which locate themselves at a grain the
//     tables say is unallocated: a structural contradiction of the tables.
//
// Some orphans are explained without a lost entry: a grain whose table
// is lost (both copies unusable, or all zero while orphans exist) may be
// any of them, and so may a grain whose entry names the zero grain (GTE
// 1, FlagZeroedGrainGTE): qemu, asked to write zeros over an allocated
// grain of such a file, sets its entry to 1 and leaves the old slot with
// its data, unreferenced (qemu-io "write -z"; qemu-img check finds no
// error). The orphans beyond those are unexplained.
//
// The zero entries of tableSingle and tableDiffer tables are missing when
// any orphan is unexplained. Those of tablePair tables are missing when
// there is a located orphan, or more than maxStrayOrphans unexplained
// ones: two copies wiped alike (both zeroed over the same range) agree
// too, and a writer's stray slots (a crash between writing a grain and
// its table entry) are fewer. A file whose copies agree and that has a
// few stray slots keeps its zeros.
//
// Entries that name the zero grain are an explicit statement that the
// grain is zero, never the trace of a wipe: they stay zero.
const maxStrayOrphans = 8

// tableTrust is how a grain table's copies stand (see above).
type tableTrust uint8

const (
	tablePair tableTrust = iota
	tableDiffer
	tableSingle
	numTrusts
)

// why words the trust class for the report (Reason.Detail).
func (c tableTrust) why() string {
	switch c {
	case tableDiffer:
		return "its primary and redundant copies differ"
	case tableSingle:
		return "only one copy of its table is readable"
	}
	return "both copies agree, but orphans of guest structures or too many to be a writer's strays say both were wiped alike"
}

// zeroRun is a run of grains decided zero from zero entries of tables of
// one trust class.
type zeroRun struct {
	first, end uint64
	trust      tableTrust
}

// noteZero records grain g as decided zero from a zero entry (grains come
// in increasing order).
func (tr *tablesRead) noteZero(g uint64, trust tableTrust) {
	if n := len(tr.zeroRuns); n > 0 && tr.zeroRuns[n-1].end == g && tr.zeroRuns[n-1].trust == trust {
		tr.zeroRuns[n-1].end++
		return
	}
	tr.zeroRuns = append(tr.zeroRuns, zeroRun{g, g + 1, trust})
}

// orphanCount is what judgeZeroEntries found: orphan slots in the dense
// area, located ones anywhere, and how many of those lie past it.
type orphanCount struct {
	slots, located, locatedPast int64
}

func (n orphanCount) total() int64 { return n.slots + n.locatedPast }

// judgeZeroEntries counts the orphan slots of a sparse file and, where
// they show that tables lost entries, turns the zero entries of the
// tables that could have lost them into missing grains (tableLost, so
// last-resort placement may place the orphans there). It reports whether
// any grain was turned.
func judgeZeroEntries(inst *Instance, view *fileView, x *hitIndex, tr *tablesRead) bool {
	if len(tr.zeroRuns) == 0 {
		return false
	}
	n := countOrphans(inst, view, x, tr)
	unexplained := n.total() - inst.grains.tableLostGrains() - tr.zeroGrainEntries
	var distrust [numTrusts]bool
	if unexplained > 0 || n.located > 0 {
		distrust[tableSingle], distrust[tableDiffer] = true, true
	}
	if unexplained > maxStrayOrphans || n.located > 0 {
		distrust[tablePair] = true
	}
	var lost [numTrusts]*Grain
	for c := range lost {
		lost[c] = &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonZeroEntriesOrphans, Other: n.total(), Detail: tableTrust(c).why()}}
	}
	var runs []zeroRun
	for _, r := range tr.zeroRuns {
		if distrust[r.trust] {
			runs = append(runs, r)
		}
	}
	turned := inst.grains.replaceIn(runs, func(gr *Grain) bool { return gr == tr.tableZero || gr == tr.emptyTableZero },
		func(r zeroRun) *Grain { return lost[r.trust] })
	if turned > 0 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d grain slots hold data no table entry names (%d of them guest structures that locate themselves at grains the tables say are unallocated): %d zero entries of tables not shown intact are treated as lost", n.total(), n.located, turned))
	} else if n.total() > 0 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d grain slots hold data no table entry names, %d of them not explained by lost tables or zero-grain entries: too few to distrust a zero entry (tables whose copies agree allow %d strays)", n.total(), max(unexplained, 0), maxStrayOrphans))
	}
	return turned > 0
}

// countOrphans counts the orphan slots: in the dense area by reading the
// slots no entry names, anywhere by locating the guest structures the
// carve recorded.
func countOrphans(inst *Instance, view *fileView, x *hitIndex, tr *tablesRead) orphanCount {
	var n orphanCount
	h := inst.Header
	gb := h.GrainBytes()
	first := int64(h.OverHead) * vmdk.SectorSize
	if h.OverHead == 0 || gb <= 0 {
		return n
	}
	count := min((view.size()-first)/gb, maxAnchorSlots, int64(h.Grains()))
	if count <= 0 {
		return n
	}
	named := tr.namedSlots(first, gb)
	last := int64(-1)
	for k := range named {
		last = max(last, k)
	}
	// The slots known to be the file's: up to the last named one, or up
	// to the file's end when the host filesystem's map gives it (a map
	// of anchored fragments does not say where the file ends).
	dense := last + 1
	if inst.HostMap != nil {
		dense = count
	}
	dense = min(dense, count)

	zeroEntry := func(g int64) bool {
		if g < 0 || uint64(g) >= h.Grains() {
			return false
		}
		gr := inst.grains.at(uint64(g))
		return (gr == tr.tableZero || gr == tr.emptyTableZero) && tr.inZeroRun(uint64(g))
	}
	buf := make([]byte, gb)
	for k := int64(0); k < dense; k++ {
		if named[k] {
			continue
		}
		// A slot the view cannot read (a gap in an incomplete host map)
		// is unknown, not the file's end: the slots after it still count.
		if _, err := view.ReadAt(buf, first+k*gb); err == nil && !entropy.Zero(buf) {
			n.slots++
		}
	}
	// The slots holding the guest structures the carve recorded: a read
	// of a few slots, not a pass over the file.
	geometry := grainsHolding(inst, x.geometry, first, gb, count)
	loc := fsprobe.NewLocator(gb, int64(h.Capacity)*vmdk.SectorSize)
	for _, k := range geometry {
		if _, err := view.ReadAt(buf, first+k*gb); err == nil && !entropy.Zero(buf) {
			loc.Learn(buf)
		}
	}
	loc.Prepare()
	for _, k := range geometry {
		if named[k] {
			continue
		}
		if _, err := view.ReadAt(buf, first+k*gb); err != nil || entropy.Zero(buf) {
			continue
		}
		for _, g := range loc.Candidates(loc.Locate(buf)) {
			if zeroEntry(g) {
				n.located++
				if k >= dense {
					n.locatedPast++
				}
				break
			}
		}
	}
	return n
}

// tableLostGrains counts the grains of spans missing because their table
// is lost.
func (d *decisions) tableLostGrains() int64 {
	var n uint64
	for _, s := range d.spans {
		if lostByTable(s.g) {
			n += s.end - s.first
		}
	}
	return int64(n)
}

// namedSlots returns the grain slots (indexes from the grain area's
// start) some entry of either copy names: placed, shared or disputed.
func (tr *tablesRead) namedSlots(first, gb int64) map[int64]bool {
	named := make(map[int64]bool, len(tr.owner)+len(tr.disputed))
	add := func(sec uint32) {
		if off := int64(sec)*vmdk.SectorSize - first; off >= 0 && off%gb == 0 {
			named[off/gb] = true
		}
	}
	for sec := range tr.owner {
		add(sec)
	}
	for _, sec := range tr.disputed {
		add(sec)
	}
	return named
}

// inZeroRun reports whether grain g was decided zero from a zero entry.
func (tr *tablesRead) inZeroRun(g uint64) bool {
	i := sort.Search(len(tr.zeroRuns), func(i int) bool { return tr.zeroRuns[i].end > g })
	return i < len(tr.zeroRuns) && tr.zeroRuns[i].first <= g
}

// replaceIn gives the grains of runs (sorted, disjoint) whose span
// decision match accepts the decision with(run) instead, splitting spans,
// and returns how many grains it changed. Individually decided grains are
// left alone.
func (d *decisions) replaceIn(runs []zeroRun, match func(*Grain) bool, with func(zeroRun) *Grain) uint64 {
	if len(runs) == 0 {
		return 0
	}
	var turned uint64
	out := make([]span, 0, len(d.spans))
	for _, s := range d.spans {
		if !match(s.g) {
			out = append(out, s)
			continue
		}
		at := s.first
		i := sort.Search(len(runs), func(i int) bool { return runs[i].end > s.first })
		for ; i < len(runs) && runs[i].first < s.end; i++ {
			lo, hi := max(runs[i].first, s.first), min(runs[i].end, s.end)
			if at < lo {
				out = append(out, span{at, lo, s.g})
			}
			out = append(out, span{lo, hi, with(runs[i])})
			turned += hi - lo
			at = hi
		}
		if at < s.end {
			out = append(out, span{at, s.end, s.g})
		}
	}
	d.spans = out
	return turned
}
