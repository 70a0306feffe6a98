package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// generateGuests is generate for specs with real guest filesystems: it
// skips when a tool the guests need (mkfs.ext4, debugfs, mkntfs, ntfscp,
// ...) is not installed.
func generateGuests(t *testing.T, spec corpus.Spec) *corpus.Truth {
	t.Helper()
	for _, d := range spec.Disks {
		if d.FS != "" && !corpus.HaveTools(d.FS) {
			tooltest.Missing(t, "a %s guest needs %v: not all installed", d.FS, corpus.HostTools(d.FS))
		}
	}
	return generate(t, spec)
}

// TestHeaderLostRealGuests is TestHeaderLost with real ext4 and NTFS
// guests: the first sector of each file is zeroed; sparse files are found
// again from their grain directories and surviving descriptor, streams
// from their footer or descriptor. Every surviving grain is placed, none
// is wrong, and each rebuilt guest passes e2fsck -fn / ntfsfix -n and
// walks as its ground truth does.
func TestHeaderLostRealGuests(t *testing.T) {
	head := []corpus.Damage{{Kind: corpus.ZeroHeader}}
	truth := generateGuests(t, corpus.Spec{Seed: 61, ImageSize: 24 << 20,
		Disks: []corpus.DiskSpec{
			{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, {ID: 2, Capacity: 24 << 20, FS: corpus.FSNTFS},
			{ID: 3, Capacity: 24 << 20, FS: corpus.FSExt4}, {ID: 4, Capacity: 24 << 20, FS: corpus.FSNTFS},
		},
		Files: []corpus.FileSpec{
			{Disk: 1, Variant: corpus.QemuSparse, Damage: head},
			{Disk: 2, Variant: corpus.OursSparse, Damage: head},
			{Disk: 3, Variant: corpus.VMwareStream, Damage: head},
			{Disk: 4, Variant: corpus.QemuStream, Damage: head},
		}})
	run := carveAndRebuildLogged(t, truth)
	checkAll(t, truth, run, 4)
	for _, rep := range run.reports {
		if !rep.Disk.Instances[0].HeaderLost {
			t.Errorf("disk %d: instance not marked header-lost", rep.Disk.ID)
		}
		guestCheck(t, truth, run, rep, diskOf(t, truth, rep))
	}
}

// TestStreamStartLostRealGuests is the first half of
// TestStreamStartAndEndLost with real guests: a VMware-layout stream whose
// first 64 KiB (header, descriptor) and last 4 KiB (tables, footer) are
// overwritten is adopted from its grain records alone, its capacity taken
// from the guest's MBR. One image per guest: two such streams cannot be
// told apart (TestStreamStartAndEndLost's second half).
func TestStreamStartLostRealGuests(t *testing.T) {
	gone := []corpus.Damage{{Kind: corpus.Overwrite, At: 0, Bytes: 64 << 10}, {Kind: corpus.CutTail, Bytes: 4 << 10}}
	for _, tc := range []struct {
		name string
		fs   string
		seed uint64
	}{{"ext4", corpus.FSExt4, 62}, {"ntfs", corpus.FSNTFS, 63}} {
		t.Run(tc.name, func(t *testing.T) {
			const capacity = 24 << 20
			truth := generateGuests(t, corpus.Spec{Seed: tc.seed, ImageSize: 1 << 20,
				Disks: []corpus.DiskSpec{{ID: 1, Capacity: capacity, FS: tc.fs}},
				Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream, Damage: gone}}})
			run := carveAndRebuildLogged(t, truth)
			checkAll(t, truth, run, 1)
			if d := run.reports[0].Disk; !d.Instances[0].HeaderLost || d.Capacity != uint64(capacity/512) {
				t.Fatalf("instance %+v, capacity %d, want %d", d.Instances[0].Notes, d.Capacity, capacity/512)
			}
			guestCheck(t, truth, run, run.reports[0], 1)
		})
	}
}

