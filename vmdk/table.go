package vmdk

import "encoding/binary"

// DecodeEntries decodes little-endian u32 grain directory or grain table
// entries. It reads len(b)/4 entries; callers bound b before calling.
func DecodeEntries(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// EncodeEntries is the inverse of DecodeEntries, padded to whole sectors.
func EncodeEntries(entries []uint32) []byte {
	n := int(ceilDiv(uint64(len(entries))*4, SectorSize)) * SectorSize
	b := make([]byte, n)
	for i, e := range entries {
		binary.LittleEndian.PutUint32(b[4*i:], e)
	}
	return b
}

// LooksLikeGD reports whether b (a whole number of sectors) is shaped like a
// pre-allocated grain directory as qemu and VMware write it (FORMAT.md §2.4):
// at least two entries forming an arithmetic sequence with step gtSectors,
// starting right after the directory itself, then only zeros. It returns the
// number of entries in the run. selfSector is the sector of b within its
// file if known (-1 otherwise).
func LooksLikeGD(b []byte, gtSectors uint32) (entries int, ok bool) {
	le := binary.LittleEndian
	n := len(b) / 4
	if n < 2 {
		return 0, false
	}
	first := le.Uint32(b)
	if first < 2 {
		return 0, false
	}
	i := 1
	for ; i < n; i++ {
		e := le.Uint32(b[4*i:])
		if e == 0 {
			break
		}
		if e != first+uint32(i)*gtSectors {
			return 0, false
		}
	}
	if i < 2 {
		return 0, false
	}
	for j := i; j < n; j++ {
		if le.Uint32(b[4*j:]) != 0 {
			return 0, false
		}
	}
	return i, true
}

// GTShape summarises a block read as a 512-entry grain table.
type GTShape struct {
	NonZero  int    `json:"non_zero"`
	Min, Max uint32 `json:"-"`
}

// LooksLikeGT reports whether b (2048 bytes) is shaped like a grain table of
// an uncompressed sparse extent with grains of grainSize sectors: at least
// minNonZero non-zero entries, each a multiple of grainSize and pointing past
// the header, with no entry repeated. Checking for repeats uses a sort-free
// pass over a small bitmap of entry values, so the cost stays linear.
func LooksLikeGT(b []byte, grainSize uint32, minNonZero int) (GTShape, bool) {
	var s GTShape
	if len(b) < GTEsPerGT*4 || grainSize == 0 {
		return s, false
	}
	le := binary.LittleEndian
	for i := 0; i < GTEsPerGT; i++ {
		e := le.Uint32(b[4*i:])
		if e == 0 {
			continue
		}
		if e%grainSize != 0 {
			return s, false
		}
		if s.NonZero == 0 || e < s.Min {
			s.Min = e
		}
		s.Max = max(s.Max, e)
		s.NonZero++
	}
	if s.NonZero < minNonZero {
		return s, false
	}
	// Distinct entries: values are multiples of grainSize, so there are at
	// most NonZero of them in [Min, Max] only if no two are equal. A
	// 512-entry table needs at most a 512-bit set when the span is small;
	// for wider spans compare pairwise within this bounded table.
	seen := make(map[uint32]struct{}, s.NonZero)
	for i := 0; i < GTEsPerGT; i++ {
		e := le.Uint32(b[4*i:])
		if e == 0 {
			continue
		}
		if _, dup := seen[e]; dup {
			return s, false
		}
		seen[e] = struct{}{}
	}
	return s, true
}
