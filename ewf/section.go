package ewf

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/adler32"
	"strconv"
)

var le = binary.LittleEndian

// IsEWF reports whether b (the first bytes of a file) starts an EWF-E01
// segment file.
func IsEWF(b []byte) bool {
	return len(b) >= len(Signature) && string(b[:len(Signature)]) == Signature
}

// Signatures of the related formats this package does not read: EWF2
// (.Ex01, EnCase 7's second format), its logical variant (.Lx01), and the
// logical evidence files of EWF-L01 (.L01), which hold files, not media.
var otherSignatures = []struct{ magic, name string }{
	{"EVF2\r\n\x81\x00", "EWF2 (Ex01)"},
	{"LEF2\r\n\x81\x00", "EWF2 logical evidence (Lx01)"},
	{"LVF\x09\x0d\x0a\xff\x00", "EWF logical evidence (L01)"},
}

// OtherFormat names the related format b starts (EWF2, L01, Lx01), which
// this package does not read, or returns "".
func OtherFormat(b []byte) string {
	for _, o := range otherSignatures {
		if len(b) >= len(o.magic) && string(b[:len(o.magic)]) == o.magic {
			return o.name
		}
	}
	return ""
}

// ParseFileHeader checks a segment file's 13-byte header and returns its
// segment number.
func ParseFileHeader(b []byte) (int, error) {
	if !IsEWF(b) {
		return 0, ErrNotEWF
	}
	if len(b) < fileHeaderSize {
		return 0, &FormatError{Struct: "file header", Field: "length", Value: len(b), Reason: "shorter than 13 bytes", Err: ErrTruncated}
	}
	if b[fhStartFields] != 1 {
		return 0, &FormatError{Struct: "file header", Offset: fhStartFields, Field: "start of fields", Value: b[fhStartFields], Reason: "want 1"}
	}
	n := int(le.Uint16(b[fhSegment:]))
	if n == 0 || n > MaxSegments {
		return 0, &FormatError{Struct: "file header", Offset: fhSegment, Field: "segment number", Value: n, Reason: "want 1 or more, as many as the naming scheme can name"}
	}
	return n, nil
}

// A section is one section descriptor: its type and where it and its data
// lie in the segment file.
type section struct {
	Type   string
	Offset int64 // of the descriptor
	Next   int64 // of the next descriptor (Offset itself for next and done)
	Size   int64 // as the descriptor says, descriptor included (0 for next and done)
}

// dataStart and dataEnd bound the section's data: after its descriptor, up
// to the next section.
func (s section) dataStart() int64 { return s.Offset + descriptorSize }
func (s section) dataEnd() int64   { return max(s.Next, s.dataStart()) }

