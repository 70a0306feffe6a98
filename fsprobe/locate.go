package fsprobe

import (
	"fmt"
	"maps"
	"slices"
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/fs/part"
)

// Self-locating guest structures. When every grain table of a sparse VMDK
// is lost, its grains still lie in the file, in the order they were
// written, and nothing in the VMDK says which virtual grain each one is.
// Some guest structures say it themselves, once the guest's geometry is
// known:
//
//   - the MBR is sector 0;
//   - an NTFS boot sector names its partition's start (hidden sectors)
//     and size, so it lies at the start or, as the backup, at the end;
//   - an MFT record carries its own number, and $MFT's run list (from
//     record 0) says where record N lies; $MFTMirr's location is known too;
//   - an ext4 superblock carries its group number, and with metadata_csum
//     every inode's checksum is seeded with its own number (solved here,
//     since the checksum is affine in it), so the group descriptors say
//     where it lies;
//   - the jbd2 superblock is block 0 of the journal inode's extents.
//
// A Locator learns the geometry from a first pass over the grains (Learn),
// then finds every structure in each grain (Locate) and intersects the
// virtual addresses they allow (Candidates). It also predicts which
// virtual grains the guest has written (Allocation), from the run lists
// and extents of every file it has seen, and says when that prediction is
// complete. It knows nothing about VMDKs: callers give it grain bytes.

// Claim is a self-locating structure found in a grain.
type Claim struct {
	At   int    // byte offset of the structure in the grain
	What string // e.g. "NTFS MFT record 37"
	// addrs are the virtual byte offsets the structure may lie at.
	addrs []int64
	// later, when set, gives the addresses once every grain has been seen:
	// the structure is located through records found anywhere (the
	// journal inode, a directory's inode or MFT record).
	later func() []int64
}

// Locator limits: what one guest may make a Locator keep.
const (
	maxLocatorMBRs    = 64      // distinct sector-0 candidates
	maxLocatorVolumes = 16      // NTFS boot sectors or ext4 superblocks of distinct volumes
	maxLocatorRecords = 1 << 22 // MFT records and inodes kept for the allocation prediction
	maxLocatorGroups  = 1 << 20 // ext4 block groups
)

// sector is the unit of partition tables and of the structures located.
const sector = part.SectorSize

// Locator finds where a guest disk's self-locating structures lie.
type Locator struct {
	grainBytes, diskBytes int64

	mbrs      map[string]int         // partition tables of sector-0 candidates
	gpts      map[string][]partition // the GPT partitions behind a protective MBR, by its table
	boots     map[string]*ntfsLoc    // by serial, hidden sectors and size
	rec0s     map[string][]ntfs.Run  // $MFT run lists from record-0 candidates
	supers    map[string]*extPrimary // primary superblocks (and their GDT) by UUID
	parts     []partition            // the MBR's partitions, once one MBR is known
	ntfs      []*ntfsLoc
	ext       []*extLoc
	kept      int         // records and inodes kept so far
	misplaced []Misplaced // (Misplaced)
	notes     []string
	ready     bool
}

type partition struct {
	start, length int64
	typ           byte
}

type ntfsLoc struct {
	start   int64
	boot    ntfs.Boot
	mftRuns []ntfs.Run
	mirror  int64 // records $MFTMirr holds
	mftInit int64 // $MFT's initialized size (bytes of written records)
	records map[int64]*ntfs.FileRecord
	// bitmap is $MFT's $BITMAP (which records are in use), filled from
	// grains whose address is proven (Anchored); have marks the bytes read.
	bitmap []byte
	have   []bool
}

type extPrimary struct {
	sb  *ext4.Superblock
	raw []byte
	gdt []byte // the group descriptor table as found after it (may be cut by the grain's end)
	// places are the volume starts the superblock's places name (its
	// virtual offset less ext4.SuperblockOffset), where LearnAt knew them.
	places map[int64]bool
}

