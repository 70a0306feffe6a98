package corpus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
)

// Host filesystems. With Spec.Host set, the VMDK files are not laid into
// noise at seeded offsets: a real host volume (ext4 built by mkfs.ext4 and
// debugfs, or NTFS built by mkntfs and ntfscp) holds them, fragmented on
// purpose, and the volume is laid into the image at HostSpec.Offset behind
// an MBR naming it. The truth of where every file byte went comes from the
// filesystem tools themselves (debugfs "ex", ntfsinfo's runlist), never from
// our own parsers, so a carver's host probes are scored against an
// independent witness.

// Host filesystem names (HostSpec.FS, DiskSpec.FS).
const (
	FSExt4 = "ext4"
	FSNTFS = "ntfs"
)

// HostDamageKind names a way the host volume is damaged after it is built.
type HostDamageKind string

const (
	// QuickFormat re-runs mkfs over the volume as a quick format: a new
	// superblock / $MFT is written; old data, and (ext4) the old inode
	// tables, mostly survive. The ranges are the sectors mkfs changed.
	QuickFormat HostDamageKind = "quick-format"
	// Reformat (ext4) re-runs mkfs.ext4 with lazy_itable_init=0 and
	// lazy_journal_init=0: the new inode tables and journal are written
	// out, so the old inodes that lay there are gone; the old data, and the
	// extent-tree blocks stored among it, survive.
	Reformat HostDamageKind = "reformat"
	// ZeroMFT (NTFS) zeroes the $MFT's first run; $MFTMirr survives.
	ZeroMFT HostDamageKind = "zero-mft"
	// ZeroSuperblocks (ext4) zeroes the primary and every backup
	// superblock and every copy of the group descriptors.
	ZeroSuperblocks HostDamageKind = "zero-superblocks"
	// ZeroBootSector (NTFS) zeroes the primary and the backup boot sector.
	ZeroBootSector HostDamageKind = "zero-boot-sector"
	// WipeHostMetadata zeroes every block of the volume that is not data
	// of a regular file: nothing of the host filesystem survives but the
	// file contents (VMDKs and fillers).
	WipeHostMetadata HostDamageKind = "wipe-host-metadata"
	// EncryptEveryNthMiB replaces MiB Offset/MiB, +N, +2N ... of every
	// VMDK file (file offsets) with seeded random bytes, as ransomware
	// that encrypts part of each file in place does; with Head, also each
	// file's first Head bytes; with SizeStep, the period is each file's
	// own (EffectiveStride) and N is ignored. Only the stored bytes
	// change: holes of a sparse host file stay holes.
	EncryptEveryNthMiB HostDamageKind = "encrypt-every-nth-mib"
)

// HostDamage is one damage to the host volume.
type HostDamage struct {
	Kind   HostDamageKind `json:"kind"`
	N      int            `json:"n,omitempty"`      // EncryptEveryNthMiB: period in MiB (>= 1)
	Offset int64          `json:"offset,omitempty"` // EncryptEveryNthMiB: file offset of the first encrypted MiB (a multiple of 1 MiB)
	// EncryptEveryNthMiB: Head bytes from each file's start are also
	// encrypted; SizeStep takes the period from each file's size as
	// ESXiArgs does (EffectiveStride), N then ignored.
	Head     int64 `json:"head,omitempty"`
	SizeStep bool  `json:"size_step,omitempty"`
}

// HostSpec describes the host volume holding the VMDK files.
type HostSpec struct {
	FS string // FSExt4 or FSNTFS
	// BlockSize is the ext4 block size (1024 or 4096; 0 means 4096) or
	// the NTFS cluster size (512..65536, a power of two; 0 means 4096).
	BlockSize int
	// Offset is where the volume starts in the image: a multiple of 4096.
	// When it is at least 512 an MBR naming the partition is written at
	// image offset 0.
	Offset int64
	Size   int64 // volume bytes, a multiple of BlockSize, 8 MiB..MaxHostSize
	// Fragments is the target number of pieces per VMDK file, 2..40;
	// 0 or 1 leaves each file as the allocator places it (contiguous on a
	// fresh volume).
	Fragments int
	// OutOfOrder asks for pieces whose disk order differs from their file
	// order. NTFS honours it (we write the runlist); ext4's allocator only
	// ever moves forward from its goal, so on ext4 the flag is recorded
	// but the layout is what debugfs gives (see hostfs_ext4.go).
	OutOfOrder bool
	Damage     []HostDamage
}

