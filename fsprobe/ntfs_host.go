package fsprobe

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"vmdkcarve/fs/ntfs"
)

// LocatedNTFS is an NTFS structure with the image offset it was found at.
type LocatedNTFS struct {
	Offset int64
	Record *ntfs.Record
}

// ntfsClusterSizes are the cluster sizes a geometry may be solved for:
// every size NTFS formats with up to 64 KiB (Windows 10's 128 KiB-2 MiB
// clusters are rare on hosts; leaving them out halves the hypotheses).
var ntfsClusterSizes = []int64{512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10}

// Resolver bounds: the inputs are bounded by what the carver found, but a
// crafted image could fill hits with records, so the work per call is
// capped too.
const (
	// maxNTFSHypotheses caps the (V, C) pairs tried. Each boot sector
	// gives 2, each $MFT copy 8, each .vmdk record × anchor 8.
	maxNTFSHypotheses = 1 << 14
	// maxNTFSRecordsPerVolume caps the records one volume may claim: a
	// 2 TB volume full of small files has a few million.
	maxNTFSRecordsPerVolume = 1 << 23
	// maxNTFSMirrorTries caps, per hypothesis, the $MFTMirr positions
	// tried when both the distinct LCNs the $MFTMirr records give and the
	// record 0 copies they could find number more: a volume has one
	// mirror, so real evidence has a few of each; crafted hits with 10^5
	// of both would weigh 2^14 hypotheses × 10^5. Past it, only the
	// first LCNs in image order are tried, and the volume's evidence
	// says so.
	maxNTFSMirrorTries = 256
)

// ntfsGeom is a hypothesis for one volume: it starts at image offset V and
// has clusters of C bytes.
type ntfsGeom struct{ V, C int64 }

// ntfsVolume is an accepted geometry with what supports it.
type ntfsVolume struct {
	ntfsGeom
	score    int
	facts    []string
	boot     *ntfs.Boot
	mft      *ntfs.FileRecord // the $MFT record (primary copy, else the mirror's)
	mftAt    int64            // where that copy was found
	mirrLCN  int64            // $MFTMirr's LCN, or -1
	recSize  int64
	size     int64   // volume bytes, 0 if unknown
	fromBoot bool    // record positions assumed from the boot sector's $MFT LCN
	at       []int64 // image offsets of the boot sectors and record 0 copies the geometry rests on
}

// NTFSMaps turns MFT records found in the image into file maps for files
// that look like VMDK extents: named *.vmdk, or whose first cluster is an
// anchor. anchors are image offsets of VMDK start headers ("KDMV") found by
// the carver; flat extents have none yet.
//
// Evidence rules (missing beats wrong):
//   - A volume's start V and cluster size C come from a boot sector (the
//     primary at V, or the backup at V + total sectors × sector size), or
//     from two independent facts among: the $MFT record found where its own
//     first run says ($MFT self-location), a copy of record 0 found where
//     $MFTMirr's run says, a record's first run landing on an anchor.
//   - A record belongs to a volume only when its position agrees with the
//     volume's $MFT run list (record n at V + LCN(n × record size)), or,
//     when no $MFT record survives, with the boot sector's $MFT LCN
//     assuming a contiguous MFT (said in the evidence).
//   - Damaged, compressed and encrypted records give no map; extension
//     records missing from an $ATTRIBUTE_LIST file give Complete=false.
func NTFSMaps(records []LocatedNTFS, anchors []int64) []FileMap {
	in := ntfsIndex(records, anchors)
	var maps []FileMap
	for _, vol := range in.volumes() {
		maps = append(maps, in.volumeMaps(vol)...)
	}
	sort.SliceStable(maps, func(i, j int) bool {
		a, b := maps[i], maps[j]
		ka, kb := int64(1<<62), int64(1<<62)
		if len(a.Extents) > 0 {
			ka = a.Extents[0].ImageOffset
		}
		if len(b.Extents) > 0 {
			kb = b.Extents[0].ImageOffset
		}
		if ka != kb {
			return ka < kb
		}
		return a.Record < b.Record
	})
	return maps
}