type extLoc struct {
	start     int64
	sb        *ext4.Superblock
	reserved  int64 // s_reserved_gdt_blocks
	descSize  int64
	groups    []extGroup // the descriptors found after the primary superblock
	allGroups int64      // the groups the superblock says there are
	inodes    map[uint32]*extInode
	journal   int64 // physical block of the journal's block 0; -1 until known
}

type extGroup struct {
	ok                              bool // descriptor checksum verified
	blockBitmap, inodeBitmap, table int64
	freeBlocks, freeInodes          int64
	flags                           uint16
}

type extInode struct {
	gen     uint32
	mode    uint16
	flags   uint32
	extents []ext4.Entry // leaf extents (depth 0 roots only)
	deep    bool         // the extent tree has index nodes: leaves not read
	dind    int64        // block-mapped inode: i_block[13] (the resize inode's)
	mapped  bool         // block-mapped with blocks
	size    int64        // i_size: where the file's last block ends (Tails)
}

// NewLocator makes a Locator for a disk of diskBytes with grains of
// grainBytes.
func NewLocator(grainBytes, diskBytes int64) *Locator {
	return &Locator{grainBytes: grainBytes, diskBytes: diskBytes,
		mbrs: map[string]int{}, gpts: map[string][]partition{}, boots: map[string]*ntfsLoc{}, rec0s: map[string][]ntfs.Run{}, supers: map[string]*extPrimary{}}
}

// Misplaced is a geometry structure LearnAt read at a virtual offset
// where it cannot lie: the bytes there are not that place's.
type Misplaced struct {
	Offset int64  // virtual offset it was read at
	What   string // e.g. "an NTFS boot sector naming a volume at 1048576"
}

// Misplaced returns the geometry structures LearnAt read where they cannot
// lie: an NTFS boot sector elsewhere than its hidden sectors (or its
// backup's place) say, a primary ext4 superblock whose place names a
// volume start where no volume can start (no partition of the guest's
// table, or too near the disk's end for the volume). After Prepare.
func (l *Locator) Misplaced() []Misplaced { return slices.Clone(l.misplaced) }

// Volumes is the number of guest volumes the Locator located (after
// Prepare).
func (l *Locator) Volumes() int { return len(l.ntfs) + len(l.ext) }

// Notes say what the Locator learned and what it could not use.
func (l *Locator) Notes() []string { return l.notes }

// Learn is the first pass: it collects partition tables, boot sectors,
// $MFT record 0 and primary superblocks from one grain's bytes.
func (l *Locator) Learn(buf []byte) { l.LearnAt(buf, -1) }