// TestVersionsRealGuests is TestVersions with a real ext4 guest: v1 as the
// corpus makes it, v2 the same volume changed later by debugfs, and a copy
// of v1. Each version is rebuilt exactly and on its own, the reports link
// them as versions of one disk, oldest first, and --versions newest emits
// only v2. With v2's parentCID naming v1's CID the order comes from the CID
// chain; with unrelated CIDs (and v2 laid first) the disks are linked by
// their shared grains and ordered by the guest superblock's write time.
func TestVersionsRealGuests(t *testing.T) {
	if _, err := exec.LookPath("e2fsck"); err != nil {
		tooltest.Missing(t, "e2fsck is not installed")
	}
	const capacity = 24 << 20
	base := generateGuests(t, corpus.Spec{Seed: 64, ImageSize: 8 << 20,
		Disks: []corpus.DiskSpec{{ID: 1, Capacity: capacity, FS: corpus.FSExt4}}})
	dt := base.Disk(1)
	v1, err := os.ReadFile(dt.Raw)
	if err != nil {
		t.Fatal(err)
	}
	fs := dt.FS
	dir := t.TempDir()

	// v2: the same volume a day later, changed by debugfs: one file
	// removed, one written (new inode, extents, directory entry, bitmaps,
	// group descriptor and superblock counts, all checksummed).
	part := filepath.Join(dir, "part.img")
	if err := os.WriteFile(part, v1[fs.PartitionOffset:fs.PartitionOffset+fs.PartitionSize], 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "new.txt")
	if err := os.WriteFile(src, bytes.Repeat([]byte("version TWO of disk 1: a file written after the first copy was made\n"), 300<<10/68), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "v2.cmd")
	cmds := []string{"rm " + fs.Files[0].Path, "write " + src + " /docs/new.txt"}
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("debugfs", "-w", "-f", script, part)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1420156800", "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	tooltest.Run(t, "e2fsck", "-fn", part)
	p2, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	v2 := append([]byte(nil), v1...)
	copy(v2[fs.PartitionOffset:], p2)
	changed := 0
	for g := 0; g < len(v1); g += grainBytes {
		if !bytes.Equal(v1[g:g+grainBytes], v2[g:g+grainBytes]) {
			changed++
		}
	}
	t.Logf("v2 differs from v1 in %d grains", changed)
	if changed < 2 || !bytes.Contains(v2, []byte("version TWO of disk 1")) {
		t.Fatalf("debugfs did not change the volume as asked (%d grains differ)", changed)
	}

	raws := map[string]string{"v1": filepath.Join(dir, "v1.raw"), "v2": filepath.Join(dir, "v2.raw")}
	for path, data := range map[string][]byte{raws["v1"]: v1, raws["v2"]: v2} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := func(t *testing.T, raw []byte, cid, parent uint32, name string) []byte {
		var w tooltest.MemFile
		desc := &vmdk.Descriptor{CID: cid, ParentCID: parent}
		if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: capacity / 512, FileName: name, Descriptor: desc},
			func(g uint64, b []byte) (bool, error) { copy(b, raw[g*grainBytes:]); return true, nil }); err != nil {
			t.Fatal(err)
		}
		return w.Bytes
	}
	for _, tc := range []struct {
		name     string
		v2Parent uint32 // v2's parentCID: v1's CID, or none
		order    string
		v2First  bool // lay v2 before v1, so image order cannot pass for age
	}{
		{"CID chain", 0x61616161, "descriptor CID chain (parentCID → CID)", false},
		{"unrelated CIDs, guest write time", 0xffffffff, "guest ext filesystem's last write time (s_wtime)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noise := noiseSource(64, 64)
			first, second := file(t, v1, 0x61616161, 0xffffffff, "g.vmdk"), file(t, v2, 0x62626262, tc.v2Parent, "g.vmdk")
			if tc.v2First {
				first, second = second, first
			}
			var img []byte
			img = append(img, noise(1<<20)...)
			img = append(img, first...)
			img = append(img, noise(1<<20)...)
			img = append(img, second...)
			img = append(img, noise(1<<20)...)
			img = append(img, file(t, v1, 0x61616161, 0xffffffff, "g-copy.vmdk")...)
			img = append(img, noise(1<<20)...)
			image := filepath.Join(t.TempDir(), "image.dd")
			if err := os.WriteFile(image, img, 0o644); err != nil {
				t.Fatal(err)
			}

			run := carveAndRebuild(t, image)
			checkVersionPair(t, run, image, 0x62626262, tc.order, raws, func(rep *pipeline.DiskReport, want string) {
				s := scoreAgainst(t, run, rep, raws[want])
				t.Logf("%s: %d of %d non-zero grains placed, %d wrong; evidence %v", want, s.placed, s.surviving, s.wrong, rep.Disk.Counts.ByEvidence)
				if s.wrong != 0 || s.placed != s.surviving {
					t.Errorf("%s: placed %d of %d grains, %d wrong; not placed: %v", want, s.placed, s.surviving, s.wrong, s.unplaced)
				}
				tooltest.Compare(t, filepath.Join(run.caseDir, rep.Output[0].Path), raws[want])
				vt := &corpus.Truth{Disks: []corpus.DiskTruth{{ID: 1, Raw: raws[want], Capacity: capacity, FS: fs}}}
				guestCheck(t, vt, run, rep, 1)
			})
		})
	}
}

