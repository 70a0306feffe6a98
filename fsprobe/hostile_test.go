package fsprobe_test

import (
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/fsprobe"
)

// TestHostRecordsFromEditedHits: records read back from an edited or
// damaged hits.jsonl that the parsers could not have made (a block size
// or record size of 0, an LCN whose byte offset overflows int64) give no
// map and no panic (issue 13: both divided by zero).
func TestHostRecordsFromEditedHits(t *testing.T) {
	const F, B = 1 << 20, 4096
	sb := func(bs uint32) *ext4.Record {
		return &ext4.Record{Type: ext4.TypeSuperblock, Super: &ext4.Superblock{BlockSize: bs, BlocksPerGroup: 32768,
			InodesPerGroup: 8192, InodeSize: 256, Blocks: 1 << 16, Inodes: 1 << 14}}
	}
	in := ext4.Inode{Size: 5000, Links: 1, Root: ext4.Node{Max: 4, Entries: []ext4.Entry{{Logical: 0, Start: 100, Len: 2}}}}
	// Block size 4096 is the control: the same records, sound, map the
	// file, so the others give no map for their field alone.
	for _, bs := range []uint32{4096, 0, 3000, 1 << 20} {
		recs := []fsprobe.LocatedExt4{
			{Offset: F + 1024, Record: sb(bs)},
			{Offset: F + 20*B, Record: &ext4.Record{Type: ext4.TypeInodes, Inodes: []ext4.Inode{in}}},
		}
		if maps := fsprobe.Ext4Maps(recs, []int64{F + 100*B}); (len(maps) == 1) != (bs == 4096) {
			t.Errorf("block size %d: mapped %+v", bs, maps)
		}
	}

	boot := &ntfs.Record{Type: ntfs.TypeBootSector, Boot: &ntfs.Boot{SectorSize: 512, ClusterSize: 4096,
		TotalSectors: 1 << 20, MFTLCN: 4, MirrLCN: 2, RecordSize: 1024}}
	mft := func(recordSize int, lcn int64) *ntfs.Record {
		return &ntfs.Record{Type: ntfs.TypeMFTRecord, MFT: &ntfs.FileRecord{Number: 0, InUse: true, RecordSize: recordSize,
			Names: []ntfs.Name{{Name: "$MFT", Parent: 5}},
			Data:  []ntfs.Data{{Size: 1 << 16, Allocated: 1 << 16, Initialized: 1 << 16, LastVCN: 15, Runs: []ntfs.Run{{VCN: 0, LCN: lcn, Len: 16}}}}}}
	}
	for _, tc := range []struct {
		name string
		recs []fsprobe.LocatedNTFS
	}{
		{"sound (the control)", []fsprobe.LocatedNTFS{{Offset: F, Record: boot}, {Offset: F + 4*4096, Record: mft(1024, 4)}}},
		{"boot record size 0", []fsprobe.LocatedNTFS{{Offset: F, Record: &ntfs.Record{Type: ntfs.TypeBootSector,
			Boot: &ntfs.Boot{SectorSize: 512, ClusterSize: 4096, TotalSectors: 1 << 20, MFTLCN: 4, MirrLCN: 2}}}}},
		{"MFT record size 0", []fsprobe.LocatedNTFS{{Offset: F, Record: boot}, {Offset: F + 4*4096, Record: mft(0, 4)}}},
		{"cluster size 0", []fsprobe.LocatedNTFS{{Offset: F, Record: &ntfs.Record{Type: ntfs.TypeBootSector,
			Boot: &ntfs.Boot{SectorSize: 512, TotalSectors: 1 << 20, MFTLCN: 4, MirrLCN: 2, RecordSize: 1024}}}}},
		{"LCN 2^47", []fsprobe.LocatedNTFS{{Offset: F, Record: boot}, {Offset: F + 4*4096, Record: mft(1024, 1<<47)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if maps := fsprobe.NTFSMaps(tc.recs, []int64{F + 4*4096}); (len(maps) == 1) != (tc.name == "sound (the control)") {
				t.Errorf("mapped %+v", maps)
			}
		})
	}
}
