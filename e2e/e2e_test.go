// Package e2e runs carve and rebuild over generated evidence with ground
// truth and scores every grain of every rebuilt disk, read back by qemu-img
// (our own reader never judges our own output when qemu-img is present).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
)

const grainBytes = corpus.GrainSectors * 512

// score is the grain-by-grain result for one rebuilt disk.
type score struct {
	disk      int
	surviving int // non-zero grains intact in at least one copy
	placed    int // of those, placed with the right bytes
	wrong     int // grains placed or declared zero whose bytes differ from the truth
	missing   int
	unplaced  []uint64 // surviving grains left missing or conflicting
}

type caseRun struct {
	truth   *corpus.Truth
	caseDir string
	reports []*pipeline.DiskReport
	err     error
}

// generate makes the evidence, skipping when a tool it needs (qemu-img,
// mkfs.ext4, mkntfs, ...) is not installed, failing instead when CI=true.
func generate(t *testing.T, spec corpus.Spec) *corpus.Truth {
	t.Helper()
	truth, err := corpus.Generate(spec, t.TempDir())
	if errors.Is(err, corpus.ErrNoQemu) || errors.Is(err, corpus.ErrNoTool) {
		tooltest.Missing(t, "a tool the evidence needs is not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return truth
}

// generateHost makes a host scenario's evidence (corpus.Scenario, 3 disks
// on a host volume of size bytes) with extra host damage.
func generateHost(t *testing.T, scenario string, size int64, damage ...corpus.HostDamage) *corpus.Truth {
	t.Helper()
	spec, err := corpus.Scenario(scenario, 3, size, corpus.HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	spec.Host.Damage = append(spec.Host.Damage, damage...)
	return generate(t, spec)
}

// carveAndRebuild runs both stages on image into a fresh case.
func carveAndRebuild(t *testing.T, image string) *caseRun {
	t.Helper()
	caseDir := filepath.Join(t.TempDir(), "case")
	if _, err := pipeline.Carve(context.Background(), caseDir, image, pipeline.CarveOptions{}); err != nil {
		t.Fatalf("carve: %v", err)
	}
	res, err := pipeline.Rebuild(context.Background(), caseDir, pipeline.RebuildOptions{Raw: true})
	run := &caseRun{caseDir: caseDir, err: err}
	if res == nil {
		return run
	}
	for _, d := range res.Disks {
		b, rerr := os.ReadFile(filepath.Join(caseDir, pipeline.DisksDirName, filepath.Base(d.Path[:len(d.Path)-len(".vmdk")])+".json"))
		if rerr != nil {
			t.Fatal(rerr)
		}
		rep := new(pipeline.DiskReport)
		if err := json.Unmarshal(b, rep); err != nil {
			t.Fatal(err)
		}
		run.reports = append(run.reports, rep)
	}
	return run
}

// rebuiltRaw returns the rebuilt disk as raw bytes, read by qemu-img when
// installed (else our own raw output, said so in the log).
func rebuiltRaw(t *testing.T, caseDir string, rep *pipeline.DiskReport) []byte {
	t.Helper()
	vmdkPath := filepath.Join(caseDir, rep.Output[0].Path)
	if _, err := exec.LookPath("qemu-img"); err == nil {
		tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", vmdkPath)
		out := filepath.Join(t.TempDir(), "qemu.raw")
		tooltest.Run(t, "qemu-img", "convert", "-f", "vmdk", "-O", "raw", vmdkPath, out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Log("qemu-img is not installed: scoring our own raw output instead")
	for _, o := range rep.Output {
		if o.Format == "raw" {
			b, err := os.ReadFile(filepath.Join(caseDir, o.Path))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("no raw output")
	return nil
}

// diskOf names the truth disk a report rebuilt, by its instances' offsets.
func diskOf(t *testing.T, truth *corpus.Truth, rep *pipeline.DiskReport) int {
	t.Helper()
	disk := 0
	for _, inst := range rep.Disk.Instances {
		for _, f := range truth.Files {
			// An instance found without its header starts where its
			// evidence does, inside the file rather than at its start.
			inside := inst.HeaderLost && inst.HeaderOffset > f.ImageOffset && inst.HeaderOffset < f.ImageOffset+f.Length && len(f.Fragments) == 0
			if f.ImageOffset == inst.HeaderOffset || inside {
				if disk != 0 && disk != f.Disk {
					t.Fatalf("report disk %d mixes truth disks %d and %d", rep.Disk.ID, disk, f.Disk)
				}
				disk = f.Disk
			}
		}
	}
	if disk == 0 {
		t.Fatalf("report disk %d matches no laid file", rep.Disk.ID)
	}
	return disk
}

// statuses expands the report's runs into one status per grain.
func statuses(d *reassemble.Disk) []reassemble.Status {
	n := (d.Capacity + d.GrainSize - 1) / d.GrainSize
	out := make([]reassemble.Status, n)
	for _, r := range d.Runs {
		for g := r.FirstGrain; g < r.FirstGrain+r.Count && g < n; g++ {
			out[g] = r.Status
		}
	}
	return out
}

// intactPlaced counts a file's intact grains (its truth) and how many of
// them a disk's statuses place.
func intactPlaced(st []reassemble.Status, f corpus.FileTruth) (placed, intact int) {
	for _, g := range f.Grains {
		if !g.Intact {
			continue
		}
		intact++
		if g.Grain < uint64(len(st)) && st[g.Grain] == reassemble.Placed {
			placed++
		}
	}
	return placed, intact
}

// scoreDisk compares every grain of a rebuilt disk with the truth disk.
func scoreDisk(t *testing.T, run *caseRun, truth *corpus.Truth, rep *pipeline.DiskReport) score {
	t.Helper()
	id := diskOf(t, truth, rep)
	dt := truth.Disk(id)
	want, err := os.ReadFile(dt.Raw)
	if err != nil {
		t.Fatal(err)
	}
	got := rebuiltRaw(t, run.caseDir, rep)
	if len(got) != len(want) {
		t.Fatalf("disk %d: rebuilt %d bytes, truth %d", id, len(got), len(want))
	}
	tooltest.VMDKInfo(t, filepath.Join(run.caseDir, rep.Output[0].Path))
	surviving := truth.Surviving(id)
	st := statuses(rep.Disk)
	s := score{disk: id, surviving: len(surviving)}
	for g := range st {
		lo, hi := g*grainBytes, min((g+1)*grainBytes, len(want))
		same := bytes.Equal(got[lo:hi], want[lo:hi])
		switch st[g] {
		case reassemble.Placed, reassemble.Zero:
			if !same {
				s.wrong++
				t.Errorf("disk %d grain %d: %s but its bytes differ from the truth (got %.40q)", id, g, st[g], got[lo:min(lo+40, hi)])
			} else if surviving[uint64(g)] {
				s.placed++
			}
		default:
			s.missing++
			if surviving[uint64(g)] {
				s.unplaced = append(s.unplaced, uint64(g))
			}
		}
	}
	return s
}

// checkAll scores every rebuilt disk: zero wrong grains and every surviving
// grain placed. Disks whose grains all survived must compare identical.
func checkAll(t *testing.T, truth *corpus.Truth, run *caseRun, wantDisks int) []score {
	t.Helper()
	if run.err != nil {
		t.Fatalf("rebuild: %v", run.err)
	}
	if len(run.reports) != wantDisks {
		t.Fatalf("rebuilt %d disks, want %d", len(run.reports), wantDisks)
	}
	var scores []score
	for _, rep := range run.reports {
		s := scoreDisk(t, run, truth, rep)
		t.Logf("disk %d: %d surviving non-zero grains, %d placed, %d wrong, %d missing; evidence %v; guest files %s",
			s.disk, s.surviving, s.placed, s.wrong, s.missing, rep.Disk.Counts.ByEvidence, filesRecovered(rep))
		if s.wrong != 0 || s.placed != s.surviving {
			t.Errorf("disk %d: placed %d of %d surviving grains, %d wrong; surviving but not placed: %v", s.disk, s.placed, s.surviving, s.wrong, s.unplaced)
		}
		if dt := truth.Disk(s.disk); uint64(s.surviving) == dt.NonZeroGrains && rep.Disk.Counts.Missing == 0 {
			tooltest.Compare(t, filepath.Join(run.caseDir, rep.Output[0].Path), dt.Raw)
		}
		scores = append(scores, s)
	}
	return scores
}

// filesRecovered is "whole/all" of the guest's files the report's walk
// read, or "-".
func filesRecovered(rep *pipeline.DiskReport) string {
	for _, g := range rep.Guest {
		if g.Check != nil && g.Check.Files > 0 {
			return fmt.Sprintf("%d/%d", g.Check.FilesRecovered, g.Check.Files)
		}
	}
	return "-"
}

func disk(id int, capacity int64) corpus.DiskSpec { return corpus.DiskSpec{ID: id, Capacity: capacity} }

func TestEndToEnd(t *testing.T) {
	cut := []corpus.Damage{{Kind: corpus.CutTail, Bytes: 256 << 10}}
	for _, tc := range []struct {
		name  string
		files []corpus.FileSpec
		disks []corpus.DiskSpec
		want  int
	}{
		{"qemu-sparse", []corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}}, []corpus.DiskSpec{disk(1, 40<<20)}, 1},
		{"ours-sparse", []corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse}}, []corpus.DiskSpec{disk(1, 40<<20+512*7)}, 1},
		{"primary-tables-zeroed", []corpus.FileSpec{
			{Disk: 1, Variant: corpus.QemuSparse, Damage: []corpus.Damage{{Kind: corpus.ZeroPrimaryTables}}},
			{Disk: 2, Variant: corpus.OursSparse, Damage: []corpus.Damage{{Kind: corpus.ZeroPrimaryTables}}},
		}, []corpus.DiskSpec{disk(1, 72<<20), disk(2, 24<<20)}, 2},
		{"qemu-stream-cut", []corpus.FileSpec{{Disk: 1, Variant: corpus.QemuStream, Damage: cut}}, []corpus.DiskSpec{disk(1, 40<<20)}, 1},
		{"vmware-stream-cut", []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream, Damage: cut}}, []corpus.DiskSpec{disk(1, 40<<20)}, 1},
		{"vmware-stream-whole", []corpus.FileSpec{{Disk: 1, Variant: corpus.VMwareStream}}, []corpus.DiskSpec{disk(1, 40<<20+4096)}, 1},
		{"ours-stream-front-cut", []corpus.FileSpec{{Disk: 1, Variant: corpus.OursStreamFront, Damage: cut}}, []corpus.DiskSpec{disk(1, 40<<20)}, 1},
		{"two-disks-and-a-copy", []corpus.FileSpec{
			{Disk: 1, Variant: corpus.QemuSparse},
			{Disk: 2, Variant: corpus.VMwareStream},
			{Disk: 1, Variant: corpus.QemuSparse},
		}, []corpus.DiskSpec{disk(1, 32<<20), disk(2, 16<<20)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 11, ImageSize: 160 << 20, Disks: tc.disks, Files: tc.files})
			run := carveAndRebuild(t, truth.Image)
			checkAll(t, truth, run, tc.want)
		})
	}
}

