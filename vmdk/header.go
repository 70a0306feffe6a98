package vmdk

import (
	"encoding/binary"
	"fmt"
)

// SparseHeader is the 512-byte hosted sparse extent header (FORMAT.md §1),
// also used as the footer of GD_AT_END stream-optimized extents.
type SparseHeader struct {
	Version           uint32 `json:"version"`
	Flags             uint32 `json:"flags"`
	Capacity          uint64 `json:"capacity"`   // sectors
	GrainSize         uint64 `json:"grain_size"` // sectors
	DescriptorOffset  uint64 `json:"descriptor_offset"`
	DescriptorSize    uint64 `json:"descriptor_size"`
	NumGTEsPerGT      uint32 `json:"num_gtes_per_gt"`
	RGDOffset         uint64 `json:"rgd_offset"`
	GDOffset          uint64 `json:"gd_offset"`
	OverHead          uint64 `json:"overhead"`
	UncleanShutdown   bool   `json:"unclean_shutdown,omitempty"`
	CompressAlgorithm uint16 `json:"compress_algorithm"`

	// PadNonZero records that bytes 79..511 were not all zero: no reader
	// checks them, but no writer seen leaves anything there.
	PadNonZero bool `json:"pad_non_zero,omitempty"`
}

// Byte offsets of the header fields.
const (
	hdrMagic        = 0
	hdrVersion      = 4
	hdrFlags        = 8
	hdrCapacity     = 12
	hdrGrainSize    = 20
	hdrDescOffset   = 28
	hdrDescSize     = 36
	hdrNumGTEs      = 44
	hdrRGDOffset    = 48
	hdrGDOffset     = 56
	hdrOverHead     = 64
	hdrUnclean      = 72
	hdrNewlines     = 73 // "\n \r\n"
	hdrCompress     = 77
	hdrPad          = 79
	newlineBytes    = "\n \r\n"
	maxSectorOffset = 1 << 32 // GD/RGD/overHead are sector numbers inside a ≤2 TiB extent
)

// IsSparseMagic reports whether b starts with "KDMV" and a version 1..3: the
// cheap first test before ParseSparseHeader.
func IsSparseMagic(b []byte) bool {
	if len(b) < 8 || string(b[:4]) != SparseMagic {
		return false
	}
	v := binary.LittleEndian.Uint32(b[hdrVersion:])
	return v >= 1 && v <= 3
}

// HasSparseNewlines reports whether a sparse header's newline-detection
// bytes (73..76) are intact: with the magic, 2^-66 by chance, so a header
// that fails to parse but has them is damaged evidence, not noise.
func HasSparseNewlines(b []byte) bool {
	return len(b) >= hdrNewlines+len(newlineBytes) && string(b[hdrNewlines:hdrNewlines+len(newlineBytes)]) == newlineBytes
}

// ParseSparseHeader decodes and validates a hosted sparse header with the
// rules of FORMAT.md §1.3. It returns ErrNotVMDK (wrapped) if b does not start
// with the magic and a *FormatError for a value no writer produces or no
// reader could use. It never allocates more than the header itself.
func ParseSparseHeader(b []byte) (*SparseHeader, error) {
	if len(b) < 4 || string(b[:4]) != SparseMagic {
		return nil, fmt.Errorf("sparse header: %w", ErrNotVMDK)
	}
	if len(b) < sparseHeaderSize {
		return nil, fmt.Errorf("sparse header: %d bytes: %w", len(b), ErrTruncated)
	}
	le := binary.LittleEndian
	h := &SparseHeader{
		Version:           le.Uint32(b[hdrVersion:]),
		Flags:             le.Uint32(b[hdrFlags:]),
		Capacity:          le.Uint64(b[hdrCapacity:]),
		GrainSize:         le.Uint64(b[hdrGrainSize:]),
		DescriptorOffset:  le.Uint64(b[hdrDescOffset:]),
		DescriptorSize:    le.Uint64(b[hdrDescSize:]),
		NumGTEsPerGT:      le.Uint32(b[hdrNumGTEs:]),
		RGDOffset:         le.Uint64(b[hdrRGDOffset:]),
		GDOffset:          le.Uint64(b[hdrGDOffset:]),
		OverHead:          le.Uint64(b[hdrOverHead:]),
		UncleanShutdown:   b[hdrUnclean] != 0,
		CompressAlgorithm: le.Uint16(b[hdrCompress:]),
	}
	for _, c := range b[hdrPad:sparseHeaderSize] {
		if c != 0 {
			h.PadNonZero = true
			break
		}
	}
	if string(b[hdrNewlines:hdrNewlines+4]) != newlineBytes {
		return h, h.fieldError(hdrNewlines, "newline bytes", b[hdrNewlines:hdrNewlines+4], "want 0A 20 0D 0A")
	}
	return h, h.Validate()
}