// Limits of a host volume.
const (
	minHostSize  = 8 << 20
	MaxHostSize  = 16 << 30 // the tools run over it several times; a corpus needs no more
	MaxFragments = 40
)

// ErrNoTool is returned (wrapped) by Generate when a Spec needs a
// filesystem tool (mkfs.ext4, debugfs, dumpe2fs, mkntfs, ntfscp,
// ntfsinfo) that is not installed; tests skip on it.
var ErrNoTool = errors.New("corpus: filesystem tool not found")

// needTool returns the path of a tool or an error wrapping ErrNoTool.
func needTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNoTool, name, err)
	}
	return p, nil
}

// HostTools lists the tools a host or guest filesystem of the given kind
// needs; HaveTools reports whether they are all installed.
func HostTools(fs string) []string {
	switch fs {
	case FSExt4:
		return []string{"mkfs.ext4", "debugfs", "dumpe2fs"}
	case FSNTFS:
		return []string{"mkntfs", "ntfscp", "ntfsinfo"}
	}
	return nil
}

// HaveTools reports whether every tool fs needs is installed.
func HaveTools(fs string) bool {
	for _, t := range HostTools(fs) {
		if _, err := exec.LookPath(t); err != nil {
			return false
		}
	}
	return true
}

// Fragment maps a run of file bytes to the image.
type Fragment struct {
	FileOffset  int64 `json:"file_offset"`
	ImageOffset int64 `json:"image_offset"`
	Length      int64 `json:"length"`
}

// HostTruth describes the host volume as built and what damaged it.
type HostTruth struct {
	FS          string `json:"fs"`
	ImageOffset int64  `json:"image_offset"` // where the volume starts
	Size        int64  `json:"size"`
	BlockSize   int    `json:"block_size"` // ext4 block or NTFS cluster
	// Structures are the host filesystem's own structures, as built
	// (before damage), by image range: superblocks, group descriptors,
	// inode tables, journal, extent-tree blocks, $MFT, $MFTMirr, boot
	// sectors ...
	Structures []Structure `json:"structures"`
	// Fillers are the data runs of the other (non-VMDK) files kept on the
	// volume: what a carver should not mistake for VMDK pieces.
	Fillers []Fragment        `json:"fillers,omitempty"`
	Damage  []HostDamageTruth `json:"damage,omitempty"`
}

// Structure is one named host filesystem structure.
type Structure struct {
	Name        string `json:"name"`
	ImageOffset int64  `json:"image_offset"`
	Length      int64  `json:"length"`
}

// HostDamageTruth is one applied host damage and the image ranges it
// changed. Fill "mkfs" means the bytes mkfs wrote.
type HostDamageTruth struct {
	HostDamage
	Ranges []Range `json:"ranges"`
	// Files lists, for EncryptEveryNthMiB, every file the damage went
	// over and its lattice: Damage{Kind: EncryptChunks, Chunk: 1 MiB,
	// Stride: Stride, At: Phase, Head: Head}.Chunks(Size) are the file
	// offsets encrypted (only the stored bytes among them changed).
	Files []EncryptedFileTruth `json:"files,omitempty"`
}

// EncryptedFileTruth is the encryption lattice of one host file.
type EncryptedFileTruth struct {
	HostPath string `json:"host_path"`
	// FileIndex is the file's index in Truth.Files; with Descriptor the
	// host file is that flat file's text descriptor, not the extent.
	FileIndex  int   `json:"file_index"`
	Descriptor bool  `json:"descriptor,omitempty"`
	Size       int64 `json:"size"`   // the file's length
	Stride     int64 `json:"stride"` // N MiB, or the size-step stride
	Phase      int64 `json:"phase"`  // file offset of the first strided MiB (HostDamage.Offset)
	Head       int64 `json:"head"`
}

