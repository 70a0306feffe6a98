package signatures

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"vmdkcarve/vmdk"
)

func find(name string) *Recognizer {
	for i := range registry {
		if registry[i].Name == name {
			return &registry[i]
		}
	}
	panic(name)
}

func window(r *Recognizer, b []byte) (Hit, bool) {
	return Run(r, b[:min(len(b), r.Window)], make([]byte, r.ScratchBytes))
}

func sparseHeader() []byte {
	l, _ := vmdk.NewSparseLayout(131072, 128, true)
	b, _ := l.Header.MarshalBinary()
	return b
}

func TestRecognizers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	grainData := make([]byte, 65536)
	for i := range grainData {
		grainData[i] = byte('a' + rng.IntN(26))
	}
	grain, _ := vmdk.EncodeGrain(nil, 128, grainData, 6)
	descText := []byte("# Disk DescriptorFile\nversion=1\nCID=2b7de084\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\nRW 131072 SPARSE \"ms.vmdk\"\n\x00\x00")
	damagedHeader := sparseHeader()
	damagedHeader[100] = 1
	badVersion := sparseHeader()
	binary.LittleEndian.PutUint32(badVersion[44:], 1<<31)
	gt := make([]uint32, 512)
	gt[3], gt[4] = 128, 256
	cowd := make([]byte, 2048)
	copy(cowd, "COWD")
	for i, v := range []uint32{1, 3, 16384, 1, 4, 4, 5} {
		binary.LittleEndian.PutUint32(cowd[4+4*i:], v)
	}
	for _, tc := range []struct {
		recognizer string
		in         []byte
		match      bool
		verdict    Verdict
	}{
		{"sparse-header", sparseHeader(), true, Valid},
		{"sparse-header", damagedHeader, true, Damaged},
		{"sparse-header", badVersion, true, Damaged},
		{"sparse-header", []byte("KDMV\x01\x00\x00\x00 in a binary, not aligned, not a header"), false, ""},
		{"descriptor", descText, true, Valid},
		{"descriptor", []byte("# Disk DescriptorFile\n%s\n"), false, ""},
		{"grain-marker", grain, true, Valid},
		{"grain-marker", grain[:300], true, Damaged},
		{"meta-marker", vmdk.MarshalMetaMarker(4, vmdk.MarkerGT), true, Valid},
		{"meta-marker", make([]byte, 512), false, ""},
		{"grain-directory", vmdk.EncodeEntries([]uint32{31, 35}), true, Valid},
		{"grain-table", vmdk.EncodeEntries(gt), true, Valid},
		{"grain-table", make([]byte, 2048), false, ""},
		{"cowd-header", cowd, true, Valid},
	} {
		h, ok := window(find(tc.recognizer), tc.in)
		if ok != tc.match || (ok && h.Verdict != tc.verdict) {
			t.Errorf("%s on %.24q: match=%v verdict=%q reason=%q; want %v %q", tc.recognizer, tc.in, ok, h.Verdict, h.Reason, tc.match, tc.verdict)
		}
	}
}

// TestNoiseHasNoHits runs every recognizer over random bytes at every
// sector: the validity rules must reject all of it.
func TestNoiseHasNoHits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 8<<20)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	for _, r := range All() {
		scratch := make([]byte, r.ScratchBytes)
		for off := 0; off < len(noise); off += r.Align {
			if h, ok := Run(&r, noise[off:min(len(noise), off+r.Window)], scratch); ok {
				t.Fatalf("%s matched noise at %d: %+v", r.Name, off, h)
			}
		}
	}
}

func TestSelect(t *testing.T) {
	rs, err := Select(nil, []string{"grain-table"})
	if err != nil || len(rs) != len(registry)-1 {
		t.Fatalf("%d %v", len(rs), err)
	}
	if _, err := Select([]string{"nope"}, nil); err == nil {
		t.Fatal("unknown name accepted")
	}
}

func FuzzRecognizers(f *testing.F) {
	f.Add(sparseHeader())
	grain, _ := vmdk.EncodeGrain(nil, 0, bytes.Repeat([]byte{1, 2, 3}, 100), 6)
	f.Add(grain)
	f.Add(vmdk.EncodeEntries([]uint32{21, 25, 29}))
	rs := All()
	scratch := make([][]byte, len(rs))
	for i := range rs {
		scratch[i] = make([]byte, rs[i].ScratchBytes)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range rs {
			h, ok := rs[i].Recognize(b[:min(len(b), rs[i].Window)], scratch[i])
			if ok && h.Kind == "" {
				t.Fatalf("%s: hit without kind", rs[i].Name)
			}
		}
	})
}
