package signatures

import "encoding/binary"

// A Magic is a necessary condition of a recognizer, cheap enough to test
// at every offset of an image: the 64-bit little-endian word at byte
// Offset of the window, masked by Mask, equals Value. A recognizer with
// magics accepts a window only if one of them holds; the carver tests
// them first and calls Recognize only then. A window too short to hold
// the word tells nothing: the carver calls Recognize.
type Magic struct {
	Offset      int
	Mask, Value uint64
}

// Match reports whether the magic holds for w; ok is false when w is too
// short to tell.
func (m Magic) Match(w []byte) (match, ok bool) {
	if len(w) < m.Offset+8 {
		return false, false
	}
	return binary.LittleEndian.Uint64(w[m.Offset:])&m.Mask == m.Value, true
}

// MayAccept reports whether r may accept w: it has no magics, w is too
// short for one of them, or one holds.
func (r *Recognizer) MayAccept(w []byte) bool {
	if len(r.Magics) == 0 {
		return true
	}
	for _, m := range r.Magics {
		if match, ok := m.Match(w); match || !ok {
			return true
		}
	}
	return false
}

// bytesAt is the magic "these bytes (at most 8) at offset".
func bytesAt(offset int, s string) Magic {
	var b [8]byte
	copy(b[:], s)
	return Magic{Offset: offset, Mask: ^uint64(0) >> (64 - 8*len(s)), Value: binary.LittleEndian.Uint64(b[:])}
}

// and adds to m the condition "the word masked by mask equals value" (on
// the same word).
func (m Magic) and(mask, value uint64) Magic {
	m.Mask |= mask
	m.Value |= value
	return m
}
