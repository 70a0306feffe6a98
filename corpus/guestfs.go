package corpus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Guest filesystems. A DiskSpec with FS set is not synthetic: it is an MBR
// disk with one partition at 1 MiB holding a real ext4 (metadata_csum) or
// NTFS volume made by the same tools as host volumes, filled with seeded
// text files, so the VMDK grains hold inode tables, extent and directory
// blocks, MFT and INDX records at their true virtual addresses: what the
// guest probes check. The unused space stays zero, so writers leave those
// grains unallocated. The raw disk is built first and the disk's grains
// are then read from it.

// GuestPartitionOffset is where a guest filesystem's partition starts.
const GuestPartitionOffset = 1 << 20

// minGuestCapacity leaves room for the partition's filesystem.
const minGuestCapacity = GuestPartitionOffset + 8<<20

// GuestFSTruth describes a guest disk's filesystem.
type GuestFSTruth struct {
	FS              string      `json:"fs"`
	PartitionOffset int64       `json:"partition_offset"` // bytes from the disk start
	PartitionSize   int64       `json:"partition_size"`
	BlockSize       int         `json:"block_size"` // ext4 block or NTFS cluster
	Files           []GuestFile `json:"files"`
}

// GuestFile is one file put on a guest filesystem.
type GuestFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// guestText fills buf with the bytes at offset off of a guest file: 64-byte
// lines naming the disk, the file and the line's offset.
func guestText(disk int, path string, off int64, buf []byte) {
	const line = 64
	var l [line]byte
	for i := 0; i < len(buf); {
		o := off + int64(i)
		lo := o / line * line
		for j := range l {
			l[j] = ' '
		}
		s := fmt.Sprintf("disk=%04d %s @%d", disk, path, lo)
		copy(l[:line-1], s)
		l[line-1] = '\n'
		i += copy(buf[i:], l[o-lo:])
	}
}

// guestFiles draws the seeded file list: a few directories (ext4 only:
// ntfscp cannot make one) and files from 1 KiB to 512 KiB, in total about
// a tenth of the partition, at most 8 MiB.
func guestFiles(seed uint64, ds DiskSpec, partSize int64) (dirs []string, files []GuestFile) {
	rng := rand.New(rand.NewPCG(seed, mix(uint64(ds.ID)^0x6775657374))) // "guest"
	if ds.FS == FSExt4 {
		dirs = []string{"/docs", "/logs", "/data", "/data/old"}
	}
	budget := min(partSize/10, 8<<20)
	for i := 0; budget > 0 && i < 64; i++ {
		n := min(budget, 1<<10+rng.Int64N(512<<10))
		dir := ""
		if len(dirs) > 0 {
			dir = dirs[rng.IntN(len(dirs))]
		}
		files = append(files, GuestFile{Path: fmt.Sprintf("%s/file%02d.txt", dir, i), Size: n})
		budget -= n
	}
	return dirs, files
}

