package corpus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
//
// DiskSpec.RandomShare makes part of the files binary (random-looking, as
// compressed and encrypted files are), FileBytes sets how much the files
// hold, NoPartitionTable puts the volume at LBA 0 of the disk, and Cipher
// turns the whole partition into cipher text, as BitLocker or LUKS would.

// GuestPartitionOffset is where a guest filesystem's partition starts
// (but with DiskSpec.NoPartitionTable, at 0).
const GuestPartitionOffset = 1 << 20

// minGuestCapacity leaves room for the partition's filesystem.
const minGuestCapacity = GuestPartitionOffset + 8<<20

// Guest file limits. The default budget keeps today's guests as they were;
// DiskSpec.FileBytes may ask for more files, bounded so that a guest takes
// a bounded number of tool runs (ntfscp runs once per file).
const (
	defaultGuestFiles = 64
	maxGuestFiles     = 512
	textSpan          = 512 << 10 // text files are 1 KiB + [0, span) bytes
)

// GuestFSTruth describes a guest disk's filesystem.
type GuestFSTruth struct {
	FS string `json:"fs"`
	// PartitionOffset is 0 for a DiskSpec.NoPartitionTable disk, whose
	// volume is the whole disk (PartitionSize its capacity).
	PartitionOffset int64       `json:"partition_offset"` // bytes from the disk start
	PartitionSize   int64       `json:"partition_size"`
	BlockSize       int         `json:"block_size"` // ext4 block or NTFS cluster
	Files           []GuestFile `json:"files"`
	// Cipher says the partition holds cipher text (DiskSpec.Cipher): the
	// filesystem FS and its Files lie beneath, but no filesystem tool can
	// read the raw disk.
	Cipher bool `json:"cipher,omitempty"`
}

// GuestFile is one file put on a guest filesystem.
type GuestFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Format is the kind of a binary file (DiskSpec.RandomShare): "jpeg",
	// "zip", "gzip" or "bin", its magic and header then random-looking
	// bytes; "" for a text file of self-naming lines.
	Format string `json:"format,omitempty"`
}

// Binary reports whether the file holds random-looking bytes.
func (f GuestFile) Binary() bool { return f.Format != "" }

// guestFormats are the binary file kinds: Format, file name stem and
// extension.
var guestFormats = [...]struct{ format, stem, ext string }{
	{"jpeg", "photo", "jpg"},
	{"zip", "arch", "zip"},
	{"gzip", "log", "gz"},
	{"bin", "blob", "bin"},
}

// partitionOffset is where the guest's volume starts on its disk.
func (d *DiskSpec) partitionOffset() int64 {
	if d.NoPartitionTable {
		return 0
	}
	return GuestPartitionOffset
}

