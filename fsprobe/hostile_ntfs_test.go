package fsprobe_test

import (
	"strings"
	"testing"

	"vmdkcarve/fs/ntfs"
	"vmdkcarve/fsprobe"
)

// TestManyMFTMirrRecords (issue 13): one NTFS volume holding guest.vmdk,
// among n crafted copies of record 0 ($MFT) and n of record 1 ($MFTMirr),
// each naming a cluster of its own: every copy of record 0 is a volume
// hypothesis, and each is weighed against the mirrors. The one file is
// mapped, once, where its volume puts it (HOSTILE_NTFS_RECORDS sets n;
// time and memory are measured by hand).
func TestManyMFTMirrRecords(t *testing.T) {
	n := hostileCount(t, "HOSTILE_NTFS_RECORDS", 3000)
	const V, C, R = 1 << 20, 4096, 1024
	file := func(num int64, name string, lcn, clusters int64) *ntfs.Record {
		size := clusters * C
		return &ntfs.Record{Type: ntfs.TypeMFTRecord, MFT: &ntfs.FileRecord{Number: num, InUse: true, RecordSize: R,
			Names: []ntfs.Name{{Name: name, Parent: 5}},
			Data:  []ntfs.Data{{Size: size, Allocated: size, Initialized: size, LastVCN: clusters - 1, Runs: []ntfs.Run{{VCN: 0, LCN: lcn, Len: clusters}}}}}}
	}
	recs := []fsprobe.LocatedNTFS{
		{Offset: V, Record: &ntfs.Record{Type: ntfs.TypeBootSector, Boot: &ntfs.Boot{SectorSize: 512, ClusterSize: C,
			TotalSectors: 1 << 20, MFTLCN: 4, MirrLCN: 2, RecordSize: R}}},
		{Offset: V + 4*C, Record: file(0, "$MFT", 4, 16)},
		{Offset: V + 4*C + 40*R, Record: file(40, "guest.vmdk", 100, 8)},
	}
	const clutter = 1 << 30
	for i := range int64(n) {
		recs = append(recs,
			fsprobe.LocatedNTFS{Offset: clutter + i<<20, Record: file(0, "$MFT", 1000+i, 16)},
			fsprobe.LocatedNTFS{Offset: clutter + i<<20 + R, Record: file(1, "$MFTMirr", 5000+7*i, 1)})
	}
	maps := fsprobe.NTFSMaps(recs, []int64{V + 100*C})
	if len(maps) != 1 || maps[0].Name != "guest.vmdk" || maps[0].Volume != V ||
		len(maps[0].Extents) != 1 || maps[0].Extents[0].ImageOffset != V+100*C {
		t.Fatalf("%d maps: %+v", len(maps), maps)
	}
	if !strings.Contains(maps[0].Evidence, "boot sector at image offset") {
		t.Errorf("evidence: %s", maps[0].Evidence)
	}
}