// parseDescriptor reads the section descriptor b (76 bytes) found at
// offset off of a segment file of fileSize bytes. It checks the checksum,
// that the section lies inside the file, and that it advances: the next
// section starts after this one's descriptor (next and done sections
// end the walk), and a size, when given, agrees with the next offset
// (a reader that believed one and not the other could be shown another
// image than one that believed the other).
func parseDescriptor(b []byte, off, fileSize int64) (section, error) {
	if len(b) < descriptorSize {
		return section{}, &FormatError{Struct: "section descriptor", Offset: off, Field: "length", Value: len(b), Reason: "cut short by the end of the file", Err: ErrTruncated}
	}
	b = b[:descriptorSize]
	if got, want := adler32.Checksum(b[:sdChecksum]), le.Uint32(b[sdChecksum:]); got != want {
		return section{}, &FormatError{Struct: "section descriptor", Offset: off + sdChecksum, Field: "checksum", Value: want, Reason: "Adler-32 of the descriptor is " + hex32(got), Err: ErrChecksum}
	}
	typ := b[sdType : sdType+16]
	if i := bytes.IndexByte(typ, 0); i >= 0 {
		typ = typ[:i]
	}
	s := section{Type: string(typ), Offset: off}
	for _, c := range typ {
		if c < 0x20 || c > 0x7e {
			return section{}, &FormatError{Struct: "section descriptor", Offset: off + sdType, Field: "type", Value: hex.EncodeToString(typ), Reason: "not a printable name"}
		}
	}
	next, size := le.Uint64(b[sdNext:]), le.Uint64(b[sdSize:])
	if next > uint64(fileSize) {
		return section{}, &FormatError{Struct: "section descriptor", Offset: off + sdNext, Field: s.Type + " next offset", Value: next,
			Reason: "past the end of the file (" + itoa(fileSize) + " bytes): the segment is truncated", Err: ErrTruncated}
	}
	if size > uint64(fileSize) {
		return section{}, &FormatError{Struct: "section descriptor", Offset: off + sdSize, Field: s.Type + " size", Value: size,
			Reason: "larger than the file (" + itoa(fileSize) + " bytes): the segment is truncated", Err: ErrTruncated}
	}
	s.Next, s.Size = int64(next), int64(size)
	switch {
	case s.Type == secNext || s.Type == secDone:
		// The last section of its file: EnCase's name themselves, the
		// original format's do not; nothing is read after them either way.
	case s.Next < off+descriptorSize:
		return section{}, &FormatError{Struct: "section descriptor", Offset: off + sdNext, Field: s.Type + " next offset", Value: next, Reason: "does not advance past the descriptor"}
	case s.Size != 0 && off+s.Size != s.Next:
		return section{}, &FormatError{Struct: "section descriptor", Offset: off + sdSize, Field: s.Type + " size", Value: size,
			Reason: "disagrees with the next section offset " + itoa(s.Next)}
	}
	return s, nil
}

// Volume is what the volume section says about the media.
type Volume struct {
	ChunkCount      int64
	SectorsPerChunk int64
	BytesPerSector  int64
	SectorCount     int64
	SetID           [16]byte // segment file set GUID (zero when not written)
}

// ChunkSize is the media bytes a chunk holds.
func (v *Volume) ChunkSize() int64 { return v.SectorsPerChunk * v.BytesPerSector }

// MediaSize is the media's size in bytes.
func (v *Volume) MediaSize() int64 { return v.SectorCount * v.BytesPerSector }

// parseVolume reads volume (or disk, or data) section data b found at
// offset off: the EWF-E01 layout when b holds 1052 bytes, else the
// original 94-byte one.
func parseVolume(b []byte, off int64) (Volume, error) {
	bad := func(field string, at int64, v any, why string) (Volume, error) {
		return Volume{}, &FormatError{Struct: "volume", Offset: off + at, Field: field, Value: v, Reason: why}
	}
	var v Volume
	switch {
	case len(b) >= volumeSizeE01:
		if got, want := adler32.Checksum(b[:volChecksumE01]), le.Uint32(b[volChecksumE01:]); got != want {
			return Volume{}, &FormatError{Struct: "volume", Offset: off + volChecksumE01, Field: "checksum", Value: want, Reason: "Adler-32 of the section data is " + hex32(got), Err: ErrChecksum}
		}
		v.SectorCount = int64(min(le.Uint64(b[volSectorCount:]), 1<<62))
		copy(v.SetID[:], b[volSetID:])
	case len(b) >= volumeSizeEWF:
		if got, want := adler32.Checksum(b[:volChecksumEWF]), le.Uint32(b[volChecksumEWF:]); got != want {
			return Volume{}, &FormatError{Struct: "volume", Offset: off + volChecksumEWF, Field: "checksum", Value: want, Reason: "Adler-32 of the section data is " + hex32(got), Err: ErrChecksum}
		}
		v.SectorCount = int64(le.Uint32(b[volSectorCount:]))
	default:
		return Volume{}, &FormatError{Struct: "volume", Offset: off, Field: "length", Value: len(b), Reason: "shorter than the 94 bytes of the smallest layout", Err: ErrTruncated}
	}
	v.ChunkCount = int64(le.Uint32(b[volChunkCount:]))
	v.SectorsPerChunk = int64(le.Uint32(b[volSectorsPerChunk:]))
	v.BytesPerSector = int64(le.Uint32(b[volBytesPerSector:]))
	switch {
	case v.BytesPerSector == 0 || v.BytesPerSector > MaxBytesPerSector:
		return bad("bytes per sector", volBytesPerSector, v.BytesPerSector, "want 1 to "+itoa(MaxBytesPerSector))
	case v.SectorsPerChunk == 0 || v.SectorsPerChunk*v.BytesPerSector > MaxChunkSize:
		return bad("sectors per chunk", volSectorsPerChunk, v.SectorsPerChunk, "want chunks of 1 to "+itoa(MaxChunkSize)+" bytes")
	case v.SectorCount > (1<<62)/v.BytesPerSector:
		return bad("sector count", volSectorCount, v.SectorCount, "media larger than 4 EiB")
	case v.ChunkCount < ceilDiv(v.SectorCount, v.SectorsPerChunk):
		return bad("chunk count", volChunkCount, v.ChunkCount, "fewer chunks than the "+itoa(v.SectorCount)+" sectors need")
	}
	return v, nil
}