// scoreAgainst scores a rebuilt disk grain by grain against a raw image
// that is not a corpus truth disk (a version made here): every non-zero
// grain of the raw counts as surviving.
func scoreAgainst(t *testing.T, run *caseRun, rep *pipeline.DiskReport, raw string) score {
	t.Helper()
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := rebuiltRaw(t, run.caseDir, rep)
	if len(got) != len(want) {
		t.Fatalf("disk %d: rebuilt %d bytes, truth %d", rep.Disk.ID, len(got), len(want))
	}
	zero := make([]byte, grainBytes)
	var s score
	for g, st := range statuses(rep.Disk) {
		lo, hi := g*grainBytes, min((g+1)*grainBytes, len(want))
		nonZero := !bytes.Equal(want[lo:hi], zero[:hi-lo])
		if nonZero {
			s.surviving++
		}
		switch st {
		case reassemble.Placed, reassemble.Zero:
			if !bytes.Equal(got[lo:hi], want[lo:hi]) {
				s.wrong++
				t.Errorf("disk %d grain %d: %s but its bytes differ from the truth", rep.Disk.ID, g, st)
			} else if nonZero {
				s.placed++
			}
		default:
			s.missing++
			if nonZero {
				s.unplaced = append(s.unplaced, uint64(g))
			}
		}
	}
	return s
}

// carveAndRebuildLogged runs both stages and logs where the truth put each
// file and what the rebuild made of its first instance.
func carveAndRebuildLogged(t *testing.T, truth *corpus.Truth) *caseRun {
	t.Helper()
	for _, f := range truth.Files {
		t.Logf("truth: disk %d %s at %d, %d bytes, %d grains, %d intact", f.Disk, f.Variant, f.ImageOffset, f.Length, len(f.Grains), f.IntactGrains)
	}
	run := carveAndRebuild(t, truth.Image)
	for _, rep := range run.reports {
		i := rep.Disk.Instances[0]
		t.Logf("disk-%02d: %s at %d, header lost %v, capacity %d; notes %v", rep.Disk.ID, i.Variant, i.HeaderOffset, i.HeaderLost, rep.Disk.Capacity, i.Notes)
	}
	return run
}

// TestHeaderAndDescriptorLost overwrites a sparse file's header and
// embedded descriptor (its first 21 sectors): the grain directories still
// give the file's start, but only an upper bound on the capacity (every
// table's span); the guest's own partition table, read from the rebuilt
// grain 0, gives the capacity, and the report says so.
func TestHeaderAndDescriptorLost(t *testing.T) {
	for _, fs := range []string{corpus.FSExt4, corpus.FSNTFS} {
		t.Run(fs, func(t *testing.T) {
			const capacity = 24 << 20
			truth := generateGuests(t, corpus.Spec{Seed: 65, ImageSize: 64 << 20,
				Disks: []corpus.DiskSpec{{ID: 1, Capacity: capacity, FS: fs}},
				Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse, Damage: []corpus.Damage{{Kind: corpus.Overwrite, At: 0, Bytes: 21 * 512}}}}})
			run := carveAndRebuildLogged(t, truth)
			checkAll(t, truth, run, 1)
			d := run.reports[0].Disk
			if !d.Instances[0].HeaderLost || d.Capacity != capacity/512 {
				t.Errorf("header lost %v, capacity %d sectors, want %d", d.Instances[0].HeaderLost, d.Capacity, capacity/512)
			}
			guestCheck(t, truth, run, run.reports[0], 1)
		})
	}
}