// TestCopiesThatDisagree lays two copies of one disk version (same CID),
// one with 1 MiB of its grain area overwritten with noise: they are one
// disk. Random bytes are not proof of damage (they may be the guest's),
// so the grains the copies disagree on are conflicts, never chosen; every
// other grain is placed, corroborated where both copies agree, and none
// is wrong.
func TestCopiesThatDisagree(t *testing.T) {
	truth := generate(t, corpus.Spec{Seed: 12, ImageSize: 128 << 20, Disks: []corpus.DiskSpec{disk(1, 32<<20)}, Files: []corpus.FileSpec{
		{Disk: 1, Variant: corpus.OursSparse, Damage: []corpus.Damage{{Kind: corpus.Overwrite, At: 2 << 20, Bytes: 1 << 20}}},
		{Disk: 1, Variant: corpus.OursSparse},
	}})
	run := carveAndRebuild(t, truth.Image)
	if run.err != nil || len(run.reports) != 1 {
		t.Fatalf("rebuild: %v, %d disks", run.err, len(run.reports))
	}
	rep := run.reports[0]
	if len(rep.Disk.Instances) != 2 {
		t.Fatalf("%d instances, want both copies in one disk", len(rep.Disk.Instances))
	}
	s := scoreDisk(t, run, truth, rep)
	// The overwritten MiB holds 16 grains of the damaged copy.
	disagree := 0
	for _, g := range truth.Files[0].Grains {
		if !g.Intact {
			disagree++
		}
	}
	t.Logf("placed %d of %d surviving grains, %d wrong, %d conflicting (the copies disagree on %d)", s.placed, s.surviving, s.wrong, rep.Disk.Counts.Conflict, disagree)
	if s.wrong != 0 || s.placed != s.surviving-disagree || int(rep.Disk.Counts.Conflict) != disagree || disagree != 16 {
		t.Errorf("placed %d of %d surviving grains, %d wrong, %d conflicting; want all but the %d the copies disagree on, which conflict", s.placed, s.surviving, s.wrong, rep.Disk.Counts.Conflict, disagree)
	}
	if rep.Disk.Counts.ByEvidence["copy"] == 0 {
		t.Error("no grain corroborated by the second copy")
	}
}

