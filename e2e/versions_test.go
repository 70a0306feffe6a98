package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/vmdk"
)

// TestVersions lays two versions of one disk (the second a later state:
// some grains rewritten, its descriptor's parentCID the first one's CID)
// and a copy of the first: each version is rebuilt exactly and on its own,
// never mixed; the reports link them as versions of one disk in CID-chain
// order; --versions newest emits only the newest.
func TestVersions(t *testing.T) {
	const grains = 256
	v1 := make([]byte, grains*grainBytes)
	for g := 0; g < grains; g++ {
		if g%4 != 3 {
			copy(v1[g*grainBytes:], bytes.Repeat([]byte(fmt.Sprintf("version one grain %05d ", g)), grainBytes/24+1))
		}
	}
	v2 := append([]byte(nil), v1...)
	for g := 10; g < grains; g += 25 {
		copy(v2[g*grainBytes:(g+1)*grainBytes], bytes.Repeat([]byte(fmt.Sprintf("version TWO grain %05d ", g)), grainBytes/24+1))
	}
	file := func(raw []byte, cid, parent uint32, name string) []byte {
		var w tooltest.MemFile
		desc := &vmdk.Descriptor{CID: cid, ParentCID: parent}
		if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: grains * 128, FileName: name, Descriptor: desc},
			func(g uint64, b []byte) (bool, error) { copy(b, raw[g*grainBytes:]); return true, nil }); err != nil {
			t.Fatal(err)
		}
		return w.Bytes
	}
	noise := noiseSource(4, 4)
	var img []byte
	img = append(img, noise(1<<20)...)
	img = append(img, file(v1, 0x11111111, 0xffffffff, "a.vmdk")...)
	img = append(img, noise(1<<20)...)
	img = append(img, file(v2, 0x22222222, 0x11111111, "a.vmdk")...)
	img = append(img, noise(1<<20)...)
	img = append(img, file(v1, 0x11111111, 0xffffffff, "a-copy.vmdk")...)
	img = append(img, noise(1<<20)...)
	dir := t.TempDir()
	image := filepath.Join(dir, "image.dd")
	raws := map[string]string{"v1": filepath.Join(dir, "v1.raw"), "v2": filepath.Join(dir, "v2.raw")}
	for path, data := range map[string][]byte{image: img, raws["v1"]: v1, raws["v2"]: v2} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	run := carveAndRebuild(t, image)
	checkVersionPair(t, run, image, 0x22222222, "", raws, func(rep *pipeline.DiskReport, want string) {
		tooltest.Compare(t, filepath.Join(run.caseDir, rep.Output[0].Path), raws[want])
	})
}

// checkVersionPair checks a rebuild of two versions of one disk (v1 with a
// copy, v2 whose descriptor has CID v2CID): both linked in one group, in
// the given order ("" for any known one), v2 the newest; check is called
// on each report with its version's name; and --versions newest emits v2
// alone, identical to raws["v2"].
func checkVersionPair(t *testing.T, run *caseRun, image string, v2CID uint32, order string, raws map[string]string, check func(rep *pipeline.DiskReport, want string)) {
	t.Helper()
	if run.err != nil || len(run.reports) != 2 {
		t.Fatalf("rebuild: %v, %d disks, want 2 versions", run.err, len(run.reports))
	}
	for _, rep := range run.reports {
		v := rep.Disk.Versions
		if v == nil || v.Group != 1 || len(v.Disks) != 2 || v.Order == "unknown" || (order != "" && v.Order != order) {
			t.Fatalf("disk %d versions %+v, want order %q", rep.Disk.ID, v, order)
		}
		want := "v1"
		if rep.Disk.Descriptor.CID == v2CID {
			want = "v2"
			if !v.Newest || v.Position != 1 {
				t.Errorf("v2 is not the newest: %+v", v)
			}
		} else if len(rep.Disk.Instances) != 2 {
			t.Errorf("v1 has %d instances, want the file and its copy", len(rep.Disk.Instances))
		}
		t.Logf("disk %d: %s, versions %+v", rep.Disk.ID, want, *v)
		check(rep, want)
	}

	newest := filepath.Join(t.TempDir(), "case")
	if _, err := pipeline.Carve(context.Background(), newest, image, pipeline.CarveOptions{Hash: "none"}); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Rebuild(context.Background(), newest, pipeline.RebuildOptions{NewestOnly: true})
	if err != nil || len(res.Disks) != 1 || len(res.Skipped) != 1 {
		t.Fatalf("--versions newest: %v, %d disks emitted, %v skipped", err, len(res.Disks), res.Skipped)
	}
	tooltest.Compare(t, filepath.Join(newest, res.Disks[0].Path), raws["v2"])
}

// noiseSource returns a seeded maker of noise: n pseudo-random bytes per
// call, the same sequence for the same seed.
func noiseSource(seed1, seed2 uint64) func(n int) []byte {
	rng := rand.New(rand.NewPCG(seed1, seed2))
	return func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
}
