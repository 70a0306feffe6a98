package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"vmdkcarve/internal/entropy"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/reassemble"
)

// TestWipedHostLeavesExt4Guest is the red team's total loss (img3f) made
// small with real tools only: an ext4 guest (mkfs.ext4, files written by
// debugfs) converted by qemu-img to a monolithicSparse VMDK, written by
// debugfs into an ext4 host whose free space is holes between filler
// files, so that the VMDK lies in many pieces and its extent tree has a
// leaf block; then every host superblock, group descriptor, bitmap and
// inode table is zeroed. Only file data and the leaf survive. The guest's
// own superblock, stored verbatim in the VMDK's first grain, describes a
// volume that holds the host's leaf: it must not act as the host's
// geometry (PLACEMENT.md), and the file is mapped from the leaf under the
// geometry its block 0 on the header gives. Every intact grain must be
// placed, none wrong, and the rebuilt guest must pass e2fsck -fn.
func TestWipedHostLeavesExt4Guest(t *testing.T) {
	tooltest.Need(t, "mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck", "qemu-img")
	dir := t.TempDir()

	// The guest: 64 MiB of ext4 with about 9 MiB of text files, all in
	// its first 32 MiB: of its two grain tables per directory the second
	// is empty, so the carve finds no hit for it, and the map is complete
	// only if the leaf solver reads it from the image where the map puts
	// it (fsprobe readTables).
	var names []string
	files := map[string][]byte{}
	for i := range 18 {
		name := fmt.Sprintf("/f%d", i)
		names = append(names, name)
		files[name] = textOf(uint64(300+i), (128+i)*4096)
	}
	g := makeRealGuest(t, 64<<20, names, files)
	tooltest.Run(t, "e2fsck", "-fn", g.raw)
	vmdkPath := g.vmdkPath

	// The host: 96 MiB of ext4, 600 fillers of 64 KiB, every other one
	// removed, then the VMDK written into the holes.
	host := filepath.Join(dir, "host.dd")
	makeImage(t, host, 96<<20)
	tooltest.Run(t, "mkfs.ext4", "-F", "-q", "-b", "4096", host)
	filler := filepath.Join(dir, "filler")
	writeFile(t, filler, bytes.Repeat([]byte("filler of the host, not a VMDK. "), 64<<10/32))
	cmds := []string{"mkdir /f"}
	for i := range 600 {
		cmds = append(cmds, fmt.Sprintf("write %s /f/%d", filler, i))
	}
	for i := 0; i < 600; i += 2 {
		cmds = append(cmds, fmt.Sprintf("rm /f/%d", i))
	}
	debugfs(t, host, append(cmds, "write "+vmdkPath+" /g.vmdk"))
	extents, depth := fileExtents(t, host, "/g.vmdk")
	if len(extents) <= 4 || depth == 0 {
		t.Fatalf("the VMDK lies in %d extents, tree depth %d: want a leaf block outside the inode", len(extents), depth)
	}
	wiped := wipeExt4Metadata(t, host)
	for _, e := range extents {
		for _, w := range wiped {
			if e[0] <= w[1] && w[0] <= e[1] {
				t.Fatalf("the VMDK's blocks %d-%d overlap the metadata zeroed at %d-%d", e[0], e[1], w[0], w[1])
			}
		}
	}
	t.Logf("host: the VMDK in %d extents (tree depth %d); %d metadata ranges zeroed", len(extents), depth, len(wiped))

	run := carveAndRebuild(t, host)
	if run.err != nil {
		t.Fatalf("rebuild: %v", run.err)
	}
	if len(run.reports) != 1 {
		t.Fatalf("%d disks rebuilt, want 1", len(run.reports))
	}
	rep := run.reports[0]
	if m := rep.Disk.Instances[0].HostMap; m == nil || !m.Complete || !strings.Contains(m.Evidence, "is a guest's, not the host's") {
		t.Errorf("host map %+v: want a complete map from the leaf that sets the guest's volume aside", m)
	} else if !strings.Contains(m.Evidence, "2 predicted grain tables no hit found read where confirmed extents put them (2 of them empty)") {
		t.Errorf("host map evidence %q: want the 2 empty grain tables read from the image", m.Evidence)
	}
	want, err := os.ReadFile(g.raw)
	if err != nil {
		t.Fatal(err)
	}
	got := rebuiltRaw(t, run.caseDir, rep)
	if len(got) != len(want) {
		t.Fatalf("rebuilt %d bytes, truth %d", len(got), len(want))
	}
	// Every grain of the file survives (the wipe touched none of its
	// blocks): each non-zero grain of the truth must be placed.
	st := statuses(rep.Disk)
	intact, placed, wrong := 0, 0, 0
	for g := range st {
		lo, hi := g*grainBytes, min((g+1)*grainBytes, len(want))
		same := bytes.Equal(got[lo:hi], want[lo:hi])
		if st[g] == reassemble.Placed || st[g] == reassemble.Zero || !entropy.Zero(got[lo:hi]) {
			if !same {
				wrong++
				t.Errorf("grain %d: %s but its bytes differ from the truth", g, st[g])
			}
		}
		if !entropy.Zero(want[lo:hi]) {
			intact++
			if st[g] == reassemble.Placed && same {
				placed++
			}
		}
	}
	t.Logf("wiped ext4 host, ext4 guest: placed %d of %d intact grains, %d wrong; evidence %v", placed, intact, wrong, rep.Disk.Counts.ByEvidence)
	if intact == 0 || placed != intact || wrong != 0 {
		t.Errorf("placed %d of %d intact grains, %d wrong: want all of them and none wrong", placed, intact, wrong)
	}
	if placed == intact {
		raw := filepath.Join(dir, "rebuilt.raw")
		writeFile(t, raw, got)
		tooltest.Run(t, "e2fsck", "-fn", raw)
	}
}

