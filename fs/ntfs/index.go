package ntfs

import "encoding/binary"

// INDX block (a block of a directory's $INDEX_ALLOCATION) fields.
const (
	// IndexBlockSize is the size of an index block: what every NTFS
	// writer uses (the boot sector's clusters-per-index-block field is
	// not read).
	IndexBlockSize = 4096

	indxOffUSAOffset = 0x04 // u16 update sequence array offset
	indxOffUSACount  = 0x06 // u16 its entries (1 + strides)
	indxOffVCN       = 0x10 // u64 the block's VCN in the allocation
	indxOffHeader    = 0x18 // index header: u32 entries offset, u32 total size (both from 0x18)
	indxMinUSAOffset = 0x28
	indxEntryKey     = 0x10 // an entry's key ($FILE_NAME) within the entry
	indxEntryLast    = 0x2  // entry flag: the last (keyless) entry
	// maxIndexEntries bounds the entries walked in one block.
	maxIndexEntries = 64
)

// IndexBlock is what an INDX block says of its own place: its VCN in its
// directory's index allocation and the directory (the parent every
// entry's $FILE_NAME names), which together locate it through the
// directory's record.
type IndexBlock struct {
	VCN int64
	// Parent is the record number of the directory; -1 when the
	// entries do not all name one.
	Parent int64
}

// IsIndexMagic is the cheap first test: "INDX" at the window start.
func IsIndexMagic(w []byte) bool { return len(w) >= 4 && string(w[:4]) == "INDX" }

// ParseIndexBlock parses the INDX block at the start of w (at least
// IndexBlockSize bytes) on a copy with its update sequence applied. A
// torn block (a stride not written with the rest) is an error: its entries
// cannot be trusted.
func ParseIndexBlock(w []byte) (*IndexBlock, error) {
	bad := func(off int, field string, v int64) error {
		return &FormatError{Struct: "index block", Offset: int64(off), Field: field, Value: v}
	}
	if !IsIndexMagic(w) {
		return nil, bad(0, "magic", 0)
	}
	if len(w) < IndexBlockSize {
		return nil, bad(0, "window length", int64(len(w)))
	}
	le := binary.LittleEndian
	usaOff := int(le.Uint16(w[indxOffUSAOffset:]))
	usaCount := int(le.Uint16(w[indxOffUSACount:]))
	switch {
	case usaCount != IndexBlockSize/FixupStride+1:
		return nil, bad(indxOffUSACount, "update sequence count", int64(usaCount))
	case usaOff < indxMinUSAOffset || usaOff+2*usaCount > IndexBlockSize:
		return nil, bad(indxOffUSAOffset, "update sequence offset", int64(usaOff))
	}
	var buf [IndexBlockSize]byte
	b := buf[:]
	copy(b, w)
	if torn := applyFixups(b, usaOff, usaCount); len(torn) > 0 {
		return nil, bad(usaOff, "update sequence", int64(len(torn)))
	}
	vcn := int64(le.Uint64(b[indxOffVCN:]))
	if vcn < 0 || vcn >= MaxLCN {
		return nil, bad(indxOffVCN, "VCN", vcn)
	}
	return &IndexBlock{VCN: vcn, Parent: indexParent(b)}, nil
}

// indexParent returns the directory every entry of a fixed-up INDX block
// names as its parent, or -1 if they do not all agree (or the entries do
// not parse, or there are none).
func indexParent(b []byte) int64 {
	le := binary.LittleEndian
	pos := indxOffHeader + int(le.Uint32(b[indxOffHeader:]))
	end := indxOffHeader + int(le.Uint32(b[indxOffHeader+4:]))
	if end > len(b) {
		return -1
	}
	parent := int64(-1)
	for i := 0; i < maxIndexEntries && pos+indxEntryKey <= end; i++ {
		length := int(le.Uint16(b[pos+8:]))
		keyLen := int(le.Uint16(b[pos+10:]))
		flags := le.Uint32(b[pos+12:])
		if flags&indxEntryLast != 0 {
			break
		}
		if length < indxEntryKey+8 || pos+length > end || keyLen < 8 || indxEntryKey+keyLen > length {
			return -1
		}
		p := int64(le.Uint64(b[pos+indxEntryKey:]) & RefRecordMask)
		if parent >= 0 && p != parent {
			return -1
		}
		parent = p
		pos += length
	}
	return parent
}

// applyFixups applies the update sequence array at usaOff (usaCount
// entries, the first the update sequence number) to b in place: the last
// two bytes of every 512-byte stride are the USN on disk and get back the
// bytes the array saved. It returns the strides (from 0) whose last two
// bytes are not the USN: torn, not written with the rest; those are left
// as they are. The caller bounds usaOff+2*usaCount by len(b) and usaCount
// by the strides b holds.
func applyFixups(b []byte, usaOff, usaCount int) (torn []int) {
	usn := b[usaOff : usaOff+2]
	for i := 1; i < usaCount; i++ {
		end := i*FixupStride - 2
		if b[end] != usn[0] || b[end+1] != usn[1] {
			torn = append(torn, i-1)
			continue
		}
		b[end], b[end+1] = b[usaOff+2*i], b[usaOff+2*i+1]
	}
	return torn
}
