package reassemble

import (
	"fmt"
	"io"
	"sort"

	"vmdkcarve/fs/part"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// adoptOrphanStream makes a disk of the grain records no stream owns when
// a stream's header, descriptor, tables and footer are all gone (its
// first and last clusters reused): the records still carry their LBAs.
// It does so only when the records can be one stream's and nothing else:
//
//   - no stream instance was found at all (they could be its records);
//   - every run of records that follow each other is in ascending LBA
//     order, and no LBA occurs twice with different data (two streams'
//     records would collide: then nothing is adopted);
//   - at least minAdoptRecords records.
//
// The grain size is taken as 128 (every writer's) and must divide every
// LBA; the capacity is the end of the guest's partitions (from the record
// of LBA 0, when it holds an MBR) or else the end of the highest record,
// and the notes say which.
func adoptOrphanStream(instances []*Instance, x *hitIndex, image io.ReaderAt) *Instance {
	for _, inst := range instances {
		if inst.Header.Compressed() {
			return nil
		}
	}
	runs := orphanRuns(x, map[int64]bool{})
	var records []*signatures.Hit
	byLBA := make(map[uint64]*signatures.Hit)
	const grainSize = 128
	for _, run := range runs {
		for _, m := range run {
			if m.Grain.LBA%grainSize != 0 || m.Grain.DataBytes != grainSize*vmdk.SectorSize {
				return nil
			}
			if prev := byLBA[m.Grain.LBA]; prev != nil {
				if prev.Grain.Hash != m.Grain.Hash {
					return nil // two streams' records: they cannot be told apart
				}
				continue
			}
			byLBA[m.Grain.LBA] = m
			records = append(records, m)
		}
	}
	if len(records) < minAdoptRecords {
		return nil
	}
	sort.Slice(records, func(i, j int) bool { return records[i].Grain.LBA < records[j].Grain.LBA })
	top := records[len(records)-1].Grain.LBA + grainSize
	capacity, basis := top, fmt.Sprintf("the highest record found (LBA %d) plus one grain", records[len(records)-1].Grain.LBA)
	if m := byLBA[0]; m != nil {
		if end, ok := mbrEnd(image, m); ok && end >= top {
			capacity, basis = end, "the end of the guest's partitions in its MBR (the record of LBA 0)"
		}
	}
	hdr := vmdk.SparseHeader{Version: 3, Flags: vmdk.FlagValidNewlines | vmdk.FlagCompressed | vmdk.FlagMarkers, Capacity: capacity,
		GrainSize: grainSize, NumGTEsPerGT: vmdk.GTEsPerGT, GDOffset: vmdk.GDAtEnd, CompressAlgorithm: vmdk.CompressDeflate}
	inst := &Instance{
		Variant: "streamOptimized (header, descriptor, tables and footer lost)", HeaderOffset: records[0].Offset, Header: &hdr,
		HeaderLost: true, HeaderFrom: HeaderFromRecords, CapacityBound: BoundLower, grains: newDecisions(), markers: records, Tables: "none: grains placed by their records' LBA",
		Notes: []string{fmt.Sprintf("%d grain records no stream claimed, in %d runs, are one stream's: no LBA occurs twice with different data; grain size 128 assumed (every writer's); capacity %d sectors from %s",
			len(records), len(runs), capacity, basis)},
	}
	for _, m := range records {
		gr := markerGrain(inst, m)
		if gr.Source != nil {
			gr.Source.FileOffset = -1 // the file's layout is unknown
		}
		inst.grains.set(m.Grain.LBA/grainSize, gr)
	}
	inst.grains.setRange(0, hdr.Grains(), &Grain{Status: Missing, Reason: Reason{Code: ReasonNoRecordNoTable}})
	return inst
}

// minAdoptRecords is the fewest unclaimed records adopted as a stream.
const minAdoptRecords = 8

// mbrEnd decodes the record of LBA 0 and, if it holds an MBR, returns the
// end of its last partition in sectors.
func mbrEnd(image io.ReaderAt, m *signatures.Hit) (uint64, bool) {
	rec := make([]byte, m.Length)
	if _, err := image.ReadAt(rec, m.Offset); err != nil {
		return 0, false
	}
	grain := make([]byte, 128*vmdk.SectorSize)
	if _, n, err := vmdk.DecodeGrain(rec, grain); err != nil || n < vmdk.SectorSize {
		return 0, false
	}
	if !part.HasSignature(grain) {
		return 0, false
	}
	var end uint64
	for _, e := range part.MBR(grain) {
		if e.Type != 0 {
			end = max(end, e.End())
		}
	}
	return end, end > 0
}