// validateHost checks the host part of a spec.
func (s *Spec) validateHost() error {
	h := s.Host
	if h == nil {
		return nil
	}
	bs := h.blockSize()
	switch h.FS {
	case FSExt4:
		if bs != 1024 && bs != 4096 {
			return specErr("ext4 host block size %d, want 1024 or 4096", bs)
		}
	case FSNTFS:
		if bs < 512 || bs > 65536 || bs&(bs-1) != 0 {
			return specErr("ntfs host cluster size %d, want a power of two in 512..65536", bs)
		}
	default:
		return specErr("host filesystem %q, want ext4 or ntfs", h.FS)
	}
	switch {
	case h.Offset < 0 || h.Offset%4096 != 0:
		return specErr("host offset %d is not a non-negative multiple of 4096", h.Offset)
	case h.Size < minHostSize || h.Size > MaxHostSize || h.Size%int64(bs) != 0:
		return specErr("host size %d is not a multiple of %d in %d..%d", h.Size, bs, minHostSize, int64(MaxHostSize))
	case h.Offset+h.Size > s.ImageSize:
		return specErr("host volume %d+%d runs past the %d-byte image", h.Offset, h.Size, s.ImageSize)
	case h.Fragments < 0 || h.Fragments > MaxFragments:
		return specErr("host fragments %d, want 0..%d", h.Fragments, MaxFragments)
	}
	for i, f := range s.Files {
		if f.Offset != 0 {
			return specErr("file %d: a fixed offset is meaningless on a host filesystem", i)
		}
		if f.Fragments < 0 || f.Fragments > MaxFragments {
			return specErr("file %d: fragments %d, want 0..%d", i, f.Fragments, MaxFragments)
		}
	}
	for _, d := range h.Damage {
		switch d.Kind {
		case QuickFormat, WipeHostMetadata:
		case ZeroSuperblocks, Reformat:
			if h.FS != FSExt4 {
				return specErr("%s is an ext4 damage", d.Kind)
			}
		case ZeroMFT, ZeroBootSector:
			if h.FS != FSNTFS {
				return specErr("%s is an ntfs damage", d.Kind)
			}
		case EncryptEveryNthMiB:
			if (d.N < 1 && !d.SizeStep) || d.N < 0 || d.N > 1<<20 || d.Offset < 0 || d.Offset%(1<<20) != 0 || d.Offset > maxFileOffset || d.Head < 0 || d.Head > maxFileOffset {
				return specErr("%s: n %d, offset %d, head %d: want n >= 1 (unless size-step), a non-negative offset that is a multiple of 1 MiB, a non-negative head", d.Kind, d.N, d.Offset, d.Head)
			}
		default:
			return specErr("unknown host damage %q", d.Kind)
		}
	}
	return nil
}

func (h *HostSpec) blockSize() int {
	if h.BlockSize == 0 {
		return 4096
	}
	return h.BlockSize
}

// hostFile is one VMDK copy to put on the host volume, or the text
// descriptor file of a flat one.
type hostFile struct {
	index int    // in Spec.Files
	desc  bool   // the descriptor of flat file index, not the file itself
	src   string // the made file
	path  string // path on the volume, e.g. "/disk-01-ours-sparse.vmdk"
	size  int64
	frags int // target pieces (FileSpec.Fragments, else HostSpec.Fragments; 1 for a descriptor)
}

// slot is the file's key in volume.frags.
func (f hostFile) slot() int {
	if f.desc {
		return descSlot(f.index)
	}
	return f.index
}

// descSlot is the volume.frags key of the descriptor of Spec.Files[i]:
// negative, apart from every file's own index.
func descSlot(i int) int { return -1 - i }

// volume is a built host volume: a sparse file of HostSpec.Size bytes
// whose offsets are volume offsets (Fragment.ImageOffset holds volume
// offsets until the volume is laid).
type volume struct {
	path string
	// frags maps each file by hostFile.slot: its Spec.Files index, or
	// descSlot(index) for a flat file's descriptor.
	frags map[int][]Fragment
	// fixups has an entry, by slot, for each file resident in its NTFS
	// MFT record: the update-sequence slots (volume offsets) inside it.
	fixups     map[int][]int64
	fillers    []Fragment
	structures []Structure
	damage     []HostDamageTruth // ranges in volume offsets
}