// LearnAt is Learn for bytes whose virtual offset virt the caller knows
// (the grain tables place them), or -1. A primary superblock does not name
// its volume's start, but its place does (the volume starts
// ext4.SuperblockOffset before it): with virt known, the volume is located
// only where that start is a partition of the guest's table, or the
// disk's first byte when no table is known, and only when every place it
// was read at agrees. An NTFS boot sector is learned only at the place its
// hidden sectors name (or its backup's). Structures read where they cannot
// lie are kept for Misplaced. With virt -1 the volume is put in the one
// partition that can hold it, or at the disk's start when there is no
// partition table.
func (l *Locator) LearnAt(buf []byte, virt int64) {
	for off := 0; off+sector <= len(buf); off += sector {
		w := buf[off:]
		switch {
		case off == 0 && part.HasSignature(w) && !ntfs.IsBootMagic(w):
			if l.validMBR(w) && len(l.mbrs) < maxLocatorMBRs {
				key := string(w[part.TableOffset:sector])
				l.mbrs[key]++
				if gpt := gptPartitions(buf); gpt != nil {
					l.gpts[key] = gpt
				}
			}
		case ntfs.IsBootMagic(w):
			rec, err := ntfs.ParseBootSector(w)
			if err != nil || len(l.boots) >= maxLocatorVolumes {
				continue
			}
			hidden := ntfs.ReadBPB(w).HiddenSectors * rec.Boot.SectorSize
			if at := virt + int64(off); virt >= 0 && at != hidden && at != hidden+rec.Boot.TotalSectors*rec.Boot.SectorSize {
				// Its hidden sectors name its volume's start: a boot
				// sector, or its backup at the volume's end, read
				// elsewhere is not that place's.
				if len(l.misplaced) < maxLocatorVolumes {
					l.misplaced = append(l.misplaced, Misplaced{Offset: at, What: fmt.Sprintf("an NTFS boot sector naming a volume at %d", hidden)})
				}
				continue
			}
			key := fmt.Sprintf("%s/%d/%d", rec.Boot.Serial, hidden, rec.Boot.TotalSectors)
			if l.boots[key] == nil {
				l.boots[key] = &ntfsLoc{start: hidden, boot: *rec.Boot}
			}
		case ntfs.IsFileMagic(w) && ntfs.RecordNumber(w) == 0:
			rec, err := ntfs.ParseFileRecord(w[:min(len(w), ntfs.MaxRecordSize)])
			if err != nil || rec.MFT.Number != 0 || rec.MFT.FirstData() == nil || len(l.rec0s) >= maxLocatorVolumes {
				continue
			}
			runs := rec.MFT.FirstData().Runs
			l.rec0s[fmt.Sprint(runs)] = runs
		case ext4.IsSuperblockMagic(w):
			sb, err := ext4.ParseSuperblock(w[:ext4.SuperblockSize])
			if err != nil || !sb.MetadataCsum || !sb.CsumOK || sb.Group != 0 || len(l.supers) >= maxLocatorVolumes {
				continue
			}
			p := &extPrimary{sb: sb, raw: append([]byte(nil), w[:ext4.SuperblockSize]...), places: map[int64]bool{}}
			if gdt := off - ext4.SuperblockOffset + int(sb.FirstDataBlock+1)*int(sb.BlockSize); gdt > off && gdt < len(buf) {
				p.gdt = append([]byte(nil), buf[gdt:min(len(buf), gdt+maxGDTBytes)]...)
			}
			q := l.supers[sb.UUID]
			if q != nil {
				p.places = q.places
			}
			if virt >= 0 && len(p.places) < maxLocatorVolumes {
				p.places[virt+int64(off)-ext4.SuperblockOffset] = true
			}
			if q == nil || len(q.gdt) < len(p.gdt) {
				l.supers[sb.UUID] = p
			}
		}
	}
}

// gptPartitions reads the GPT behind a protective MBR from the grain that
// starts with it (part.GPT), or returns nil.
func gptPartitions(buf []byte) []partition {
	gpt := part.GPT(buf)
	if gpt == nil {
		return nil
	}
	out := []partition{}
	for _, p := range gpt {
		out = append(out, partition{start: p.Offset, length: p.Length, typ: part.TypeGPTProtective})
	}
	return out
}

// GPTPartitions returns the byte ranges (start, length) of the partitions
// of the GPT read from the start of a disk (at least its first 34
// sectors), or nil when there is no GPT with good checksums.
func GPTPartitions(head []byte) [][2]int64 {
	var out [][2]int64
	for _, p := range gptPartitions(head) {
		out = append(out, [2]int64{p.start, p.length})
	}
	return out
}

// validMBR: at least one partition, every entry inside the disk.
func (l *Locator) validMBR(w []byte) bool {
	n := 0
	for _, e := range part.MBR(w) {
		if e.Status != 0 && e.Status != 0x80 {
			return false
		}
		if e.Type == 0 {
			continue
		}
		if e.Offset() == 0 || e.Length() == 0 || e.Offset()+e.Length() > l.diskBytes {
			return false
		}
		n++
	}
	return n > 0
}

