package fsprobe_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
)

// hostileCount is n, or the positive integer in the environment variable
// name (the big version of a crafted-input test, run by hand).
func hostileCount(t *testing.T, name string, n int) int {
	t.Helper()
	if s := os.Getenv(name); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("%s=%q", name, s)
		}
		return v
	}
	return n
}

// TestOverlappingExt4Volumes (issue 13): n crafted superblocks 1 MiB apart,
// each claiming a 2^40-byte volume, so that every volume's region holds
// every later volume and its inodes; each volume has one inode putting its
// block 0 on a VMDK header. Each file is mapped once, under its own
// volume: n maps, not n² (HOSTILE_EXT4_VOLUMES sets n; time and memory
// are measured by hand).
func TestOverlappingExt4Volumes(t *testing.T) {
	n := hostileCount(t, "HOSTILE_EXT4_VOLUMES", 2000)
	const B, step = 4096, 1 << 20
	// Volume v's file starts at its block 100 + v×n×256: no other
	// volume's start puts that block on a header.
	start := func(v int) uint64 { return 100 + uint64(v)*uint64(n)*step/B }
	var recs []fsprobe.LocatedExt4
	var anchors []int64
	for v := range n {
		F := int64(v) * step
		recs = append(recs,
			fsprobe.LocatedExt4{Offset: F + 1024, Record: &ext4.Record{Type: ext4.TypeSuperblock, Super: &ext4.Superblock{
				BlockSize: B, BlocksPerGroup: 32768, InodesPerGroup: 8192, InodeSize: 256, Blocks: 1 << 28, Inodes: 1 << 20}}},
			fsprobe.LocatedExt4{Offset: F + 8*B, Record: &ext4.Record{Type: ext4.TypeInodes, Inodes: []ext4.Inode{{
				Size: 3 * B, Links: 1, Root: ext4.Node{Max: ext4.InodeRootMaxEntry, Entries: []ext4.Entry{{Logical: 0, Start: start(v), Len: 3}}}}}}})
		anchors = append(anchors, F+int64(start(v))*B)
	}
	maps := fsprobe.Ext4Maps(recs, anchors)
	// The default n fits the resolver's work limit: every file is
	// mapped. A bigger one may not: the files mapped say so.
	if len(maps) > n || (len(maps) < n && n <= 2000) {
		t.Fatalf("%d maps for %d files", len(maps), n)
	}
	for i, m := range maps {
		if F := int64(i) * step; m.Volume != F || len(m.Extents) != 1 || m.Extents[0].ImageOffset != F+int64(start(i))*B {
			t.Fatalf("map %d: volume %d, extents %+v; want volume %d", i, m.Volume, m.Extents, F)
		}
		if len(maps) < n && !strings.Contains(m.Evidence, "work limit") {
			t.Fatalf("%d of %d files mapped, and map %d does not say why: %s", len(maps), n, i, m.Evidence)
		}
	}
	t.Logf("%d volumes: %d maps", n, len(maps))
}
