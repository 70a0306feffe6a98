package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/pipeline/guestcheck"
	"vmdkcarve/reassemble"
)

// hostCase is one row of the fragmentation table.
type hostCase struct {
	scenario string
	size     int64
	damage   []corpus.HostDamage // added to the scenario's host damage
	// exact: every surviving grain must be placed (host remnants survive).
	exact bool
	// leafFiles: every intact grain of each file in more than 4 pieces
	// must be placed. Such a file's extent tree had a leaf block among the
	// data blocks, which survives a reformat that zeroes the inodes.
	leafFiles bool
	// minRecall: the share of every report's surviving grains, all
	// reports together, that must be placed (what the case reaches; 1
	// with exact).
	minRecall float64
}

// TestHostFilesystems rebuilds VMDKs fragmented on real ext4 and NTFS host
// volumes (made by mkfs.ext4/debugfs and mkntfs/ntfscp), with the host
// metadata intact, wiped, quick-formatted, reformatted (inodes zeroed),
// or with every 8th MiB of each file encrypted. Wrong grains must be zero
// everywhere; with host remnants every surviving grain must be placed;
// after a reformat, every surviving grain of each file whose extent tree
// had a leaf block; and each case the recall it reaches. It logs the
// table the closing note quotes.
func TestHostFilesystems(t *testing.T) {
	if testing.Short() {
		t.Skip("host filesystem cases take a while: skipped with -short")
	}
	var rows []string
	for _, hc := range []hostCase{
		{"ext4-host", 96 << 20, nil, true, false, 1},
		{"ntfs-host", 96 << 20, nil, true, false, 1},
		// The encrypted MiBs cost a synthetic disk's copy 32 grains.
		{"ext4-host-encrypted", 96 << 20, nil, false, false, 0.95},
		{"ntfs-host-encrypted", 96 << 20, nil, false, false, 0.95},
		// Pieces of a grain or less, no host map: little is followed
		// (README, Known limits).
		{"ext4-host-wiped", 96 << 20, nil, false, false, 0.01},
		{"ntfs-host-wiped", 96 << 20, nil, false, false, 0.08},
		{"ext4-host", 96 << 20, []corpus.HostDamage{{Kind: corpus.QuickFormat}}, false, false, 1},
		{"ntfs-host", 96 << 20, []corpus.HostDamage{{Kind: corpus.QuickFormat}}, false, false, 0.04},
		{"ext4-host", 96 << 20, []corpus.HostDamage{{Kind: corpus.Reformat}}, false, true, 1},
		{"ext4-host", 96 << 20, []corpus.HostDamage{{Kind: corpus.ZeroSuperblocks}}, true, false, 1},
		{"ntfs-host", 96 << 20, []corpus.HostDamage{{Kind: corpus.ZeroBootSector}}, true, false, 1},
	} {
		name := hc.scenario
		for _, d := range hc.damage {
			name += "+" + string(d.Kind)
		}
		t.Run(name, func(t *testing.T) {
			truth := generateHost(t, hc.scenario, hc.size, hc.damage...)
			start := time.Now()
			run := carveAndRebuild(t, truth.Image)
			seconds := time.Since(start).Seconds()
			if run.err != nil && !errors.Is(run.err, pipeline.ErrNothingRecovered) {
				t.Fatalf("rebuild: %v", run.err)
			}
			frags := map[int][]int{}
			for _, f := range truth.Files {
				frags[f.Disk] = append(frags[f.Disk], max(len(f.Fragments), 1))
			}
			scored := map[int]bool{}
			placedAll, survivingAll := 0, 0
			for _, rep := range run.reports {
				s := scoreDisk(t, run, truth, rep)
				scored[s.disk] = true
				placedAll, survivingAll = placedAll+s.placed, survivingAll+s.surviving
				recall := 100.0
				if s.surviving > 0 {
					recall = 100 * float64(s.placed) / float64(s.surviving)
				}
				files := filesRecovered(rep)
				rows = append(rows, fmt.Sprintf("%-34s disk %d  pieces %-12v  recall %6.1f%% (%d/%d)  wrong %d  guest files %s  rebuild %.1fs  evidence %v",
					name, s.disk, frags[s.disk], recall, s.placed, s.surviving, s.wrong, files, seconds, rep.Disk.Counts.ByEvidence))
				if s.wrong != 0 {
					t.Errorf("disk %d: %d wrong grains", s.disk, s.wrong)
				}
				if hc.exact && s.placed != s.surviving {
					t.Errorf("disk %d: placed %d of %d surviving grains; not placed: %v", s.disk, s.placed, s.surviving, s.unplaced)
				}
				if hc.exact && rep.Disk.Counts.Missing == 0 {
					guestCheck(t, truth, run, rep, s.disk)
				}
			}
			if survivingAll == 0 || float64(placedAll) < hc.minRecall*float64(survivingAll) {
				t.Errorf("placed %d of %d surviving grains over all reports, want at least %.0f%%", placedAll, survivingAll, 100*hc.minRecall)
			}
			if hc.leafFiles {
				placed, intact := leafRecall(t, truth, run)
				rows = append(rows, fmt.Sprintf("%-34s files with a leaf block: recall %6.1f%% (%d/%d)", name, 100*float64(placed)/float64(max(intact, 1)), placed, intact))
				if intact == 0 || placed != intact {
					t.Errorf("files with a leaf block: placed %d of %d intact grains", placed, intact)
				}
			}
			if hc.exact {
				for _, d := range truth.Disks {
					if !scored[d.ID] {
						t.Errorf("disk %d was not rebuilt", d.ID)
					}
				}
			}
		})
	}
	t.Logf("fragmentation table:\n%s", strings.Join(rows, "\n"))
}

