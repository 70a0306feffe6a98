package fsprobe

// The VMDK side of the leaf solver (ext4_leaves.go): what the carve found
// of a VMDK file's own structures, where its header's layout says they
// lie, and whether a map built from leaves puts them there. Hits are read
// (grain-table-shaped blocks, grain markers, stream footers, each at an
// image offset), and image bytes for one thing only: the grain tables the
// layout predicts where the map puts mapped bytes and no hit found. The
// carve's recognizer needs two grains in a block to call it a table, so
// it finds no empty table and no table of one grain; such a table is
// stored, not a hole, when it shares its host blocks with tables that are
// not empty (2 KiB tables, 4 KiB blocks). It is read (readTables) at the
// place the map puts it, only if every extent holding its bytes is
// confirmed by a table found at its predicted place in that same extent
// (its bytes in a hole between the leaves' runs read as zeros), and known
// if its entries are a table's: none, or grain sectors past the
// metadata, aligned and each named once. A read confirms nothing (any
// unrelated zero block reads as an empty table): it only completes what
// confirmed extents already say, and the grains it names count for the
// map's end as the found tables' do.

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"

	"vmdkcarve/vmdk"
)

// VMDKFacts is what the carve found of the VMDK files' own structures, by
// image offset: what a map built from extent-tree leaves is checked
// against.
type VMDKFacts struct {
	Starts  []VMDKHeaderAt // start headers: the files' first bytes (the anchors)
	Footers []VMDKHeaderAt // stream footers (a copy of the header near the file's end)
	Tables  []GTAt         // grain-table-shaped blocks
	Markers []MarkerAt     // stream grain markers that decode
	// Image is the evidence, read only for predicted grain tables no hit
	// found (see readTables); nil: such a table stays unknown.
	Image io.ReaderAt
}

// VMDKHeaderAt is a sparse header found at an image offset.
type VMDKHeaderAt struct {
	Offset int64
	Header *vmdk.SparseHeader
}

// GTAt is a grain-table-shaped block at an image offset: its smallest and
// largest non-zero entries (grain sectors).
type GTAt struct {
	Offset      int64
	First, Last uint32
}

// MarkerAt is a stream grain marker at an image offset.
type MarkerAt struct {
	Offset int64
	LBA    uint64
}

// gtBytes is the size of a grain table of 512 entries, the only size the
// carve's grain-table recognizer finds.
const gtBytes = vmdk.GTEsPerGT * 4

// gtState is what is known of one predicted grain table.
type gtState uint8

const (
	gtUnseen  gtState = iota // not yet in the mapped range
	gtFound                  // a grain-table-shaped block where the map puts it
	gtHole                   // in a hole of the file: all zeros, names no grain
	gtUnknown                // mapped, but no table-shaped block there (empty, one grain, or foreign)
	gtRead                   // no hit, but read where confirmed extents put it: empty or a few grains
)

// predictedGT is a grain table the header's layout puts at a file offset;
// pair is its index in the directory (the redundant copy has the same).
type predictedGT struct {
	off  int64
	pair int
}

// predictGTs returns the grain tables of a monolithicSparse header's
// pre-allocated layout, sorted by file offset: GT k of a directory at
// sector d lies at d + GDSectors + k×GTSectors, before overHead, as qemu,
// VMware and our writer lay them. Nil for any other header.
func predictGTs(h *vmdk.SparseHeader) []predictedGT {
	if h.Compressed() || h.NumGTEsPerGT != vmdk.GTEsPerGT || h.GrainSize == 0 || h.Capacity == 0 ||
		h.Capacity > maxLeafCapacity || h.OverHead > maxLeafOverHead {
		return nil
	}
	n := h.GDEntries()
	if n == 0 || n > maxPredictedGTs {
		return nil
	}
	dirs := []uint64{h.GDOffset}
	if h.HasRedundantGD() {
		dirs = append(dirs, h.RGDOffset)
	}
	var out []predictedGT
	for _, d := range dirs {
		if d == 0 || d >= h.OverHead || d+h.GDSectors()+n*h.GTSectors() > h.OverHead {
			return nil // not the pre-allocated layout
		}
		for k := range n {
			out = append(out, predictedGT{off: int64(d+h.GDSectors()+k*h.GTSectors()) * vmdk.SectorSize, pair: int(k)})
		}
	}
	slices.SortFunc(out, func(a, b predictedGT) int { return cmp.Compare(a.off, b.off) })
	return out
}