func makeImage(t *testing.T, path string, size int64) {
	t.Helper()
	writeFile(t, path, nil)
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// debugfs runs commands on an ext4 image, writable.
func debugfs(t *testing.T, image string, cmds []string) {
	t.Helper()
	script := image + ".cmds"
	writeFile(t, script, []byte(strings.Join(cmds, "\n")+"\n"))
	tooltest.Run(t, "debugfs", "-w", "-f", script, image)
}

// fileExtents returns a file's leaf extents (first and last physical
// block) and its extent tree's depth, from debugfs's "ex" listing, whose
// rows read "level/max entry/entries logical-range physical-range length".
func fileExtents(t *testing.T, image, path string) (ranges [][2]int64, depth int) {
	t.Helper()
	row := regexp.MustCompile(`^\s*(\d+)/\s*(\d+)\s+\d+/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s*-\s*(\d+)\s+\d+`)
	for _, line := range strings.Split(tooltest.Run(t, "debugfs", "-R", "ex "+path, image), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		level, _ := strconv.Atoi(m[1])
		maxLevel, _ := strconv.Atoi(m[2])
		depth = max(depth, maxLevel)
		if level == maxLevel {
			lo, _ := strconv.ParseInt(m[3], 10, 64)
			hi, _ := strconv.ParseInt(m[4], 10, 64)
			ranges = append(ranges, [2]int64{lo, hi})
		}
	}
	return ranges, depth
}

// wipeExt4Metadata zeroes, as dumpe2fs lists them, every superblock copy
// with its group descriptors, the reserved GDT blocks, the bitmaps and the
// inode tables of a volume of 4 KiB blocks, and returns the block ranges
// zeroed.
func wipeExt4Metadata(t *testing.T, image string) [][2]int64 {
	t.Helper()
	var ranges [][2]int64
	for _, pat := range []string{
		`superblock at (\d+), Group descriptors at \d+-(\d+)`,
		`Reserved GDT blocks at (\d+)-(\d+)`,
		`Block bitmap at (\d+)()`,
		`Inode bitmap at (\d+)()`,
		`Inode table at (\d+)-(\d+)`,
	} {
		for _, m := range regexp.MustCompile(pat).FindAllStringSubmatch(tooltest.Run(t, "dumpe2fs", image), -1) {
			lo, _ := strconv.ParseInt(m[1], 10, 64)
			hi := lo
			if m[2] != "" {
				hi, _ = strconv.ParseInt(m[2], 10, 64)
			}
			ranges = append(ranges, [2]int64{lo, hi})
		}
	}
	if len(ranges) < 5 {
		t.Fatalf("dumpe2fs listed %d metadata ranges: %v", len(ranges), ranges)
	}
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range ranges {
		if _, err := f.WriteAt(make([]byte, (r[1]-r[0]+1)*4096), r[0]*4096); err != nil {
			t.Fatal(err)
		}
	}
	return ranges
}