// partitionSize is the guest volume's size: to the disk's end (before a
// GPT's backup), in whole 4 KiB blocks.
func (d *DiskSpec) partitionSize() int64 {
	end := d.Capacity
	if d.GPT {
		end -= 33 * 512 // the backup GPT
	}
	return max(end-d.partitionOffset(), 0) / 4096 * 4096
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
// ntfscp cannot make one) and text files from 1 KiB to 512 KiB, in total
// about a tenth of the partition, at most 8 MiB, or DiskSpec.FileBytes
// (text files then up to a 96th of their share, so the count stays
// bounded). With RandomShare that share of the budget, rounded to whole
// MiBs, goes to binary files of 1..8 MiB, interleaved with the text ones.
func guestFiles(seed uint64, ds DiskSpec, partSize int64) (dirs []string, files []GuestFile) {
	rng := rand.New(rand.NewPCG(seed, mix(uint64(ds.ID)^0x6775657374))) // "guest"
	if ds.FS == FSExt4 {
		dirs = []string{"/docs", "/logs", "/data", "/data/old"}
	}
	budget := min(partSize/10, 8<<20)
	count, span := defaultGuestFiles, int64(textSpan)
	if ds.FileBytes > 0 {
		budget, count = ds.FileBytes, maxGuestFiles
	}
	var binLeft int64
	if ds.RandomShare > 0 {
		binLeft = int64(math.Round(float64(budget)*ds.RandomShare/(1<<20))) << 20
		if ds.RandomShare >= 1 {
			binLeft = max(binLeft, 1<<20)
		}
	}
	textLeft := max(budget-binLeft, 0)
	if ds.RandomShare >= 1 {
		textLeft = 0
	}
	if ds.FileBytes > 0 {
		span = max(span, textLeft/96)
	}
	for i := 0; (binLeft > 0 || textLeft > 0) && i < count; i++ {
		if binLeft > 0 && (textLeft <= 0 || rng.Float64() < ds.RandomShare) {
			n := min(binLeft, (1+rng.Int64N(8))<<20)
			f := guestFormats[rng.IntN(len(guestFormats))]
			dir := ""
			if ds.FS == FSExt4 {
				dir = "/data"
			}
			files = append(files, GuestFile{Path: fmt.Sprintf("%s/%s%02d.%s", dir, f.stem, i, f.ext), Size: n, Format: f.format})
			binLeft -= n
			continue
		}
		n := min(textLeft, 1<<10+rng.Int64N(span))
		dir := ""
		if len(dirs) > 0 {
			dir = dirs[rng.IntN(len(dirs))]
		}
		files = append(files, GuestFile{Path: fmt.Sprintf("%s/file%02d.txt", dir, i), Size: n})
		textLeft -= n
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
	partOff, partSize := ds.partitionOffset(), ds.partitionSize()
	part := filepath.Join(work, "part.img")
	if err := makeSparse(part, partSize); err != nil {
		return nil, err
	}
	gt := &GuestFSTruth{FS: ds.FS, PartitionOffset: partOff, PartitionSize: partSize, BlockSize: 4096, Cipher: ds.Cipher}
	dirs, files := guestFiles(seed, ds, partSize)
	gt.Files = files
	var srcs []string
	for i, f := range files {
		src := filepath.Join(work, "src"+strconv.Itoa(i))
		if err := writeGuestFile(src, seed, ds.ID, f); err != nil {
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
		for _, line := range bytes.Split(out, []byte("\n")) {
			if bytes.Contains(line, []byte("No free space")) || bytes.Contains(line, []byte("Could not allocate")) {
				return nil, specErr("disk %d: guest files do not fit: debugfs: %s", ds.ID, bytes.TrimSpace(line))
			}
		}
	case FSNTFS:
		h := &HostSpec{FS: FSNTFS, BlockSize: 4096, Offset: partOff, Size: partSize}
		if err := mkntfs(part, h, false); err != nil {
			return nil, err
		}
		ntfscp, _ := needTool("ntfscp")
		t0 := time.Now()
		for i, f := range files {
			if out, err := run([]string{"LC_ALL=C"}, ntfscp, "-q", part, srcs[i], f.Path); err != nil {
				if bytes.Contains(out, []byte("No space left")) || bytes.Contains(out, []byte("Not enough space")) {
					return nil, specErr("disk %d: guest files do not fit: %s", ds.ID, bytes.TrimSpace(out))
				}
				return nil, err
			}
		}
		if err := normalizeNTFSTimes(part, t0, time.Now()); err != nil {
			return nil, err
		}
	}
	return gt, assembleGuest(seed, ds, raw, part, partSize)
}

// writeGuestFile writes the content of guest file f, in pieces so that a
// large file costs no more memory than a small one.
func writeGuestFile(path string, seed uint64, disk int, f GuestFile) error {
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, min(f.Size, 1<<20))
	for off := int64(0); off < f.Size; off += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), f.Size-off)]
		if f.Binary() {
			guestBinary(seed, disk, f, off, b)
		} else {
			guestText(disk, f.Path, off, b)
		}
		if _, err := w.Write(b); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// guestBinary fills buf with the bytes at offset off (a multiple of 4096)
// of binary guest file f: its format's header, then seeded noise keyed by
// the disk and the path, every 4 KiB block random-looking.
func guestBinary(seed uint64, disk int, f GuestFile, off int64, buf []byte) {
	key := mix(seed ^ uint64(disk)<<32 ^ pathHash(f.Path))
	fillRandom(key, streamGuest, off, buf)
	if off == 0 {
		head := binaryHeader(key, f)
		ensureRandom(key, streamGuest, 0, buf[:min(len(buf), randomBlock)], head)
		copy(buf, head) // a block too short to test still starts with its magic
	}
}

// pathHash is FNV-1a of a path: a file's key among the disk's files.
func pathHash(p string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(p); i++ {
		h = (h ^ uint64(p[i])) * 1099511628211
	}
	return h
}

