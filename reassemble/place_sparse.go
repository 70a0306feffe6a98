package reassemble

import (
	"fmt"
	"io"
	"slices"

	"vmdkcarve/internal/entropy"
	"vmdkcarve/vmdk"
)

// gtCopy is one copy (primary or redundant) of one grain table.
type gtCopy struct {
	entries []uint32
	problem string // why this copy is not usable, for the report; "" if it is
	// erased: the copy is lost because its directory entry is zero or
	// there is no directory (the tables were wiped, not misplaced).
	erased bool
	empty  bool // every entry is zero
}

// noDirectory is the copy of every table of a directory that is not there.
var noDirectory = gtCopy{problem: "no directory", erased: true}

// tableReader reads and checks grain directories and tables of one
// instance. A table is usable only if it lies inside the mapped file and
// every non-zero entry names a whole grain past the metadata.
type tableReader struct {
	view *fileView
	h    *vmdk.SparseHeader
	// dataStart is the first sector a grain may occupy.
	dataStart uint64
}

func (t *tableReader) readGD(sector uint64) ([]uint32, string) {
	if sector == 0 {
		return nil, "no directory offset"
	}
	gd, err := vmdk.ReadTable(t.view, t.view.size(), sector, t.h.GDEntries())
	if err != nil {
		return nil, err.Error()
	}
	return gd, ""
}

func (t *tableReader) readGT(gde uint32) gtCopy {
	if gde == 0 {
		return gtCopy{problem: "directory entry is zero", erased: true}
	}
	if uint64(gde) >= t.dataStart && !t.h.Compressed() {
		return gtCopy{problem: fmt.Sprintf("directory entry %d points into grain data", gde)}
	}
	gt, err := vmdk.ReadTable(t.view, t.view.size(), uint64(gde), uint64(t.h.NumGTEsPerGT))
	if err != nil {
		return gtCopy{problem: err.Error()}
	}
	c := gtCopy{entries: gt, empty: true}
	zeroGTE := t.h.Flags&vmdk.FlagZeroedGrainGTE != 0
	for j, e := range gt {
		if e == 0 || (e == 1 && zeroGTE) {
			continue
		}
		c.empty = false
		if uint64(e) < t.dataStart {
			c.problem = fmt.Sprintf("entry %d = %d points into the metadata", j, e)
			return c
		}
		if !t.h.Compressed() && int64(e)*vmdk.SectorSize+t.h.GrainBytes() > t.view.size() {
			// Not a table problem: the grain lies past what the image
			// holds (a cut file). The grain is missing, not the table.
			continue
		}
	}
	return c
}

