package fsprobe

import (
	"fmt"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/fs/part"
	"vmdkcarve/internal/entropy"
)

// Expectation is a fact a guest disk's own structures predict about the
// bytes at one virtual offset: "an NTFS boot sector at the start of this
// NTFS partition", "the ext4 superblock backup of group 3 here". A guest
// grain placed at a virtual address that contradicts an expectation is in
// the wrong place, which is how a rebuild notices a VMDK file's fragment
// ending without any host metadata. Expectations come only from bytes
// already placed, so they never rest on a guess.
type Expectation struct {
	Offset int64  // virtual offset of the bytes Match looks at
	Len    int    // how many bytes Match needs
	Desc   string // what is expected, for the report
	Match  func(b []byte) bool
	// Then, if set, gives the expectations the matched bytes imply (a
	// boot sector's MFT, a superblock's backups).
	Then func(b []byte) []Expectation
	// Volume: a match proves a guest filesystem starts here.
	Volume bool
	// Soft expectations are guesses (a partition type byte says "Linux",
	// not which filesystem): a mismatch contradicts nothing, a match
	// still yields Then.
	Soft bool
}

// bitLockerOEM is the OEM id of a BitLocker volume's boot sector, in an
// NTFS-typed partition.
const bitLockerOEM = "-FVE-FS-"

// Partition type bytes of the MBR entries whose filesystems are probed.
const (
	mbrTypeNTFS  = 0x07
	mbrTypeLinux = 0x83
)

// ExpectFromMBR reads the start of a guest disk of diskSize bytes (sector
// 0, and for a GPT disk the sectors after it: pass the whole first grain)
// and predicts a filesystem start at each NTFS or Linux MBR partition. GPT
// partitions hold anything (an EFI system partition, a reserved one of
// zeros), so their predictions are soft: a volume found there predicts
// more, its absence contradicts nothing.
func ExpectFromMBR(sector0 []byte, diskSize int64) []Expectation {
	if !part.HasSignature(sector0) {
		return nil
	}
	var out []Expectation
	for _, p := range gptPartitions(sector0) {
		if p.start+p.length <= diskSize {
			e := partitionStartExpectation(p.start, 0xEE)
			e.Soft = true
			out = append(out, e)
		}
	}
	for _, e := range part.MBR(sector0) {
		start, length := e.Offset(), e.Length()
		if start == 0 || length == 0 || start+length > diskSize {
			continue
		}
		// A partition typed NTFS (0x07, also exFAT) or Linux (0x83) holds
		// a volume whose first 4 KiB say what it is: any of the known
		// signatures will do, and only ext and NTFS predict more.
		if e.Type == mbrTypeNTFS || e.Type == mbrTypeLinux {
			out = append(out, partitionStartExpectation(start, e.Type))
		}
	}
	return out
}

// ExpectNTFSVolume predicts what an NTFS volume starting at byte part of
// a disk holds (its boot sector, then its backup, $MFT and $MFTMirr
// records), for a disk whose partition table is gone but whose volume
// named its start.
func ExpectNTFSVolume(part int64) []Expectation {
	return []Expectation{ntfsBootExpectation(part, "NTFS boot sector at the start of partition", 0)}
}

// ExpectExt4Volume predicts what an ext volume starting at byte part of a
// disk holds (its primary superblock, then its backups and group
// descriptors), for a disk formatted whole, without a partition table.
func ExpectExt4Volume(part int64) []Expectation {
	return []Expectation{extSuperblockExpectation(part, 0, nil)}
}

// partitionStartExpectation expects a known volume signature in the first
// 4 KiB of a partition of the given MBR type.
func partitionStartExpectation(part int64, typ byte) Expectation {
	ntfs := ntfsBootExpectation(part, "NTFS boot sector at the start of partition", 0)
	ext := extSuperblockExpectation(part, 0, nil)
	return Expectation{
		Offset: part, Len: 4096, Volume: true, Desc: fmt.Sprintf("a volume signature at the start of the partition at %d (type %#02x)", part, typ),
		Match: func(b []byte) bool {
			switch {
			case ntfs.Match(b[:sector]), ext.Match(b[1024:2048]):
				return true
			case typ == mbrTypeNTFS && (string(b[3:11]) == "EXFAT   " || string(b[3:11]) == bitLockerOEM):
				return true
			case entropy.RandomLooking(b):
				// An encrypted volume without a header of its own
				// (VeraCrypt, plain dm-crypt) is a volume too: cipher
				// text at a partition start contradicts nothing.
				return true
			}
			return string(b[:4]) == "XFSB" || // XFS
				string(b[512:520]) == "LABELONE" || // LVM2 physical volume
				string(b[4086:4096]) == "SWAPSPACE2" || // Linux swap
				string(b[:6]) == "LUKS\xba\xbe" // LUKS
		},
		Then: func(b []byte) []Expectation {
			switch {
			case ntfs.Match(b[:sector]):
				return ntfs.Then(b[:sector])
			case ext.Match(b[1024:2048]):
				return ext.Then(b[1024:2048])
			}
			return nil
		},
	}
}