// binaryHeader returns the first bytes of a binary guest file: its
// format's magic and a plausible small header (ITU T.81 / JFIF 1.02 APP0;
// PKWARE APPNOTE 4.3.7 local file header; RFC 1952 member header), with a
// seeded time and CRC; nothing for .bin.
func binaryHeader(key uint64, f GuestFile) []byte {
	when := uint32(1_500_000_000 + mix(key^0x74696d65)%200_000_000) // "time": 2017..2023
	base := f.Path[strings.LastIndexByte(f.Path, '/')+1:]
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	switch f.Format {
	case "jpeg":
		// SOI, APP0 "JFIF\0" v1.01, no units, 1:1 density, no thumbnail,
		// then the start of a DQT segment (table 0, 8-bit).
		return []byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
			0xff, 0xdb, 0x00, 0x43, 0x00}
	case "zip":
		name := stem + ".dat"
		h := make([]byte, 30, 30+len(name))
		binary.LittleEndian.PutUint32(h[0:], 0x04034b50) // "PK\x03\x04"
		binary.LittleEndian.PutUint16(h[4:], 20)         // version needed: 2.0
		binary.LittleEndian.PutUint16(h[8:], 8)          // deflate
		t := time.Unix(int64(when), 0).UTC()
		binary.LittleEndian.PutUint16(h[10:], uint16(t.Hour()<<11|t.Minute()<<5|t.Second()/2))
		binary.LittleEndian.PutUint16(h[12:], uint16((t.Year()-1980)<<9|int(t.Month())<<5|t.Day()))
		binary.LittleEndian.PutUint32(h[14:], uint32(mix(key^0x637263))) // "crc"
		csize := uint32(min(f.Size-int64(len(h)+len(name)), 0xffffffff))
		binary.LittleEndian.PutUint32(h[18:], csize)
		binary.LittleEndian.PutUint32(h[22:], uint32(min(int64(csize)*3, 0xffffffff)))
		binary.LittleEndian.PutUint16(h[26:], uint16(len(name)))
		return append(h, name...)
	case "gzip":
		// Deflate, FNAME set, mtime, no extra flags, OS Unix.
		h := []byte{0x1f, 0x8b, 0x08, 0x08, 0, 0, 0, 0, 0x00, 0x03}
		binary.LittleEndian.PutUint32(h[4:], when)
		return append(append(h, stem+".log"...), 0)
	}
	return nil
}

// cipherSector lays a BitLocker-like volume boot sector over the first
// 512 bytes of s (the rest stays cipher text): a jump, the "-FVE-FS-"
// OEM id BitLocker writes, 512 bytes per sector, the boot signature.
func cipherSector(s []byte) {
	copy(s[0:], []byte{0xeb, 0x58, 0x90})
	copy(s[3:], "-FVE-FS-")
	binary.LittleEndian.PutUint16(s[11:], 512)
	s[510], s[511] = 0x55, 0xaa
}

// assembleGuest writes the raw disk: an MBR or GPT naming the partition
// (none with NoPartitionTable), and the partition image at its offset,
// sparse where it reads zero. With Cipher every non-zero 4 KiB block of the
// partition is replaced by cipher text and its first sector by
// cipherSector.
func assembleGuest(seed uint64, ds DiskSpec, raw, part string, partSize int64) error {
	partOff := ds.partitionOffset()
	h := &HostSpec{FS: ds.FS, Offset: partOff, Size: partSize}
	var mbr []byte
	if !ds.NoPartitionTable {
		mbr = mbrFor(h, seed^uint64(ds.ID))
		copy(mbr, fmt.Sprintf("vmdkcarve guest disk=%04d", ds.ID))
	}
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
	var cipher []byte
	cipherKey := mix(seed ^ uint64(ds.ID)<<32 ^ 0x636970686572) // "cipher"
	if ds.Cipher {
		cipher = make([]byte, imageBlock)
	}
	zero := make([]byte, 4096)
	for off := int64(0); off < partSize; off += imageBlock {
		n, err := io.ReadFull(in, buf[:min(imageBlock, partSize-off)])
		if err != nil {
			out.Close()
			return err
		}
		if cipher != nil {
			fillRandom(cipherKey, streamCipher, partOff+off, cipher[:n])
			if off == 0 {
				cipherSector(cipher)
				buf[0] = 1 // the boot sector's block is written whatever it held
			}
		}
		for s := 0; s < n; s += 4096 {
			if bytes.Equal(buf[s:s+4096], zero) {
				continue // stays a hole
			}
			blk := buf[s : s+4096]
			if cipher != nil {
				blk = cipher[s : s+4096]
			}
			if _, err := out.WriteAt(blk, partOff+off+int64(s)); err != nil {
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
