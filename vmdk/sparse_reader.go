package vmdk

import (
	"fmt"
	"io"
)

// ReadSparseHeader reads and validates the header at the start of a hosted
// sparse or stream-optimized extent of size bytes. For a GD_AT_END stream it
// returns the footer at size-1024, which holds the real gdOffset.
func ReadSparseHeader(r io.ReaderAt, size int64) (*SparseHeader, error) {
	var b [SectorSize]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return nil, fmt.Errorf("vmdk: reading header: %w", err)
	}
	h, err := ParseSparseHeader(b[:])
	if err != nil {
		return nil, err
	}
	if h.GDOffset != GDAtEnd {
		return h, nil
	}
	if size < 3*SectorSize {
		return nil, fmt.Errorf("vmdk: stream footer: %w", ErrTruncated)
	}
	if _, err := r.ReadAt(b[:], size-2*SectorSize); err != nil {
		return nil, fmt.Errorf("vmdk: reading stream footer: %w", err)
	}
	f, err := ParseSparseHeader(b[:])
	if err != nil {
		return nil, fmt.Errorf("vmdk: stream footer: %w", err)
	}
	if f.GDOffset == GDAtEnd || f.Capacity != h.Capacity || f.GrainSize != h.GrainSize {
		return nil, &FormatError{Struct: "stream footer", Offset: hdrGDOffset, Field: "gdOffset", Value: f.GDOffset, Reason: "footer does not match the header"}
	}
	return f, nil
}

// ReadTable reads count u32 entries at sector of an extent of size bytes,
// refusing tables that do not lie wholly inside it.
func ReadTable(r io.ReaderAt, size int64, sector uint64, count uint64) ([]uint32, error) {
	if count > MaxGDEntries {
		return nil, fmt.Errorf("vmdk: table of %d entries: %w", count, ErrFormat)
	}
	off := int64(sector) * SectorSize
	n := int64(count) * 4
	if sector >= maxSectorOffset || off+n > size {
		return nil, &FormatError{Struct: "grain table", Field: "sector", Value: sector, Reason: "table lies past the end of the extent"}
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("vmdk: reading table at sector %d: %w", sector, err)
	}
	return DecodeEntries(b), nil
}

// MaxMappedGrains bounds the grain map GrainMap returns: 32 Mi grains is
// 2 TiB of 64 KiB grains, the most a hosted sparse extent can hold, in
// 128 MiB of memory.
const MaxMappedGrains = 1 << 25

// GrainMap opens a whole, contiguous hosted sparse or stream-optimized
// extent and returns its header and, for every virtual grain, the file
// sector of its data (or grain marker, for streams); 0 means not allocated.
// It reads the primary grain directory.
func GrainMap(r io.ReaderAt, size int64) (*SparseHeader, []uint32, error) {
	h, err := ReadSparseHeader(r, size)
	if err != nil {
		return nil, nil, err
	}
	gd, err := ReadTable(r, size, h.GDOffset, h.GDEntries())
	if err != nil {
		return nil, nil, err
	}
	grains := h.Grains()
	if grains > MaxMappedGrains {
		return nil, nil, &FormatError{Struct: "sparse header", Offset: hdrCapacity, Field: "capacity", Value: h.Capacity, Reason: "too many grains to map in memory"}
	}
	out := make([]uint32, grains)
	for i, gde := range gd {
		if gde == 0 {
			continue
		}
		gt, err := ReadTable(r, size, uint64(gde), uint64(h.NumGTEsPerGT))
		if err != nil {
			return nil, nil, fmt.Errorf("GT %d: %w", i, err)
		}
		base := uint64(i) * uint64(h.NumGTEsPerGT)
		for j, e := range gt {
			if g := base + uint64(j); g < grains {
				out[g] = e
			}
		}
	}
	return h, out, nil
}
