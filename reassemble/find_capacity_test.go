package reassemble

import (
	"bytes"
	"encoding/binary"
	"testing"

	"vmdkcarve/vmdk"
)

// TestRefineLostCapacity: the guest's partition table narrows a capacity
// the grain directory only bounds, and is ignored where it does not fit.
func TestRefineLostCapacity(t *testing.T) {
	mbr := func(start, length uint32) []byte {
		b := make([]byte, 64<<10)
		binary.LittleEndian.PutUint16(b[510:], 0xAA55)
		b[446+4] = 0x83
		binary.LittleEndian.PutUint32(b[446+8:], start)
		binary.LittleEndian.PutUint32(b[446+12:], length)
		return b
	}
	gpt := func(alt uint64) []byte {
		b := mbr(1, 0xFFFFFFFF)
		b[446+4] = 0xEE
		copy(b[512:], "EFI PART")
		binary.LittleEndian.PutUint64(b[512+32:], alt)
		return b
	}
	for _, tc := range []struct {
		name     string
		grain0   []byte
		placedAt uint64 // a placed grain besides grain 0 (0: none)
		want     uint64
	}{
		{"MBR partition end", mbr(2048, 47104), 0, 49152},
		{"GPT backup header", gpt(40959), 0, 40960},
		{"partition past the bound", mbr(2048, 70000), 0, 65536},
		{"a placed grain past the partition end", mbr(2048, 47104), 400, 65536},
		{"no partition table", make([]byte, 64<<10), 0, 65536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &vmdk.SparseHeader{Capacity: 65536, GrainSize: 128, NumGTEsPerGT: vmdk.GTEsPerGT}
			inst := &Instance{Header: h, grains: newDecisions()}
			inst.grains.set(0, &Grain{Status: Placed, Source: &Source{ImageOffset: 0}})
			if tc.placedAt > 0 {
				inst.grains.set(tc.placedAt, &Grain{Status: Placed, Source: &Source{ImageOffset: 0}})
			}
			refineLostCapacity(inst, bytes.NewReader(tc.grain0))
			if h.Capacity != tc.want {
				t.Errorf("capacity %d, want %d (notes %v)", h.Capacity, tc.want, inst.Notes)
			}
		})
	}
}