func ntfsBootExpectation(start int64, desc string, at int64) Expectation {
	return Expectation{
		Offset: start + at, Len: sector, Desc: fmt.Sprintf("%s %d", desc, start),
		Match: func(b []byte) bool {
			return ntfs.IsBootMagic(b)
		},
		Then: func(b []byte) []Expectation {
			if at != 0 {
				return nil
			}
			bpb := ntfs.ReadBPB(b)
			bps, spc, total, mft, mirr := bpb.BytesPerSector, bpb.SectorsPerCluster, bpb.TotalSectors, bpb.MFTLCN, bpb.MirrLCN
			cluster := bps * spc
			if bps < sector || bps > 4096 || spc == 0 || cluster > 1<<16 || total <= 0 || total > 1<<40 || mft > 1<<40 || mirr > 1<<40 {
				return nil
			}
			out := []Expectation{ntfsBootExpectation(start, "NTFS backup boot sector at the end of partition", total*bps)}
			// The first system records of $MFT and the four of $MFTMirr
			// carry their own record numbers; record 0 ($MFT itself)
			// says how far the MFT's first run goes, and every record
			// slot there is a record of that number or still zero.
			for n := int64(0); n < 4; n++ {
				rec := mftRecordExpectation(start+mft*cluster+n*1024, n, "$MFT")
				if n == 0 {
					rec.Len = 1024
					rec.Then = func(b []byte) []Expectation { return mftRunExpectations(b, start, cluster) }
				}
				out = append(out, rec, mftRecordExpectation(start+mirr*cluster+n*1024, n, "$MFTMirr"))
			}
			return out
		},
	}
}

func mftRecordExpectation(off, n int64, where string) Expectation {
	return Expectation{
		Offset: off, Len: 0x30, Desc: fmt.Sprintf("%s record %d", where, n),
		Match: func(b []byte) bool {
			return ntfs.IsFileMagic(b) && int64(ntfs.RecordNumber(b)) == n
		},
	}
}

// Limits on the ext4 expectations: group descriptors checked (one 64 KiB
// read at most) and inodes predicted per group (the start of each inode
// table: in-use inodes cluster there).
const (
	maxGDTBytes       = 64 << 10
	maxInodesPerGroup = 64
)

// extGroupDescExpectations predicts, for a metadata_csum ext4 volume, its
// group descriptor table (every descriptor's checksum verifies with the
// filesystem's seed) and, through it, the start of every inode table
// (each inode slot is zero or its checksum verifies with its own number).
// Both checksums seed with the volume's UUID, so bytes from anywhere else
// cannot pass. Volumes without metadata_csum get no such prediction.
func extGroupDescExpectations(part int64, sbBytes []byte) []Expectation {
	sb, err := ext4.ParseSuperblock(sbBytes)
	if err != nil || !sb.MetadataCsum || sb.Group != 0 {
		return nil
	}
	bs := int64(sb.BlockSize)
	descSize, ok := ext4.ReadSuperblockFields(sbBytes).GroupDescSize()
	if !ok {
		return nil
	}
	groups := (int64(sb.Blocks) + int64(sb.BlocksPerGroup) - 1) / int64(sb.BlocksPerGroup)
	n := min(groups, maxGDTBytes/descSize)
	if n <= 0 {
		return nil
	}
	seed := sb.CsumSeed
	return []Expectation{{
		Offset: part + (int64(sb.FirstDataBlock)+1)*bs, Len: int(n * descSize),
		Desc: fmt.Sprintf("the checksummed group descriptors of the ext4 volume at %d", part),
		Match: func(b []byte) bool {
			for g := int64(0); g < n; g++ {
				if !ext4.GroupDescChecksumOK(b[g*descSize:(g+1)*descSize], seed, uint32(g)) {
					return false
				}
			}
			return true
		},
		Then: func(b []byte) []Expectation {
			var out []Expectation
			isz := int64(sb.InodeSize)
			for g := int64(0); g < n; g++ {
				d := ext4.ParseGroupDesc(b[g*descSize : (g+1)*descSize])
				// Only initialised inodes are predicted: a group flagged
				// INODE_UNINIT, and the unused tail bg_itable_unused says,
				// may hold whatever the disk held before.
				if d.Flags&ext4.GroupInodeUninit != 0 {
					continue
				}
				used := int64(sb.InodesPerGroup) - d.ItableUnused
				for j := int64(0); j < min(used, maxInodesPerGroup); j++ {
					inum := uint32(g*int64(sb.InodesPerGroup) + j + 1)
					out = append(out, ext4InodeExpectation(part+d.InodeTable*bs+j*isz, inum, int(isz), seed))
				}
			}
			return out
		},
	}}
}

