// Package part decodes partition tables: an MBR's four primary entries and
// a GPT's header and entries (UEFI specification 2.10, 5.2 and 5.3). It
// knows bytes and nothing else: which tables make a guest disk plausible,
// and what a partition predicts there, is for its callers (fsprobe,
// reassemble, signatures).
package part

import (
	"encoding/binary"
	"hash/crc32"
)

// MBR layout.
const (
	SectorSize  = 512
	TableOffset = 446 // the four primary entries
	EntrySize   = 16
	Entries     = 4
	Signature   = 0xAA55 // little-endian at 510
	// TypeGPTProtective is the type of a GPT disk's one MBR entry.
	TypeGPTProtective = 0xEE
)

// MBR entry fields.
const (
	entryStatus  = 0
	entryType    = 4
	entryStart   = 8  // u32 first LBA
	entrySectors = 12 // u32 sectors
)

// Entry is one primary MBR entry, as stored.
type Entry struct {
	Status  byte   // 0x80 bootable, 0 not; anything else is not a table
	Type    byte   // 0 for an unused entry
	Start   uint32 // first sector
	Sectors uint32
}

// Offset is the byte offset of the partition's first sector.
func (e Entry) Offset() int64 { return int64(e.Start) * SectorSize }

// Length is the partition's size in bytes.
func (e Entry) Length() int64 { return int64(e.Sectors) * SectorSize }

// End is the sector after the partition.
func (e Entry) End() uint64 { return uint64(e.Start) + uint64(e.Sectors) }

// HasSignature reports whether a sector ends in the MBR signature.
func HasSignature(sector []byte) bool {
	return len(sector) >= SectorSize && binary.LittleEndian.Uint16(sector[SectorSize-2:]) == Signature
}

// MBR decodes the four entries of sector 0 (at least TableOffset+64 bytes;
// fewer decode as unused entries). It does not check the signature.
func MBR(sector []byte) [Entries]Entry {
	if len(sector) < TableOffset {
		return [Entries]Entry{}
	}
	return Table(sector[TableOffset:])
}

// Table decodes the four entries of a partition table (the 64 bytes at
// TableOffset; fewer decode as unused entries).
func Table(t []byte) [Entries]Entry {
	var out [Entries]Entry
	for i := range out {
		if len(t) < (i+1)*EntrySize {
			break
		}
		e := t[i*EntrySize:]
		out[i] = Entry{Status: e[entryStatus], Type: e[entryType],
			Start: binary.LittleEndian.Uint32(e[entryStart:]), Sectors: binary.LittleEndian.Uint32(e[entrySectors:])}
	}
	return out
}

// GPT header and entry fields (UEFI 5.3.2, 5.3.3).
const (
	GPTSignature     = "EFI PART"
	GPTHeaderLBA     = 1
	gptHeaderSize    = 92
	gptHeaderCRC     = 16
	gptAlternateLBA  = 32
	gptEntriesLBA    = 72
	gptEntryCount    = 80
	gptEntrySize     = 84
	gptEntriesCRC    = 88
	maxGPTEntries    = 128
	gptEntryFirstLBA = 32
	gptEntryLastLBA  = 40
)

// Partition is a GPT partition's byte range.
type Partition struct {
	Offset, Length int64
}

// HasGPTSignature reports whether the start of a disk (sector 0 and on)
// holds a GPT header's signature at LBA 1.
func HasGPTSignature(head []byte) bool {
	return len(head) >= (GPTHeaderLBA+1)*SectorSize && string(head[GPTHeaderLBA*SectorSize:][:len(GPTSignature)]) == GPTSignature
}

// GPT reads the GPT from the start of a disk (header at LBA 1, entries
// where it says, both inside head and both checksums right) and returns
// its used partitions, or nil when there is none. A good GPT with no used
// entry gives an empty, non-nil list.
func GPT(head []byte) []Partition {
	if !HasGPTSignature(head) {
		return nil
	}
	h := append([]byte(nil), head[SectorSize:SectorSize+gptHeaderSize]...)
	want := binary.LittleEndian.Uint32(h[gptHeaderCRC:])
	clear(h[gptHeaderCRC : gptHeaderCRC+4])
	if crc32.ChecksumIEEE(h) != want {
		return nil
	}
	lba := binary.LittleEndian.Uint64(h[gptEntriesLBA:])
	n := uint64(binary.LittleEndian.Uint32(h[gptEntryCount:]))
	size := uint64(binary.LittleEndian.Uint32(h[gptEntrySize:]))
	// lba is bounded before it is multiplied: a u64 from disk could wrap.
	if size < 128 || size > 1024 || n == 0 || n > maxGPTEntries || lba < 2 || lba > uint64(len(head))/SectorSize || lba*SectorSize+n*size > uint64(len(head)) {
		return nil
	}
	entries := head[lba*SectorSize : lba*SectorSize+n*size]
	if crc32.ChecksumIEEE(entries) != binary.LittleEndian.Uint32(h[gptEntriesCRC:]) {
		return nil
	}
	out := []Partition{}
	for i := uint64(0); i < n; i++ {
		e := entries[i*size : (i+1)*size]
		first, last := binary.LittleEndian.Uint64(e[gptEntryFirstLBA:]), binary.LittleEndian.Uint64(e[gptEntryLastLBA:])
		if first == 0 || last < first || last >= 1<<48 {
			continue // unused entry (all-zero type GUID) or nonsense
		}
		out = append(out, Partition{Offset: int64(first) * SectorSize, Length: int64(last-first+1) * SectorSize})
	}
	return out
}

// GPTAlternateLBA is the LBA of the backup GPT header that the primary
// header at LBA 1 names (the disk's last sector), read without checking
// the header's checksum; false without a GPT signature.
func GPTAlternateLBA(head []byte) (uint64, bool) {
	if !HasGPTSignature(head) || len(head) < GPTHeaderLBA*SectorSize+gptAlternateLBA+8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(head[GPTHeaderLBA*SectorSize+gptAlternateLBA:]), true
}
