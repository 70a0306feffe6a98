package reassemble

import (
	"fmt"
	"io"
	"sort"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/part"
	"vmdkcarve/vmdk"
)

// Versions links a disk to the other versions of the same virtual disk
// found in the image (an older copy, a backup, a template clone). Versions
// are never mixed: each is its own Disk, and this says how they relate.
type Versions struct {
	Group    int    `json:"group"`    // same number on every version of one disk
	Disks    []int  `json:"disks"`    // the group's disk IDs, oldest first when Order is known
	Position int    `json:"position"` // this disk's index in Disks
	Order    string `json:"order"`    // how the order was established, or "unknown"
	Newest   bool   `json:"newest"`   // this is the newest version (only when Order is known)
	Evidence string `json:"evidence"` // why these disks are versions of one disk
}

// minSharedGrains is the fraction of common placed grains two disks must
// hold identical to count as versions of one disk (a clone or an older
// copy shares most of its blocks; two unrelated disks share almost none
// but zeros, which are never placed).
const minSharedGrains = 0.5

// linkVersions groups disks that are versions of one virtual disk and
// orders each group: by the descriptors' CID chain (a version whose
// parentCID is another's CID came after it), else by the guest ext
// filesystem's last write time, else not at all.
func linkVersions(disks []*Disk, image io.ReaderAt) {
	sets := newUnionFind(len(disks))
	find, parent := sets.find, sets.parent
	why := make(map[int]string)
	for i := range disks {
		for j := i + 1; j < len(disks); j++ {
			if ok, ev := sameDiskVersions(disks[i], disks[j]); ok && find(i) != find(j) {
				parent[find(j)] = find(i)
				why[find(i)] = ev
			}
		}
	}
	groups := make(map[int][]*Disk)
	for i, d := range disks {
		r := find(i)
		groups[r] = append(groups[r], d)
	}
	roots := make([]int, 0, len(groups))
	for r, g := range groups {
		if len(g) > 1 {
			roots = append(roots, r)
		}
	}
	sort.Ints(roots)
	for n, r := range roots {
		g := groups[r]
		order := orderVersions(g, image)
		ids := make([]int, len(g))
		for i, d := range g {
			ids[i] = d.ID
		}
		for i, d := range g {
			d.Versions = &Versions{Group: n + 1, Disks: ids, Position: i, Order: order, Evidence: why[r],
				Newest: order != "unknown" && i == len(g)-1}
		}
	}
}

// sameDiskVersions reports whether two disks are versions of one virtual
// disk: same geometry, and most of the grains both hold are identical
// (or the descriptors say so: one's parentCID is the other's CID, or they
// share a ddb.uuid).
func sameDiskVersions(a, b *Disk) (bool, string) {
	if a.Capacity != b.Capacity || a.GrainSize != b.GrainSize {
		return false, ""
	}
	if da, db := a.Descriptor, b.Descriptor; da != nil && db != nil {
		if da.HasCID && db.HasCID && (da.ParentCID == db.CID || db.ParentCID == da.CID) {
			return true, "one descriptor's parentCID is the other's CID"
		}
		if u := da.UUID(); u != "" && u == db.UUID() {
			return true, "the descriptors share ddb.uuid " + u
		}
	}
	common, same := 0, 0
	for g, ga := range a.placed {
		if gb := b.placed[g]; gb != nil {
			common++
			if ga.Hash == gb.Hash {
				same++
			}
		}
	}
	if common > 0 && float64(same) >= minSharedGrains*float64(common) {
		return true, fmt.Sprintf("%d of the %d grains both hold are identical", same, common)
	}
	return false, ""
}