// anchored reports whether a structure at file offset fo and image offset
// io lies where contiguity from the header would put it anyway: there it
// tests the header, not the leaf.
func (f *leafFile) anchored(fo, io int64) bool { return io-fo == f.anchor }

// evalSparse checks a monolithicSparse file's tables and grains through
// the candidate's extents.
func (s *leafSolver) evalSparse(f *leafFile, l *leafBlock, ev *leafEval) {
	meta := int64(f.h.OverHead) * vmdk.SectorSize
	if f.h.OverHead > maxLeafOverHead {
		meta = 0
	}
	for _, e := range ev.exts {
		for _, t := range inRange(s.tables, func(t GTAt) int64 { return t.Offset }, e.ImageOffset, e.ImageOffset+e.Length-gtBytes+1) {
			fo := e.FileOffset + t.Offset - e.ImageOffset
			if fo >= meta {
				continue // in the grain data: guest content may look like anything
			}
			k, exact := f.predicted(fo)
			switch {
			case !exact && k < 0:
				ev.contra = fmt.Sprintf("it puts a grain-table-shaped block (image offset %d) at file offset %d, where the header's layout has no grain table", t.Offset, fo)
				return
			case !exact:
				continue // a window one sector into a table looks like one too
			case int64(t.First)*vmdk.SectorSize < meta || t.Last < t.First:
				ev.contra = fmt.Sprintf("the grain-table-shaped block at image offset %d, where it puts a grain table, names grain sector %d inside the metadata", t.Offset, t.First)
				return
			}
			ev.state[k] = gtFound
			ev.samples = append(ev.samples, int64(t.First)*vmdk.SectorSize, int64(t.Last)*vmdk.SectorSize)
			ev.maxLast = max(ev.maxLast, t.Last)
			if !f.anchored(fo, t.Offset) {
				ev.nGT++
			}
		}
	}
	// Tables the leaf's range holds and no block confirmed: in a hole (all
	// zeros), or mapped without a table-shaped block (empty, one grain, or
	// not the table: unknown).
	lo := int64(f.end) * f.g.B
	hi := int64(l.end) * f.g.B
	for k, t := range f.gts {
		if t.off < lo || t.off+gtBytes > hi || ev.state[k] == gtFound {
			continue
		}
		ev.state[k] = gtHole
		for _, e := range ev.exts {
			if t.off < e.FileOffset+e.Length && e.FileOffset < t.off+gtBytes {
				ev.state[k] = gtUnknown
			}
		}
	}
	// A sample of the grains the tables name: each that lies in one of
	// the candidate's extents (not where contiguity would put it) confirms.
	samples := slices.Concat(f.samples, ev.samples)
	slices.Sort(samples)
	for _, p := range slices.Compact(samples) {
		for _, e := range ev.exts {
			if p >= e.FileOffset && p < e.FileOffset+e.Length && !f.anchored(e.FileOffset, e.ImageOffset) {
				ev.nSample++
				break
			}
		}
	}
}

// predicted returns the predicted table at file offset fo (exact), else
// the index of one whose bytes hold fo (not exact), else -1.
func (f *leafFile) predicted(fo int64) (int, bool) {
	i := sort.Search(len(f.gts), func(i int) bool { return f.gts[i].off >= fo })
	if i < len(f.gts) && f.gts[i].off == fo {
		return i, true
	}
	if i > 0 && fo < f.gts[i-1].off+gtBytes {
		return i - 1, false
	}
	if i < len(f.gts) && f.gts[i].off < fo+gtBytes {
		return i, false
	}
	return -1, false
}