// Prepare ends the first pass: it settles the partition table and the
// geometry of every volume whose own structures agree.
func (l *Locator) Prepare() {
	l.ready = true
	if len(l.mbrs) == 1 {
		for t := range l.mbrs {
			if gpt := l.gpts[t]; gpt != nil {
				l.parts = gpt
				break
			}
			for _, e := range part.Table([]byte(t)) {
				if e.Type != 0 {
					l.parts = append(l.parts, partition{start: e.Offset(), length: e.Length(), typ: e.Type})
				}
			}
		}
		l.notes = append(l.notes, fmt.Sprintf("guest MBR found: %d partitions", len(l.parts)))
	} else if len(l.mbrs) > 1 {
		l.notes = append(l.notes, fmt.Sprintf("%d different guest MBRs found: none is used", len(l.mbrs)))
	}
	for _, k := range slices.Sorted(maps.Keys(l.boots)) {
		v := l.boots[k]
		if len(l.parts) > 0 && !l.partitionAt(v.start) {
			l.notes = append(l.notes, fmt.Sprintf("NTFS boot sector naming a volume at %d: no partition starts there", v.start))
			continue
		}
		var runs []ntfs.Run
		agree := 0
		for _, r := range l.rec0s {
			if len(r) > 0 && r[0].LCN == v.boot.MFTLCN {
				runs, agree = r, agree+1
			}
		}
		if agree != 1 {
			l.notes = append(l.notes, fmt.Sprintf("NTFS volume at %d: %d different $MFT run lists start at its $MFT: records are not located", v.start, agree))
			runs = nil
		}
		v.mftRuns = runs
		v.mirror = max(4, v.boot.ClusterSize/v.boot.RecordSize)
		v.records = map[int64]*ntfs.FileRecord{}
		l.ntfs = append(l.ntfs, v)
		l.notes = append(l.notes, fmt.Sprintf("NTFS volume at %d (serial %s, %d-byte clusters)", v.start, v.boot.Serial, v.boot.ClusterSize))
	}
	for _, u := range slices.Sorted(maps.Keys(l.supers)) {
		if v := l.extVolume(l.supers[u]); v != nil {
			l.ext = append(l.ext, v)
		}
	}
}

func (l *Locator) partitionAt(start int64) bool {
	for _, p := range l.parts {
		if p.start == start {
			return true
		}
	}
	return false
}

// extVolume settles an ext4 volume: its partition (the one partition that
// can hold it, or the whole disk when there is no partition table) and its
// group descriptors.
func (l *Locator) extVolume(p *extPrimary) *extLoc {
	sb := p.sb
	size := sb.VolumeBytes()
	start := int64(-1)
	switch {
	case len(p.places) > 0:
		// The superblock's place names the start, which must be where a
		// volume can start: a partition of the table, or the disk's start
		// when there is none. Bytes read at the wrong place would put
		// every structure of the volume at that place's shift and so
		// agree with it: such a place is misplaced.
		// Without a partition table, a start inside the disk other than
		// its first byte is neither: the table may be lost.
		var good []int64
		for _, at := range slices.Sorted(maps.Keys(p.places)) {
			switch {
			case at+size > l.diskBytes || (len(l.parts) > 0 && !l.partitionAt(at)):
				if len(l.misplaced) < maxLocatorVolumes {
					l.misplaced = append(l.misplaced, Misplaced{Offset: at + ext4.SuperblockOffset, What: fmt.Sprintf("a primary ext4 superblock naming a volume at %d", at)})
				}
			case len(l.parts) > 0 || at == 0:
				good = append(good, at)
			}
		}
		if len(good) != 1 || good[0]+size > l.diskBytes {
			l.notes = append(l.notes, fmt.Sprintf("ext4 volume %s: its superblock was found at %d places, %d of them where a volume can start: not located", sb.UUID, len(p.places), len(good)))
			return nil
		}
		start = good[0]
	case len(l.parts) == 0:
		if size <= l.diskBytes {
			start = 0
		}
	default:
		n := 0
		for _, q := range l.parts {
			if q.length >= size {
				start, n = q.start, n+1
			}
		}
		if n != 1 {
			l.notes = append(l.notes, fmt.Sprintf("ext4 volume %s: %d partitions can hold it: not located", sb.UUID, n))
			return nil
		}
	}
	if start < 0 {
		return nil
	}
	fields := ext4.ReadSuperblockFields(p.raw)
	descSize, ok := fields.GroupDescSize()
	if !ok {
		return nil
	}
	v := &extLoc{start: start, sb: sb, descSize: descSize, inodes: map[uint32]*extInode{}, journal: -1,
		reserved: int64(fields.ReservedGDTBlocks)}
	groups := (int64(sb.Blocks) - int64(sb.FirstDataBlock) + int64(sb.BlocksPerGroup) - 1) / int64(sb.BlocksPerGroup)
	if groups <= 0 || groups > maxLocatorGroups {
		return nil
	}
	// Only the descriptors found can be verified; the rest stay unknown
	// (and make the allocation prediction incomplete), so the slice is
	// bounded by what the grain held, not by what the superblock claims.
	v.groups = make([]extGroup, min(groups, int64(len(p.gdt))/v.descSize))
	v.allGroups = groups
	good := 0
	for g := range int64(len(v.groups)) {
		d := p.gdt[g*v.descSize : (g+1)*v.descSize]
		if !ext4.GroupDescChecksumOK(d, sb.CsumSeed, uint32(g)) {
			continue
		}
		gd := ext4.ParseGroupDesc(d)
		v.groups[g] = extGroup{ok: true, blockBitmap: gd.BlockBitmap, inodeBitmap: gd.InodeBitmap, table: gd.InodeTable,
			freeBlocks: gd.FreeBlocks, freeInodes: gd.FreeInodes, flags: gd.Flags}
		good++
	}
	l.notes = append(l.notes, fmt.Sprintf("ext4 volume %s at %d: %d of %d group descriptors verified", sb.UUID, start, good, groups))
	return v
}

