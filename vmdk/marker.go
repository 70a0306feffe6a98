package vmdk

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	kflate "github.com/klauspost/compress/flate"
)

// Stream-optimized markers (FORMAT.md §3.2). A marker with a non-zero size
// is a grain marker; otherwise the type field says which metadata follows.
const (
	MarkerEOS      = 0
	MarkerGT       = 1
	MarkerGD       = 2
	MarkerFooter   = 3
	MarkerProgress = 4

	grainMarkerHeader = 12 // u64 lba, u32 size
)

// MaxCompressedGrain bounds a grain record's compressed size for a grain of
// grainBytes: zlib's worst case is about 5 bytes per 16 KiB block plus its
// 6-byte wrapper; the slack allows other encoders' block sizes.
func MaxCompressedGrain(grainBytes int64) int64 {
	return grainBytes + grainBytes/4096 + 64
}

// MetaMarker is a one-sector metadata marker.
type MetaMarker struct {
	NumSectors uint64 `json:"num_sectors"`
	Type       uint32 `json:"type"`
}

// IsMetaMarker tells a metadata marker from a grain marker at the start
// of b by the size field at 8: zero, where a grain marker holds its
// compressed size. It checks nothing else (ParseMetaMarker does).
func IsMetaMarker(b []byte) bool { return len(b) >= 12 && binary.LittleEndian.Uint32(b[8:]) == 0 }

// MayBeMetaMarker is the cheap first test before ParseMetaMarker: a whole
// sector whose u32 size at 8 is 0, type at 12 is 1..3 and byte 16 is 0.
func MayBeMetaMarker(b []byte) bool {
	return len(b) >= SectorSize && b[8]|b[9]|b[10]|b[11] == 0 && b[12] != 0 && b[12] <= 3 && b[16] == 0
}

// ParseMetaMarker decodes a GT, GD or footer marker (an EOS marker is
// indistinguishable from a zero sector and is refused). Bytes 16..511 must be
// zero and numSectors must fit the type.
func ParseMetaMarker(b []byte) (*MetaMarker, error) {
	if len(b) < SectorSize {
		return nil, fmt.Errorf("metadata marker: %w", ErrTruncated)
	}
	le := binary.LittleEndian
	m := &MetaMarker{NumSectors: le.Uint64(b), Type: le.Uint32(b[12:])}
	if le.Uint32(b[8:]) != 0 {
		return nil, fmt.Errorf("metadata marker: %w", ErrNotVMDK)
	}
	for _, c := range b[16:SectorSize] {
		if c != 0 {
			return nil, fmt.Errorf("metadata marker: %w", ErrNotVMDK)
		}
	}
	ok := false
	switch m.Type {
	case MarkerGT:
		ok = m.NumSectors == 4 // one 512-entry GT
	case MarkerGD:
		ok = m.NumSectors >= 1 && m.NumSectors <= MaxGDEntries*4/SectorSize
	case MarkerFooter:
		ok = m.NumSectors == 1
	}
	if !ok {
		return nil, fmt.Errorf("metadata marker type %d, %d sectors: %w", m.Type, m.NumSectors, ErrNotVMDK)
	}
	return m, nil
}

// GrainMarker is the 12-byte prefix of a compressed grain record.
type GrainMarker struct {
	LBA  uint64 `json:"lba"`
	Size uint32 `json:"size"`
}

// RecordBytes is the size of the whole grain record, sector-padded.
func (m GrainMarker) RecordBytes() int64 {
	return int64(ceilDiv(grainMarkerHeader+uint64(m.Size), SectorSize)) * SectorSize
}