func (h *SparseHeader) fieldError(off int64, field string, v any, reason string) *FormatError {
	return &FormatError{Struct: "sparse header", Offset: off, Field: field, Value: v, Reason: reason}
}

// Validate applies the plausibility rules of FORMAT.md §1.3 (except the
// newline bytes, which only ParseSparseHeader sees).
func (h *SparseHeader) Validate() error {
	switch {
	case h.Version < 1 || h.Version > 3:
		return h.fieldError(hdrVersion, "version", h.Version, "want 1, 2 or 3")
	case h.Flags&^knownFlags != 0:
		return h.fieldError(hdrFlags, "flags", fmt.Sprintf("%#x", h.Flags), "unknown flag bits")
	case h.Flags&FlagMarkers != 0 && h.Flags&FlagCompressed == 0:
		return h.fieldError(hdrFlags, "flags", fmt.Sprintf("%#x", h.Flags), "markers without compression")
	case h.Flags&FlagZeroedGrainGTE != 0 && h.Version < 2:
		return h.fieldError(hdrFlags, "flags", fmt.Sprintf("%#x", h.Flags), "zeroed-grain GTEs need version 2")
	case h.CompressAlgorithm > CompressDeflate:
		return h.fieldError(hdrCompress, "compressAlgorithm", h.CompressAlgorithm, "want 0 or 1")
	case (h.CompressAlgorithm == CompressDeflate) != (h.Flags&FlagCompressed != 0):
		return h.fieldError(hdrCompress, "compressAlgorithm", h.CompressAlgorithm, "disagrees with the compressed flag")
	case !isPowerOfTwo(h.GrainSize) || h.GrainSize < MinGrainSize || h.GrainSize > MaxGrainSize:
		return h.fieldError(hdrGrainSize, "grainSize", h.GrainSize, fmt.Sprintf("want a power of 2 in %d..%d", MinGrainSize, MaxGrainSize))
	case h.NumGTEsPerGT != GTEsPerGT:
		return h.fieldError(hdrNumGTEs, "numGTEsPerGT", h.NumGTEsPerGT, "want 512")
	case h.Capacity == 0:
		return h.fieldError(hdrCapacity, "capacity", h.Capacity, "empty disk")
	case !h.Compressed() && h.Capacity > MaxSparseCapacity:
		return h.fieldError(hdrCapacity, "capacity", h.Capacity, "beyond the 2 TiB a hosted sparse extent can address")
	case h.GDEntries() > MaxGDEntries:
		return h.fieldError(hdrCapacity, "capacity", h.Capacity, "grain directory would exceed 32 Mi entries")
	case h.DescriptorOffset > 1:
		return h.fieldError(hdrDescOffset, "descriptorOffset", h.DescriptorOffset, "want 0 or 1")
	case h.DescriptorSize > MaxDescriptorSectors:
		return h.fieldError(hdrDescSize, "descriptorSize", h.DescriptorSize, "beyond 20480 sectors")
	case h.OverHead >= maxSectorOffset:
		return h.fieldError(hdrOverHead, "overHead", h.OverHead, "beyond 2^32 sectors")
	}
	if h.GDOffset == GDAtEnd {
		if h.Version != 3 || !h.Compressed() || h.Flags&FlagMarkers == 0 {
			return h.fieldError(hdrGDOffset, "gdOffset", "GD_AT_END", "only stream-optimized version 3 extents put the GD at the end")
		}
	} else if h.GDOffset == 0 || h.GDOffset >= maxSectorOffset {
		return h.fieldError(hdrGDOffset, "gdOffset", h.GDOffset, "want 0 < gdOffset < 2^32")
	}
	if h.Flags&FlagRedundantGD != 0 && (h.RGDOffset == 0 || h.RGDOffset >= maxSectorOffset) {
		return h.fieldError(hdrRGDOffset, "rgdOffset", h.RGDOffset, "want 0 < rgdOffset < 2^32")
	}
	return nil
}