// placeSparse decides every grain of an uncompressed hosted sparse instance
// from its primary grain tables, falling back per table and per entry to the
// redundant copy (FORMAT.md §2.3).
func placeSparse(inst *Instance, image io.ReaderAt, x *hitIndex, opts Options) {
	h := inst.Header
	view := newFileView(image, inst.Fragments)
	t := &tableReader{view: view, h: h, dataStart: h.OverHead}
	if h.OverHead == 0 {
		t.dataStart = 1
	}
	primary, pProblem := t.readGD(h.GDOffset)
	var redundant []uint32
	rProblem := "no redundant directory (flags bit 1 clear)"
	if h.HasRedundantGD() {
		redundant, rProblem = t.readGD(h.RGDOffset)
	}
	if pProblem != "" {
		inst.Notes = append(inst.Notes, "primary grain directory unusable: "+pProblem)
	}
	if rProblem != "" && h.HasRedundantGD() {
		inst.Notes = append(inst.Notes, "redundant grain directory unusable: "+rProblem)
	}

	grains := h.Grains()
	if primary == nil && redundant == nil {
		// No directory at all: one decision for the whole disk, without
		// walking the (possibly huge, claimed) number of tables.
		inst.grains.setRange(0, grains, &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonDirectoriesLost, Detail: pProblem, Redundant: rProblem}})
		inst.Tables = "no usable grain directory"
		inst.TableCopies = &TableCopies{PrimaryDirectory: pProblem, RedundantDirectory: rProblem}
		if !inst.contiguousOnly() {
			placeByAnchors(inst, view, x, nil)
		}
		return
	}
	tables := predictedTables(h, primary, redundant)
	predicted := tables
	tr := readTables(inst, t, primary, redundant)
	cands, owner, tableZero := tr.cands, tr.owner, tr.tableZero
	if inst.contiguousOnly() {
		inst.follow = &followInput{cands: cands, predicted: predicted, zero: tableZero, broken: -1}
		// No host map: the anchors say whether the file is contiguous
		// from its header and, where not, where its pieces lie (and the
		// guest's file tails in it, contiguous or not: damage proofs).
		frags, proofs := followFragments(inst, image, x, opts, cands, predicted, -1)
		predicted = append(predicted, proofs...)
		if frags != nil {
			inst.Fragments, inst.byImage = frags, nil
			view = newFileView(image, frags)
			inst.size = view.size()
		}
	}
	if broken := placeCandidates(inst, view, cands, x, opts, tableZero, predicted); broken >= 0 {
		if inst.follow != nil {
			inst.follow.broken = broken
		}
		// (The VMDK's own structures are anchors of the header's shift;
		// the guest's tails are not.)
		if frags, proofs := followFragments(inst, image, x, opts, cands, tables, broken); frags != nil {
			// (The tails learned before were learned on the contiguity
			// that broke: only the new map's count.)
			predicted = append(slices.Clone(tables), proofs...)
			// The anchors found where the rest of the file lies: every
			// grain is decided again through the new map.
			inst.Fragments, inst.byImage = frags, nil
			view = newFileView(image, frags)
			inst.size = view.size()
			placeCandidates(inst, view, cands, x, opts, tableZero, predicted)
		}
	}
	orphans := orphanSlots(h, owner)
	if len(owner) == 0 && firstSlotHolds(view, h) {
		// No table names any grain, yet the grain area starts with data:
		// the tables were wiped (a grain table reading all zero is no
		// proof its grains are).
		orphans = 1
	}
	// A grain whose entry names the zero grain may have left its old slot
	// behind (place_sparse_orphans.go): such orphans prove no loss.
	orphans = uint64(max(int64(orphans)-tr.zeroGrainEntries, 0))
	inst.Tables = fmt.Sprintf("%d of %d grain tables from the primary copy, %d from the redundant copy, %d lost", tr.usedPrimary, h.GDEntries(), tr.usedRedundant, tr.lostTables)
	inst.TableCopies = &TableCopies{Tables: int(h.GDEntries()), Primary: tr.usedPrimary, Redundant: tr.usedRedundant, Lost: tr.lostTables, PrimaryDirectory: pProblem}
	if h.HasRedundantGD() {
		inst.TableCopies.RedundantDirectory = rProblem
	}

	// Grains are appended to a sparse file as they are first written, so
	// the grain area is dense: every grain-sized slot between overHead and
	// the last referenced grain belongs to some grain. Unreferenced slots
	// mean tables were lost, and then an all-zero table proves nothing:
	// its grains are missing, not zero.
	if orphans > 0 {
		lost := &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonZeroTableOrphans, Other: int64(orphans)}}
		swapped := false
		for i := range inst.grains.spans {
			if inst.grains.spans[i].g == tr.emptyTableZero {
				inst.grains.spans[i].g = lost
				swapped = true
			}
		}
		if swapped {
			inst.TableCopies.Wiped = int64(orphans)
			inst.Notes = append(inst.Notes, fmt.Sprintf("%d grain slots referenced by no table: all-zero tables are treated as lost", orphans))
		}
	}
	// Zero entries of tables not shown intact are no proof of zeros
	// where slots hold data no entry names (place_sparse_orphans.go).
	turned := judgeZeroEntries(inst, view, x, tr)
	// Without a host map, a table lost for any reason but erasure (its
	// directory entry names a sector that does not hold it) says the file
	// is not contiguous where assumed: the slots are then not the file's,
	// and nothing is placed from them.
	if (tr.lostTables > 0 || orphans > 0 || turned) && (tr.lostUnerased == 0 || !inst.contiguousOnly()) {
		placeByAnchors(inst, view, x, owner)
	}
}

// predictedTables lists the directories and the tables they name, for the
// damage policy: a table never reads random, so one that does is
// destroyed there.
func predictedTables(h *vmdk.SparseHeader, primary, redundant []uint32) []structureAt {
	perGT := uint64(h.NumGTEsPerGT)
	var predicted []structureAt
	for _, d := range []struct {
		sector  uint64
		entries []uint32
		which   string
	}{{h.GDOffset, primary, "primary"}, {h.RGDOffset, redundant, "redundant"}} {
		if d.entries == nil {
			continue
		}
		predicted = append(predicted, structureAt{off: int64(d.sector) * vmdk.SectorSize, n: int64(len(d.entries)) * 4, what: d.which + " grain directory"})
		for i, e := range d.entries {
			if e != 0 {
				predicted = append(predicted, structureAt{off: int64(e) * vmdk.SectorSize, n: int64(perGT) * 4, what: fmt.Sprintf("%s grain table %d", d.which, i)})
			}
		}
	}
	return predicted
}

// tablesRead is what the grain tables of a sparse file say, table by
// table from the primary copy, else the redundant one.
type tablesRead struct {
	cands                                  []candidate       // table-placed grains
	owner                                  map[uint32]uint64 // grain sector → virtual grain, to refuse a sector claimed twice
	usedPrimary, usedRedundant, lostTables int
	lostUnerased                           int // lost tables whose directory entry is not zero in some copy
	// emptyTableZero decides the grains zero only because both table
	// copies are empty, so the orphan check can find them; tableZero the
	// other unallocated grains.
	emptyTableZero, tableZero *Grain
	// zeroRuns are the grains decided zero from zero entries, by how
	// their table's copies stand, and disputed the sectors of entries
	// the copies disagree on or share: what judgeZeroEntries needs.
	zeroRuns []zeroRun
	disputed []uint32
	// zeroGrainEntries counts the entries naming the zero grain (GTE 1).
	zeroGrainEntries int64
}