// ntfsIn indexes the records of one NTFSMaps call.
type ntfsIn struct {
	boots   []LocatedNTFS
	files   []LocatedNTFS // sound MFT records with a known number
	at      map[int64]*ntfs.FileRecord
	rec0    []LocatedNTFS // $MFT record copies
	rec1    []LocatedNTFS // $MFTMirr record copies
	anchors map[int64]bool

	// Indexes for evaluate, which is asked once per hypothesis (up to
	// maxNTFSHypotheses): scanning every record each time was
	// hypotheses × records (10^5 crafted .vmdk records took minutes).
	anchorList []int64                   // the anchors, sorted
	firstLCN   map[int64]int             // first run's LCN -> the first file (index in files) starting there
	bootsAt    map[int64][]int           // boots by offset and by the offset of the volume their backup position implies
	rec0At     map[ntfsGeom][]int        // rec0 by the (V, C) their self-location implies
	mirrLCNs   []int64                   // the first runs' LCNs of rec1, in image order, without repeats
	mirrRank   map[int64]int             // LCN -> its index in mirrLCNs
	rec0Copies []int64                   // offsets in at holding a record 0 named $MFT, sorted
	implied    map[int64]map[int64][]int // by record size: files by the offset of record 0 they imply (see impliedStarts)
}

