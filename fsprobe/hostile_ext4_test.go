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
	return hostileCounts(t, name, n)[0]
}

// hostileCounts is ns, or the positive integer in the environment
// variable name alone.
func hostileCounts(t *testing.T, name string, ns ...int) []int {
	t.Helper()
	if s := os.Getenv(name); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("%s=%q", name, s)
		}
		return []int{v}
	}
	return ns
}

// TestOverlappingExt4Volumes (issue 13): n crafted superblocks 1 MiB apart,
// each claiming a 2^40-byte volume, so that every volume's region holds
// every later volume and its inodes; each volume has one inode putting its
// block 0 on a VMDK header. Each file is mapped once, under its own
// volume: with 2000 volumes (n²/2 volume × inode pairs, within the
// resolver's work limit) all n, with 9000 (past it) fewer, each saying
// so (HOSTILE_EXT4_VOLUMES sets n; time and memory are measured by
// hand).
func TestOverlappingExt4Volumes(t *testing.T) {
	for _, n := range hostileCounts(t, "HOSTILE_EXT4_VOLUMES", 2000, 9000) {
		t.Run(strconv.Itoa(n), func(t *testing.T) { overlappingExt4Volumes(t, n) })
	}
}

func overlappingExt4Volumes(t *testing.T, n int) {
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
	if len(maps) > n || (len(maps) < n) != (n > 8192) {
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

// TestAnchorSolverManyVotes (issue 13): no superblock, n inodes and n VMDK
// headers 1 MiB apart, inode i's block 0 at block 1000 + 256×i: every inode
// votes for a geometry with every header under every block size, n² × 4
// votes. One geometry (fs start 1000 blocks before the first header, 4 KiB
// blocks) has a
// fact on every header and takes them all: n maps, each inode on its own
// header, with 500 inodes; with 1500, the votes are past the facts the
// solver keeps, and no map is made: missing rather than solved from part
// of the votes (HOSTILE_EXT4_VOTES sets n).
func TestAnchorSolverManyVotes(t *testing.T) {
	for _, n := range hostileCounts(t, "HOSTILE_EXT4_VOTES", 500, 1500) {
		t.Run(strconv.Itoa(n), func(t *testing.T) { anchorSolverManyVotes(t, n) })
	}
}

func anchorSolverManyVotes(t *testing.T, n int) {
	const B, first = 4096, 1 << 30
	var recs []fsprobe.LocatedExt4
	var anchors []int64
	for i := range n {
		recs = append(recs, fsprobe.LocatedExt4{Offset: 1<<40 + int64(i)*4096, Record: &ext4.Record{Type: ext4.TypeInodes, Inodes: []ext4.Inode{{
			Size: 3 * B, Links: 1, Root: ext4.Node{Max: ext4.InodeRootMaxEntry, Entries: []ext4.Entry{{Logical: 0, Start: 1000 + uint64(i)*256, Len: 3}}}}}}})
		anchors = append(anchors, first+int64(i)<<20)
	}
	maps, notes := fsprobe.Ext4MapsNoted(recs, anchors)
	want := n // 3n² facts (the 64 KiB blocks' mostly fall before the image start)
	if n >= 1200 {
		want = 0 // past the 2^22 the solver keeps
	}
	if len(maps) != want {
		t.Fatalf("%d maps for %d files", len(maps), n)
	}
	// Capped, the solve makes no map to carry the note: the note is
	// returned of its own, for the report.
	if capped := want == 0; capped != (len(notes) == 1 && strings.Contains(notes[0], "work limit")) {
		t.Errorf("capped %v, notes %q", capped, notes)
	}
	for i, m := range maps {
		if m.Volume != first-1000*B || len(m.Extents) != 1 || m.Extents[0].ImageOffset != anchors[i] {
			t.Fatalf("map %d: volume %d, extents %+v; want volume %d", i, m.Volume, m.Extents, first-1000*B)
		}
	}
	t.Logf("%d inodes and headers: %d maps", n, len(maps))
}