// readTables reads every grain table through both directories and decides
// the grains the tables settle (zero, conflicting, lost); the grains they
// place are candidates, checked by placeCandidates.
func readTables(inst *Instance, t *tableReader, primary, redundant []uint32) *tablesRead {
	h := inst.Header
	grains := h.Grains()
	perGT := uint64(h.NumGTEsPerGT)
	tr := &tablesRead{owner: make(map[uint32]uint64),
		emptyTableZero: &Grain{Status: Zero, Evidence: []string{EvTable}, Reason: Reason{Code: ReasonUnallocatedEmptyTable}},
		tableZero:      &Grain{Status: Zero, Evidence: []string{EvTable}, Reason: Reason{Code: ReasonUnallocated}}}
	owner, emptyTableZero, tableZero := tr.owner, tr.emptyTableZero, tr.tableZero
	for i := uint64(0); i < h.GDEntries(); i++ {
		p, r := noDirectory, noDirectory
		if primary != nil {
			p = t.readGT(primary[i])
		}
		if redundant != nil {
			r = t.readGT(redundant[i])
		}
		pOK, rOK := p.problem == "", r.problem == ""
		trust := tablePair
		switch {
		case !pOK || !rOK:
			trust = tableSingle
		case !slices.Equal(p.entries, r.entries):
			trust = tableDiffer
		}
		switch {
		case pOK:
			tr.usedPrimary++
		case rOK:
			tr.usedRedundant++
		default:
			tr.lostTables++
			if !p.erased || !r.erased {
				tr.lostUnerased++
			}
			first := i * perGT
			inst.grains.setRange(first, min(first+perGT, grains), &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonTableLost, Detail: p.problem, Redundant: r.problem}})
			continue
		}
		for j := uint64(0); j < perGT; j++ {
			g := i*perGT + j
			if g >= grains {
				break
			}
			var pe, re uint32
			if pOK {
				pe = p.entries[j]
			}
			if rOK {
				re = r.entries[j]
			}
			if pe != 0 && re != 0 && pe != re {
				tr.disputed = append(tr.disputed, pe, re)
				inst.grains.set(g, &Grain{Status: Conflict, Reason: Reason{Code: ReasonTablesDisagree, Offset: int64(pe), Other: int64(re)}})
				continue
			}
			e, which := pe, "primary"
			if e == 0 && re != 0 {
				e, which = re, "redundant"
			}
			zeroGTE := h.Flags&vmdk.FlagZeroedGrainGTE != 0
			if e == 0 || (e == 1 && zeroGTE) {
				if (!pOK || p.empty) && (!rOK || r.empty) {
					inst.grains.setRange(g, g+1, emptyTableZero)
				} else {
					inst.grains.setRange(g, g+1, tableZero)
				}
				if e == 0 {
					tr.noteZero(g, trust)
				} else {
					tr.zeroGrainEntries++
				}
				continue
			}
			if prev, dup := owner[e]; dup {
				tr.disputed = append(tr.disputed, e)
				inst.grains.set(g, &Grain{Status: Conflict, Reason: Reason{Code: ReasonSectorShared, Offset: int64(e), Other: int64(prev)}})
				if pg := inst.grains.at(prev); pg != nil && pg.Status == Placed {
					inst.grains.set(prev, &Grain{Status: Conflict, Reason: Reason{Code: ReasonSectorShared, Offset: int64(e), Other: int64(g)}})
				}
				continue
			}
			owner[e] = g
			tr.cands = append(tr.cands, candidate{grain: g, sector: e, which: which, both: pe != 0 && re != 0})
		}
	}
	return tr
}

// firstSlotHolds reports whether the first grain slot after the metadata
// holds non-zero bytes.
func firstSlotHolds(view *fileView, h *vmdk.SparseHeader) bool {
	b := make([]byte, h.GrainBytes())
	if _, err := view.ReadAt(b, int64(h.OverHead)*vmdk.SectorSize); err != nil {
		return false
	}
	return !entropy.Zero(b)
}

// orphanSlots counts grain slots between overHead and the last referenced
// grain that no table references.
func orphanSlots(h *vmdk.SparseHeader, owner map[uint32]uint64) uint64 {
	if len(owner) == 0 {
		return 0
	}
	var last uint32
	for s := range owner {
		last = max(last, s)
	}
	if uint64(last) < h.OverHead {
		return 0
	}
	slots := (uint64(last)-h.OverHead)/h.GrainSize + 1
	if slots <= uint64(len(owner)) {
		return 0
	}
	return slots - uint64(len(owner))
}

// grainLength is the byte length of virtual grain g (the last may be short).
func grainLength(h *vmdk.SparseHeader, g uint64) int64 {
	n := h.GrainBytes()
	if rest := int64(h.Capacity-g*h.GrainSize) * vmdk.SectorSize; rest < n {
		n = rest
	}
	return n
}