func ntfsIndex(records []LocatedNTFS, anchors []int64) *ntfsIn {
	in := &ntfsIn{at: make(map[int64]*ntfs.FileRecord), anchors: make(map[int64]bool), implied: make(map[int64]map[int64][]int)}
	for _, a := range anchors {
		in.anchors[a] = true
	}
	for _, r := range records {
		// Records come from a case file a user may edit: one the parser
		// could not have made (a record size of 0, runs past MaxLCN) is
		// no evidence, and would divide by zero below.
		if r.Record == nil || r.Record.Damaged != "" || r.Offset < 0 || r.Record.Validate() != nil {
			continue
		}
		switch {
		case r.Record.Boot != nil:
			in.boots = append(in.boots, r)
		case r.Record.MFT != nil && r.Record.MFT.Number >= 0:
			f := r.Record.MFT
			in.files = append(in.files, r)
			in.at[r.Offset] = f
			name, _ := f.FileName()
			if f.Number == 0 && name == "$MFT" && f.FirstLCN() >= 0 {
				in.rec0 = append(in.rec0, r)
			}
			if f.Number == 1 && name == "$MFTMirr" && f.FirstLCN() >= 0 {
				in.rec1 = append(in.rec1, r)
			}
		}
	}
	// Hits arrive sorted by offset; sort anyway so that the result does not
	// depend on the caller's order.
	for _, s := range [][]LocatedNTFS{in.boots, in.files, in.rec0, in.rec1} {
		sort.SliceStable(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
	}
	in.anchorList = slices.Sorted(maps.Keys(in.anchors))
	in.firstLCN = make(map[int64]int)
	for i, r := range in.files {
		if l := r.Record.MFT.FirstLCN(); l >= 0 {
			if _, ok := in.firstLCN[l]; !ok {
				in.firstLCN[l] = i
			}
		}
	}
	in.bootsAt = make(map[int64][]int)
	for i, b := range in.boots {
		bs := b.Record.Boot
		in.bootsAt[b.Offset] = append(in.bootsAt[b.Offset], i)
		if v := b.Offset - bs.TotalSectors*bs.SectorSize; v != b.Offset {
			in.bootsAt[v] = append(in.bootsAt[v], i)
		}
	}
	in.mirrRank = make(map[int64]int)
	for _, r := range in.rec1 {
		l := r.Record.MFT.FirstLCN()
		if _, ok := in.mirrRank[l]; !ok {
			in.mirrRank[l] = len(in.mirrLCNs)
			in.mirrLCNs = append(in.mirrLCNs, l)
		}
	}
	for p, f := range in.at {
		if name, _ := f.FileName(); f.Number == 0 && name == "$MFT" {
			in.rec0Copies = append(in.rec0Copies, p)
		}
	}
	slices.Sort(in.rec0Copies)
	in.rec0At = make(map[ntfsGeom][]int)
	for i, r := range in.rec0 {
		for _, c := range ntfsClusterSizes {
			g := ntfsGeom{r.Offset - r.Record.MFT.FirstLCN()*c, c}
			in.rec0At[g] = append(in.rec0At[g], i)
		}
	}
	return in
}

// candidates returns the indexes in idx (each list in order) merged,
// sorted and without repeats: the records a hypothesis must look at, in
// the order the records lie.
func candidates(idx ...[]int) []int {
	var out []int
	for _, l := range idx {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func isVMDKName(name string) bool { return strings.HasSuffix(strings.ToLower(name), ".vmdk") }

// hypotheses lists the (V, C) pairs worth testing, deduplicated, in a
// fixed order.
func (in *ntfsIn) hypotheses() []ntfsGeom {
	seen := make(map[ntfsGeom]bool)
	var out []ntfsGeom
	add := func(g ntfsGeom) {
		if g.V >= 0 && !seen[g] && len(out) < maxNTFSHypotheses {
			seen[g] = true
			out = append(out, g)
		}
	}
	for _, b := range in.boots {
		bs := b.Record.Boot
		add(ntfsGeom{b.Offset, bs.ClusterSize})
		add(ntfsGeom{b.Offset - bs.TotalSectors*bs.SectorSize, bs.ClusterSize})
	}
	for _, r := range in.rec0 {
		for _, c := range ntfsClusterSizes {
			add(ntfsGeom{r.Offset - r.Record.MFT.FirstLCN()*c, c})
		}
	}
	for _, r := range in.files {
		f := r.Record.MFT
		name, _ := f.FileName()
		if l := f.FirstLCN(); l >= 0 && isVMDKName(name) {
			// The anchors in order (a map's order would make which
			// hypotheses fit under the cap differ from run to run).
			for _, a := range in.anchorList {
				if len(out) >= maxNTFSHypotheses {
					break
				}
				for _, c := range ntfsClusterSizes {
					add(ntfsGeom{a - l*c, c})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b ntfsGeom) int { return cmp.Or(cmp.Compare(a.V, b.V), cmp.Compare(a.C, b.C)) })
	return out
}

// evaluate collects the facts that support g. A boot sector counts 2 (it
// establishes a geometry alone), every other fact 1.
func (in *ntfsIn) evaluate(g ntfsGeom) *ntfsVolume {
	v := &ntfsVolume{ntfsGeom: g, mftAt: -1, mirrLCN: -1}
	for _, i := range candidates(in.bootsAt[g.V]) {
		b := in.boots[i]
		bs := b.Record.Boot
		if bs.ClusterSize != g.C {
			continue
		}
		switch b.Offset {
		case g.V:
			v.facts = append(v.facts, fmt.Sprintf("boot sector at image offset %d", b.Offset))
		case g.V + bs.TotalSectors*bs.SectorSize:
			v.facts = append(v.facts, fmt.Sprintf("backup boot sector at image offset %d", b.Offset))
		default:
			continue
		}
		if v.boot == nil {
			v.boot, v.score = bs, v.score+2
		}
		v.at = append(v.at, b.Offset)
	}
	// $MFT self-location: a copy of record 0 found where its own first run
	// says. With a boot sector, its $MFT LCN must agree.
	for _, i := range candidates(in.rec0At[g]) {
		r := in.rec0[i]
		f := r.Record.MFT
		l := f.FirstLCN()
		if g.V+l*g.C == r.Offset && (v.boot == nil || v.boot.MFTLCN == l) && v.mft == nil {
			v.mft, v.mftAt = f, r.Offset
			v.at = append(v.at, r.Offset)
			v.score++
			v.facts = append(v.facts, fmt.Sprintf("record 0 ($MFT) at image offset %d, where its first run (LCN %d) says", r.Offset, l))
		}
	}
	// $MFTMirr: a copy of record 0 where $MFTMirr's run (or the boot
	// sector) says the mirror is: the first such LCN, the boot sector's
	// first, then the $MFTMirr records' in image order.
	if m, ok := in.mirror(g, v); ok {
		p := g.V + m*g.C
		f := in.at[p]
		v.mirrLCN = m
		v.at = append(v.at, p)
		v.score++
		v.facts = append(v.facts, fmt.Sprintf("$MFTMirr copy of record 0 at image offset %d (LCN %d)", p, m))
		if v.mft == nil {
			v.mft, v.mftAt = f, p
		}
	}
	// Anchors: a record's first run landing on a VMDK header. Each
	// anchor counts once, for the first record (in image order) whose
	// first run lands there: with fewer anchors than records, those
	// records are found from the anchors through firstLCN.
	anchorsSeen := make(map[int64]bool)
	files := in.files
	if len(in.anchorList) < len(in.files) {
		var idx []int
		for _, a := range in.anchorList {
			if d := a - g.V; d >= 0 && d%g.C == 0 {
				if i, ok := in.firstLCN[d/g.C]; ok {
					idx = append(idx, i)
				}
			}
		}
		files = files[:0:0]
		for _, i := range candidates(idx) {
			files = append(files, in.files[i])
		}
	}
	for _, r := range files {
		f := r.Record.MFT
		if l := f.FirstLCN(); l >= 0 {
			p := g.V + l*g.C
			if in.anchors[p] && !anchorsSeen[p] {
				anchorsSeen[p] = true
				name, _ := f.FileName()
				v.score++
				v.facts = append(v.facts, fmt.Sprintf("record %d (%s) at image offset %d has its first run at anchor %d", f.Number, name, r.Offset, p))
			}
		}
	}
	v.recSize = ntfs.MinRecordSize
	switch {
	case v.mft != nil:
		v.recSize = int64(v.mft.RecordSize)
	case v.boot != nil:
		v.recSize = v.boot.RecordSize
	}
	if v.boot != nil {
		v.size = v.boot.TotalSectors * v.boot.SectorSize
	}
	if v.mft == nil && v.boot != nil {
		v.fromBoot = true
	}
	return v
}

// mirror finds the LCN of evaluate's $MFTMirr fact for g. A repeated LCN
// is tried once (its position answers the same), and the side the
// question is asked from is the smaller: the LCNs, each a lookup of its
// position, or the record 0 copies, each a lookup of the LCN its position
// implies. Both past maxNTFSMirrorTries: the first LCNs only, noted in v.
func (in *ntfsIn) mirror(g ntfsGeom, v *ntfsVolume) (int64, bool) {
	fits := func(p int64) bool {
		f := in.at[p]
		if f == nil || f.Number != 0 || p == v.mftAt {
			return false
		}
		name, _ := f.FileName()
		return name == "$MFT" && (v.mft == nil || f.FirstLCN() == v.mft.FirstLCN())
	}
	if v.boot != nil && fits(g.V+v.boot.MirrLCN*g.C) {
		return v.boot.MirrLCN, true
	}
	lcns := in.mirrLCNs
	if len(in.rec0Copies) < len(lcns) {
		best := -1
		for _, p := range in.rec0Copies {
			if d := p - g.V; d >= 0 && d%g.C == 0 {
				if k, ok := in.mirrRank[d/g.C]; ok && (best < 0 || k < best) && fits(p) {
					best = k
				}
			}
		}
		if best < 0 {
			return 0, false
		}
		return lcns[best], true
	}
	for i, m := range lcns {
		if i == maxNTFSMirrorTries {
			v.facts = append(v.facts, fmt.Sprintf("%d $MFTMirr LCNs and %d record 0 copies found: only the first %d LCNs tried for the mirror, none holds record 0", len(in.mirrLCNs), len(in.rec0Copies), maxNTFSMirrorTries))
			break
		}
		if fits(g.V + m*g.C) {
			return m, true
		}
	}
	return 0, false
}

// volumes returns the accepted geometries: score >= 2, and for each $MFT
// position (or, without one, each volume start) only the best-supported
// one; a tie there is ambiguous and gives nothing.
func (in *ntfsIn) volumes() []*ntfsVolume {
	best := make(map[int64][]*ntfsVolume)
	var keys []int64
	for _, g := range in.hypotheses() {
		v := in.evaluate(g)
		if v.score < 2 {
			continue
		}
		key := v.mftAt
		if key < 0 {
			key = -1 - v.V // distinct from any image offset
		}
		cur := best[key]
		switch {
		case cur == nil:
			keys = append(keys, key)
			best[key] = []*ntfsVolume{v}
		case v.score > cur[0].score:
			best[key] = []*ntfsVolume{v}
		case v.score == cur[0].score:
			best[key] = append(cur, v)
		}
	}
	slices.Sort(keys)
	var out []*ntfsVolume
	for _, k := range keys {
		if vs := best[k]; len(vs) == 1 {
			out = append(out, vs[0])
		}
	}
	return out
}

// position is where record n of v's MFT lies in the image, or -1.
func (v *ntfsVolume) position(n int64) int64 {
	off := n * v.recSize
	switch {
	case v.mft != nil:
		d := v.mft.FirstData()
		if d == nil {
			return -1
		}
		lcn := ntfs.VCNToLCN(d.Runs, off/v.C)
		if lcn < 0 {
			return -1
		}
		return v.V + lcn*v.C + off%v.C
	case v.fromBoot:
		return v.V + v.boot.MFTLCN*v.C + off
	}
	return -1
}

// ntfsFile is a base record with its extension records, in one volume.
type ntfsFile struct {
	at   int64
	f    *ntfs.FileRecord
	name string
	par  int64
	ext  []*ntfs.FileRecord
}

// impliedStarts indexes the files by where the run of the MFT holding
// them, read as if VCN 0 were there, would start for records of rs bytes:
// offset - number × rs. A record n lies where a volume's position says
// only if that is V + (LCN - VCN) × C for the $MFT run holding it (or the
// boot sector's $MFT start): volumeFiles looks those up instead of
// testing every record for every volume (crafted hits make thousands of
// volumes).
func (in *ntfsIn) impliedStarts(rs int64) map[int64][]int {
	if m, ok := in.implied[rs]; ok {
		return m
	}
	m := make(map[int64][]int)
	for i, r := range in.files {
		if n := r.Record.MFT.Number; n <= (1<<62)/rs {
			m[r.Offset-n*rs] = append(m[r.Offset-n*rs], i)
		}
	}
	in.implied[rs] = m
	return m
}

// volumeFiles returns the indexes in files, in order, of the records
// that may lie where v's position puts their number: a superset that
// volumeMaps checks.
func (in *ntfsIn) volumeFiles(v *ntfsVolume) []int {
	if v.recSize <= 0 {
		return nil
	}
	idx := in.impliedStarts(v.recSize)
	var lists [][]int
	switch {
	case v.mft != nil:
		d := v.mft.FirstData()
		if d == nil {
			return nil
		}
		for _, r := range d.Runs {
			if !r.Sparse {
				lists = append(lists, idx[v.V+(r.LCN-r.VCN)*v.C])
			}
		}
	case v.fromBoot:
		lists = append(lists, idx[v.V+v.boot.MFTLCN*v.C])
	}
	return candidates(lists...)
}

// volumeMaps builds the maps of VMDK-like files in v.
func (in *ntfsIn) volumeMaps(v *ntfsVolume) []FileMap {
	bases := make(map[int64]*ntfsFile)
	var order []int64
	var exts []LocatedNTFS
	claimed := 0
	for _, i := range in.volumeFiles(v) {
		r := in.files[i]
		f := r.Record.MFT
		if f.Number > (1<<62)/v.recSize || v.position(f.Number) != r.Offset {
			continue
		}
		if claimed++; claimed > maxNTFSRecordsPerVolume {
			break
		}
		if f.Base != 0 {
			exts = append(exts, r)
			continue
		}
		if bases[f.Number] == nil {
			name, par := f.FileName()
			bases[f.Number] = &ntfsFile{at: r.Offset, f: f, name: name, par: par}
			order = append(order, f.Number)
		}
	}
	for _, r := range exts {
		if b := bases[r.Record.MFT.Base]; b != nil {
			b.ext = append(b.ext, r.Record.MFT)
		}
	}
	// Build candidate maps, then keep one per (name, parent): the in-use
	// one, then the one whose first extent is an anchor, then the lowest
	// record number; the others are named in its evidence.
	type cand struct {
		m      FileMap
		file   *ntfsFile
		anchor bool
	}
	groups := make(map[string][]cand)
	var gkeys []string
	for _, n := range order {
		b := bases[n]
		m, ok := v.fileMap(b)
		if !ok {
			continue
		}
		anchor := len(m.Extents) > 0 && m.Extents[0].FileOffset == 0 && in.anchors[m.Extents[0].ImageOffset]
		if !isVMDKName(b.name) && !anchor {
			continue
		}
		key := fmt.Sprintf("%d/%s", b.par, strings.ToLower(b.name))
		if b.name == "" {
			key = fmt.Sprintf("#%d", n)
		}
		if groups[key] == nil {
			gkeys = append(gkeys, key)
		}
		groups[key] = append(groups[key], cand{m, b, anchor})
	}
	var out []FileMap
	for _, k := range gkeys {
		cs := groups[k]
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].file.f.InUse != cs[j].file.f.InUse {
				return cs[i].file.f.InUse
			}
			if cs[i].anchor != cs[j].anchor {
				return cs[i].anchor
			}
			return cs[i].file.f.Number < cs[j].file.f.Number
		})
		m := cs[0].m
		for _, alt := range cs[1:] {
			m.Evidence += fmt.Sprintf("; alternative: %s", alt.m.Record)
		}
		out = append(out, m)
	}
	return out
}

// fileMap converts b's runs to image offsets in v.
func (v *ntfsVolume) fileMap(b *ntfsFile) (FileMap, bool) {
	d := b.f.FirstData()
	if d == nil || d.Compressed || d.Encrypted {
		// Resident data is too small for a VMDK extent; compressed and
		// encrypted clusters are not the file's bytes.
		return FileMap{}, false
	}
	state := "in use"
	if !b.f.InUse {
		state = "deleted: its clusters may have been reused"
	}
	m := FileMap{
		FS:     "ntfs",
		Name:   b.name,
		Record: fmt.Sprintf("MFT record %d at image offset %d (%s)", b.f.Number, b.at, state),
		Size:   d.Size,
	}
	pieces := []ntfs.Data{*d}
	for _, e := range b.ext {
		// An extension record of a live file is live; of a deleted
		// file, deleted. A mismatch is a reused record number.
		if e.InUse == b.f.InUse {
			for _, p := range e.Data {
				if p.StartVCN > 0 && !p.Resident && !p.Compressed && !p.Encrypted {
					pieces = append(pieces, p)
				}
			}
		}
	}
	for _, p := range b.f.Data {
		if p.StartVCN > 0 && !p.Resident {
			pieces = append(pieces, p)
		}
	}
	slices.SortStableFunc(pieces, func(a, b ntfs.Data) int { return cmp.Compare(a.StartVCN, b.StartVCN) })
	// Coverage: pieces must chain from VCN 0 to the allocated size.
	clusters := (d.Allocated + v.C - 1) / v.C
	next, complete := int64(0), true
	var notes []string
	for _, p := range pieces {
		if p.StartVCN < next {
			continue // a duplicate piece (two extension records): keep the first
		}
		if p.StartVCN > next {
			complete = false
			notes = append(notes, fmt.Sprintf("VCNs %d-%d not found", next, p.StartVCN-1))
		}
		for _, r := range p.Runs {
			if r.Sparse {
				continue
			}
			e := MappedExtent{FileOffset: r.VCN * v.C, ImageOffset: v.V + r.LCN*v.C, Length: r.Len * v.C}
			if v.size > 0 && (r.LCN+r.Len)*v.C > v.size {
				complete = false
				notes = append(notes, fmt.Sprintf("run at LCN %d runs past the volume end: left out", r.LCN))
				continue
			}
			// Bytes past the initialized size read as zeros whatever the
			// clusters hold: they are holes, not data.
			if lim := d.Initialized; e.FileOffset+e.Length > lim {
				e.Length = lim - e.FileOffset
			}
			if e.Length > 0 {
				m.Extents = append(m.Extents, e)
			}
		}
		next = p.LastVCN + 1
	}
	if next < clusters {
		complete = false
		if b.f.AttrList {
			notes = append(notes, fmt.Sprintf("$ATTRIBUTE_LIST: VCNs %d-%d are in extension records not found", next, clusters-1))
		} else {
			notes = append(notes, fmt.Sprintf("runs end at VCN %d of %d", next, clusters))
		}
	}
	m.Complete = complete
	m.OwnGeometry = v.boot != nil
	m.Volume, m.VolumeSize, m.Structures = v.V, v.size, append(slices.Clone(v.at), b.at)
	how := "volume at image offset %d with %d-byte clusters: %s"
	m.Evidence = fmt.Sprintf(how, v.V, v.C, strings.Join(v.facts, "; "))
	if v.fromBoot {
		m.Evidence += "; record positions from the boot sector's $MFT LCN (record 0 not found: MFT assumed contiguous)"
	}
	if self := fmt.Sprintf("record %d (%s) at image offset %d", b.f.Number, b.name, b.at); !strings.Contains(m.Evidence, self) {
		m.Evidence += "; " + self
	}
	if !b.f.InUse {
		m.Evidence += "; deleted"
	}
	if len(notes) > 0 {
		m.Evidence += "; " + strings.Join(notes, "; ")
	}
	return m, true
}