// Locate is the second pass: every self-locating structure in one grain.
// It also keeps what the allocation prediction needs (MFT records,
// inodes), so every grain must pass through Locate once.
func (l *Locator) Locate(buf []byte) []Claim {
	if !l.ready {
		l.Prepare()
	}
	var out []Claim
	for off := 0; off+sector <= len(buf); off += sector {
		w := buf[off:]
		switch {
		case off == 0 && len(l.parts) > 0 && part.HasSignature(w) && l.mbrs[string(w[part.TableOffset:sector])] > 0 && len(l.mbrs) == 1:
			out = append(out, Claim{At: 0, What: "guest MBR", addrs: []int64{0}})
		case ntfs.IsBootMagic(w):
			out = append(out, l.ntfsBootClaims(off, w)...)
		case ntfs.IsFileMagic(w):
			out = append(out, l.mftClaims(off, w)...)
		case ntfs.IsIndexMagic(w):
			out = append(out, l.indexClaims(off, w)...)
		case ext4.IsSuperblockMagic(w):
			out = append(out, l.superClaims(off, w)...)
		case ext4.IsJournalSuperblock(w):
			for _, v := range l.ext {
				out = append(out, Claim{At: off, What: "ext4 journal superblock", later: func() []int64 {
					if v.journal < 0 {
						return nil // the journal inode was never seen
					}
					return []int64{v.start + v.journal*int64(v.sb.BlockSize)}
				}})
			}
		}
	}
	for _, v := range l.ext {
		out = append(out, l.inodeClaims(v, buf)...)
		out = append(out, l.dirBlockClaims(v, buf)...)
	}
	return out
}

func (l *Locator) ntfsBootClaims(off int, w []byte) []Claim {
	rec, err := ntfs.ParseBootSector(w)
	if err != nil {
		return nil
	}
	var out []Claim
	for _, v := range l.ntfs {
		if rec.Boot.Serial == v.boot.Serial && *rec.Boot == v.boot {
			out = append(out, Claim{At: off, What: "NTFS boot sector", addrs: []int64{v.start, v.start + v.boot.TotalSectors*v.boot.SectorSize}})
		}
	}
	return out
}

