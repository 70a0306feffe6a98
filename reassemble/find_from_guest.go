package reassemble

import (
	"fmt"
	"io"
	"slices"

	"vmdkcarve/fs/ntfs"
	"vmdkcarve/vmdk"
)

// A sparse file whose header, descriptor and grain tables are all gone (a
// ransomware head of a MiB or more) names neither its start nor its size.
// Its grains still lie in the file in write order. A guest NTFS volume
// names its own start on the disk (the boot sector's hidden sectors) and
// its size, so a boot sector found outside every other file's grains
// gives, on the hypothesis that it lies in such a file's grain slot, where
// the slots are (aligned with it) and a capacity (the volume's end). The
// slots from there are then placed exactly as those of a file whose
// tables are lost (placeByAnchors): only on proof, with write order used
// only between proven grains and only if at least three of them agree. A
// hypothesis that places nothing is dropped. ext4 guests do not name their
// partition's start, so without the MBR (the first grain, gone with the
// head) they cannot be located this way.

// headlessInstances tries every guest NTFS boot sector outside the grains
// of the instances found so far; it returns the hypotheses that place
// grains.
func headlessInstances(x *hitIndex, image io.ReaderAt, imageSize int64, taken []*Instance) []*Instance {
	var out []*Instance
	seen := map[int64]bool{} // slot grids tried, by their first slot
	const gb = flatGrainSize * vmdk.SectorSize
	used := newUsedAreas(taken)
	for _, off := range x.geometry {
		if used.contains(off) || insideAny(out, off) {
			continue
		}
		for _, hy := range volumeHypotheses(x, image, off) {
			if hy.capacity/flatGrainSize >= maxFlatGrains || rawDiskAt(x, off-hy.at, hy.partition) {
				continue
			}
			slot := off - hy.at%gb // the grain slot holding the structure
			// Slots are scanned from after the last file before it (a
			// file holds no more slots than its disk has grains).
			from := max(slot-int64(hy.capacity/flatGrainSize+1)*gb, filesEndBefore(x, taken, slot))
			first := slot - (slot-from)/gb*gb
			if first < gb {
				first += gb // room for the made-up overhead before it
			}
			if first > slot || seen[first] {
				continue
			}
			seen[first] = true
			if inst := headlessAt(x, image, imageSize, first-gb, slot, hy, len(taken)+len(out)+1); inst != nil {
				out = append(out, inst)
			}
		}
	}
	return out
}

// hypothesis places a guest volume structure found at an image offset: at
// is its disk offset if it is what it is taken for, partition its volume's,
// capacity the least the disk can be.
type hypothesis struct {
	what      string
	at        int64
	partition int64 // the volume's start on its disk
	capacity  uint64
}

// rawDiskAt reports whether a partition table lies at image offset disk
// with a partition starting at part: the volume then lies at its raw
// distance from its disk's sector 0, as on the evidence disk itself or in
// a flat extent, not in a sparse file's slots (where sector 0's grain and
// the volume's are neighbours).
func rawDiskAt(x *hitIndex, disk, part int64) bool {
	for _, m := range x.mbrs {
		if m.Offset != disk {
			continue
		}
		for _, p := range m.MBR.Partitions {
			if int64(p.Start)*vmdk.SectorSize == part || p.Type == 0xEE {
				return true
			}
		}
	}
	return false
}

// volumeHypotheses says where the guest volume structure at off may lie on
// its disk: an NTFS boot sector at its volume's start or end (it names
// both). An ext4 superblock does not name its partition's start, and a
// wrong guess gives a volume that is consistent with itself but shifted on
// the disk: ext4 guests are not tried.
func volumeHypotheses(x *hitIndex, image io.ReaderAt, off int64) []hypothesis {
	var b [vmdk.SectorSize]byte
	if _, err := image.ReadAt(b[:], off); err != nil {
		return nil
	}
	if x.volumeAt[off] && ntfs.IsBootMagic(b[:]) {
		bpb := ntfs.ReadBPB(b[:])
		bps, total := bpb.BytesPerSector, bpb.TotalSectors
		part := bpb.HiddenSectors * bps
		if bps < vmdk.SectorSize || total <= 0 || total > 1<<40/bps {
			return nil
		}
		// The volume's end: its backup boot sector's sector after it.
		capacity := uint64((part + (total+1)*bps + vmdk.SectorSize - 1) / vmdk.SectorSize)
		what := fmt.Sprintf("the guest NTFS boot sector at image offset %d (volume at disk offset %d, %d sectors)", off, part, total)
		return []hypothesis{{what, part, part, capacity}, {what + ", taken as the backup at the volume's end", part + total*bps, part, capacity}}
	}
	return nil
}

