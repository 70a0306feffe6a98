package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/pipeline"
	"vmdkcarve/signatures"
)

// TestCraftedHostRecords (issue 13) adds to the hits of a real case, one
// sparse file in noise, n crafted host records the carver could have
// found: n ext4 superblocks 2 KiB apart each claiming a 2^40-byte volume
// (every volume holds every later one and its inodes) with one inode each,
// or n copies of NTFS record 0 ($MFT) and n of record 1 ($MFTMirr), each
// naming clusters of its own. None describes the sparse file: the rebuild
// makes the one disk, byte for byte the one made without them. The
// resolvers weigh the volumes against the inodes and the hypotheses
// against the mirrors in bounded work (time and memory are measured by
// hand with a large HOSTILE_FS_RECORDS).
func TestCraftedHostRecords(t *testing.T) {
	n := envCount(t, "HOSTILE_FS_RECORDS", 2000)
	// The crafted records lie from 256 KiB, 2 KiB a volume or a pair of
	// records; the sparse file after them.
	end := 1<<20 + n*2048
	image := noiseImage(t, end+8<<20, map[int][]byte{end + 1<<20: smallSparse(t, 8192, nil)})
	run := carveAndRebuild(t, image)
	if run.err != nil || len(run.reports) != 1 {
		t.Fatalf("rebuild: %v, %d disks", run.err, len(run.reports))
	}
	// The disk the crafted records must leave alone is whole: all 64
	// grains of the sparse file placed.
	if c := run.reports[0].Disk.Counts; c.Placed != 64 {
		t.Fatalf("without the crafted records: %d of 64 grains placed, %d missing", c.Placed, c.Missing)
	}
	hitsPath := filepath.Join(run.caseDir, pipeline.HitsName)
	orig, err := os.ReadFile(hitsPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(run.caseDir, run.reports[0].Output[0].Path))
	if err != nil {
		t.Fatal(err)
	}

	const B, C, R = 4096, 4096, 1024
	var ext4Hits []signatures.Hit
	for v := range int64(n) {
		F := 256<<10 + v*2048
		ext4Hits = append(ext4Hits,
			signatures.Hit{Offset: F + 1024, Kind: signatures.KindExt4, Verdict: signatures.Valid, Length: 1024,
				Ext4: &ext4.Record{Type: ext4.TypeSuperblock, Super: &ext4.Superblock{BlockSize: B, BlocksPerGroup: 32768,
					InodesPerGroup: 8192, InodeSize: 256, Blocks: 1 << 28, Inodes: 1 << 20}}},
			// Block 0 past any image: no inode lands on the sparse file's header.
			signatures.Hit{Offset: F + 1536, Kind: signatures.KindExt4, Verdict: signatures.Valid, Length: 512,
				Ext4: &ext4.Record{Type: ext4.TypeInodes, Inodes: []ext4.Inode{{Size: 3 * B, Links: 1,
					Root: ext4.Node{Max: ext4.InodeRootMaxEntry, Entries: []ext4.Entry{{Logical: 0, Start: 1<<32 + uint64(v), Len: 3}}}}}}})
	}
	file := func(num int64, name string, lcn int64) *ntfs.Record {
		return &ntfs.Record{Type: ntfs.TypeMFTRecord, MFT: &ntfs.FileRecord{Number: num, InUse: true, RecordSize: R,
			Names: []ntfs.Name{{Name: name, Parent: 5}},
			Data:  []ntfs.Data{{Size: 16 * C, Allocated: 16 * C, Initialized: 16 * C, LastVCN: 15, Runs: []ntfs.Run{{VCN: 0, LCN: lcn, Len: 16}}}}}}
	}
	var ntfsHits []signatures.Hit
	for v := range int64(n) {
		off := 256<<10 + v*2*R
		ntfsHits = append(ntfsHits,
			signatures.Hit{Offset: off, Kind: signatures.KindNTFS, Verdict: signatures.Valid, Length: R, NTFS: file(0, "$MFT", 1+v%200)},
			signatures.Hit{Offset: off + R, Kind: signatures.KindNTFS, Verdict: signatures.Valid, Length: R, NTFS: file(1, "$MFTMirr", 3+7*v)})
	}
	for _, tc := range []struct {
		name string
		hits []signatures.Hit
	}{{"ext4 overlapping volumes", ext4Hits}, {"NTFS record 0 and mirror copies", ntfsHits}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(hitsPath, withHits(t, orig, tc.hits), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := rebuildCase(run.caseDir)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			if len(res.Disks) != 1 {
				t.Fatalf("rebuild: %d disks, want 1", len(res.Disks))
			}
			if got, err := os.ReadFile(filepath.Join(run.caseDir, run.reports[0].Output[0].Path)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("the disk differs from the one made without the crafted records (%v)", err)
			}
		})
	}
}

// withHits is the hits file orig with extra merged in, in offset order.
func withHits(t *testing.T, orig []byte, extra []signatures.Hit) []byte {
	t.Helper()
	type line struct {
		off int64
		b   []byte
	}
	var lines []line
	for _, l := range bytes.SplitAfter(orig, []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var h struct {
			Offset int64 `json:"offset"`
		}
		if err := json.Unmarshal(l, &h); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line{h.Offset, l})
	}
	for _, h := range extra {
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line{h.Offset, append(b, '\n')})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return int(min(max(a.off-b.off, -1), 1)) })
	var out []byte
	for _, l := range lines {
		out = append(out, l.b...)
	}
	return out
}