// Compressed reports whether grains are zlib-compressed (stream-optimized).
// Like qemu, it keys on the algorithm field.
func (h *SparseHeader) Compressed() bool { return h.CompressAlgorithm == CompressDeflate }

// HasRedundantGD reports whether the redundant grain directory is valid.
func (h *SparseHeader) HasRedundantGD() bool { return h.Flags&FlagRedundantGD != 0 }

// GrainBytes is the size of one grain in bytes.
func (h *SparseHeader) GrainBytes() int64 { return int64(h.GrainSize) * SectorSize }

// Grains is the number of grains covering the capacity.
func (h *SparseHeader) Grains() uint64 { return ceilDiv(h.Capacity, max(h.GrainSize, 1)) }

// GTCoverage is the number of sectors one grain table covers.
func (h *SparseHeader) GTCoverage() uint64 {
	return uint64(max(h.NumGTEsPerGT, 1)) * max(h.GrainSize, 1)
}

// GDEntries is the number of grain directory entries (grain tables).
func (h *SparseHeader) GDEntries() uint64 { return ceilDiv(h.Capacity, h.GTCoverage()) }

// GDSectors is the size of the grain directory in whole sectors.
func (h *SparseHeader) GDSectors() uint64 { return ceilDiv(h.GDEntries()*4, SectorSize) }

// GTSectors is the size of one grain table in sectors (4 for 512 entries).
func (h *SparseHeader) GTSectors() uint64 { return ceilDiv(uint64(h.NumGTEsPerGT)*4, SectorSize) }

// IsStreamFooterCandidate reports whether h could be the footer copy of a
// GD_AT_END stream: a stream header with a real gdOffset. Whether it is a
// footer is decided by its neighbours (FORMAT.md §3.5).
func (h *SparseHeader) IsStreamFooterCandidate() bool {
	return h.Compressed() && h.Flags&FlagMarkers != 0 && h.GDOffset != GDAtEnd
}

// MarshalBinary encodes h as a 512-byte sector with the newline bytes set.
func (h *SparseHeader) MarshalBinary() ([]byte, error) {
	b := make([]byte, sparseHeaderSize)
	le := binary.LittleEndian
	copy(b, SparseMagic)
	le.PutUint32(b[hdrVersion:], h.Version)
	le.PutUint32(b[hdrFlags:], h.Flags)
	le.PutUint64(b[hdrCapacity:], h.Capacity)
	le.PutUint64(b[hdrGrainSize:], h.GrainSize)
	le.PutUint64(b[hdrDescOffset:], h.DescriptorOffset)
	le.PutUint64(b[hdrDescSize:], h.DescriptorSize)
	le.PutUint32(b[hdrNumGTEs:], h.NumGTEsPerGT)
	le.PutUint64(b[hdrRGDOffset:], h.RGDOffset)
	le.PutUint64(b[hdrGDOffset:], h.GDOffset)
	le.PutUint64(b[hdrOverHead:], h.OverHead)
	if h.UncleanShutdown {
		b[hdrUnclean] = 1
	}
	copy(b[hdrNewlines:], newlineBytes)
	le.PutUint16(b[hdrCompress:], h.CompressAlgorithm)
	return b, nil
}