// buildGuest writes the raw disk of a guest with a filesystem and
// returns its truth.
func buildGuest(seed uint64, ds DiskSpec, raw, tmp string) (*GuestFSTruth, error) {
	for _, t := range HostTools(ds.FS) {
		if _, err := needTool(t); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp(tmp, fmt.Sprintf("guest-%02d-", ds.ID))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	end := ds.Capacity
	if ds.GPT {
		end -= 33 * 512 // the backup GPT
	}
	partSize := (end - GuestPartitionOffset) / 4096 * 4096
	part := filepath.Join(work, "part.img")
	if err := makeSparse(part, partSize); err != nil {
		return nil, err
	}
	gt := &GuestFSTruth{FS: ds.FS, PartitionOffset: GuestPartitionOffset, PartitionSize: partSize, BlockSize: 4096}
	dirs, files := guestFiles(seed, ds, partSize)
	gt.Files = files
	var srcs []string
	for i, f := range files {
		src := filepath.Join(work, "src"+strconv.Itoa(i))
		if err := writeGuestFile(src, ds.ID, f); err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	fsSeed := mix(seed ^ uint64(ds.ID)<<40)
	switch ds.FS {
	case FSExt4:
		if err := mkfsExt4(part, work, 4096, fsSeed, ds.LazyInit); err != nil {
			return nil, err
		}
		var cmds []string
		for _, d := range dirs {
			cmds = append(cmds, "mkdir "+d)
		}
		for i, f := range files {
			cmds = append(cmds, fmt.Sprintf("write %s %s", srcs[i], f.Path))
		}
		out, err := debugfs(work, part, true, cmds)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(out, []byte("No free space")) || bytes.Contains(out, []byte("Could not allocate")) {
			return nil, specErr("disk %d: guest files do not fit: %s", ds.ID, out)
		}
	case FSNTFS:
		h := &HostSpec{FS: FSNTFS, BlockSize: 4096, Offset: GuestPartitionOffset, Size: partSize}
		if err := mkntfs(part, h, false); err != nil {
			return nil, err
		}
		ntfscp, _ := needTool("ntfscp")
		t0 := time.Now()
		for i, f := range files {
			if _, err := run([]string{"LC_ALL=C"}, ntfscp, "-q", part, srcs[i], f.Path); err != nil {
				return nil, err
			}
		}
		if err := normalizeNTFSTimes(part, t0, time.Now()); err != nil {
			return nil, err
		}
	}
	return gt, assembleGuest(seed, ds, raw, part, partSize)
}

func writeGuestFile(path string, disk int, f GuestFile) error {
	b := make([]byte, f.Size)
	guestText(disk, f.Path, 0, b)
	return os.WriteFile(path, b, 0o644)
}

// assembleGuest writes the raw disk: an MBR naming the partition, and the
// partition image at GuestPartitionOffset, sparse where it reads zero.
func assembleGuest(seed uint64, ds DiskSpec, raw, part string, partSize int64) error {
	h := &HostSpec{FS: ds.FS, Offset: GuestPartitionOffset, Size: partSize}
	mbr := mbrFor(h, seed^uint64(ds.ID))
	copy(mbr, fmt.Sprintf("vmdkcarve guest disk=%04d", ds.ID))
	var backup []byte // the backup GPT: entries then header, at the disk's end
	if ds.GPT {
		mbr, backup = gptFor(ds, seed, partSize)
	}
	tmp := raw + ".part"
	if err := copyFile(tmp, part); err != nil {
		return err
	}
	defer os.Remove(tmp)
	in, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(raw)
	if err != nil {
		return err
	}
	if _, err := out.WriteAt(mbr, 0); err != nil {
		out.Close()
		return err
	}
	buf := make([]byte, imageBlock)
	zero := make([]byte, 4096)
	for off := int64(0); off < partSize; off += imageBlock {
		n, err := io.ReadFull(in, buf[:min(imageBlock, partSize-off)])
		if err != nil {
			out.Close()
			return err
		}
		for s := 0; s < n; s += 4096 {
			if bytes.Equal(buf[s:s+4096], zero) {
				continue // stays a hole
			}
			if _, err := out.WriteAt(buf[s:s+4096], GuestPartitionOffset+off+int64(s)); err != nil {
				out.Close()
				return err
			}
		}
	}
	if err := out.Truncate(ds.Capacity); err != nil {
		out.Close()
		return err
	}
	if backup != nil {
		if _, err := out.WriteAt(backup, ds.Capacity-int64(len(backup))); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// gptFor returns a GPT disk's first 34 sectors (protective MBR, header,
// 128 entries) and its last 33 (the entries again, then the backup
// header), with one partition at GuestPartitionOffset of partSize bytes
// typed for the guest's filesystem, seeded GUIDs and right checksums
// (UEFI spec 5.3).
func gptFor(ds DiskSpec, seed uint64, partSize int64) (head, tail []byte) {
	const entries, entrySize = 128, 128
	lastLBA := uint64(ds.Capacity/512 - 1)
	head = make([]byte, 34*512)
	pm := head[446:462]
	pm[4] = 0xEE
	binary.LittleEndian.PutUint32(pm[8:], 1)
	binary.LittleEndian.PutUint32(pm[12:], uint32(min(lastLBA, 0xffffffff)))
	head[510], head[511] = 0x55, 0xaa
	rng := rand.New(rand.NewPCG(seed, mix(uint64(ds.ID)^0x677074))) // "gpt"
	guid := func(b []byte) {
		for i := range 16 {
			b[i] = byte(rng.Uint32())
		}
	}
	table := make([]byte, entries*entrySize)
	// Type GUIDs as stored on disk: Microsoft basic data, Linux filesystem.
	typ := []byte{0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7}
	if ds.FS == FSExt4 {
		typ = []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}
	}
	copy(table, typ)
	guid(table[16:32])
	binary.LittleEndian.PutUint64(table[32:], GuestPartitionOffset/512)
	binary.LittleEndian.PutUint64(table[40:], uint64(GuestPartitionOffset+partSize)/512-1)
	var disk [16]byte
	guid(disk[:])
	header := func(self, alt, entriesLBA uint64) []byte {
		h := make([]byte, 512)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x10000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], self)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], 34)
		binary.LittleEndian.PutUint64(h[48:], lastLBA-33)
		copy(h[56:72], disk[:])
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[80:], entries)
		binary.LittleEndian.PutUint32(h[84:], entrySize)
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(table))
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	copy(head[512:], header(1, lastLBA, 2))
	copy(head[1024:], table)
	tail = append(append([]byte(nil), table...), header(lastLBA, 1, lastLBA-32)...)
	return head, tail
}

// newDiskFromRaw makes a disk whose grains are read from a raw file.
func newDiskFromRaw(seed uint64, s DiskSpec, raw string) (*disk, error) {
	f, err := os.Open(raw)
	if err != nil {
		return nil, err
	}
	d := &disk{id: s.ID, seed: seed, capacity: s.Capacity, src: f}
	d.grains = uint64((s.Capacity + grainBytes - 1) / grainBytes)
	d.zero = make([]bool, d.grains)
	buf := make([]byte, grainBytes)
	zero := make([]byte, grainBytes)
	for g := range d.grains {
		b := buf[:d.grainLen(g)]
		if _, err := f.ReadAt(b, int64(g)*grainBytes); err != nil && err != io.EOF {
			f.Close()
			return nil, err
		}
		d.zero[g] = bytes.Equal(b, zero[:len(b)])
		if !d.zero[g] {
			d.nonZero++
		}
	}
	return d, nil
}
