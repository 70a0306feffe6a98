package vmdk

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// qemuHeader is the first 80 bytes of a qemu-img monolithicSparse header of a
// 64 MiB disk (FORMAT.md §1).
const qemuHeader = "4b444d5601000000030000000000020000000000800000000000000001000000" +
	"0000000014000000000000000002000015000000000000001e00000000000000" +
	"8000000000000000000a200d0a000000"

func qemuHeaderSector(t testing.TB) []byte {
	b, err := hex.DecodeString(qemuHeader)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]byte, SectorSize)
	copy(s, b)
	return s
}

func TestParseSparseHeaderQemu(t *testing.T) {
	h, err := ParseSparseHeader(qemuHeaderSector(t))
	if err != nil {
		t.Fatal(err)
	}
	want := SparseHeader{Version: 1, Flags: 3, Capacity: 0x20000, GrainSize: 128, DescriptorOffset: 1,
		DescriptorSize: 20, NumGTEsPerGT: 512, RGDOffset: 21, GDOffset: 30, OverHead: 128}
	if *h != want {
		t.Fatalf("got %+v\nwant %+v", *h, want)
	}
	if h.GDEntries() != 2 || h.GDSectors() != 1 || h.Grains() != 1024 {
		t.Fatalf("derived sizes: %d entries, %d sectors, %d grains", h.GDEntries(), h.GDSectors(), h.Grains())
	}
	again, _ := h.MarshalBinary()
	if !bytes.Equal(again, qemuHeaderSector(t)) {
		t.Fatal("MarshalBinary does not round-trip the qemu header")
	}
}

func TestParseSparseHeaderRejects(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		patch func(b []byte)
		field string
	}{
		{"version 4", func(b []byte) { le.PutUint32(b[4:], 4) }, "version"},
		{"newline damaged", func(b []byte) { b[75] = 'x' }, "newline bytes"},
		{"unknown flag", func(b []byte) { le.PutUint32(b[8:], 1<<20|1) }, "flags"},
		{"markers without compression", func(b []byte) { le.PutUint32(b[8:], FlagMarkers|1) }, "flags"},
		{"grain 0", func(b []byte) { le.PutUint64(b[20:], 0) }, "grainSize"},
		{"grain 96", func(b []byte) { le.PutUint64(b[20:], 96) }, "grainSize"},
		{"grain 2^21", func(b []byte) { le.PutUint64(b[20:], 1<<21) }, "grainSize"},
		{"gtes 2^31", func(b []byte) { le.PutUint32(b[44:], 1<<31) }, "numGTEsPerGT"},
		{"capacity 2^62", func(b []byte) { le.PutUint64(b[12:], 1<<62) }, "capacity"},
		{"capacity 0", func(b []byte) { le.PutUint64(b[12:], 0) }, "capacity"},
		{"compress 2", func(b []byte) { le.PutUint16(b[77:], 2) }, "compressAlgorithm"},
		{"compress without flag", func(b []byte) { le.PutUint16(b[77:], 1) }, "compressAlgorithm"},
		{"gd 0", func(b []byte) { le.PutUint64(b[56:], 0) }, "gdOffset"},
		{"gd at end, sparse", func(b []byte) { le.PutUint64(b[56:], GDAtEnd) }, "gdOffset"},
		{"gd 2^40", func(b []byte) { le.PutUint64(b[56:], 1<<40) }, "gdOffset"},
		{"rgd 0 with flag", func(b []byte) { le.PutUint64(b[48:], 0) }, "rgdOffset"},
		{"descriptor offset 7", func(b []byte) { le.PutUint64(b[28:], 7) }, "descriptorOffset"},
		{"overhead 2^33", func(b []byte) { le.PutUint64(b[64:], 1<<33) }, "overHead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := qemuHeaderSector(t)
			tc.patch(b)
			_, err := ParseSparseHeader(b)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a FormatError on %s", err, tc.field)
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("err %v does not wrap ErrFormat", err)
			}
		})
	}
}

