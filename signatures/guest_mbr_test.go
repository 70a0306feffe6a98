package signatures

import (
	"encoding/binary"
	"testing"
)

func TestRecognizeMBR(t *testing.T) {
	mbr := func(edit func(s []byte)) []byte {
		s := make([]byte, 512)
		binary.LittleEndian.PutUint16(s[510:], 0xAA55)
		e := s[446:]
		e[0], e[4] = 0x80, 0x83
		binary.LittleEndian.PutUint32(e[8:], 2048)
		binary.LittleEndian.PutUint32(e[12:], 47104)
		if edit != nil {
			edit(s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		s    []byte
		want bool
		end  uint64
	}{
		{"one partition", mbr(nil), true, 49152},
		{"no signature", mbr(func(s []byte) { s[510] = 0 }), false, 0},
		{"bad status byte (boot code)", mbr(func(s []byte) { s[446+16] = 0x33 }), false, 0},
		{"empty entry not zero", mbr(func(s []byte) { s[446+16+8] = 1 }), false, 0},
		{"no partition", mbr(func(s []byte) { clear(s[446:510]) }), false, 0},
		{"partition at sector 0", mbr(func(s []byte) { binary.LittleEndian.PutUint32(s[446+8:], 0) }), false, 0},
		{"NTFS boot sector", func() []byte { s := mbr(nil); copy(s[3:], "NTFS    "); clear(s[446:510]); return s }(), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := recognizeMBR(tc.s, nil)
			if ok != tc.want {
				t.Fatalf("recognized %v, want %v", ok, tc.want)
			}
			if ok && h.MBR.Partitions[0].End() != tc.end {
				t.Errorf("end %d, want %d", h.MBR.Partitions[0].End(), tc.end)
			}
		})
	}
}
