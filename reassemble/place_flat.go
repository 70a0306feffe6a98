package reassemble

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Flat extents (monolithicFlat, ESXi's vmfs "-flat.vmdk", a one-extent
// twoGbMaxExtentFlat) have no header: the extent file is the raw guest
// disk, byte for byte, and only its text descriptor names it and its size
// (FORMAT.md §4.3). Its start is found by the guest's own sector 0 (a
// partition table the carve recorded) whose partitions fit the size, and
// its bytes are mapped by the host filesystem's map of the file starting
// there or, without one, assumed contiguous from there until the bytes
// contradict it (the guest's structures, another VMDK's), exactly as a
// sparse file's grain area. A flat extent is a sparse extent whose table
// maps every grain to its own offset, so the same placement applies, with
// one difference: a flat file stores zero grains, so a zero grain is a
// zero grain, not a break.

// EvFlat is the evidence level of a grain placed from a flat extent: its
// offset in the raw extent is its virtual offset.
const EvFlat = "flat"

// maxFlatGrains bounds a flat extent placed grain by grain (1 TiB of
// 64 KiB grains): the per-grain candidates must fit in memory.
const maxFlatGrains = 1 << 24

// flatGrainSize is the grain size flat disks are rebuilt with (every
// writer's, FORMAT.md §5).
const flatGrainSize = 128

// flatExtent returns the flat extent a descriptor describes, if it
// describes exactly one (data at offset 0 of its file).
func flatExtent(d *vmdk.Descriptor) (vmdk.Extent, bool) {
	if d == nil || len(d.Extents) != 1 {
		return vmdk.Extent{}, false
	}
	e := d.Extents[0]
	if (e.Type != "FLAT" && e.Type != "VMFS") || e.Offset != 0 || e.Sectors == 0 || e.Sectors/flatGrainSize >= maxFlatGrains {
		return vmdk.Extent{}, false
	}
	return e, true
}

// anyFlatDescriptor reports whether some descriptor describes a flat
// extent.
func (x *hitIndex) anyFlatDescriptor() bool {
	for _, d := range x.descriptors {
		if _, ok := flatExtent(d.Descriptor); ok {
			return true
		}
	}
	return false
}

// flatStart is a candidate start of a flat extent: a partition table with
// a recognised volume at one of its partitions' starts.
type flatStart struct {
	hit *signatures.Hit
	end uint64 // sector after its last partition
	m   *fsprobe.FileMap
	// ntfs, when set, says the start was named by an NTFS boot sector
	// (its partition table is gone): hit is then made up at the start;
	// ntfsTotal is the volume's sectors.
	ntfs      string
	ntfsTotal int64
	// ext4, when set, says the start is that of an ext volume filling
	// the disk, which has no partition table (ext4FlatStarts).
	ext4 string
}

// flatInstances makes one instance per flat extent found: a partition
// table paired with the flat descriptors of the smallest size its
// partitions fit (several descriptors of one size describe disks of one
// size, and the bytes rebuilt are the same whichever is taken; the report
// says so). A partition table counts only where one of its partitions
// starts with a recognised NTFS or ext volume, and not inside another
// instance's file (a guest's sector 0 stored in a sparse grain), nor at
// image offset 0 (the evidence disk's own). taken are the instances found
// so far.
func flatInstances(x *hitIndex, image io.ReaderAt, imageSize int64, maps []fsprobe.FileMap, taken []*Instance) []*Instance {
	bySize, sizes := flatDescriptorsBySize(x)
	bySizeStarts := map[uint64][]flatStart{} // candidate starts by the descriptor size they fit best
	var out []*Instance
	used := newUsedAreas(taken)
	for _, h := range x.mbrs {
		if h.Offset == 0 || used.contains(h.Offset) {
			continue
		}
		s, ok := partitionTableStart(x, image, h, maps)
		if !ok {
			continue
		}
		mapped := uint64(0) // the extent's size by its host map, if it fits
		if s.m != nil && s.m.Size%vmdk.SectorSize == 0 && uint64(s.m.Size/vmdk.SectorSize) >= s.end {
			mapped = uint64(s.m.Size / vmdk.SectorSize)
		}
		if mapped > 0 && bySize[mapped] == nil && flatHostName(s.m.Name) && mapped/flatGrainSize < maxFlatGrains {
			// The descriptor is lost, but the host names the file a flat
			// extent and says how large it is.
			out = append(out, newFlatInstance(nil, mapped, s, 0, imageSize))
			continue
		}
		k := sort.Search(len(sizes), func(i int) bool { return sizes[i] >= s.end })
		if k == len(sizes) {
			continue
		}
		size := sizes[k]
		if bySize[mapped] != nil {
			size = mapped // the descriptor that says what the host map says
		} else {
			s.m = nil // a map of another size is not this extent's
		}
		bySizeStarts[size] = append(bySizeStarts[size], s)
	}
	// Disks whose partition table is gone (a locker encrypted their
	// head) still say where they start: an NTFS volume's boot sector
	// names its partition's start (hidden sectors) and its backup lies at
	// the volume's end. Without a descriptor of a size they fit, such a
	// disk is made as large as its volume reaches.
	for _, st := range ntfsFlatStarts(x, image, taken) {
		k := sort.Search(len(sizes), func(i int) bool { return sizes[i] >= st.end })
		if k < len(sizes) && len(bySizeStarts[sizes[k]]) < len(bySize[sizes[k]]) {
			bySizeStarts[sizes[k]] = append(bySizeStarts[sizes[k]], st)
			continue
		}
		capacity := (st.end + flatGrainSize - 1) / flatGrainSize * flatGrainSize
		if capacity/flatGrainSize < maxFlatGrains {
			out = append(out, newFlatInstance(nil, capacity, st, 0, imageSize))
		}
	}
	// Disks formatted whole (a Linux data disk: mkfs.ext4 /dev/sdb) have
	// no partition table: an ext volume at the extent's start whose size
	// is the descriptor's says where it starts.
	for _, st := range ext4FlatStarts(x, taken, sizes) {
		if len(bySizeStarts[st.end]) < len(bySize[st.end]) {
			bySizeStarts[st.end] = append(bySizeStarts[st.end], st)
		}
	}
	// Each descriptor takes one start: those whose partitions come closest
	// to its size (a host map of its size first). A start left over is
	// some other raw disk whose partitions happen to fit (a disk image
	// file, a copy): it is not made a disk under a descriptor another
	// start already has.
	for _, size := range sizes {
		ss, ds := bySizeStarts[size], bySize[size]
		sort.SliceStable(ss, func(i, j int) bool {
			if (ss[i].m != nil) != (ss[j].m != nil) {
				return ss[i].m != nil
			}
			return ss[i].end > ss[j].end
		})
		for i, st := range ss {
			if i >= len(ds) {
				break // the rest are left over
			}
			out = append(out, newFlatInstance(ds[i], size, st, len(ds), imageSize))
		}
	}
	return out
}

// flatDescriptorsBySize returns the distinct flat descriptors by the
// size of their extent, each size's in image order, and the sizes in
// increasing order.
func flatDescriptorsBySize(x *hitIndex) (bySize map[uint64][]*signatures.Hit, sizes []uint64) {
	offs := make([]int64, 0, len(x.descriptors))
	for off := range x.descriptors {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	seen := map[string]bool{}
	bySize = map[uint64][]*signatures.Hit{}
	for _, off := range offs {
		d := x.descriptors[off]
		e, ok := flatExtent(d.Descriptor)
		if !ok {
			continue
		}
		key := fmt.Sprintf("%08x/%s/%d", d.Descriptor.CID, e.FileName, e.Sectors)
		if seen[key] {
			continue // a copy of a descriptor already taken
		}
		seen[key] = true
		if bySize[e.Sectors] == nil {
			sizes = append(sizes, e.Sectors)
		}
		bySize[e.Sectors] = append(bySize[e.Sectors], d)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	return bySize, sizes
}

// partitionTableStart makes the partition table hit h a candidate start
// of a flat extent, through the host map that holds it if any. It counts
// only where one of its partitions (or, behind a protective MBR, the
// GPT's) starts with a recognised volume.
func partitionTableStart(x *hitIndex, image io.ReaderAt, h *signatures.Hit, maps []fsprobe.FileMap) (flatStart, bool) {
	s := flatStart{hit: h, m: mapFor(maps, h.Offset)}
	starts := make([]int64, 0, len(h.MBR.Partitions))
	for _, p := range h.MBR.Partitions {
		s.end = max(s.end, p.End())
		starts = append(starts, int64(p.Start)*vmdk.SectorSize)
	}
	if gpt := gptAt(image, s); gpt != nil {
		// A protective MBR: the partitions are the GPT's.
		starts, s.end = starts[:0], 0
		for _, p := range gpt {
			starts = append(starts, p[0])
			s.end = max(s.end, uint64(p[0]+p[1])/vmdk.SectorSize)
		}
	}
	for _, off := range starts {
		at := h.Offset + off
		if s.m != nil {
			at = mapOffset(s.m, off)
		}
		if x.volumeAt[at] {
			return s, true
		}
	}
	return s, false
}

// ntfsFlatStarts returns the starts of raw disks named by an NTFS boot
// sector whose partition table is not found: the boot sector's hidden
// sectors give its partition's start in the disk, and the backup boot
// sector, the same bytes, must lie at the volume's end (two facts, not
// one). Boot sectors inside an instance already found are its guest's, and
// a start the carve found a partition table at is the partition table's.
func ntfsFlatStarts(x *hitIndex, image io.ReaderAt, taken []*Instance) []flatStart {
	var out []flatStart
	used := newUsedAreas(taken)
	for _, y := range slices.Sorted(maps.Keys(x.volumeAt)) {
		boot := make([]byte, vmdk.SectorSize)
		if _, err := image.ReadAt(boot, y); err != nil || !ntfs.IsBootMagic(boot) {
			continue
		}
		rec, err := ntfs.ParseBootSector(boot)
		if err != nil || rec.Boot.SectorSize != vmdk.SectorSize {
			continue
		}
		hidden := ntfs.ReadBPB(boot).HiddenSectors
		start := y - hidden*vmdk.SectorSize
		if hidden == 0 || start <= 0 || x.mbrAt(start) || used.contains(y) {
			continue
		}
		backup := make([]byte, vmdk.SectorSize)
		end := y + rec.Boot.TotalSectors*vmdk.SectorSize
		if _, err := image.ReadAt(backup, end); err != nil || !bytes.Equal(boot, backup) {
			continue
		}
		if why := vmdkInside(x, start, end, true); why != "" {
			// A guest volume stored in a sparse VMDK's grains, laid in
			// virtual order: the VMDK's own structures lie among them.
			continue
		}
		out = append(out, flatStart{hit: &signatures.Hit{Offset: start, Kind: signatures.KindNTFS, Verdict: signatures.Valid},
			end: uint64(hidden + rec.Boot.TotalSectors + 1), ntfsTotal: rec.Boot.TotalSectors,
			ntfs: fmt.Sprintf("the NTFS boot sector at image offset %d (hidden sectors %d; its backup at the volume's end, image offset %d)", y, hidden, y+rec.Boot.TotalSectors*vmdk.SectorSize)})
	}
	return out
}

// ext4FlatStarts returns the starts of raw disks that hold one ext volume
// from their first byte, without a partition table: a primary superblock
// whose volume (its blocks times their size) fills a flat extent of one
// of the descriptors' sizes to within a block (mkfs.ext4 makes the volume
// of whole blocks the device holds). Two facts: the superblock, and a
// descriptor of exactly its size; a volume of another size is a
// partition, a host's volume, or another file's, not a flat extent. As in
// ntfsFlatStarts, superblocks inside an instance already found are its
// guest's, and an extent holding VMDK structures is none. end is the
// descriptor's size in sectors.
func ext4FlatStarts(x *hitIndex, taken []*Instance, sizes []uint64) []flatStart {
	var out []flatStart
	used := newUsedAreas(taken)
	for _, h := range slices.Sorted(maps.Keys(x.ext4Primary)) {
		y := h - ext4.SuperblockOffset
		if y < 0 || used.contains(h) || x.mbrAt(y) {
			continue
		}
		sb := x.ext4Primary[h]
		if sb == nil || sb.Validate() != nil { // a hit read back from a case file a user may edit
			continue
		}
		// In sectors: a descriptor's extent of up to MaxDescriptorCapacity
		// sectors and a volume of at most 2^62 bytes (Validate) both fit.
		volume := uint64(sb.VolumeBytes()) / vmdk.SectorSize
		k := sort.Search(len(sizes), func(i int) bool { return sizes[i] >= volume })
		if k == len(sizes) || (sizes[k]-volume)*vmdk.SectorSize >= uint64(sb.BlockSize) {
			continue
		}
		bytes := sb.VolumeBytes()
		// A guest's 256 MiB hold a grain-table-shaped block by chance
		// (the red team's ext4 guest of binaries and text did): only
		// headers, grain records, markers and directories count. A
		// sparse file whose grains hold the volume in virtual order has
		// its tables before it, and an instance found is excluded above.
		if why := vmdkInside(x, y, y+bytes, false); why != "" {
			continue
		}
		out = append(out, flatStart{hit: &signatures.Hit{Offset: y, Kind: signatures.KindExt4, Verdict: signatures.Valid}, end: sizes[k],
			ext4: fmt.Sprintf("the ext superblock at image offset %d (a volume of %d blocks of %d bytes from the extent's first byte, no partition table)", h, sb.Blocks, sb.BlockSize)})
	}
	return out
}

// vmdkInside names a VMDK structure (header, grain record, grain
// directory or table) the carve found in image bytes [from, to), or "":
// a raw disk holds none of them. Without tableShapes, blocks found only
// by a grain table's shape (a run of increasing sector numbers, as many
// a guest file's block holds too) do not count.
func vmdkInside(x *hitIndex, from, to int64, tableShapes bool) string {
	i := sort.Search(len(x.foreign), func(i int) bool { return x.foreign[i].Offset >= from })
	if i < len(x.foreign) && x.foreign[i].Offset < to {
		return fmt.Sprintf("a %s at image offset %d", x.foreign[i].Kind, x.foreign[i].Offset)
	}
	tables := [][]*signatures.Hit{x.gds}
	if tableShapes {
		tables = append(tables, x.gtShaped)
	}
	for _, hs := range tables {
		for _, h := range hs {
			if h.Offset >= from && h.Offset < to {
				return fmt.Sprintf("a %s at image offset %d", h.Kind, h.Offset)
			}
		}
	}
	return ""
}

// flatHostName reports whether a host file's name is a flat extent's
// (qemu and ESXi name it NAME-flat.vmdk).
func flatHostName(name string) bool {
	return strings.HasSuffix(strings.ToLower(name), "-flat.vmdk")
}

// newFlatInstance maps the flat extent of capacity sectors that d
// describes (nil: its descriptor is lost and a host map names it) from
// start s.
func newFlatInstance(d *signatures.Hit, capacity uint64, s flatStart, sameSize int, imageSize int64) *Instance {
	hdr := vmdk.SparseHeader{Version: 1, Flags: vmdk.FlagValidNewlines, Capacity: capacity, GrainSize: flatGrainSize, NumGTEsPerGT: vmdk.GTEsPerGT}
	inst := &Instance{Variant: "monolithicFlat (descriptor lost)", Header: &hdr, grains: newDecisions(), flat: true,
		HeaderOffset: s.hit.Offset, Tables: "none: a flat extent's grains lie at their own offsets"}
	switch {
	case d != nil && s.ntfs != "":
		e, _ := flatExtent(d.Descriptor)
		inst.Variant, inst.Descriptor = d.Descriptor.CreateType, d.Descriptor
		inst.Notes = append(inst.Notes, fmt.Sprintf("flat extent %q of %d sectors named by the descriptor at image offset %d; its partition table is gone, its start at image offset %d is named by %s",
			e.FileName, e.Sectors, d.Offset, s.hit.Offset, s.ntfs))
	case s.ntfs != "":
		inst.CapacityBound = BoundLower
		inst.Notes = append(inst.Notes, fmt.Sprintf("flat extent found by its guest volume: its partition table and descriptor are gone, its start at image offset %d is named by %s; its %d sectors reach the volume's end (the disk may have been larger)",
			s.hit.Offset, s.ntfs, capacity))
	case d != nil && s.ext4 != "":
		e, _ := flatExtent(d.Descriptor)
		inst.Variant, inst.Descriptor = d.Descriptor.CreateType, d.Descriptor
		inst.Notes = append(inst.Notes, fmt.Sprintf("flat extent %q of %d sectors named by the descriptor at image offset %d; its start at image offset %d is named by %s",
			e.FileName, e.Sectors, d.Offset, s.hit.Offset, s.ext4))
		inst.expect = fsprobe.ExpectExt4Volume(0)
	case d != nil:
		e, _ := flatExtent(d.Descriptor)
		inst.Variant, inst.Descriptor = d.Descriptor.CreateType, d.Descriptor
		inst.Notes = append(inst.Notes, fmt.Sprintf("flat extent %q of %d sectors named by the descriptor at image offset %d; its start is the guest partition table at image offset %d (partitions end at sector %d, a volume starts at one of them)",
			e.FileName, e.Sectors, d.Offset, s.hit.Offset, s.end))
	default:
		inst.Notes = append(inst.Notes, fmt.Sprintf("flat extent %q found by its host file (%s): no descriptor names it, its %d sectors are the host file's size; it starts with a guest partition table (partitions end at sector %d, a volume starts at one of them)",
			s.m.Name, s.m.Record, capacity, s.end))
	}
	if s.ntfs != "" {
		inst.ntfsStart = int64(s.end-1)*vmdk.SectorSize - s.ntfsTotal*vmdk.SectorSize
		inst.expect = fsprobe.ExpectNTFSVolume(inst.ntfsStart)
	}
	if sameSize > 1 {
		inst.Notes = append(inst.Notes, fmt.Sprintf("%d flat descriptors name extents of this size: which one describes these bytes is not known (only the CID and names differ)", sameSize))
	}
	if s.m != nil {
		inst.Fragments, inst.size = fragmentsFromMap(s.m)
		inst.HostMap = s.m
		return inst
	}
	n := min(int64(capacity)*vmdk.SectorSize, imageSize-s.hit.Offset)
	ev := "assumed contiguous from the guest's partition table at its start, until the bytes contradict it"
	switch {
	case s.ntfs != "":
		ev = "assumed contiguous from the start " + s.ntfs + " names, until the bytes contradict it"
	case s.ext4 != "":
		ev = "assumed contiguous from the start of its ext volume, until the bytes contradict it"
	}
	inst.Fragments = []Fragment{{FileOffset: 0, ImageOffset: s.hit.Offset, Length: n, Link: LinkContiguous, Evidence: ev}}
	inst.size = n
	return inst
}

// gptAt reads the GPT of a disk starting at s (through its host map when
// it has one), if its partition table is a protective MBR.
func gptAt(image io.ReaderAt, s flatStart) [][2]int64 {
	if s.hit.MBR == nil {
		return nil
	}
	protective := false
	for _, p := range s.hit.MBR.Partitions {
		protective = protective || p.Type == 0xEE
	}
	if !protective {
		return nil
	}
	head := make([]byte, 64<<10)
	var err error
	if s.m != nil {
		frags, _ := fragmentsFromMap(s.m)
		_, err = newFileView(image, frags).ReadAt(head, 0)
	} else {
		_, err = image.ReadAt(head, s.hit.Offset)
	}
	if err != nil {
		return nil
	}
	return fsprobe.GPTPartitions(head)
}

// mapOffset is the image offset of a file offset through a host map, or
// -1.
func mapOffset(m *fsprobe.FileMap, off int64) int64 {
	for _, e := range m.Extents {
		if off >= e.FileOffset && off < e.FileOffset+e.Length {
			return e.ImageOffset + off - e.FileOffset
		}
	}
	return -1
}

// insideAny reports whether an image offset lies in the used part of one
// of the instances' files (their start excluded): before the end of the
// last grain they place. Past it, a file mapped only by the contiguous
// assumption runs on over whatever follows it, a flat extent included.
func insideAny(instances []*Instance, off int64) bool {
	for _, inst := range instances {
		if fo, ok := inst.fileOffsetOf(off); ok && fo > 0 && fo < inst.usedEnd() {
			return true
		}
	}
	return false
}

// usedAreas indexes the image ranges holding the used part of a fixed
// set of instances (insideAny's question) for a binary search: asked for
// every partition table and guest structure against every instance, the
// scan was quadratic (2·10^4 crafted headers and partition tables took
// 25 s).
type usedAreas struct {
	starts []int64 // range starts, sorted
	ends   []int64 // ends[i] is the largest end of ranges 0..i
}

func newUsedAreas(instances []*Instance) *usedAreas {
	type area struct{ lo, hi int64 }
	var as []area
	for _, inst := range instances {
		end := inst.usedEnd()
		for _, f := range inst.Fragments {
			if f.Link == LinkHole {
				continue
			}
			// File offsets in (0, end), as insideAny asks.
			lo, hi := max(f.FileOffset, 1), min(f.FileOffset+f.Length, end)
			if lo < hi {
				as = append(as, area{f.ImageOffset + lo - f.FileOffset, f.ImageOffset + hi - f.FileOffset})
			}
		}
	}
	slices.SortFunc(as, func(a, b area) int { return cmp.Compare(a.lo, b.lo) })
	u := &usedAreas{starts: make([]int64, len(as)), ends: make([]int64, len(as))}
	for i, a := range as {
		u.starts[i], u.ends[i] = a.lo, a.hi
		if i > 0 {
			u.ends[i] = max(u.ends[i], u.ends[i-1])
		}
	}
	return u
}

// contains reports whether off lies in one of the areas.
func (u *usedAreas) contains(off int64) bool {
	i := sort.Search(len(u.starts), func(i int) bool { return u.starts[i] > off }) - 1
	return i >= 0 && u.ends[i] > off
}

// usedEnd is the file offset past the last grain (or record) the instance
// places.
func (inst *Instance) usedEnd() int64 {
	var end int64
	for _, gr := range inst.grains.one {
		if gr.Status != Placed || gr.Source == nil {
			continue
		}
		n := inst.Header.GrainBytes()
		if gr.Source.Compressed {
			n = gr.Source.RecordBytes
		}
		end = max(end, gr.Source.FileOffset+n)
	}
	return end
}

// placeFlat decides every grain of a flat instance: grain g at file offset
// g × grain size, through the fragments, with the contiguity checks of
// placeCandidates.
func placeFlat(inst *Instance, image io.ReaderAt, x *hitIndex, opts Options) {
	h := inst.Header
	grains := h.Grains()
	if len(inst.Fragments) == 0 {
		inst.grains.setRange(0, grains, &Grain{Status: Missing, Reason: Reason{Code: ReasonFlatNotLocated}})
		return
	}
	cands := make([]candidate, 0, grains)
	for g := range grains {
		cands = append(cands, candidate{grain: g, sector: uint32(g * h.GrainSize), which: "flat"})
	}
	view := newFileView(image, inst.Fragments)
	if inst.contiguousOnly() {
		if g, why := misplacedGuest(inst, view, x); g >= 0 {
			reason := Reason{Code: ReasonFlatFragmentedNoMap, Detail: why}
			inst.Notes = append(inst.Notes, reason.String())
			if img, err := view.imageOffset(g*h.GrainBytes(), 1); err == nil {
				inst.addBreak(g*h.GrainBytes(), img, why)
			}
			inst.grains.setRange(0, grains, &Grain{Status: Missing, Reason: reason})
			inst.cutFragments(0)
			return
		}
	}
	var predicted []structureAt
	if inst.ntfsStart > 0 {
		// A disk with a partition at ntfsStart has a partition table in
		// its sector 0: one that reads random there is destroyed.
		predicted = append(predicted, structureAt{off: 0, n: vmdk.SectorSize, what: "the partition table of the disk whose NTFS volume starts at " + fmt.Sprint(inst.ntfsStart)})
	}
	placeCandidates(inst, view, cands, x, opts, &Grain{Status: Zero, Evidence: []string{EvFlat}, Reason: Reason{Code: ReasonFlatZeros}}, predicted)
}

// misplacedGuest looks, in a flat extent read on the contiguous
// assumption, for a self-locating guest structure (fsprobe.Locator) of
// those the carve recorded that
// lies at a grain other than the one it names: proof that a piece of the
// file is not where the assumption puts it. A flat file stores zero
// grains, so unlike a sparse file a zero grain proves nothing, and the
// guest's own structures are what can tell a foreign run of bytes. It
// returns the first such grain and why, or -1.
func misplacedGuest(inst *Instance, view *fileView, x *hitIndex) (int64, string) {
	h := inst.Header
	gb := h.GrainBytes()
	grains := int64(h.Grains())
	buf := make([]byte, gb)
	// Only the grains holding structures the carve recorded are read: the
	// geometry from those of partition tables, boot sectors, $MFT record 0
	// and primary superblocks, the claims from those of every NTFS or
	// ext4 structure. No pass over the whole extent.
	read := func(gs []int64, fn func(g int64, b []byte)) {
		for _, g := range gs {
			b := buf[:grainLength(h, uint64(g))]
			if _, err := view.ReadAt(b, g*gb); err == nil && !entropy.Zero(b) {
				fn(g, b)
			}
		}
	}
	loc := fsprobe.NewLocator(gb, int64(h.Capacity)*vmdk.SectorSize)
	claims := locateGrains(loc,
		func(fn func([]byte, int64)) {
			// The places are what is being checked: the geometry is
			// learned as if they were not known.
			read(grainsHolding(inst, x.geometry, 0, gb, grains), func(_ int64, b []byte) { fn(b, -1) })
		},
		func(fn func(int64, []byte)) { read(grainsHolding(inst, x.guest, 0, gb, grains), fn) })
	first, why := int64(-1), ""
	for g, c := range claims {
		cands := loc.Candidates(c)
		if slices.Contains(cands, g) || (len(cands) == 0 && !slices.ContainsFunc(c, loc.Possible)) {
			continue // in its place, or nothing of this guest
		}
		if first < 0 || g < first {
			first, why = g, fmt.Sprintf("grain %d holds %s, which belongs at grain %v", g, fsprobe.Describe(c), cands)
		}
	}
	return first, why
}
