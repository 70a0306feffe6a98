package reassemble

import (
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/fs/part"
	"vmdkcarve/vmdk"
)

// A header inferred from grain directories alone knows the capacity only
// up to its tables' span (the last table may be part-used). The guest's
// own partition table, once its grain 0 is placed, says more: a GPT names
// the disk's last sector (its backup header's LBA), exactly; an MBR's
// partitions end where the disk can end at the earliest. Either is taken
// when it fits the directory (it needs every table the directory has) and
// no placed grain lies past it; the report says which.

// refineLostCapacity sets the capacity of an instance whose header was
// inferred with only an upper bound on it, from its guest's partition
// table.
func refineLostCapacity(inst *Instance, image io.ReaderAt) {
	h := inst.Header
	g0 := inst.grains.at(0)
	if g0 == nil || g0.Status != Placed || g0.Source == nil {
		return
	}
	buf := make([]byte, min(h.GrainBytes(), 2*vmdk.SectorSize))
	if _, err := ReadSource(image, g0.Source, buf); err != nil || !part.HasSignature(buf) {
		return
	}
	capacity, from, bound := uint64(0), "", ""
	if alt, ok := part.GPTAlternateLBA(buf); ok {
		capacity, from = alt+1, fmt.Sprintf("the guest's GPT (its backup header's LBA %d is the disk's last sector)", alt)
	} else {
		bound = BoundLower
		for _, e := range part.MBR(buf) {
			if e.Type == 0 || e.Type == part.TypeGPTProtective {
				continue
			}
			capacity = max(capacity, e.End())
		}
		from = "the end of the guest's last MBR partition (the least the disk can be)"
	}
	span := uint64(h.NumGTEsPerGT) * h.GrainSize
	if capacity == 0 || capacity > h.Capacity || capacity <= (h.GDEntries()-1)*span {
		return // does not fit the directory: keep the bound
	}
	grains := (capacity + h.GrainSize - 1) / h.GrainSize
	for g := grains; g < h.Grains(); g++ {
		if gr := inst.grains.at(g); gr != nil && gr.Status == Placed {
			return // a placed grain lies past it
		}
	}
	inst.Notes = append(inst.Notes, fmt.Sprintf("capacity %d sectors from %s, within the %d the grain directory allows", capacity, from, h.Capacity))
	h.Capacity = capacity
	inst.CapacityBound = bound
	// A last grain the new capacity cuts short is hashed again over what
	// is emitted of it.
	last := h.Grains() - 1
	if gr := inst.grains.at(last); gr != nil && gr.Status == Placed && gr.Source != nil && !gr.Source.Compressed {
		b := make([]byte, grainLength(h, last))
		if _, err := ReadSource(image, gr.Source, b); err != nil {
			inst.grains.set(last, &Grain{Status: Missing, Reason: Reason{Code: ReasonLastGrainUnreadable, Detail: err.Error()}})
			return
		}
		cut := *gr
		cut.Hash = xxhash.Sum64(b)
		inst.grains.set(last, &cut)
	}
}
