package reassemble

import (
	"fmt"
	"io"
	"sort"

	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// placeStream decides every grain of a stream-optimized instance. Grain
// markers carry their LBA, so each valid record places itself (evidence
// "marker"); where the stream's own grain table survives and points at the
// same record it adds "table". A table entry pointing at anything but a
// valid record of that LBA leaves the grain missing.
func placeStream(inst *Instance, image io.ReaderAt, x *hitIndex) {
	markers := streamRecords(inst, x)
	inst.markers = markers
	byGrain, conflicts := recordsByGrain(inst, markers)
	tables, ok := streamTables(inst, image)
	for g, m := range byGrain {
		if conflicts[g] {
			inst.grains.set(g, &Grain{Status: Conflict, Reason: Reason{Code: ReasonRecordsDisagree}})
			continue
		}
		inst.grains.set(g, markerGrain(inst, m))
	}
	for g := range conflicts {
		if byGrain[g] == nil {
			inst.grains.set(g, &Grain{Status: Conflict, Reason: Reason{Code: ReasonRecordsDisagree}})
		}
	}
	if inst.HostMap != nil {
		placed := make(map[uint64]bool, len(byGrain))
		for g := range byGrain {
			placed[g] = true
		}
		for g := range conflicts {
			placed[g] = true
		}
		walkMappedStream(inst, newFileView(image, inst.Fragments), placed)
	}
	if !ok {
		inst.Tables = "no usable grain table: grains placed by their markers' LBA"
		streamZeros(inst, markers, x)
		return
	}
	agree, disagree := tableAgreement(inst, tables, byGrain)
	inst.StreamTable = &StreamTableCheck{Agree: agree, Disagree: disagree, Trusted: agree > 0 && disagree <= agree}
	if !inst.StreamTable.Trusted {
		inst.Notes = append(inst.Notes, fmt.Sprintf("stream grain table ignored: %d entries agree with the records found, %d do not", agree, disagree))
		inst.Tables = "grain table not trusted: grains placed by their markers' LBA"
		streamZeros(inst, markers, x)
		return
	}
	applyStreamTables(inst, tables)
	inst.Tables = "stream grain tables checked against the grain records"
}

// streamRecords returns a stream's records: the markers inside its mapped
// fragments, in file order.
func streamRecords(inst *Instance, x *hitIndex) []*signatures.Hit {
	h := inst.Header
	var markers []*signatures.Hit
	for _, f := range inst.Fragments {
		if f.Link == LinkHole {
			continue
		}
		lo := sort.Search(len(x.markers), func(i int) bool { return x.markers[i].Offset >= f.ImageOffset })
		hi := sort.Search(len(x.markers), func(i int) bool { return x.markers[i].Offset >= f.ImageOffset+f.Length })
		markers = append(markers, x.markers[lo:hi]...)
	}
	if inst.contiguousOnly() {
		// Without a host map, only the chain of records that follow each
		// other from the first grain area is surely this file's: past its
		// first gap, the region holds whatever the host put there (other
		// streams' records among it). Records past the gap are left to
		// attachOrphanRuns, which takes a run only where nothing else fits.
		markers = recordChain(markers, inst.HeaderOffset+int64(h.OverHead)*vmdk.SectorSize, h.GrainBytes(), x)
	}
	return markers
}

// recordsByGrain indexes a stream's valid records by grain. Two different
// records for one LBA in one stream are a conflict unless their data is
// identical.
func recordsByGrain(inst *Instance, markers []*signatures.Hit) (byGrain map[uint64]*signatures.Hit, conflicts map[uint64]bool) {
	h := inst.Header
	grains := h.Grains()
	byGrain = make(map[uint64]*signatures.Hit)
	conflicts = make(map[uint64]bool)
	damaged := 0
	for _, m := range markers {
		if m.Verdict != signatures.Valid {
			damaged++
			continue
		}
		if m.Grain.LBA%h.GrainSize != 0 || m.Grain.LBA/h.GrainSize >= grains || int64(m.Grain.DataBytes) != grainLength(h, m.Grain.LBA/h.GrainSize) && int64(m.Grain.DataBytes) != h.GrainBytes() {
			inst.Notes = append(inst.Notes, fmt.Sprintf("grain record at %d has lba %d / %d bytes, not a grain of this disk", m.Offset, m.Grain.LBA, m.Grain.DataBytes))
			continue
		}
		g := m.Grain.LBA / h.GrainSize
		if prev := byGrain[g]; prev != nil && prev.Grain.Hash != m.Grain.Hash {
			conflicts[g] = true
			continue
		}
		if byGrain[g] == nil {
			byGrain[g] = m
		}
	}
	if damaged > 0 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d grain records do not decode (cut or overwritten)", damaged))
	}
	return byGrain, conflicts
}