// orderVersions sorts a group oldest first and says how.
func orderVersions(g []*Disk, image io.ReaderAt) string {
	// CID chain: a version whose parentCID is another's CID is younger.
	byCID := make(map[uint32]*Disk)
	for _, d := range g {
		if d.Descriptor != nil && d.Descriptor.HasCID {
			byCID[d.Descriptor.CID] = d
		}
	}
	depth := func(d *Disk) int {
		n := 0
		for seen := map[*Disk]bool{}; d != nil && d.Descriptor != nil && !seen[d]; n++ {
			seen[d] = true
			d = byCID[d.Descriptor.ParentCID]
		}
		return n
	}
	chained := true
	for _, d := range g {
		if depth(d) < 1 {
			chained = false
		}
	}
	depths := make(map[*Disk]int)
	distinct := map[int]bool{}
	for _, d := range g {
		depths[d] = depth(d)
		distinct[depths[d]] = true
	}
	if chained && len(distinct) == len(g) {
		sort.SliceStable(g, func(i, j int) bool { return depths[g[i]] < depths[g[j]] })
		return "descriptor CID chain (parentCID → CID)"
	}
	// Guest ext filesystem: the superblock's last write time.
	times := make(map[*Disk]uint32)
	for _, d := range g {
		t, ok := extWriteTime(d, image)
		if !ok {
			return "unknown"
		}
		times[d] = t
	}
	seen := map[uint32]bool{}
	for _, t := range times {
		if seen[t] {
			return "unknown"
		}
		seen[t] = true
	}
	sort.SliceStable(g, func(i, j int) bool { return times[g[i]] < times[g[j]] })
	return "guest ext filesystem's last write time (s_wtime)"
}

// extWriteTime reads s_wtime of the ext filesystem on the first partition
// of a rebuilt disk, from its placed grains.
func extWriteTime(d *Disk, image io.ReaderAt) (uint32, bool) {
	mbr, ok := d.readPlaced(image, 0)
	if !ok || !part.HasSignature(mbr) {
		return 0, false
	}
	start := part.MBR(mbr)[0].Offset()
	sbOff := start + ext4.SuperblockOffset
	gb := int64(d.GrainSize) * vmdk.SectorSize
	grain, ok := d.readPlaced(image, uint64(sbOff/gb))
	if !ok || sbOff%gb+ext4.SuperblockSize > int64(len(grain)) {
		return 0, false
	}
	sb := grain[sbOff%gb:]
	if !ext4.IsSuperblockMagic(sb) {
		return 0, false
	}
	return ext4.ReadSuperblockFields(sb).WriteTime, true
}

// readPlaced reads a placed grain's bytes from the image (decoded when
// compressed; pieces assembled).
func (d *Disk) readPlaced(image io.ReaderAt, g uint64) ([]byte, bool) {
	gr := d.placed[g]
	if gr == nil || gr.Source == nil {
		return nil, false
	}
	src := gr.Source
	gb := int64(d.GrainSize) * vmdk.SectorSize
	n := gb
	if src.Compressed {
		n = src.RecordBytes
	}
	buf := make([]byte, n)
	k, err := ReadSource(image, src, buf)
	if err != nil {
		return nil, false
	}
	if !src.Compressed {
		return buf, true
	}
	out := make([]byte, gb)
	if _, k, err := vmdk.DecodeGrain(buf[:k], out); err != nil || k < vmdk.SectorSize {
		return nil, false
	}
	return out, true
}

// ReadSource reads a placed grain's source bytes (the grain, or its
// compressed record) into dst: one run at ImageOffset, or its pieces, the
// holes among them reading as zeros. A short read at the image end leaves
// zeros and says how much was read.
func ReadSource(image io.ReaderAt, src *Source, dst []byte) (int, error) {
	if len(src.Pieces) == 0 {
		n, err := image.ReadAt(dst, src.ImageOffset)
		if err == io.EOF {
			err = nil
		}
		return n, err
	}
	clear(dst)
	for _, p := range src.Pieces {
		if p.ImageOffset < 0 || p.Offset >= int64(len(dst)) {
			continue
		}
		end := min(p.Offset+p.Length, int64(len(dst)))
		if _, err := image.ReadAt(dst[p.Offset:end], p.ImageOffset); err != nil && err != io.EOF {
			return 0, err
		}
	}
	return len(dst), nil
}
