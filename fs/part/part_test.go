package part

import (
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"testing"
	"vmdkcarve/internal/tooltest"
)

// gptDisk is a 3 MiB GPT disk (tooltest.GPTDisk): 128 entries at LBA 2,
// one used (LBAs 2048..4095), checksums right, the backup header's LBA
// the disk's last sector (6143).
func gptDisk() []byte { return tooltest.GPTDisk(make([]byte, 1<<20)) }

func TestMBR(t *testing.T) {
	s := make([]byte, SectorSize)
	e := s[TableOffset+EntrySize:]
	e[0], e[4] = 0x80, 0x83
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 4096)
	if HasSignature(s) {
		t.Error("signature without the signature")
	}
	binary.LittleEndian.PutUint16(s[510:], Signature)
	if !HasSignature(s) || HasSignature(s[:511]) {
		t.Error("signature not seen, or seen in a short sector")
	}
	got := MBR(s)
	want := [Entries]Entry{{}, {Status: 0x80, Type: 0x83, Start: 2048, Sectors: 4096}, {}, {}}
	if got != want {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	if got[1].Offset() != 1<<20 || got[1].Length() != 2<<20 || got[1].End() != 6144 {
		t.Errorf("entry 1: offset %d length %d end %d", got[1].Offset(), got[1].Length(), got[1].End())
	}
	// Entry 1 is cut by the sector's end: it is not decoded.
	if MBR(s[:TableOffset+EntrySize+8]) != ([Entries]Entry{}) || MBR(s[:100]) != ([Entries]Entry{}) {
		t.Error("a short sector decodes entries past its end")
	}
}

func TestGPT(t *testing.T) {
	for _, tc := range []struct {
		name  string
		head  func() []byte
		want  []Partition
		empty bool // a good GPT with no used entry
	}{
		{"good", func() []byte { return gptDisk() }, []Partition{{Offset: 2048 * SectorSize, Length: 2048 * SectorSize}}, false},
		{"no used entry", func() []byte {
			h := gptDisk()
			clear(h[2*SectorSize : 2*SectorSize+128*128])
			binary.LittleEndian.PutUint32(h[SectorSize+gptEntriesCRC:], crc32.ChecksumIEEE(h[2*SectorSize:2*SectorSize+128*128]))
			clear(h[SectorSize+gptHeaderCRC : SectorSize+gptHeaderCRC+4])
			binary.LittleEndian.PutUint32(h[SectorSize+gptHeaderCRC:], crc32.ChecksumIEEE(h[SectorSize:SectorSize+gptHeaderSize]))
			return h
		}, nil, true},
		{"header checksum wrong", func() []byte { h := gptDisk(); h[SectorSize+gptHeaderCRC]++; return h }, nil, false},
		{"entries checksum wrong", func() []byte { h := gptDisk(); h[2*SectorSize+100]++; return h }, nil, false},
		{"entries past the head", func() []byte { return gptDisk()[:20*SectorSize] }, nil, false},
		{"no signature", func() []byte { h := gptDisk(); h[SectorSize] = 'X'; return h }, nil, false},
		{"too short", func() []byte { return gptDisk()[:SectorSize+4] }, nil, false},
	} {
		got := GPT(tc.head())
		if tc.empty {
			if got == nil || len(got) != 0 {
				t.Errorf("%s: %v, want an empty non-nil list", tc.name, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if alt, ok := GPTAlternateLBA(gptDisk()); !ok || alt != 6143 {
		t.Errorf("alternate LBA %d %v", alt, ok)
	}
	if _, ok := GPTAlternateLBA(make([]byte, 4096)); ok {
		t.Error("alternate LBA without a GPT")
	}
}

// FuzzParse: crafted heads give an error or nothing, never a panic, and a
// GPT's partitions lie past its entries.
func FuzzParse(f *testing.F) {
	f.Add(gptDisk())
	f.Add(gptDisk()[:SectorSize*3])
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = MBR(b)
		_ = HasSignature(b)
		_, _ = GPTAlternateLBA(b)
		for _, p := range GPT(b) {
			if p.Offset <= 0 || p.Length <= 0 {
				t.Fatalf("partition %+v", p)
			}
		}
	})
}