// evalStream checks a stream's grain markers and footer through the
// candidate's extents: LBAs grain-aligned, inside the capacity, strictly
// increasing in file order.
func (s *leafSolver) evalStream(f *leafFile, ev *leafEval) {
	for _, e := range ev.exts {
		for _, m := range inRange(s.markers, func(m MarkerAt) int64 { return m.Offset }, e.ImageOffset, e.ImageOffset+e.Length) {
			fo := e.FileOffset + m.Offset - e.ImageOffset
			switch {
			case f.h.GrainSize == 0 || m.LBA%f.h.GrainSize != 0 || m.LBA >= f.h.Capacity:
				ev.contra = fmt.Sprintf("it puts a grain marker for LBA %d (image offset %d) at file offset %d, outside the disk's grains", m.LBA, m.Offset, fo)
				return
			case m.LBA > 1<<62 || int64(m.LBA) <= ev.lastLBA:
				ev.contra = fmt.Sprintf("it puts a grain marker for LBA %d (image offset %d) at file offset %d, after one for LBA %d: out of order", m.LBA, m.Offset, fo, ev.lastLBA)
				return
			}
			ev.lastLBA = int64(m.LBA)
			if !f.anchored(fo, m.Offset) {
				ev.nMarker++
			}
		}
		for _, h := range inRange(s.footers, func(h VMDKHeaderAt) int64 { return h.Offset }, e.ImageOffset, e.ImageOffset+e.Length-vmdk.SectorSize+1) {
			if h.Header != nil && h.Header.Capacity == f.h.Capacity && h.Header.GrainSize == f.h.GrainSize {
				ev.footer = max(ev.footer, e.FileOffset+h.Offset-e.ImageOffset)
			}
		}
	}
}

// complete decides whether the map covers the whole file (see the file
// comment) and its size; why says what decided.
func (f *leafFile) complete() (ok bool, size int64, why string) {
	end := int64(f.end) * f.g.B
	if f.forced {
		return false, end, "incomplete: joining stopped before the file's end"
	}
	if f.h.Compressed() {
		if f.footer < 0 || f.footer+vmdk.SectorSize > end {
			return false, end, "incomplete: no stream footer in the map, so the file's end is unknown"
		}
		return true, f.footer + 2*vmdk.SectorSize, fmt.Sprintf("complete: the stream footer lies at file offset %d, then the EOS sector", f.footer)
	}
	if len(f.gts) == 0 {
		return false, end, "incomplete: the header's grain tables are not in the pre-allocated layout, so the file's end is unknown"
	}
	// Table k of each directory: known if either copy was found, or every
	// copy lies in a hole.
	pairs := 0
	for _, t := range f.gts {
		pairs = max(pairs, t.pair+1)
	}
	// Read (where confirmed extents put it) counts as a hole does: every
	// copy must be one or the other, as a copy still unknown may name
	// grains the read one does not.
	found, inHole, copies := make([]bool, pairs), make([]int, pairs), make([]int, pairs)
	for k, t := range f.gts {
		copies[t.pair]++
		switch f.state[k] {
		case gtFound:
			found[t.pair] = true
		case gtHole, gtRead:
			inHole[t.pair]++
		}
	}
	for pair := range pairs {
		if !found[pair] && inHole[pair] < copies[pair] {
			return false, end, fmt.Sprintf("incomplete: grain table %d is neither found, nor read where the map puts it, nor in a hole (foreign bytes, or not mapped), so the grains it names are unknown", pair)
		}
	}
	last := int64(f.maxLast) * vmdk.SectorSize
	if last >= end {
		return false, end, fmt.Sprintf("incomplete: the tables name grain sector %d, past the last leaf's end", f.maxLast)
	}
	size = max(end, last+int64(f.h.GrainSize)*vmdk.SectorSize)
	return true, size, "complete: every grain table is known and the last grain they name starts in the map"
}

