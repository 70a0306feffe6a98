package vmdk

import "encoding/binary"

// DecodeEntries decodes little-endian u32 grain directory or grain table
// entries. It reads len(b)/4 entries; callers bound b before calling.
func DecodeEntries(b []byte) []uint32 { return AppendEntries(make([]uint32, 0, len(b)/4), b) }

// AppendEntries is DecodeEntries into dst's storage, for a caller that
// decodes many tables in a loop.
func AppendEntries(dst []uint32, b []byte) []uint32 {
	for i := 0; i+4 <= len(b); i += 4 {
		dst = append(dst, binary.LittleEndian.Uint32(b[i:]))
	}
	return dst
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
// number of entries in the run.
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

// MayBeGT is the cheap first test before LooksLikeGT for grains of
// grainSize sectors, a multiple of 128: the low byte of each of the first
// 16 entries is a multiple of 128 (0 or 0x80), which random data fails
// quickly.
func MayBeGT(b []byte) bool {
	if len(b) < GTEsPerGT*4 {
		return false
	}
	for i := 0; i < 64; i += 4 {
		if b[i]&0x7f != 0 {
			return false
		}
	}
	return true
}

// GTShape summarises a block read as a 512-entry grain table.
type GTShape struct {
	NonZero  int    `json:"non_zero"`
	Min, Max uint32 `json:"-"`
}

// LooksLikeGT reports whether b (2048 bytes) is shaped like a grain table of
// an uncompressed sparse extent with grains of grainSize sectors: at least
// minNonZero non-zero entries, each a multiple of grainSize, with no entry
// repeated. The repeat check runs only on blocks that passed the others,
// which are rare.
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