// TestRealGuestsContiguous lays VMDKs of real ext4 and NTFS guests
// contiguously in noise, with no host filesystem: the guest expectations
// that end the contiguous assumption must hold on every real guest grain,
// so every grain is placed, and the guests check clean. The stream grains
// qemu-img and compress/zlib wrote are all decoded by rebuild's fast
// inflater to the carve's bytes, none decoded again.
func TestRealGuestsContiguous(t *testing.T) {
	truth := generate(t, corpus.Spec{Seed: 41, ImageSize: 192 << 20,
		Disks: []corpus.DiskSpec{{ID: 1, Capacity: 24 << 20, FS: corpus.FSExt4}, {ID: 2, Capacity: 24 << 20, FS: corpus.FSNTFS}},
		Files: []corpus.FileSpec{
			{Disk: 1, Variant: corpus.QemuSparse}, {Disk: 2, Variant: corpus.QemuSparse},
			{Disk: 1, Variant: corpus.OursSparse}, {Disk: 2, Variant: corpus.VMwareStream},
			{Disk: 1, Variant: corpus.QemuStream},
		}})
	run := carveAndRebuild(t, truth.Image)
	checkAll(t, truth, run, len(run.reports))
	if len(run.reports) < 2 {
		t.Fatalf("%d disks", len(run.reports))
	}
	streamed := 0
	for _, rep := range run.reports {
		guestCheck(t, truth, run, rep, diskOf(t, truth, rep))
		streamed += int(rep.Disk.Counts.ByEvidence[reassemble.EvMarker])
		if v := rep.Verified; v.Redecoded != 0 || v.HashMismatch != 0 || v.DecodeFailure != 0 {
			t.Errorf("disk-%02d: %+v: every grain should decode at once to the carve's bytes", rep.Disk.ID, v)
		}
	}
	if streamed == 0 {
		t.Fatal("no grain was placed by its stream marker: the stream files were not decoded")
	}
}