// readTables reads the predicted tables still unknown (mapped, no hit)
// under the rules in the file comment: every byte of the table in a hole
// or in an extent that holds a table found at its predicted place, and
// read there as a table.
func (s *leafSolver) readTables(f *leafFile) {
	if s.image == nil || f.h.Compressed() || f.h.GrainSize > 1<<31 || f.h.OverHead > maxLeafOverHead {
		return
	}
	meta := int64(f.h.OverHead) * vmdk.SectorSize
	// confirmed[i]: extent f.exts[i] holds a found table.
	confirmed := make([]bool, len(f.exts))
	for k, t := range f.gts {
		if f.state[k] != gtFound {
			continue
		}
		if i, ok := f.extentAt(t.off); ok {
			confirmed[i] = true
		}
	}
	buf := make([]byte, gtBytes)
	for k, t := range f.gts {
		if f.state[k] != gtUnknown {
			continue
		}
		runs, ok := f.locate(t.off, gtBytes, confirmed)
		if !ok {
			continue
		}
		shape, ok := s.readTable(runs, buf, uint32(f.h.GrainSize))
		if !ok || (shape.NonZero > 0 && int64(shape.Min)*vmdk.SectorSize < meta) {
			continue // not a table's entries: foreign bytes, stays unknown
		}
		f.state[k] = gtRead
		f.nRead++
		if shape.NonZero == 0 {
			f.nEmpty++
		}
		f.maxLast = max(f.maxLast, shape.Max)
	}
}

// tableRead is what reading a predicted table's bytes found; tableKey
// says where they lie and under which grain size they were judged.
type (
	tableRead struct {
		shape vmdk.GTShape
		ok    bool
	}
	tableKey struct {
		runs      string // fmt of the []mappedRun
		grainSize uint32
	}
)

// readTable reads the bytes runs put together into buf and judges them a
// grain table's entries. The answer is cached: a file waiting for a guest
// proof is grown and mapped again each round of starts (Ext4LeafMaps), and
// must not read the image again for the same tables.
func (s *leafSolver) readTable(runs []mappedRun, buf []byte, grainSize uint32) (vmdk.GTShape, bool) {
	key := tableKey{fmt.Sprint(runs), grainSize}
	if r, done := s.tableReads[key]; done {
		return r.shape, r.ok
	}
	var r tableRead
	if readRuns(s.image, runs, buf) {
		r.shape, r.ok = vmdk.LooksLikeGT(buf, grainSize, 0)
	}
	s.tableReads[key] = r
	return r.shape, r.ok
}

// extentAt returns the index of the extent of f.exts (sorted by file
// offset, not overlapping) holding file offset fo.
func (f *leafFile) extentAt(fo int64) (int, bool) {
	i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].FileOffset+f.exts[i].Length > fo })
	return i, i < len(f.exts) && f.exts[i].FileOffset <= fo
}

// mappedRun is a run of a file's bytes: n bytes at image offset off, or
// n bytes of a hole (off < 0).
type mappedRun struct{ off, n int64 }

// locate returns where file bytes [fo, fo+n) lie through the map: false
// unless every byte lies in an extent ok allows, or in a hole between the
// joined leaves' runs (zeros: the leaves cover the file's logical blocks
// up to f.end, so a block none of their runs maps is a hole).
func (f *leafFile) locate(fo, n int64, ok []bool) ([]mappedRun, bool) {
	if fo < 0 || fo+n > int64(f.end)*f.g.B {
		return nil, false
	}
	var runs []mappedRun
	for at := fo; at < fo+n; {
		i, found := f.extentAt(at)
		if !found {
			// A hole up to the next extent (i: the first one after at).
			next := fo + n - at
			if i < len(f.exts) {
				next = min(next, f.exts[i].FileOffset-at)
			}
			runs = append(runs, mappedRun{-1, next})
			at += next
			continue
		}
		if !ok[i] {
			return nil, false
		}
		e := f.exts[i]
		in := at - e.FileOffset
		part := min(e.Length-in, fo+n-at)
		runs = append(runs, mappedRun{e.ImageOffset + in, part})
		at += part
	}
	return runs, true
}

// readRuns reads runs (as many bytes as buf holds) into buf, holes as
// zeros.
func readRuns(image io.ReaderAt, runs []mappedRun, buf []byte) bool {
	n := 0
	for _, r := range runs {
		part := buf[n : n+int(r.n)]
		if r.off < 0 {
			clear(part)
		} else if got, _ := image.ReadAt(part, r.off); got < len(part) {
			return false // a full read may end in io.EOF at the image's end
		}
		n += len(part)
	}
	return true
}