// hostPaths names each file on the volume: its own name, prefixed with
// the copy number when one made file is laid more than once. A flat
// file's descriptor follows it, named NAME.vmdk beside NAME-flat.vmdk
// with the same prefix, in one piece (unless FileSpec.NoDescriptor).
func hostPaths(spec Spec, files map[fileKey]*made) []hostFile {
	seen := map[string]int{}
	var out []hostFile
	for i, f := range spec.Files {
		m := files[fileKey{f.Disk, f.Variant}]
		n := seen[m.name]
		seen[m.name]++
		prefix := "/"
		if n > 0 {
			prefix = fmt.Sprintf("/copy%d-", n)
		}
		k := f.Fragments
		if k == 0 {
			k = spec.Host.Fragments
		}
		out = append(out, hostFile{index: i, src: m.path, path: prefix + m.name, size: m.length, frags: k})
		if m.descPath != "" && !f.NoDescriptor {
			out = append(out, hostFile{index: i, desc: true, src: m.descPath, path: prefix + m.descName, size: m.descLen, frags: 1})
		}
	}
	return out
}

// buildHost builds the host volume and applies its damage.
func buildHost(spec Spec, files map[fileKey]*made, tmp string) (*volume, error) {
	hf := hostPaths(spec, files)
	var v *volume
	var err error
	switch spec.Host.FS {
	case FSExt4:
		v, err = buildExt4(spec, hf, tmp)
	case FSNTFS:
		v, err = buildNTFS(spec, hf, tmp)
	}
	if err != nil {
		return nil, err
	}
	if err := damageHost(spec, v, hf, tmp); err != nil {
		return nil, err
	}
	return v, nil
}

// mapRange returns the image (or volume) ranges holding file bytes
// [off, off+n) according to frags (sorted by FileOffset); bytes in no
// fragment are holes.
func mapRange(frags []Fragment, off, n int64) []Fragment {
	var out []Fragment
	end := off + n
	i, _ := slices.BinarySearchFunc(frags, off, func(f Fragment, o int64) int {
		switch {
		case f.FileOffset+f.Length <= o:
			return -1
		case f.FileOffset > o:
			return 1
		}
		return 0
	})
	for ; i < len(frags) && frags[i].FileOffset < end; i++ {
		f := frags[i]
		s, e := max(off, f.FileOffset), min(end, f.FileOffset+f.Length)
		if s < e {
			out = append(out, Fragment{FileOffset: s, ImageOffset: f.ImageOffset + s - f.FileOffset, Length: e - s})
		}
	}
	return out
}

// ReadFile reads file bytes [off, off+len(buf)) of a laid file from the
// image through its fragment map (holes read as zeros); for a file laid
// without a host filesystem it is one contiguous read. Bytes past the
// file's end read as zeros.
func (f *FileTruth) ReadFile(img io.ReaderAt, off int64, buf []byte) error {
	return readFrags(img, f.Fragments, f.ImageOffset, f.Length, off, buf)
}

// ReadDescriptor reads the whole text descriptor file of a flat extent
// from the image, through its fragment map; an error when there is none
// or it was not laid.
func (f *FileTruth) ReadDescriptor(img io.ReaderAt) ([]byte, error) {
	d := f.Descriptor
	if !d.Laid() {
		return nil, fmt.Errorf("corpus: file %d: no descriptor laid", f.Index)
	}
	buf := make([]byte, d.Length)
	return buf, readFrags(img, d.Fragments, d.ImageOffset, d.Length, 0, buf)
}

// readFrags reads file bytes [off, off+len(buf)) through frags, or from
// one run of length bytes at at when frags is nil.
func readFrags(img io.ReaderAt, frags []Fragment, at, length, off int64, buf []byte) error {
	clear(buf)
	if frags == nil {
		frags = []Fragment{{0, at, length}}
	}
	for _, p := range mapRange(frags, off, int64(len(buf))) {
		if _, err := img.ReadAt(buf[p.FileOffset-off:p.FileOffset-off+p.Length], p.ImageOffset); err != nil {
			return err
		}
	}
	return nil
}