// leafRecall counts the intact grains of the files laid in more than 4
// pieces (an extent tree with a leaf block outside the inode) and how
// many of them the report of the disk holding each file placed.
func leafRecall(t *testing.T, truth *corpus.Truth, run *caseRun) (placed, intact int) {
	t.Helper()
	for _, f := range truth.Files {
		if len(f.Fragments) <= 4 {
			continue
		}
		var st []reassemble.Status
		for _, rep := range run.reports {
			if instanceAt(rep, f.ImageOffset) {
				st = statuses(rep.Disk)
			}
		}
		p, n := intactPlaced(st, f)
		placed, intact = placed+p, intact+n
	}
	return placed, intact
}

// guestCheck holds a rebuilt disk's guest filesystem to e2fsck -fn or
// ntfsfix -n, on the raw image cut at the guest partition.
func guestCheck(t *testing.T, truth *corpus.Truth, run *caseRun, rep *pipeline.DiskReport, id int) {
	t.Helper()
	dt := truth.Disk(id)
	if dt.FS == nil {
		return
	}
	raw := filepath.Join(t.TempDir(), "part.raw")
	got := rebuiltRaw(t, run.caseDir, rep)
	part := got[dt.FS.PartitionOffset : dt.FS.PartitionOffset+dt.FS.PartitionSize]
	if err := os.WriteFile(raw, part, 0o644); err != nil {
		t.Fatal(err)
	}
	switch dt.FS.FS {
	case corpus.FSExt4:
		if _, err := exec.LookPath("e2fsck"); err != nil {
			tooltest.Missing(t, "e2fsck is not installed")
		}
		tooltest.Run(t, "e2fsck", "-fn", raw)
	case corpus.FSNTFS:
		if _, err := exec.LookPath("ntfsfix"); err != nil {
			tooltest.Missing(t, "ntfsfix is not installed")
		}
		tooltest.Run(t, "ntfsfix", "-n", raw)
	}
	// The report's own directory walk (go-ntfs / go-ext4) must agree with
	// the same walk over the ground-truth disk: those readers refuse some
	// valid volumes, which is theirs to fix, not a rebuild error.
	want, err := os.Open(dt.Raw)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	for _, g := range rep.Guest {
		if g.Check == nil {
			continue
		}
		truthWalk := guestcheck.Check(want, dt.Capacity, g)
		if g.Check.Walked != truthWalk.Walked || g.Check.Entries != truthWalk.Entries {
			t.Errorf("disk %d: guest %s walk %+v, ground truth walks %+v", id, g.Kind, *g.Check, truthWalk)
		}
		// Every grain survived: every file the walk reaches is whole.
		if g.Check.FilesRecovered != g.Check.Files {
			t.Errorf("disk %d: %d of %d guest files recovered, want all", id, g.Check.FilesRecovered, g.Check.Files)
		}
	}
}
