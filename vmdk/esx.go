package vmdk

import (
	"encoding/binary"
	"fmt"
)

// COWD (vmfsSparse delta, legacy VMDK3) header, FORMAT.md §4.1.
const (
	COWDMagic      = "COWD"
	cowdHeaderSize = 2048
	cowdGTEntries  = 4096
)

// COWDHeader is the part of a COWD header a carver needs.
type COWDHeader struct {
	Version      uint32 `json:"version"`
	Flags        uint32 `json:"flags"`
	NumSectors   uint32 `json:"num_sectors"`
	GrainSize    uint32 `json:"grain_size"`
	GDOffset     uint32 `json:"gd_offset"`
	NumGDEntries uint32 `json:"num_gd_entries"`
	FreeSector   uint32 `json:"free_sector"`
	Generation   uint32 `json:"generation"`
	Unclean      bool   `json:"unclean,omitempty"`
}

// IsCOWDMagic is the cheap first test before ParseCOWDHeader: "COWD" and
// version 1.
func IsCOWDMagic(b []byte) bool {
	return len(b) >= 8 && string(b[:4]) == COWDMagic && binary.LittleEndian.Uint32(b[4:]) == 1
}

// IsSESparseMagic is the cheap first test before ParseSESparseHeader: the
// seSparse const header's magic.
func IsSESparseMagic(b []byte) bool {
	return len(b) >= 8 && binary.LittleEndian.Uint64(b) == SESparseMagic
}

// ParseCOWDHeader decodes and validates a COWD header: version 1, flags 3,
// gdOffset 4, numGDEntries consistent with numSectors and grainSize, and a
// free sector past the directory.
func ParseCOWDHeader(b []byte) (*COWDHeader, error) {
	if len(b) < 4 || string(b[:4]) != COWDMagic {
		return nil, fmt.Errorf("COWD header: %w", ErrNotVMDK)
	}
	if len(b) < cowdHeaderSize {
		return nil, fmt.Errorf("COWD header: %w", ErrTruncated)
	}
	le := binary.LittleEndian
	h := &COWDHeader{
		Version:      le.Uint32(b[4:]),
		Flags:        le.Uint32(b[8:]),
		NumSectors:   le.Uint32(b[12:]),
		GrainSize:    le.Uint32(b[16:]),
		GDOffset:     le.Uint32(b[20:]),
		NumGDEntries: le.Uint32(b[24:]),
		FreeSector:   le.Uint32(b[28:]),
		Generation:   le.Uint32(b[1060:]),
		Unclean:      le.Uint32(b[1648:]) != 0,
	}
	return h, h.Validate()
}

// Validate applies ParseCOWDHeader's rules to h (a header read back from
// a case file is checked with it).
func (h *COWDHeader) Validate() error {
	fe := func(off int64, field string, v any, why string) error {
		return &FormatError{Struct: "COWD header", Offset: off, Field: field, Value: v, Reason: why}
	}
	switch {
	case h.Version != 1:
		return fe(4, "version", h.Version, "want 1")
	case h.Flags != 3:
		return fe(8, "flags", h.Flags, "want 3")
	case h.NumSectors == 0:
		return fe(12, "numSectors", h.NumSectors, "empty disk")
	case h.GrainSize == 0 || h.GrainSize > 2048:
		return fe(16, "grainSize", h.GrainSize, "want 1..2048")
	case h.GDOffset != 4:
		return fe(20, "gdOffset", h.GDOffset, "want 4")
	}
	want := ceilDiv(uint64(h.NumSectors), cowdGTEntries*uint64(h.GrainSize))
	if uint64(h.NumGDEntries) != want {
		return fe(24, "numGDEntries", h.NumGDEntries, fmt.Sprintf("want %d", want))
	}
	if uint64(h.FreeSector) < 4+ceilDiv(uint64(h.NumGDEntries)*4, SectorSize) {
		return fe(28, "freeSector", h.FreeSector, "inside the header or directory")
	}
	return nil
}

// seSparse const header, FORMAT.md §4.2.
const (
	SESparseMagic   = 0xCAFEBABE
	SESparseVersion = 0x0000000200000001
	seVolatileMagic = 0xCAFECAFE
)

// SESparseHeader is the constant header of an seSparse extent.
type SESparseHeader struct {
	Capacity          uint64 `json:"capacity"`
	GrainSize         uint64 `json:"grain_size"`
	GrainTableSize    uint64 `json:"grain_table_size"`
	GrainDirOffset    uint64 `json:"grain_dir_offset"`
	GrainDirSize      uint64 `json:"grain_dir_size"`
	GrainTablesOffset uint64 `json:"grain_tables_offset"`
	GrainsOffset      uint64 `json:"grains_offset"`
	GrainsSize        uint64 `json:"grains_size"`
}

// maxSESparseCapacity is about 64 TB, seSparse's documented limit.
const maxSESparseCapacity = 1 << 37

// ParseSESparseHeader decodes and validates an seSparse const header with
// qemu's rules: version 2.1, 8-sector grains, 64-sector tables, zero flags,
// reserved fields and padding.
func ParseSESparseHeader(b []byte) (*SESparseHeader, error) {
	le := binary.LittleEndian
	if len(b) < 8 || le.Uint64(b) != SESparseMagic {
		return nil, fmt.Errorf("seSparse header: %w", ErrNotVMDK)
	}
	if len(b) < SectorSize {
		return nil, fmt.Errorf("seSparse header: %w", ErrTruncated)
	}
	fe := func(off int64, field string, v any, why string) error {
		return &FormatError{Struct: "seSparse header", Offset: off, Field: field, Value: v, Reason: why}
	}
	if v := le.Uint64(b[8:]); v != SESparseVersion {
		return nil, fe(8, "version", fmt.Sprintf("%#x", v), "want 2.1")
	}
	h := &SESparseHeader{
		Capacity:          le.Uint64(b[16:]),
		GrainSize:         le.Uint64(b[24:]),
		GrainTableSize:    le.Uint64(b[32:]),
		GrainDirOffset:    le.Uint64(b[128:]),
		GrainDirSize:      le.Uint64(b[136:]),
		GrainTablesOffset: le.Uint64(b[144:]),
		GrainsOffset:      le.Uint64(b[192:]),
		GrainsSize:        le.Uint64(b[200:]),
	}
	if err := h.Validate(); err != nil {
		return h, err
	}
	for off := 40; off < 80; off += 8 {
		if v := le.Uint64(b[off:]); v != 0 {
			return h, fe(int64(off), "flags/reserved", v, "want 0")
		}
	}
	for _, c := range b[208:SectorSize] {
		if c != 0 {
			return h, fe(208, "pad", "non-zero", "want 0")
		}
	}
	return h, nil
}

// Validate applies ParseSESparseHeader's rules on the decoded fields to h.
func (h *SESparseHeader) Validate() error {
	fe := func(off int64, field string, v any, why string) error {
		return &FormatError{Struct: "seSparse header", Offset: off, Field: field, Value: v, Reason: why}
	}
	switch {
	case h.Capacity == 0 || h.Capacity > maxSESparseCapacity:
		return fe(16, "capacity", h.Capacity, "want 1..2^37 sectors")
	case h.GrainSize != 8:
		return fe(24, "grain_size", h.GrainSize, "want 8")
	case h.GrainTableSize != 64:
		return fe(32, "grain_table_size", h.GrainTableSize, "want 64")
	}
	return nil
}
