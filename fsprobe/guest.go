// Package fsprobe holds filesystem knowledge. This file is the guest level:
// what a rebuilt virtual disk holds (partition tables and the filesystems
// they point at), found from a handful of sectors.
package fsprobe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Finding is one structure found on a guest disk.
type Finding struct {
	Kind   string `json:"kind"` // mbr, gpt, ntfs, ext4, ...
	Offset int64  `json:"offset"`
	Detail string `json:"detail,omitempty"`
}

// Sizes and magics of the structures probed.
const (
	sector         = 512
	mbrSignature   = 0xAA55
	mbrTableOffset = 446
	gptSignature   = "EFI PART"
	ntfsOEM        = "NTFS    "
	ext4MagicOff   = 1024 + 56
	ext4Magic      = 0xEF53
	maxPartitions  = 4
)

// Identify looks at the start of a guest disk of size bytes and at the
// start of every primary MBR partition. It reads at most a few KiB per
// structure and trusts no value it reads beyond the disk size.
func Identify(r io.ReaderAt, size int64) []Finding {
	var out []Finding
	var mbr [sector]byte
	if _, err := r.ReadAt(mbr[:], 0); err != nil {
		return nil
	}
	out = append(out, volume(r, size, 0)...)
	if binary.LittleEndian.Uint16(mbr[510:]) != mbrSignature {
		return out
	}
	out = append(out, Finding{Kind: "mbr", Offset: 0})
	for i := 0; i < maxPartitions; i++ {
		e := mbr[mbrTableOffset+16*i:]
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * sector
		length := int64(binary.LittleEndian.Uint32(e[12:])) * sector
		if typ == 0 || start == 0 || start >= size {
			continue
		}
		out = append(out, Finding{Kind: "partition", Offset: start, Detail: fmt.Sprintf("type %#02x, %d bytes", typ, length)})
		if typ == 0xEE {
			var hdr [sector]byte
			if _, err := r.ReadAt(hdr[:], sector); err == nil && string(hdr[:8]) == gptSignature {
				out = append(out, Finding{Kind: "gpt", Offset: sector})
			}
			continue
		}
		out = append(out, volume(r, size, start)...)
	}
	return out
}

// volume identifies a filesystem starting at off.
func volume(r io.ReaderAt, size, off int64) []Finding {
	if off+2048 > size {
		return nil
	}
	b := make([]byte, 2048)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil
	}
	switch {
	case bytes.Equal(b[3:11], []byte(ntfsOEM)) && binary.LittleEndian.Uint16(b[510:]) == mbrSignature:
		return []Finding{{Kind: "ntfs", Offset: off, Detail: fmt.Sprintf("%d sectors", binary.LittleEndian.Uint64(b[40:]))}}
	case binary.LittleEndian.Uint16(b[ext4MagicOff:]) == ext4Magic:
		blocks := binary.LittleEndian.Uint32(b[1024+4:])
		logBlock := binary.LittleEndian.Uint32(b[1024+24:])
		return []Finding{{Kind: "ext", Offset: off, Detail: fmt.Sprintf("%d blocks of %d bytes", blocks, 1024<<min(logBlock, 6))}}
	}
	return nil
}
