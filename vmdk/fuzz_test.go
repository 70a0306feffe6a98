package vmdk

import (
	"bytes"
	"testing"

	"vmdkcarve/internal/tooltest"
)

func FuzzParseSparseHeader(f *testing.F) {
	f.Add(qemuHeaderSector(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseSparseHeader(b)
		if err == nil {
			// Anything accepted must have bounded derived sizes.
			if h.GDEntries() > MaxGDEntries || h.GrainBytes() > MaxGrainSize*SectorSize {
				t.Fatalf("accepted header with unbounded sizes: %+v", h)
			}
			out, _ := h.MarshalBinary()
			h2, err := ParseSparseHeader(out)
			if err != nil || h2.Capacity != h.Capacity || h2.GDOffset != h.GDOffset {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzParseDescriptor(f *testing.F) {
	f.Add([]byte("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n# Extent description\nRW 131072 SPARSE \"x.vmdk\"\n# The Disk Data Base\nddb.uuid = \"1 2\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err == nil && len(d.Extents) > maxExtents {
			t.Fatalf("%d extents", len(d.Extents))
		}
	})
}

func FuzzDecodeGrain(f *testing.F) {
	rec, _ := EncodeGrain(nil, 128, bytes.Repeat([]byte("abc"), 20000), 6)
	f.Add(rec)
	f.Add(MarshalMetaMarker(4, MarkerGT))
	// A stream cut short (compress/flate and klauspost's inflater once
	// gave each its own number of bytes of it), and one the carve's
	// inflater refuses whose decoding by klauspost's depended on what its
	// pooled decompressor had decoded before.
	f.Add([]byte("000000\x00\x000\x00\x00\x00x\x9c\xec\xc21\r\x00\x00\f\x020\xadc\xfe=`\x83\xa3I\xef2aA2aA2aA2aA2aA2aA2aA2aA2aA200000000000000000000000000000000000000000"))
	f.Add([]byte("000000\x00\x007\x00\x00\x00x\x9c\xec\xc21\r\x00\x00\f\x020\xadc\xfe=`\x83\xa3I\xee.Y\x00!0\x002\x002a\x00Y\x00Y\x00Y\x00Y\x00Y\x00Y\x00Y\x00Y\x000\x00\xe8002\x000"))
	dst := make([]byte, 65536)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, n, err := DecodeGrain(b, dst)
		if err == nil && (n <= 0 || n > len(dst)) {
			t.Fatalf("decoded %d bytes", n)
		}
		checked := bytes.Clone(dst[:max(n, 0)])
		// What the checked decoder accepts, the unchecked one decodes
		// alike: they differ only in the Adler-32 trailer.
		_, k, uerr := DecodeGrainUnchecked(b, dst)
		if uerr == nil && (k <= 0 || k > len(dst)) {
			t.Fatalf("unchecked: decoded %d bytes", k)
		}
		if err == nil && (uerr != nil || !bytes.Equal(checked, dst[:k])) {
			t.Fatalf("checked decoded %d bytes, unchecked %d (%v)", n, k, uerr)
		}
		// The fast inflater may decode a malformed stream otherwise
		// (its caller checks), but never past the grain.
		if _, k, ferr := DecodeGrainFast(b, dst); ferr == nil && (k <= 0 || k > len(dst)) {
			t.Fatalf("fast: decoded %d bytes", k)
		}
		ParseMetaMarker(b)
	})
}

func FuzzESXHeaders(f *testing.F) {
	cowd := make([]byte, 2048)
	copy(cowd, "COWD\x01\x00\x00\x00\x03\x00\x00\x00\x00\x40\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x04\x00\x00\x00\x05\x00\x00\x00")
	f.Add(cowd)
	se := make([]byte, 512)
	copy(se, "\xbe\xba\xfe\xca\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x40")
	f.Add(se)
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseCOWDHeader(b)
		ParseSESparseHeader(b)
		LooksLikeGD(b, 4)
		LooksLikeGT(b, 128, 2)
	})
}

// FuzzGrainMap feeds whole crafted extents to the table reader: claimed
// directories and tables must be bounded by the file, not by the header.
func FuzzGrainMap(f *testing.F) {
	img := testImage(4096)
	var buf tooltest.MemFile
	WriteMonolithicSparse(&buf, SparseWriterOptions{Capacity: 4096, FileName: "x.vmdk"}, readFrom(img))
	f.Add(buf.Bytes)
	f.Fuzz(func(t *testing.T, b []byte) {
		GrainMap(bytes.NewReader(b), int64(len(b)))
	})
}