func (l *Locator) mftClaims(off int, w []byte) []Claim {
	rec, err := ntfs.ParseFileRecord(w[:min(len(w), ntfs.MaxRecordSize)])
	if err != nil || rec.MFT.Number < 0 {
		return nil
	}
	f := rec.MFT
	if !f.InUse {
		// mkntfs leaves the reserved records 16-23 formatted but unused,
		// numbered 0: only a record in use is sure to carry its number.
		return nil
	}
	var out []Claim
	for _, v := range l.ntfs {
		if v.mftRuns == nil || int64(f.RecordSize) != v.boot.RecordSize {
			continue
		}
		var addrs []int64
		if a := v.recordAt(v.mftRuns, v.start, f.Number); a >= 0 {
			addrs = append(addrs, a)
		}
		if f.Number < v.mirror {
			addrs = append(addrs, v.start+v.boot.MirrLCN*v.boot.ClusterSize+f.Number*v.boot.RecordSize)
		}
		if len(addrs) == 0 {
			continue
		}
		out = append(out, Claim{At: off, What: fmt.Sprintf("NTFS MFT record %d", f.Number), addrs: addrs})
		if _, seen := v.records[f.Number]; !seen && l.kept < maxLocatorRecords {
			l.kept++
			v.records[f.Number] = f
			if f.Number == 0 && f.FirstData() != nil {
				v.mftInit = f.FirstData().Initialized
			}
		}
	}
	return out
}

// recordAt is the virtual offset of MFT record n through $MFT's runs.
func (v *ntfsLoc) recordAt(runs []ntfs.Run, start, n int64) int64 {
	byteOff := n * v.boot.RecordSize
	lcn := ntfs.VCNToLCN(runs, byteOff/v.boot.ClusterSize)
	if lcn < 0 {
		return -1
	}
	return start + lcn*v.boot.ClusterSize + byteOff%v.boot.ClusterSize
}

func (l *Locator) superClaims(off int, w []byte) []Claim {
	sb, err := ext4.ParseSuperblock(w[:ext4.SuperblockSize])
	if err != nil || !sb.CsumOK {
		return nil
	}
	var out []Claim
	for _, v := range l.ext {
		if sb.UUID == v.sb.UUID {
			out = append(out, Claim{At: off, What: fmt.Sprintf("ext4 superblock of group %d", sb.Group), addrs: []int64{v.start + sb.GroupStart()}})
		}
	}
	return out
}

// inodeClaims finds the inodes of volume v in buf whose metadata_csum
// checksum verifies for exactly one inode number, and claims the address
// the group descriptors give that number.
func (l *Locator) inodeClaims(v *extLoc, buf []byte) []Claim {
	isz := int(v.sb.InodeSize)
	if isz != 256 {
		return nil // 32-bit checksums (and so unique numbers) need 256-byte inodes
	}
	var out []Claim
	ipg := int64(v.sb.InodesPerGroup)
	for at := 0; at+isz <= len(buf); at += isz {
		b := buf[at : at+isz]
		fields := ext4.ReadInodeFields(b)
		if extra := fields.ExtraIsize; extra < 4 || extra > 128 || extra%4 != 0 {
			continue
		}
		switch fields.Mode & ext4.ModeTypeMask {
		case 0, 0x1000, 0x2000, 0x4000, 0x6000, ext4.ModeRegular, 0xA000, 0xC000:
		default:
			continue
		}
		in := ext4.InodeChecksumFields(b)
		inum, ok := in.SolveInodeNumber(v.sb.CsumSeed, v.sb.InodeSize)
		if !ok || inum == 0 || inum > v.sb.Inodes {
			continue
		}
		g := (int64(inum) - 1) / ipg
		if g >= int64(len(v.groups)) || !v.groups[g].ok {
			continue
		}
		addr := v.start + v.groups[g].table*int64(v.sb.BlockSize) + ((int64(inum)-1)%ipg)*int64(isz)
		out = append(out, Claim{At: at, What: fmt.Sprintf("ext4 inode %d", inum), addrs: []int64{addr}})
		if _, seen := v.inodes[inum]; !seen && l.kept < maxLocatorRecords {
			l.kept++
			v.inodes[inum] = decodeInode(b, fields)
			if inum == ext4.JournalInode {
				if e := v.inodes[inum].extents; len(e) > 0 && e[0].Logical == 0 {
					v.journal = int64(e[0].Start)
				}
			}
		}
	}
	return out
}

