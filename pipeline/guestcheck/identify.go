// Package fsprobe holds filesystem knowledge. This file is the guest level:
// what a rebuilt virtual disk holds (partition tables and the filesystems
// they point at), found from a handful of sectors.
// Package guestcheck identifies a rebuilt disk's guest volumes and walks
// them with the real filesystem libraries (go-ntfs, go-ext4), for the
// report: which files of the guest read back whole, which touch missing
// grains. It reads the rebuilt disk, never the evidence, and decides
// nothing about placement.
package guestcheck

import (
	"bytes"
	"fmt"
	"io"
	ext4fs "vmdkcarve/fs/ext4"
	"vmdkcarve/fs/part"

	ext4 "github.com/dsoprea/go-ext4"
	ntfs "www.velocidex.com/golang/go-ntfs/parser"
)

// Finding is one structure found on a guest disk.
type Finding struct {
	Kind   string       `json:"kind"` // mbr, gpt, partition, ntfs, ext
	Offset int64        `json:"offset"`
	Detail string       `json:"detail,omitempty"`
	Check  *CheckResult `json:"check,omitempty"` // filesystems only: the directory walk
}

// Sizes and magics of the structures probed.
const (
	sector  = part.SectorSize
	ntfsOEM = "NTFS    "
	// gptReadBytes covers a GPT's header and 128 entries of 128 bytes.
	gptReadBytes = 64 << 10
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
	if !part.HasSignature(mbr[:]) {
		return out
	}
	out = append(out, Finding{Kind: "mbr", Offset: 0})
	for _, e := range part.MBR(mbr[:]) {
		typ, start, length := e.Type, e.Offset(), e.Length()
		if typ == 0 || start == 0 || start >= size {
			continue
		}
		out = append(out, Finding{Kind: "partition", Offset: start, Detail: fmt.Sprintf("type %#02x, %d bytes", typ, length)})
		if typ == 0xEE {
			// The GPT: header at sector 1, entries after it (read with
			// sector 0, checksums checked).
			head := make([]byte, min(size, gptReadBytes))
			if _, err := r.ReadAt(head, 0); err != nil || !part.HasGPTSignature(head) {
				continue
			}
			out = append(out, Finding{Kind: "gpt", Offset: sector})
			for _, p := range part.GPT(head) {
				if p.Offset >= size {
					continue
				}
				out = append(out, Finding{Kind: "partition", Offset: p.Offset, Detail: fmt.Sprintf("GPT, %d bytes", p.Length)})
				out = append(out, volume(r, size, p.Offset)...)
			}
			continue
		}
		out = append(out, volume(r, size, start)...)
	}
	return out
}

// volume identifies a filesystem starting at off: NTFS through go-ntfs's
// boot sector checks, ext2/3/4 through go-ext4's superblock parser.
func volume(r io.ReaderAt, size, off int64) []Finding {
	if off+2048 > size {
		return nil
	}
	b := make([]byte, 2048)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil
	}
	switch {
	case bytes.Equal(b[3:11], []byte(ntfsOEM)):
		boot := ntfs.NewNTFSProfile().NTFS_BOOT_SECTOR(bytes.NewReader(b), 0)
		if err := boot.IsValid(); err != nil {
			return []Finding{{Kind: "ntfs", Offset: off, Detail: "boot sector damaged: " + err.Error()}}
		}
		return []Finding{{Kind: "ntfs", Offset: off, Detail: fmt.Sprintf("%d bytes, %d-byte clusters, serial %x",
			boot.VolumeSize()*int64(boot.Sector_size()), boot.ClusterSize(), boot.Serial())}}
	case ext4fs.IsSuperblockMagic(b[ext4fs.SuperblockOffset:]):
		sb, err := ext4.NewSuperblockWithReader(bytes.NewReader(b[1024:]))
		if err != nil {
			// go-ext4 refuses layouts it cannot walk (no flex_bg, ...);
			// the magic still says what the volume is.
			return []Finding{{Kind: "ext", Offset: off, Detail: "superblock: " + err.Error()}}
		}
		return []Finding{{Kind: "ext", Offset: off, Detail: fmt.Sprintf("%d blocks of %d bytes, label %q",
			sb.BlockCount(), sb.BlockSize(), sb.VolumeName())}}
	}
	return nil
}