// tableAgreement counts the stream table's entries that agree with where
// their grain's record was found, and those that do not. A table read
// where the file no longer is (a fragment elsewhere, a wiped region) can
// look valid, all zeros above all: it is trusted only if its entries
// agree with the records, and disagree less than they agree.
func tableAgreement(inst *Instance, tables [][]uint32, byGrain map[uint64]*signatures.Hit) (agree, disagree int) {
	perGT := uint64(inst.Header.NumGTEsPerGT)
	for i, gt := range tables {
		for j, e := range gt {
			g := uint64(i)*perGT + uint64(j)
			if m := byGrain[g]; m != nil && e != 0 {
				if fo, ok := inst.fileOffsetOf(m.Offset); ok && fo == int64(e)*vmdk.SectorSize {
					agree++
				} else {
					disagree++
				}
			}
		}
	}
	return agree, disagree
}

// applyStreamTables decides, from a trusted stream table, the grains the
// records leave open (zero where unallocated, missing where a record is
// named but not found) and checks those they placed.
func applyStreamTables(inst *Instance, tables [][]uint32) {
	h := inst.Header
	grains := h.Grains()
	perGT := uint64(h.NumGTEsPerGT)
	tableZero := &Grain{Status: Zero, Evidence: []string{EvTable}, Reason: Reason{Code: ReasonUnallocated}}
	inst.table = func(g uint64) uint32 {
		if i := g / perGT; i < uint64(len(tables)) && tables[i] != nil {
			return tables[i][g%perGT]
		}
		return 0
	}
	for i, gt := range tables {
		first := uint64(i) * perGT
		if gt == nil {
			inst.grains.setRange(first, min(first+perGT, grains), tableZero)
			continue
		}
		for j, e := range gt {
			g := first + uint64(j)
			if g >= grains {
				break
			}
			cur := inst.grains.one[g]
			switch {
			case e == 0 && cur == nil:
				inst.grains.setRange(g, g+1, tableZero)
			case e == 0 && cur.Status == Placed:
				// The stream's own table lists every record it wrote: a
				// record of an unallocated grain belongs to another file
				// (a copy, an older version) that the region also holds.
				inst.grains.set(g, &Grain{Status: Conflict, Reason: Reason{Code: ReasonRecordUnallocated}})
			case e == 0:
			case cur == nil:
				inst.grains.set(g, &Grain{Status: Missing, Reason: Reason{Code: ReasonRecordNotAtTable, Offset: int64(e)}})
			case cur.Status != Placed:
				// A conflict or a zero record stays as it is.
			case cur.Source.FileOffset != int64(e)*vmdk.SectorSize:
				// The record names its own LBA and decodes with a valid
				// checksum: it is this grain wherever it lies. The table
				// disagreeing with where the contiguous assumption put it
				// says the file is fragmented there, not that the record
				// is wrong.
				cur.Reason = Reason{Code: ReasonRecordElsewhere, Offset: int64(e)}
			default:
				cur.Evidence = append(cur.Evidence, EvTable)
			}
		}
	}
}

// markerGrain places a grain from its decoded record.
func markerGrain(inst *Instance, m *signatures.Hit) *Grain {
	fileOff, _ := inst.fileOffsetOf(m.Offset)
	if m.Grain.Zero {
		return &Grain{Status: Zero, Evidence: []string{EvMarker}, Reason: Reason{Code: ReasonRecordZeros}}
	}
	return &Grain{Status: Placed, Evidence: []string{EvMarker}, Hash: m.Grain.Hash, Copies: 1,
		Source: &Source{Instance: inst.ID, ImageOffset: m.Offset, FileOffset: fileOff, Compressed: true, RecordBytes: m.Length}}
}