// decodeInode keeps what the allocation prediction needs of a verified
// inode b, whose fields are f.
func decodeInode(b []byte, f ext4.InodeFields) *extInode {
	in := &extInode{mode: f.Mode, flags: f.Flags, gen: f.Generation, size: f.Size}
	if f.Links == 0 || f.Dtime != 0 {
		in.mode = 0 // deleted or never used: owns no blocks
		return in
	}
	switch {
	case in.flags&ext4.FlagInlineData != 0:
	case in.flags&ext4.FlagExtents != 0:
		root, err := ext4.ParseNode(b[ext4.InodeBlock:ext4.InodeBlock+60], "inode i_block", ext4.InodeRootMaxEntry)
		if err != nil {
			in.deep = true // unreadable: counts as unknown
			return in
		}
		if root.Depth > 0 {
			in.deep = true
			return in
		}
		in.extents = root.Entries
	default:
		for _, blk := range f.Block {
			if blk != 0 {
				in.mapped = true
			}
		}
		in.dind = f.DoubleIndirect()
	}
	return in
}

// maxMFTBitmap bounds the $MFT bitmap kept: 2^23 records.
const maxMFTBitmap = 1 << 20

// ntfsAttrBitmap is the $BITMAP attribute type.
const ntfsAttrBitmap = 0xB0

// Anchored tells the Locator that grain g, whose address is now proven,
// holds buf: structures found by address rather than by content (the
// $MFT bitmap) are read from it.
func (l *Locator) Anchored(g int64, buf []byte) {
	lo, hi := g*l.grainBytes, g*l.grainBytes+int64(len(buf))
	for _, v := range l.ntfs {
		rec := v.records[0]
		if rec == nil {
			continue
		}
		for _, d := range rec.Streams {
			if d.Type != ntfsAttrBitmap || d.StartVCN != 0 || d.Initialized <= 0 || d.Initialized > maxMFTBitmap {
				continue
			}
			if v.bitmap == nil {
				v.bitmap, v.have = make([]byte, d.Initialized), make([]bool, d.Initialized)
			}
			cs := v.boot.ClusterSize
			for _, r := range d.Runs {
				if r.Sparse {
					continue
				}
				// The run's bytes of the stream, cut to the bitmap's size,
				// and where they lie on the disk.
				sOff, sEnd := r.VCN*cs, min((r.VCN+r.Len)*cs, int64(len(v.bitmap)))
				dOff := v.start + r.LCN*cs
				for i := max(sOff, lo-dOff+sOff); i < sEnd && dOff+i-sOff < hi; i++ {
					v.bitmap[i] = buf[dOff+i-sOff-lo]
					v.have[i] = true
				}
			}
		}
	}
}

// Candidates intersects the grains every claim of one grain allows: the
// grain indexes g with the claim's structure at byte At of grain g. One
// candidate means the grain has proved its own address.
func (l *Locator) Candidates(claims []Claim) []int64 {
	var set map[int64]bool
	for _, c := range claims {
		addrs := c.addrs
		if c.later != nil {
			if addrs = c.later(); addrs == nil {
				continue // what would locate it was never seen: proves nothing
			}
		}
		next := map[int64]bool{}
		for _, a := range addrs {
			base := a - int64(c.At)
			if base < 0 || base%l.grainBytes != 0 || base >= l.diskBytes {
				continue
			}
			if g := base / l.grainBytes; set == nil || set[g] {
				next[g] = true
			}
		}
		set = next
		if len(set) == 0 {
			return nil
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Possible reports whether a claim alone allows some grain of the disk: a
// structure that cannot lie at any grain boundary offset it was found at
// belongs to no grain of this disk (another disk's bytes, or chance).
func (l *Locator) Possible(c Claim) bool { return len(l.Candidates([]Claim{c})) > 0 }

// Describe lists what the claims are, for a report.
func Describe(claims []Claim) string {
	if len(claims) == 0 {
		return ""
	}
	s := claims[0].What
	if len(claims) > 1 {
		s += fmt.Sprintf(" and %d more", len(claims)-1)
	}
	return s
}