// sameMedia reports whether two volume sections describe the same media
// (a data section must repeat its set's volume section).
func (v *Volume) sameMedia(w *Volume) bool {
	return v.ChunkCount == w.ChunkCount && v.SectorsPerChunk == w.SectorsPerChunk &&
		v.BytesPerSector == w.BytesPerSector && v.SectorCount == w.SectorCount && v.SetID == w.SetID
}

// parseTableHeader reads a table (or table2) section's 24-byte header
// found at offset off, from a section holding dataLen bytes of data, and
// returns its entry count and base offset. The count is bounded by the
// section: its entries and footer must fit in it.
func parseTableHeader(b []byte, off, dataLen int64) (count int64, base int64, err error) {
	if len(b) < tableHeaderSize || dataLen < tableHeaderSize {
		return 0, 0, &FormatError{Struct: "table", Offset: off, Field: "length", Value: min(int64(len(b)), dataLen), Reason: "shorter than the 24-byte table header", Err: ErrTruncated}
	}
	if got, want := adler32.Checksum(b[:thChecksum]), le.Uint32(b[thChecksum:]); got != want {
		return 0, 0, &FormatError{Struct: "table", Offset: off + thChecksum, Field: "header checksum", Value: want, Reason: "Adler-32 of the header is " + hex32(got), Err: ErrChecksum}
	}
	count = int64(le.Uint32(b[thCount:]))
	if room := (dataLen - tableHeaderSize) / tableEntrySize; count > room {
		return 0, 0, &FormatError{Struct: "table", Offset: off + thCount, Field: "entry count", Value: count, Reason: "more entries than the section holds (" + itoa(room) + ")", Err: ErrTruncated}
	}
	b64 := le.Uint64(b[thBase:])
	if b64 > 1<<62 {
		return 0, 0, &FormatError{Struct: "table", Offset: off + thBase, Field: "base offset", Value: b64, Reason: "beyond any file"}
	}
	return count, int64(b64), nil
}

// entryOffset is a table entry's chunk offset in the segment file.
func entryOffset(base int64, e uint32) int64 { return base + int64(e&entryOffsetMask) }

// StoredHash is a digest of the media an EWF set records.
type StoredHash struct {
	Name    string // "md5" or "sha1"
	Section string // the section it was read from: "hash" or "digest"
	Value   string // hex
}

// parseHash reads hash section data b at offset off: an MD5 (all zeros
// when none was computed).
func parseHash(b []byte, off int64) ([]StoredHash, error) {
	if len(b) < hashSize {
		return nil, &FormatError{Struct: "hash", Offset: off, Field: "length", Value: len(b), Reason: "shorter than 36 bytes", Err: ErrTruncated}
	}
	if got, want := adler32.Checksum(b[:hashChecksum]), le.Uint32(b[hashChecksum:]); got != want {
		return nil, &FormatError{Struct: "hash", Offset: off + hashChecksum, Field: "checksum", Value: want, Reason: "Adler-32 of the section data is " + hex32(got), Err: ErrChecksum}
	}
	return storedHashes(nil, secHash, "md5", b[:16]), nil
}