// ReadGrain reads the bytes of one grain (data or stream record, Length
// bytes) from the image through the file's fragment map.
func (f *FileTruth) ReadGrain(img io.ReaderAt, g GrainTruth) ([]byte, error) {
	buf := make([]byte, g.Length)
	return buf, f.ReadFile(img, g.FileOffset, buf)
}

// mbrFor returns an MBR with one partition holding the host volume.
func mbrFor(h *HostSpec, seed uint64) []byte {
	s := make([]byte, 512)
	copy(s, "vmdkcarve host image")
	binary.LittleEndian.PutUint32(s[440:], uint32(mix(seed^0x686f7374))) // "host"
	p := s[446:462]
	copy(p[1:4], []byte{0xfe, 0xff, 0xff})
	p[4] = 0x83
	if h.FS == FSNTFS {
		p[4] = 0x07
	}
	copy(p[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(p[8:], uint32(h.Offset/512))
	binary.LittleEndian.PutUint32(p[12:], uint32(min(h.Size/512, 0xffffffff)))
	s[510], s[511] = 0x55, 0xaa
	return s
}

// nonZeroBlocks counts the bs-byte blocks of a file holding a non-zero
// byte: what a filesystem that skips zero blocks (debugfs) stores.
func nonZeroBlocks(path string, bs int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, bs)
	var n int64
	for {
		k, err := io.ReadFull(f, buf)
		for o := 0; o < k; o += bs {
			if !bytes.Equal(buf[o:min(o+bs, k)], zero[:min(bs, k-o)]) {
				n++
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// run runs a tool with a fixed environment and returns its output, or an
// error quoting it.
func run(env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %v: %w: %s", name, args, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// fillerText fills buf with the bytes at offset off of filler file id:
// text naming the filler and the offset, so stray filler bytes in a
// rebuilt disk name where they came from.
func fillerText(id int, off int64, buf []byte) {
	const line = 64
	var l [line]byte
	for i := 0; i < len(buf); {
		o := off + int64(i)
		lo := o / line * line
		copy(l[:], fmt.Sprintf("vmdkcarve host filler %04d offset %012d", id, lo))
		for j := 43; j < line-1; j++ {
			l[j] = ' '
		}
		l[line-1] = '\n'
		n := copy(buf[i:], l[o-lo:])
		i += n
	}
}

// writeFiller writes a filler file of n bytes.
func writeFiller(path string, id int, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < n; off += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), n-off)]
		fillerText(id, off, b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// splitSeeded splits total into k positive parts at seeded cut points.
func splitSeeded(rng interface{ Int64N(int64) int64 }, total int64, k int) []int64 {
	if k <= 1 || total < int64(k) {
		return []int64{total}
	}
	cuts := map[int64]bool{}
	for len(cuts) < k-1 {
		cuts[1+rng.Int64N(total-1)] = true
	}
	pts := make([]int64, 0, k+1)
	pts = append(pts, 0)
	for c := range cuts {
		pts = append(pts, c)
	}
	pts = append(pts, total)
	slices.Sort(pts)
	out := make([]int64, k)
	for i := range out {
		out[i] = pts[i+1] - pts[i]
	}
	return out
}

// truth shifts the volume's offsets to image offsets (the volume is laid
// at h.Offset) and returns the host truth.
func (v *volume) truth(h *HostSpec) *HostTruth {
	for i, fs := range v.frags {
		for j := range fs {
			fs[j].ImageOffset += h.Offset
		}
		v.frags[i] = fs
	}
	for _, fx := range v.fixups {
		for j := range fx {
			fx[j] += h.Offset
		}
	}
	for j := range v.fillers {
		v.fillers[j].ImageOffset += h.Offset
	}
	for j := range v.structures {
		v.structures[j].ImageOffset += h.Offset
	}
	for _, d := range v.damage {
		for j := range d.Ranges {
			d.Ranges[j].ImageOffset += h.Offset
		}
	}
	return &HostTruth{FS: h.FS, ImageOffset: h.Offset, Size: h.Size, BlockSize: h.blockSize(),
		Structures: v.structures, Fillers: v.fillers, Damage: v.damage}
}
