package fsprobe

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"vmdkcarve/vmdk"
)

// NTFSRecord types.
const (
	NTFSTypeMFTRecord  = "mft-record"
	NTFSTypeBootSector = "boot-sector"
)

// NTFSRecord is what the carver keeps of an NTFS structure found in the
// image (an MFT FILE record or a boot sector): exactly one of MFT and Boot
// is set, matching Type. It lands in hits.jsonl, so it holds decoded
// fields only, never raw bytes.
type NTFSRecord struct {
	Type string `json:"type"` // "mft-record" or "boot-sector"
	// Damaged says why the structure is not trusted (torn by the update
	// sequence, attributes that do not parse, cut by the image end). A
	// damaged record keeps its header fields but no names or runs.
	Damaged string          `json:"damaged,omitempty"`
	MFT     *NTFSFileRecord `json:"mft,omitempty"`
	Boot    *NTFSBoot       `json:"boot,omitempty"`
}

// NTFSFileRecord is one MFT FILE record.
type NTFSFileRecord struct {
	Number     int64      `json:"number"` // record number; -1 when the record (NTFS 3.0) does not say
	Seq        uint16     `json:"seq"`
	InUse      bool       `json:"in_use,omitempty"`
	Dir        bool       `json:"dir,omitempty"`
	Base       int64      `json:"base,omitempty"` // base record number of an extension record
	RecordSize int        `json:"record_size"`
	AttrList   bool       `json:"attr_list,omitempty"` // has an $ATTRIBUTE_LIST: parts of the file may be in extension records
	Names      []NTFSName `json:"names,omitempty"`
	Data       []NTFSData `json:"data,omitempty"` // unnamed $DATA attributes (one per VCN range held here)
	// Streams are every non-resident attribute of the record (any type,
	// named or not): the clusters the record's file owns, which a guest
	// locator predicts to hold written bytes. Not kept in hits.
	Streams []NTFSData `json:"-"`
	// Descriptor is a VMDK text descriptor held resident in the record.
	Descriptor *vmdk.Descriptor `json:"descriptor,omitempty"`
}

// NTFSName is a $FILE_NAME attribute.
type NTFSName struct {
	Name      string `json:"name"`
	Parent    int64  `json:"parent"`              // parent directory's record number
	Namespace uint8  `json:"namespace,omitempty"` // 0 POSIX, 1 Win32, 2 DOS, 3 Win32&DOS
}

// NTFSData is an unnamed $DATA attribute: the file's content, resident or
// as runs of clusters. Sizes are set only in the piece starting at VCN 0.
type NTFSData struct {
	Type        uint32    `json:"-"` // attribute type (0x80 $DATA, 0xA0 $INDEX_ALLOCATION, 0xB0 $BITMAP, ...)
	Resident    bool      `json:"resident,omitempty"`
	Size        int64     `json:"size,omitempty"`
	Allocated   int64     `json:"allocated,omitempty"`
	Initialized int64     `json:"initialized,omitempty"`
	StartVCN    int64     `json:"start_vcn,omitempty"`
	LastVCN     int64     `json:"last_vcn,omitempty"`
	Compressed  bool      `json:"compressed,omitempty"`
	Encrypted   bool      `json:"encrypted,omitempty"`
	Sparse      bool      `json:"sparse,omitempty"`
	Runs        []NTFSRun `json:"runs,omitempty"`
}

// NTFSRun is one run of a run list: Len clusters from VCN at LCN, or a
// hole when Sparse (LCN is then -1).
type NTFSRun struct {
	VCN    int64 `json:"vcn"`
	LCN    int64 `json:"lcn"`
	Len    int64 `json:"len"`
	Sparse bool  `json:"sparse,omitempty"`
}

// NTFSBoot is an NTFS boot sector's BPB. The same sector is the primary
// (at the volume start) or the backup (at volume start + TotalSectors ×
// SectorSize); which one it is comes from where it was found.
type NTFSBoot struct {
	SectorSize   int64  `json:"sector_size"`
	ClusterSize  int64  `json:"cluster_size"`
	TotalSectors int64  `json:"total_sectors"`
	MFTLCN       int64  `json:"mft_lcn"`
	MirrLCN      int64  `json:"mftmirr_lcn"`
	RecordSize   int64  `json:"record_size"`
	Serial       string `json:"serial"`
}

// LocatedNTFS is an NTFS structure with the image offset it was found at.
type LocatedNTFS struct {
	Offset int64
	Record *NTFSRecord
}

// name returns the record's preferred name (Win32 or Win32&DOS, then
// POSIX, then DOS) and its parent.
func (f *NTFSFileRecord) name() (string, int64) {
	best, rank := -1, -1
	for i, n := range f.Names {
		r := map[uint8]int{1: 3, 3: 3, 0: 2, 2: 1}[n.Namespace]
		if r > rank {
			best, rank = i, r
		}
	}
	if best < 0 {
		return "", -1
	}
	return f.Names[best].Name, f.Names[best].Parent
}

// first returns the $DATA piece starting at VCN 0, if any.
func (f *NTFSFileRecord) first() *NTFSData {
	for i := range f.Data {
		if f.Data[i].StartVCN == 0 && !f.Data[i].Resident {
			return &f.Data[i]
		}
	}
	return nil
}

// firstLCN is the LCN of VCN 0 of the record's $DATA, or -1.
func (f *NTFSFileRecord) firstLCN() int64 {
	if d := f.first(); d != nil && len(d.Runs) > 0 && !d.Runs[0].Sparse {
		return d.Runs[0].LCN
	}
	return -1
}