// streamTables returns the stream's grain tables, one per directory entry
// (nil for an entry of 0), if the directory and every table are readable
// inside the mapped file. Each table read is backed by file bytes, so the
// memory is bounded by the file, not by the capacity the header claims.
func streamTables(inst *Instance, image io.ReaderAt) ([][]uint32, bool) {
	h := inst.Header
	if h.GDOffset == vmdk.GDAtEnd {
		inst.Notes = append(inst.Notes, "GD_AT_END stream without its footer: no grain table")
		return nil, false
	}
	view := newFileView(image, inst.Fragments)
	t := &tableReader{view: view, h: h, dataStart: 1}
	gd, problem := t.readGD(h.GDOffset)
	if problem != "" {
		inst.Notes = append(inst.Notes, "stream grain directory unusable: "+problem)
		return nil, false
	}
	out := make([][]uint32, len(gd))
	for i, gde := range gd {
		if gde == 0 {
			continue
		}
		gt := t.readGT(gde)
		if gt.problem != "" {
			inst.Notes = append(inst.Notes, fmt.Sprintf("stream grain table %d unusable: %s", i, gt.problem))
			return nil, false
		}
		out[i] = gt.entries
	}
	return out, true
}

// streamZeros proves grains zero where the tables are gone. Writers emit
// one record per non-zero grain in ascending LBA order and skip zero
// grains. If the records from the first grain area on follow each other
// without a gap (only GT markers and tables between them) all the way to
// the stream's closing metadata (its GD marker or footer marker), no
// record was lost, so every grain without a record is zero. Anything less
// proves nothing: a chain that runs into noise, zeros or another file's
// records leaves the grains without records missing.
func streamZeros(inst *Instance, markers []*signatures.Hit, x *hitIndex) {
	h := inst.Header
	missing := func(why string) {
		inst.Notes = append(inst.Notes, why)
		inst.grains.setRange(0, h.Grains(), &Grain{Status: Missing, Reason: Reason{Code: ReasonStreamZeroUnproven, Detail: why}})
	}
	if len(markers) == 0 {
		missing("no grain record found and no grain table")
		return
	}
	next := int64(-1)
	firstGrainArea := inst.HeaderOffset + int64(h.OverHead)*vmdk.SectorSize
	for i, m := range markers {
		if m.Verdict != signatures.Valid {
			missing(fmt.Sprintf("grain record at image offset %d does not decode: absent grains are missing, not zero", m.Offset))
			return
		}
		if i == 0 {
			if m.Offset < firstGrainArea || m.Offset-firstGrainArea >= h.GrainBytes() {
				missing("the first grain record is not at overHead: absent grains are missing, not zero")
				return
			}
		} else {
			if m.Grain.LBA <= markers[i-1].Grain.LBA {
				missing("grain records are not in LBA order: absent grains are missing, not zero")
				return
			}
			for next < m.Offset && x.isMetaGT(next) {
				next += 5 * vmdk.SectorSize
			}
			if m.Offset != next {
				missing(fmt.Sprintf("records stop following each other at image offset %d: absent grains are missing, not zero", next))
				return
			}
		}
		next = m.Offset + m.Length
	}
	for x.isMetaGT(next) {
		next += 5 * vmdk.SectorSize
	}
	if !x.gdMark[next] && !x.footerMark[next] {
		missing("the record chain does not reach the stream's GD or footer marker: absent grains are missing, not zero")
		return
	}
	inst.grains.setRange(0, h.Grains(), &Grain{Status: Zero, Evidence: []string{EvStream}, Reason: Reason{Code: ReasonStreamSkippedZero}})
}

// recordChain returns the records that follow each other from start (the
// first grain area): each record ends where the next begins, GT markers
// and their tables aside. The first record may sit up to one grain past
// start (alignment padding).
func recordChain(markers []*signatures.Hit, start, grainBytes int64, x *hitIndex) []*signatures.Hit {
	var out []*signatures.Hit
	next := int64(-1)
	for _, m := range markers {
		if next < 0 && m.Offset < start {
			continue // inside the header's metadata: not a record of the stream
		}
		if m.Verdict != signatures.Valid {
			break
		}
		if next < 0 {
			if m.Offset-start >= grainBytes {
				break
			}
		} else {
			for next < m.Offset && x.isMetaGT(next) {
				next += 5 * vmdk.SectorSize
			}
			if m.Offset != next {
				break
			}
		}
		out = append(out, m)
		next = m.Offset + m.Length
	}
	return out
}
