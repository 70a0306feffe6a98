package reassemble

import (
	"fmt"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/internal/entropy"
	"vmdkcarve/internal/formaterr"
	"vmdkcarve/vmdk"
)

// walkMappedStream reads a stream's records in file order through its host
// map. The carver sees a record only where its bytes are one run in the
// image; a record split across two fragments of the host file is found
// only this way. Every record it decodes that the carved markers did not
// already place is placed, with its pieces. The walk stops at the first
// thing that is not a record or a GT/GD marker (the footer, the end of the
// stream, or damage: the carved markers past it still count).
func walkMappedStream(inst *Instance, view *fileView, placed map[uint64]bool) int {
	h := inst.Header
	gb := h.GrainBytes()
	// A record is the marker, the compressed grain and padding to a sector.
	rec := make([]byte, (12+vmdk.MaxCompressedGrain(gb)+vmdk.SectorSize-1)/vmdk.SectorSize*vmdk.SectorSize)
	data := make([]byte, gb)
	added := 0
	stop := "end of the mapped file"
	pos := int64(h.OverHead) * vmdk.SectorSize
	size := view.size()
	for steps := uint64(0); steps <= 2*h.Grains()+64 && pos+vmdk.SectorSize <= size; steps++ {
		var sec [vmdk.SectorSize]byte
		if _, err := view.ReadAt(sec[:], pos); err != nil {
			stop = err.Error()
			break
		}
		if vmdk.IsMetaMarker(sec[:]) {
			m, err := vmdk.ParseMetaMarker(sec[:])
			if err != nil || (m.Type != vmdk.MarkerGT && m.Type != vmdk.MarkerGD) {
				stop = "a sector that is neither a record nor a GT/GD marker"
				break
			}
			pos += int64(1+m.NumSectors) * vmdk.SectorSize
			continue
		}
		marker, ok := vmdk.PeekGrainMarker(sec[:], h.GrainSize, h.Capacity)
		if !ok {
			stop = "a sector that is not a grain marker"
			break
		}
		n := marker.RecordBytes()
		if n > int64(len(rec)) || pos+n > size {
			stop = "a record running past the file"
			break
		}
		if _, err := view.ReadAt(rec[:n], pos); err != nil {
			stop = err.Error()
			break
		}
		_, k, err := vmdk.DecodeGrain(rec[:n], data)
		if err != nil {
			if img, ierr := view.imageOffset(pos, vmdk.SectorSize); ierr == nil {
				err = formaterr.AtImage(img, err)
			}
			stop = err.Error()
			break
		}
		g := marker.LBA / h.GrainSize
		if !placed[g] {
			pieces, err := view.pieces(pos, n)
			if err == nil {
				gr := &Grain{Status: Placed, Evidence: []string{EvMarker, EvHost}, Hash: xxhash.Sum64(data[:k]), Copies: 1,
					Reason: Reason{Code: ReasonRecordViaHostMap},
					Source: &Source{Instance: inst.ID, ImageOffset: firstStored(pieces), FileOffset: pos, Compressed: true, RecordBytes: n, Pieces: pieces}}
				if entropy.Zero(data[:k]) {
					gr = &Grain{Status: Zero, Evidence: []string{EvMarker}, Reason: Reason{Code: ReasonRecordZeros}}
				}
				inst.grains.set(g, gr)
				placed[g] = true
				added++
			}
		}
		pos += n
	}
	inst.Notes = append(inst.Notes, fmt.Sprintf("walked the records through the host map up to file offset %d (%s): %d records the carve could not see whole", pos, stop, added))
	return added
}