// vcnToLCN maps a VCN through runs, or returns -1.
func vcnToLCN(runs []NTFSRun, vcn int64) int64 {
	for _, r := range runs {
		if vcn >= r.VCN && vcn < r.VCN+r.Len {
			if r.Sparse {
				return -1
			}
			return r.LCN + vcn - r.VCN
		}
	}
	return -1
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
)

// ntfsGeom is a hypothesis for one volume: it starts at image offset V and
// has clusters of C bytes.
type ntfsGeom struct{ V, C int64 }

// ntfsVolume is an accepted geometry with what supports it.
type ntfsVolume struct {
	ntfsGeom
	score    int
	facts    []string
	boot     *NTFSBoot
	mft      *NTFSFileRecord // the $MFT record (primary copy, else the mirror's)
	mftAt    int64           // where that copy was found
	mirrLCN  int64           // $MFTMirr's LCN, or -1
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
	at      map[int64]*NTFSFileRecord
	rec0    []LocatedNTFS // $MFT record copies
	rec1    []LocatedNTFS // $MFTMirr record copies
	anchors map[int64]bool
}

func ntfsIndex(records []LocatedNTFS, anchors []int64) *ntfsIn {
	in := &ntfsIn{at: make(map[int64]*NTFSFileRecord), anchors: make(map[int64]bool)}
	for _, a := range anchors {
		in.anchors[a] = true
	}
	for _, r := range records {
		if r.Record == nil || r.Record.Damaged != "" || r.Offset < 0 {
			continue
		}
		switch {
		case r.Record.Boot != nil:
			in.boots = append(in.boots, r)
		case r.Record.MFT != nil && r.Record.MFT.Number >= 0:
			f := r.Record.MFT
			in.files = append(in.files, r)
			in.at[r.Offset] = f
			name, _ := f.name()
			if f.Number == 0 && name == "$MFT" && f.firstLCN() >= 0 {
				in.rec0 = append(in.rec0, r)
			}
			if f.Number == 1 && name == "$MFTMirr" && f.firstLCN() >= 0 {
				in.rec1 = append(in.rec1, r)
			}
		}
	}
	// Hits arrive sorted by offset; sort anyway so that the result does not
	// depend on the caller's order.
	for _, s := range [][]LocatedNTFS{in.boots, in.files, in.rec0, in.rec1} {
		sort.SliceStable(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
	}
	return in
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
			add(ntfsGeom{r.Offset - r.Record.MFT.firstLCN()*c, c})
		}
	}
	for _, r := range in.files {
		f := r.Record.MFT
		name, _ := f.name()
		if l := f.firstLCN(); l >= 0 && isVMDKName(name) {
			for a := range in.anchors {
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
	for _, b := range in.boots {
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
	for _, r := range in.rec0 {
		f := r.Record.MFT
		l := f.firstLCN()
		if g.V+l*g.C == r.Offset && (v.boot == nil || v.boot.MFTLCN == l) && v.mft == nil {
			v.mft, v.mftAt = f, r.Offset
			v.at = append(v.at, r.Offset)
			v.score++
			v.facts = append(v.facts, fmt.Sprintf("record 0 ($MFT) at image offset %d, where its first run (LCN %d) says", r.Offset, l))
		}
	}
	// $MFTMirr: a copy of record 0 where $MFTMirr's run (or the boot
	// sector) says the mirror is.
	var mirrs []int64
	if v.boot != nil {
		mirrs = append(mirrs, v.boot.MirrLCN)
	}
	for _, r := range in.rec1 {
		mirrs = append(mirrs, r.Record.MFT.firstLCN())
	}
	for _, m := range mirrs {
		p := g.V + m*g.C
		if f := in.at[p]; f != nil && f.Number == 0 && p != v.mftAt {
			if name, _ := f.name(); name == "$MFT" && (v.mft == nil || f.firstLCN() == v.mft.firstLCN()) {
				v.mirrLCN = m
				v.at = append(v.at, p)
				v.score++
				v.facts = append(v.facts, fmt.Sprintf("$MFTMirr copy of record 0 at image offset %d (LCN %d)", p, m))
				if v.mft == nil {
					v.mft, v.mftAt = f, p
				}
				break
			}
		}
	}
	// Anchors: a record's first run landing on a VMDK header.
	anchorsSeen := make(map[int64]bool)
	for _, r := range in.files {
		f := r.Record.MFT
		if l := f.firstLCN(); l >= 0 {
			p := g.V + l*g.C
			if in.anchors[p] && !anchorsSeen[p] {
				anchorsSeen[p] = true
				name, _ := f.name()
				v.score++
				v.facts = append(v.facts, fmt.Sprintf("record %d (%s) at image offset %d has its first run at anchor %d", f.Number, name, r.Offset, p))
			}
		}
	}
	v.recSize = NTFSMinRecordSize
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
		d := v.mft.first()
		if d == nil {
			return -1
		}
		lcn := vcnToLCN(d.Runs, off/v.C)
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
	f    *NTFSFileRecord
	name string
	par  int64
	ext  []*NTFSFileRecord
}

// volumeMaps builds the maps of VMDK-like files in v.
func (in *ntfsIn) volumeMaps(v *ntfsVolume) []FileMap {
	bases := make(map[int64]*ntfsFile)
	var order []int64
	var exts []LocatedNTFS
	claimed := 0
	for _, r := range in.files {
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
			name, par := f.name()
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
	d := b.f.first()
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
	pieces := []NTFSData{*d}
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
	slices.SortStableFunc(pieces, func(a, b NTFSData) int { return cmp.Compare(a.StartVCN, b.StartVCN) })
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