// parseDigest reads digest section data b at offset off: an MD5 and a
// SHA-1 (each all zeros when not computed).
func parseDigest(b []byte, off int64) ([]StoredHash, error) {
	if len(b) < digestSize {
		return nil, &FormatError{Struct: "digest", Offset: off, Field: "length", Value: len(b), Reason: "shorter than 80 bytes", Err: ErrTruncated}
	}
	if got, want := adler32.Checksum(b[:digestChecksum]), le.Uint32(b[digestChecksum:]); got != want {
		return nil, &FormatError{Struct: "digest", Offset: off + digestChecksum, Field: "checksum", Value: want, Reason: "Adler-32 of the section data is " + hex32(got), Err: ErrChecksum}
	}
	hs := storedHashes(nil, secDigest, "md5", b[:16])
	return storedHashes(hs, secDigest, "sha1", b[digestSHA1:digestSHA1+20]), nil
}

func storedHashes(hs []StoredHash, sec, name string, v []byte) []StoredHash {
	if bytes.Count(v, []byte{0}) == len(v) {
		return hs // not computed
	}
	return append(hs, StoredHash{Name: name, Section: sec, Value: hex.EncodeToString(v)})
}

// SectorRun is a run of sectors the acquiring tool could not read (and
// filled in, usually with zeros): their bytes in the image are not the
// media's.
type SectorRun struct {
	First, Count int64
}

// parseError2 reads error2 section data b at offset off.
func parseError2(b []byte, off int64) ([]SectorRun, error) {
	if len(b) < error2HeaderSize {
		return nil, &FormatError{Struct: "error2", Offset: off, Field: "length", Value: len(b), Reason: "shorter than the 520-byte header", Err: ErrTruncated}
	}
	if got, want := adler32.Checksum(b[:error2Checksum]), le.Uint32(b[error2Checksum:]); got != want {
		return nil, &FormatError{Struct: "error2", Offset: off + error2Checksum, Field: "header checksum", Value: want, Reason: "Adler-32 of the header is " + hex32(got), Err: ErrChecksum}
	}
	n := int64(le.Uint32(b))
	switch {
	case n > MaxError2Entries:
		return nil, &FormatError{Struct: "error2", Offset: off, Field: "entry count", Value: n, Reason: "more than " + itoa(MaxError2Entries)}
	case error2HeaderSize+n*error2EntrySize+4 > int64(len(b)):
		// The entries and their 4-byte checksum must fit: with no room
		// for the checksum even no entries do (a 520-byte section).
		room := max(int64(len(b))-error2HeaderSize-4, 0) / error2EntrySize
		return nil, &FormatError{Struct: "error2", Offset: off, Field: "entry count", Value: n, Reason: "more entries than the section holds (" + itoa(room) + ")", Err: ErrTruncated}
	}
	entries := b[error2HeaderSize : error2HeaderSize+n*error2EntrySize]
	if got, want := adler32.Checksum(entries), le.Uint32(b[error2HeaderSize+n*error2EntrySize:]); got != want {
		return nil, &FormatError{Struct: "error2", Offset: off + error2HeaderSize + n*error2EntrySize, Field: "entries checksum", Value: want, Reason: "Adler-32 of the entries is " + hex32(got), Err: ErrChecksum}
	}
	runs := make([]SectorRun, 0, n)
	for i := int64(0); i < n; i++ {
		e := entries[i*error2EntrySize:]
		if r := (SectorRun{First: int64(le.Uint32(e)), Count: int64(le.Uint32(e[4:]))}); r.Count > 0 {
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// ceilDiv returns ⌈a/b⌉ for a ≥ 0, b > 0 without overflowing.
func ceilDiv(a, b int64) int64 { return a/b + min(a%b, 1) }

func hex32(v uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return "0x" + hex.EncodeToString(b[:])
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
