package signatures

import "vmdkcarve/fs/part"

// Guest partition tables: a raw ("flat") VMDK extent has no header of its
// own, only the guest disk's bytes, whose sector 0 is the guest's MBR (or
// a GPT's protective MBR). Where such a sector lies is where a flat extent
// may start; its partitions say how large the disk must at least be.

// MBRInfo is a partition table sector.
type MBRInfo struct {
	Partitions []MBRPartition `json:"partitions"`
}

// MBRPartition is one used entry of the table.
type MBRPartition struct {
	Type    byte   `json:"type"`
	Boot    bool   `json:"boot,omitempty"`
	Start   uint32 `json:"start"`   // first sector
	Sectors uint32 `json:"sectors"` // length in sectors
}

// End is the sector after the partition.
func (p MBRPartition) End() uint64 { return uint64(p.Start) + uint64(p.Sectors) }

func init() {
	register(Recognizer{
		Name: "partition-table", Kind: KindMBR, Align: 512, Window: 512,
		Doc:       "MBR (or GPT protective MBR) sector: where a flat extent (raw guest disk) may start",
		Recognize: recognizeMBR,
		Magics:    []Magic{{Offset: part.SectorSize - 8, Mask: 0xFFFF << 48, Value: part.Signature << 48}},
	})
}

// recognizeMBR accepts a sector ending in 0x55AA whose four entries are
// all well formed (status 0 or 0x80, an empty entry all zero) and at least
// one of which is a partition starting past sector 0. A volume boot sector
// (NTFS, FAT) has code where the table would be and fails the status test.
func recognizeMBR(w, _ []byte) (Hit, bool) {
	if !part.HasSignature(w) {
		return Hit{}, false
	}
	var info MBRInfo
	for _, e := range part.MBR(w) {
		if e.Status != 0 && e.Status != 0x80 {
			return Hit{}, false
		}
		p := MBRPartition{Type: e.Type, Boot: e.Status == 0x80, Start: e.Start, Sectors: e.Sectors}
		if p.Type == 0 {
			if p.Start != 0 || p.Sectors != 0 || e.Status != 0 {
				return Hit{}, false
			}
			continue
		}
		if p.Start == 0 || p.Sectors == 0 {
			return Hit{}, false
		}
		info.Partitions = append(info.Partitions, p)
	}
	if len(info.Partitions) == 0 {
		return Hit{}, false
	}
	return Hit{Kind: KindMBR, Verdict: Valid, Length: 512, MBR: &info}, true
}