// ext4InodeExpectation predicts inode inum at off: all zero (never
// initialised) or carrying a metadata_csum checksum that verifies.
func ext4InodeExpectation(off int64, inum uint32, isz int, seed uint32) Expectation {
	return Expectation{
		Offset: off, Len: isz, Desc: fmt.Sprintf("ext4 inode %d", inum),
		Match: func(b []byte) bool {
			for _, c := range b {
				if c != 0 {
					return ext4.InodeChecksumOK(b, seed, inum)
				}
			}
			return true
		},
	}
}

// maxMFTExpectations bounds the record slots predicted from $MFT's first
// run: enough to cover the MFT a guest writes early (its first run), few
// enough to stay cheap.
const maxMFTExpectations = 1 << 16

// mftRunExpectations reads $MFT's own record (record 0) and predicts every
// record slot of its first run up to its initialized size: an MFT record
// of that very number, or zeros (a slot not yet used).
func mftRunExpectations(rec []byte, part, cluster int64) []Expectation {
	r, err := ntfs.ParseFileRecord(rec)
	if err != nil || r.MFT == nil || r.MFT.Number != 0 || r.MFT.RecordSize != 1024 {
		return nil
	}
	for _, d := range r.MFT.Data {
		if d.Resident || d.StartVCN != 0 || len(d.Runs) == 0 || d.Runs[0].Sparse || d.Runs[0].VCN != 0 {
			continue
		}
		run := d.Runs[0]
		records := min(run.Len*cluster, d.Initialized) / 1024
		var out []Expectation
		for n := int64(4); n < min(records, maxMFTExpectations); n++ {
			e := mftRecordExpectation(part+run.LCN*cluster+n*1024, n, "$MFT")
			match := e.Match
			e.Len = 0x30
			e.Match = func(b []byte) bool {
				// A slot in use holds its own number; a formatted slot not
				// in use (mkntfs reserves 16..23 so) may not, and a slot
				// never written is zeros.
				switch {
				case ntfs.IsFileMagic(b) && !ntfs.RecordInUse(b):
					return true
				case ntfs.IsFileMagic(b):
					return match(b)
				}
				for _, c := range b {
					if c != 0 {
						return false
					}
				}
				return true
			}
			out = append(out, e)
		}
		return out
	}
	return nil
}

// extSuperblockExpectation predicts the superblock (group 0) or a backup
// (group g) of an ext2/3/4 volume at part; backups must carry the primary's
// UUID.
func extSuperblockExpectation(part int64, group uint32, primary []byte) Expectation {
	off := part + 1024
	var pf ext4.SuperblockFields
	if primary != nil {
		pf = ext4.ReadSuperblockFields(primary)
		off = part + (int64(pf.FirstDataBlock)+int64(group)*int64(pf.BlocksPerGroup))*pf.BlockSize()
	}
	return Expectation{
		Offset: off, Len: 1024, Desc: fmt.Sprintf("ext superblock of group %d of the volume at %d", group, part),
		Match: func(b []byte) bool {
			f := ext4.ReadSuperblockFields(b)
			if f.Magic != ext4.Magic || uint32(f.BlockGroup) != group {
				return false
			}
			return primary == nil || f.UUID == pf.UUID
		},
		Then: func(b []byte) []Expectation {
			if primary != nil {
				return nil
			}
			f := ext4.ReadSuperblockFields(b)
			bpg, blocks := int64(f.BlocksPerGroup), int64(f.BlocksLo)
			if bpg <= 0 || blocks <= 0 {
				return nil
			}
			groups := (blocks + bpg - 1) / bpg
			sb := append([]byte(nil), b...)
			gdt := extGroupDescExpectations(part, b)
			if !f.SparseSuper() {
				// sparse_super2 keeps two backups where it likes; without
				// sparse_super every group has one: predict none rather
				// than a wrong set.
				return gdt
			}
			out := gdt
			// sparse_super keeps backups in groups 1 and the powers of
			// 3, 5 and 7 (the feature is on in every mkfs default).
			for _, base := range []int64{3, 5, 7} {
				for g := base; g < groups && g < 1<<20; g *= base {
					out = append(out, extSuperblockExpectation(part, uint32(g), sb))
				}
			}
			if groups > 1 {
				out = append(out, extSuperblockExpectation(part, 1, sb))
			}
			return out
		},
	}
}