// zlibHeaderOK checks the two-byte RFC 1950 header: deflate, 32 KiB window or
// less, no preset dictionary, and the check bits.
func zlibHeaderOK(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && flg&0x20 == 0 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

// PeekGrainMarker is the cheap test for a grain record at the start of b:
// a grain-aligned lba below maxLBA (0 = unknown), a plausible size and a zlib
// header. grainSize is in sectors; 0 accepts any lba that is a multiple of 16.
func PeekGrainMarker(b []byte, grainSize, maxLBA uint64) (GrainMarker, bool) {
	if len(b) < grainMarkerHeader+2 {
		return GrainMarker{}, false
	}
	le := binary.LittleEndian
	m := GrainMarker{LBA: le.Uint64(b), Size: le.Uint32(b[8:])}
	align := grainSize
	if align == 0 {
		align = MinGrainSize
	}
	gb := int64(max(grainSize, MaxGrainSize)) * SectorSize
	switch {
	case m.Size < 8 || int64(m.Size) > MaxCompressedGrain(gb):
		return m, false
	case m.LBA%align != 0 || m.LBA >= 1<<50 || (maxLBA != 0 && m.LBA >= maxLBA):
		return m, false
	case !zlibHeaderOK(b[12], b[13]):
		return m, false
	}
	return m, true
}

// ErrGrainData reports a grain record whose compressed data does not decode.
var ErrGrainData = errors.New("vmdk: grain data does not decompress")

// DecodeGrain decompresses the grain record at the start of b into dst,
// which must have room for one grain; it returns the marker and the number of
// bytes decoded. The zlib stream must end within the record with a valid
// Adler-32 and must not decode to more than len(dst) bytes.
func DecodeGrain(b []byte, dst []byte) (GrainMarker, int, error) {
	return decodeGrain(b, dst, checked)
}

// DecodeGrainUnchecked is DecodeGrain without the Adler-32 check, for a
// caller that checks the decoded bytes against a hash of its own: rebuild
// compares every grain it writes with the xxhash the carve took of the
// same record decoded and checked. The checksum costs about what the
// inflate does on the grains of a typical guest.
func DecodeGrainUnchecked(b []byte, dst []byte) (GrainMarker, int, error) {
	return decodeGrain(b, dst, unchecked)
}

// DecodeGrainFast is DecodeGrainUnchecked by a faster inflater,
// github.com/klauspost/compress/flate: two thirds of the time on guest
// text (BenchmarkDecodeGrain), a fifth less on the stream grains of the
// bench image, and the same bytes. Every valid deflate stream decodes
// alike with both, but a malformed one need not: fuzzing found one that
// the carve's inflater refuses and this one decodes, to bytes that depend
// on what its pooled decompressor decoded before. So the caller must check
// the bytes against the hash of the carve's decoding, and decode again
// with DecodeGrainUnchecked when they differ: rebuild does. (The carve
// keeps Go's inflater for that reason: its hits must not depend on the
// order the scanner's goroutines decoded records in.)
func DecodeGrainFast(b []byte, dst []byte) (GrainMarker, int, error) {
	return decodeGrain(b, dst, fast)
}

// inflateMode is how a grain record's zlib stream is decoded.
type inflateMode int

const (
	checked   inflateMode = iota // compress/zlib, Adler-32 checked
	unchecked                    // compress/flate, no Adler-32
	fast                         // klauspost/compress/flate, no Adler-32
)

func decodeGrain(b []byte, dst []byte, mode inflateMode) (GrainMarker, int, error) {
	m, ok := PeekGrainMarker(b, 0, 0)
	if !ok {
		return m, 0, fmt.Errorf("grain marker: %w", ErrNotVMDK)
	}
	end := grainMarkerHeader + int64(m.Size)
	if end > int64(len(b)) {
		return m, 0, fmt.Errorf("grain record of %d bytes: %w", m.Size, ErrTruncated)
	}
	n, err := inflate(b[grainMarkerHeader:end], dst, mode)
	if err != nil {
		return m, n, fmt.Errorf("lba %d: %w: %v", m.LBA, ErrGrainData, err)
	}
	return m, n, nil
}

// inflate decodes one zlib stream into dst, refusing output beyond len(dst).
// Bytes after the stream's end are not read: a record is padded to a
// sector, and its Size field bounds the stream. Unchecked, the deflate
// data after the header's two bytes (which PeekGrainMarker checked) is
// decoded without its Adler-32 trailer, by the same inflater zlib.Reader
// runs (compress/flate), so that both decode any record alike, which the
// carve's hash of it relies on; fast, by klauspost's (DecodeGrainFast).
func inflate(src, dst []byte, mode inflateMode) (int, error) {
	// A decompressor is some 40 KiB of tables: reused (Reset) rather than
	// made for every grain record the carve and rebuild decode.
	in := inflaters.Get().(*inflater)
	defer inflaters.Put(in)
	if mode == checked {
		in.src.Reset(src)
		if in.zr == nil {
			zr, err := zlib.NewReader(&in.src)
			if err != nil {
				return 0, err
			}
			in.zr = zr
		} else if err := in.zr.(zlib.Resetter).Reset(&in.src, nil); err != nil {
			return 0, err
		}
		// zlib.Reader checks the Adler-32 trailer on reaching the end.
		return readGrainStream(in.zr, dst)
	}
	in.src.Reset(src[2:])
	r, open := &in.fr, flate.NewReader
	if mode == fast {
		r, open = &in.kr, kflate.NewReader
	}
	if *r == nil {
		*r = open(&in.src)
	} else if err := (*r).(interface {
		Reset(io.Reader, []byte) error // flate.Resetter, as kflate's
	}).Reset(&in.src, nil); err != nil {
		return 0, err
	}
	return readGrainStream(*r, dst)
}

// readGrainStream reads a decompressed grain from r into dst: a whole one,
// or a shorter last one, and not a byte more. The stream must end: a
// deflate stream cut short (io.ErrUnexpectedEOF from the inflater) decodes
// to no grain, however many bytes it gave (io.ReadFull would have taken
// them as a short last grain, and how many bytes of a cut stream an
// inflater gives is its own: Go's and klauspost's differ), and the zlib
// reader reports the end only once the Adler-32 after it matched. (The
// inflaters never return nothing without an error, so the loop ends.)
func readGrainStream(r io.Reader, dst []byte) (int, error) {
	n := 0
	for n < len(dst) {
		k, err := r.Read(dst[n:])
		n += k
		switch {
		case err == io.EOF && n == 0:
			return 0, errors.New("empty grain")
		case err == io.EOF:
			return n, nil // shorter than a grain: only the last grain of a disk may be
		case err != nil:
			return n, err
		}
	}
	// dst is full: the stream must end here.
	var one [1]byte
	switch k, err := r.Read(one[:]); {
	case k != 0 || err == nil:
		return n, errors.New("grain decompresses to more than one grain")
	case err != io.EOF:
		return n, err
	}
	return n, nil
}

// inflater is a reusable zlib decompressor, two deflate ones (compress/flate
// and klauspost's), and their source.
type inflater struct {
	src bytes.Reader
	zr  io.ReadCloser
	fr  io.ReadCloser
	kr  io.ReadCloser
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// EncodeGrain appends a grain record (marker, zlib data, zero padding to a
// sector) for the grain at lba to dst.
func EncodeGrain(dst []byte, lba uint64, data []byte, level int) ([]byte, error) {
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, level)
	if err != nil {
		return dst, err
	}
	if _, err := zw.Write(data); err != nil {
		return dst, err
	}
	if err := zw.Close(); err != nil {
		return dst, err
	}
	var hdr [grainMarkerHeader]byte
	binary.LittleEndian.PutUint64(hdr[:], lba)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(z.Len()))
	dst = append(dst, hdr[:]...)
	dst = append(dst, z.Bytes()...)
	if pad := len(dst) % SectorSize; pad != 0 {
		dst = append(dst, make([]byte, SectorSize-pad)...)
	}
	return dst, nil
}

// MarshalMetaMarker encodes a metadata marker sector.
func MarshalMetaMarker(numSectors uint64, typ uint32) []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(b, numSectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}