// TestTruncation cuts every structure at every length: parsers must return
// an error, never panic.
func TestTruncation(t *testing.T) {
	hdr := qemuHeaderSector(t)
	desc := []byte("# Disk DescriptorFile\nversion=1\nCID=2b7de084\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\nRW 131072 SPARSE \"ms.vmdk\"\n")
	grain, _ := EncodeGrain(nil, 128, bytes.Repeat([]byte("grain data "), 5958), 6)
	for n := 0; n < len(hdr); n++ {
		if _, err := ParseSparseHeader(hdr[:n]); err == nil {
			t.Fatalf("header cut at %d parsed", n)
		}
	}
	for n := 0; n < len(grain); n++ {
		if _, _, err := DecodeGrain(grain[:n], make([]byte, 65536)); err == nil && n < 12+int(binary.LittleEndian.Uint32(grain[8:])) {
			t.Fatalf("grain record cut at %d decoded", n)
		}
	}
	for n := 0; n < len(desc); n++ {
		ParseDescriptor(desc[:n]) // a cut descriptor may still parse; it must not panic
	}
}

func TestParseDescriptor(t *testing.T) {
	text := "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=2b7de084\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\nRW 131072 SPARSE \"ms.vmdk\"\nRDONLY 2048 FLAT \"f.vmdk\" 77\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.uuid = \"60 00 C2 9e\"\n"
	d, err := ParseDescriptor(append([]byte(text), make([]byte, 300)...))
	if err != nil {
		t.Fatal(err)
	}
	if d.CID != 0x2b7de084 || !d.HasCID || d.ParentCID != 0xffffffff || d.CreateType != "monolithicSparse" {
		t.Fatalf("%+v", d)
	}
	want := []Extent{{"RW", 131072, "SPARSE", "ms.vmdk", 0}, {"RDONLY", 2048, "FLAT", "f.vmdk", 77}}
	if len(d.Extents) != 2 || d.Extents[0] != want[0] || d.Extents[1] != want[1] {
		t.Fatalf("extents %+v", d.Extents)
	}
	if d.Capacity() != 133120 || d.UUID() != "60 00 C2 9e" {
		t.Fatalf("capacity %d uuid %q", d.Capacity(), d.UUID())
	}
	for _, bad := range []string{"", "version=1\n", "# Disk DescriptorFile\nversion=1\n", "# Disk DescriptorFile\n" + strings.Repeat("x", 5000) + "\n"} {
		if _, err := ParseDescriptor([]byte(bad)); err == nil {
			t.Errorf("ParseDescriptor(%.40q) accepted", bad)
		}
	}
}

func TestGrainRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	rec, err := EncodeGrain(nil, 256, data, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec)%SectorSize != 0 {
		t.Fatalf("record of %d bytes is not sector-padded", len(rec))
	}
	dst := make([]byte, 65536)
	m, n, err := DecodeGrain(rec, dst)
	if err != nil || m.LBA != 256 || n != len(data) || !bytes.Equal(dst, data) {
		t.Fatalf("m=%+v n=%d err=%v", m, n, err)
	}
	// A grain that decodes to more than the buffer is refused.
	if _, _, err := DecodeGrain(rec, make([]byte, 1000)); err == nil {
		t.Fatal("oversized grain accepted")
	}
	// Damaged compressed bytes fail the Adler-32 or the inflate.
	bad := append([]byte(nil), rec...)
	bad[40] ^= 0xff
	if _, _, err := DecodeGrain(bad, dst); !errors.Is(err, ErrGrainData) {
		t.Fatalf("damaged grain: %v", err)
	}
}