// filesEndBefore is where the last file before image offset off ends: the
// end of the used part of an instance starting before it, or a VMDK
// structure (a header of a file not found).
func filesEndBefore(x *hitIndex, taken []*Instance, off int64) int64 {
	var end int64
	for _, inst := range taken {
		if inst.HeaderOffset < off {
			if e, ok := inst.imageOffsetOfEnd(); ok && e <= off {
				end = max(end, e)
			}
		}
	}
	for _, f := range x.foreign {
		if f.Offset < off {
			end = max(end, f.Offset+vmdk.SectorSize)
		}
	}
	return end
}

// imageOffsetOfEnd is the image offset just past the instance's last
// placed grain, when its file maps there contiguously.
func (inst *Instance) imageOffsetOfEnd() (int64, bool) {
	end := inst.usedEnd()
	if end == 0 {
		return inst.HeaderOffset, true
	}
	for _, f := range inst.Fragments {
		if f.Link != LinkHole && end > f.FileOffset && end <= f.FileOffset+f.Length {
			return f.ImageOffset + end - f.FileOffset, true
		}
	}
	return 0, false
}

// headlessAt tries the hypothesis of a file starting at start whose grain
// slots follow one grain on, holding the disk hy describes, with the
// structure hy places in the slot at image offset slot.
func headlessAt(x *hitIndex, image io.ReaderAt, imageSize, start, slot int64, hy hypothesis, id int) *Instance {
	hdr := vmdk.SparseHeader{Version: 1, Flags: vmdk.FlagValidNewlines, Capacity: hy.capacity, GrainSize: flatGrainSize,
		NumGTEsPerGT: vmdk.GTEsPerGT, OverHead: flatGrainSize}
	inst := &Instance{ID: id, Variant: "monolithicSparse (header and tables lost)", HeaderOffset: start,
		Header: &hdr, HeaderLost: true, HeaderFrom: HeaderFromGuest, CapacityBound: BoundLower, headless: true, grains: newDecisions(), Tables: "none found: header, descriptor and tables lost",
		Fragments: []Fragment{{FileOffset: 0, ImageOffset: start, Link: LinkContiguous,
			Evidence: "assumed contiguous over the grain slots counted from a guest volume structure's, until the bytes contradict it"}}}
	// Up to one slot per grain of the disk past the structure's: a file
	// holds no more, so no more of the image is read for it.
	inst.size = min(imageSize-start, slot-start+(1+int64(hdr.Grains()))*hdr.GrainBytes())
	inst.Fragments[0].Length = inst.size
	inst.Notes = append(inst.Notes, fmt.Sprintf("header, descriptor and grain tables lost: %s is taken to lie in a grain slot of a sparse file; slots are counted from image offset %d; capacity %d sectors is the volume's end (the least the disk can be)",
		hy.what, start+hdr.GrainBytes(), hy.capacity))
	inst.grains.setRange(0, hdr.Grains(), &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonMetadataLost}})
	placeByAnchors(inst, newFileView(image, inst.Fragments), x, nil)
	if inst.usedEnd() == 0 {
		return nil // the hypothesis proves nothing
	}
	if rawLayout(inst) {
		// Every proven grain lies at one distance from its virtual place:
		// these bytes are a raw volume or disk (the evidence disk's own
		// host volume, a flat extent), not the slots of a sparse file,
		// which skip the zero grains in between.
		return nil
	}
	return inst
}

// rawLayout reports whether every grain an instance's own guest
// structures proved lies at the same image offset minus virtual offset.
func rawLayout(inst *Instance) bool {
	gb := inst.Header.GrainBytes()
	shift, n := int64(0), 0
	for g, gr := range inst.grains.one {
		if gr.Status != Placed || gr.Source == nil || !slices.Contains(gr.Evidence, EvFSProbe) {
			continue
		}
		s := gr.Source.ImageOffset - int64(g)*gb
		if n > 0 && s != shift {
			return false
		}
		shift, n = s, n+1
	}
	return true
}