// TestDecodeGrainUnchecked: the unchecked decoder decodes what the checked
// one does and refuses what it refuses, but for a damaged Adler-32, which
// only the checked one reads (rebuild's own hash catches the rest).
func TestDecodeGrainUnchecked(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	rec, err := EncodeGrain(nil, 256, data, 9)
	if err != nil {
		t.Fatal(err)
	}
	size := 12 + int(binary.LittleEndian.Uint32(rec[8:]))
	damaged := func(i int) []byte {
		b := bytes.Clone(rec)
		b[i] ^= 0xff
		return b
	}
	// cut is the record with its zlib stream cut after n bytes, its size
	// field saying so: a stream that never ends.
	cut := func(n int) []byte {
		b := bytes.Clone(rec[:12+n])
		binary.LittleEndian.PutUint32(b[8:], uint32(n))
		return b
	}
	for _, tc := range []struct {
		name               string
		rec                []byte
		dst                int
		checked, unchecked bool // accepted
	}{
		{"intact", rec, 65536, true, true},
		{"short last grain", rec, 65536 + 512, true, true},
		{"adler-32 damaged", damaged(size - 1), 65536, false, true},
		{"deflate data damaged", damaged(40), 65536, false, false},
		{"more than the buffer", rec, 1000, false, false},
		{"truncated record", rec[:size-8], 65536, false, false},
		{"stream cut before its end", cut((size - 12) / 2), 65536, false, false},
		{"stream cut before its Adler-32", cut(size - 12 - 4), 65536, false, true},
		{"zlib header damaged", damaged(12), 65536, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, tc.dst)
			_, n, err := DecodeGrain(tc.rec, dst)
			if (err == nil) != tc.checked {
				t.Fatalf("DecodeGrain: %v, want accepted %v", err, tc.checked)
			}
			_, k, err := DecodeGrainUnchecked(tc.rec, dst)
			if (err == nil) != tc.unchecked {
				t.Fatalf("DecodeGrainUnchecked: %v, want accepted %v", err, tc.unchecked)
			}
			if tc.unchecked && (k != len(data) || !bytes.Equal(dst[:k], data)) {
				t.Fatalf("DecodeGrainUnchecked decoded %d bytes, not the grain", k)
			}
			if tc.checked && n != k {
				t.Fatalf("decoded %d bytes checked, %d unchecked", n, k)
			}
		})
	}
}

// TestDecodeGrainFast: the fast inflater decodes the records compress/zlib
// writes, at every level and for text, random bytes, zeros and a short last
// grain, to the bytes the carve's inflater gives.
func TestDecodeGrainFast(t *testing.T) {
	random := make([]byte, 65536)
	rand.NewChaCha8([32]byte{1}).Read(random)
	half := bytes.Clone(testImage(128)[:65536])
	clear(half[32<<10:])
	for name, data := range map[string][]byte{
		"text":       testImage(128)[:65536],
		"random":     random,
		"zeros":      make([]byte, 65536),
		"half zeros": half,
		"short last": testImage(128)[:5*512],
	} {
		for _, level := range []int{0, 1, 6, 9} {
			rec, err := EncodeGrain(nil, 128, data, level)
			if err != nil {
				t.Fatal(err)
			}
			want, got := make([]byte, 65536), make([]byte, 65536)
			_, n, err := DecodeGrainUnchecked(rec, want)
			if err != nil {
				t.Fatalf("%s, level %d: %v", name, level, err)
			}
			_, k, err := DecodeGrainFast(rec, got)
			if err != nil || k != n || !bytes.Equal(got[:k], want[:n]) {
				t.Errorf("%s, level %d: fast decoded %d bytes (%v), the carve's inflater %d", name, level, k, err, n)
			}
		}
	}
}

func TestMetaMarker(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		typ  uint32
		want bool
	}{{4, MarkerGT, true}, {1, MarkerGD, true}, {1, MarkerFooter, true}, {0, MarkerEOS, false}, {5, MarkerGT, false}, {2, MarkerFooter, false}, {1, 9, false}} {
		_, err := ParseMetaMarker(MarshalMetaMarker(tc.n, tc.typ))
		if (err == nil) != tc.want {
			t.Errorf("marker %d/%d: err=%v", tc.n, tc.typ, err)
		}
	}
}

func TestLooksLikeTables(t *testing.T) {
	gd := EncodeEntries([]uint32{31, 35, 39})
	if n, ok := LooksLikeGD(gd, 4); !ok || n != 3 {
		t.Fatalf("GD: %d %v", n, ok)
	}
	if _, ok := LooksLikeGD(EncodeEntries([]uint32{31, 36}), 4); ok {
		t.Fatal("GD with step 5 accepted")
	}
	gt := make([]uint32, 512)
	gt[0], gt[5], gt[9] = 128, 256, 384
	if s, ok := LooksLikeGT(EncodeEntries(gt), 128, 2); !ok || s.NonZero != 3 || s.Min != 128 || s.Max != 384 {
		t.Fatalf("GT: %+v %v", s, ok)
	}
	gt[9] = 256
	if _, ok := LooksLikeGT(EncodeEntries(gt), 128, 2); ok {
		t.Fatal("GT with a repeated entry accepted")
	}
}
