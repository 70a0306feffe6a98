package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/vmdk"
)

// TestSingleDamagedFile gives one .vmdk file, its primary tables zeroed,
// directly as the evidence image: rebuild repairs it from the redundant
// tables, and qemu-img reads the repair equal to the original disk.
func TestSingleDamagedFile(t *testing.T) {
	for _, v := range []corpus.Variant{corpus.QemuSparse, corpus.OursSparse} {
		t.Run(string(v), func(t *testing.T) {
			truth := generate(t, corpus.Spec{Seed: 21, ImageSize: 64 << 20, Disks: []corpus.DiskSpec{disk(1, 24<<20)},
				Files: []corpus.FileSpec{{Disk: 1, Variant: v, Damage: []corpus.Damage{{Kind: corpus.ZeroPrimaryTables}}}}})
			f := truth.Files[0]
			img, err := os.ReadFile(truth.Image)
			if err != nil {
				t.Fatal(err)
			}
			single := filepath.Join(t.TempDir(), "damaged.vmdk")
			if err := os.WriteFile(single, img[f.ImageOffset:f.ImageOffset+f.Length], 0o444); err != nil {
				t.Fatal(err)
			}
			run := carveAndRebuild(t, single)
			if run.err != nil || len(run.reports) != 1 {
				t.Fatalf("rebuild: %v, %d disks", run.err, len(run.reports))
			}
			rep := run.reports[0]
			if rep.Disk.Counts.Missing != 0 || rep.Disk.Counts.Placed != truth.Disks[0].NonZeroGrains {
				t.Fatalf("counts %+v, want %d placed", rep.Disk.Counts, truth.Disks[0].NonZeroGrains)
			}
			tooltest.Compare(t, filepath.Join(run.caseDir, rep.Output[0].Path), truth.Disks[0].Raw)
			tooltest.VMDKInfo(t, filepath.Join(run.caseDir, rep.Output[0].Path))
		})
	}
}

// TestTruncatedImage cuts the image in the middle of a VMDK: the grains
// before the cut are placed, those after it are missing, none is wrong.
func TestTruncatedImage(t *testing.T) {
	truth := generate(t, corpus.Spec{Seed: 22, ImageSize: 96 << 20, Disks: []corpus.DiskSpec{disk(1, 32<<20)},
		Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.OursSparse, Offset: 8 << 20}}})
	f := truth.Files[0]
	cut := f.ImageOffset + f.Length/2
	img, err := os.ReadFile(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short.dd")
	if err := os.WriteFile(short, img[:cut], 0o444); err != nil {
		t.Fatal(err)
	}
	run := carveAndRebuild(t, short)
	if run.err != nil || len(run.reports) != 1 {
		t.Fatalf("rebuild: %v, %d disks", run.err, len(run.reports))
	}
	before := 0
	for _, g := range f.Grains {
		if g.ImageOffset+g.Length <= cut {
			before++
		}
	}
	s := scoreDisk(t, run, truth, run.reports[0])
	if s.wrong != 0 || s.placed != before {
		t.Errorf("placed %d grains, want the %d before the cut; %d wrong", s.placed, before, s.wrong)
	}
	if run.reports[0].Disk.Counts.Missing == 0 {
		t.Error("no grain reported missing past the cut")
	}
}

// noiseImage writes size bytes of seeded noise with the given sectors
// planted at their offsets.
func noiseImage(t *testing.T, size int, plant map[int][]byte) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(9, 9))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	for off, p := range plant {
		copy(b[off:], p)
	}
	path := filepath.Join(t.TempDir(), "noise.dd")
	if err := os.WriteFile(path, b, 0o444); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNothingToRecover: an image with no VMDK, and one with crafted headers
// claiming 2^62 sectors or 2^31 GTEs per table, finish with
// ErrNothingRecovered (exit code 3), no panic and no huge allocation.
func TestNothingToRecover(t *testing.T) {
	crafted := func(patch func(h *vmdk.SparseHeader)) []byte {
		l, err := vmdk.NewSparseLayout(131072, 128, true)
		if err != nil {
			t.Fatal(err)
		}
		h := l.Header
		patch(&h)
		b, _ := h.MarshalBinary()
		return b
	}
	for _, tc := range []struct {
		name  string
		plant map[int][]byte
	}{
		{"noise only", nil},
		{"crafted headers", map[int][]byte{
			1 << 20: crafted(func(h *vmdk.SparseHeader) { h.Capacity = 1 << 62 }),
			2 << 20: crafted(func(h *vmdk.SparseHeader) { h.NumGTEsPerGT = 1 << 31 }),
			3 << 20: crafted(func(h *vmdk.SparseHeader) { h.GDOffset = 1 << 40 }),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := noiseImage(t, 8<<20, tc.plant)
			run := carveAndRebuild(t, image)
			if !errors.Is(run.err, pipeline.ErrNothingRecovered) {
				t.Fatalf("rebuild: %v, want ErrNothingRecovered", run.err)
			}
			hits, err := pipeline.ReadHits(filepath.Join(run.caseDir, pipeline.HitsName))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hits {
				if h.Verdict == "valid" {
					t.Errorf("valid hit in noise: %+v", h)
				}
			}
			if len(hits) != len(tc.plant) {
				t.Errorf("%d hits, want one damaged hit per crafted header (%d)", len(hits), len(tc.plant))
			}
		})
	}
}

// TestTinyImage: an image too small to hold a sector is a clear error.
func TestTinyImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.dd")
	os.WriteFile(path, []byte("short"), 0o444)
	_, err := pipeline.Carve(context.Background(), filepath.Join(t.TempDir(), "case"), path, pipeline.CarveOptions{})
	if err == nil {
		t.Fatal("carve of a 5-byte image succeeded")
	}
	t.Log(err)
}

// TestUnwritableDiskDoesNotStopOthers: a stream header claiming more
// sectors than a monolithicSparse extent can address (2^33 sectors, 4 TiB)
// with a valid grain record cannot be emitted; the disk beside it still is,
// and rebuild reports the one it could not write.
func TestUnwritableDiskDoesNotStopOthers(t *testing.T) {
	huge := vmdk.SparseHeader{Version: 3, Flags: vmdk.FlagValidNewlines | vmdk.FlagCompressed | vmdk.FlagMarkers, Capacity: 1 << 33,
		GrainSize: 128, DescriptorOffset: 0, NumGTEsPerGT: 512, GDOffset: vmdk.GDAtEnd, OverHead: 1, CompressAlgorithm: vmdk.CompressDeflate}
	hdr, _ := huge.MarshalBinary()
	rec, _ := vmdk.EncodeGrain(nil, 0, bytes.Repeat([]byte("huge disk grain "), 4096), 6)
	var ok tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&ok, vmdk.SparseWriterOptions{Capacity: 4096, FileName: "ok.vmdk"},
		func(g uint64, b []byte) (bool, error) {
			copy(b, bytes.Repeat([]byte("small"), 20000))
			return true, nil
		}); err != nil {
		t.Fatal(err)
	}
	image := noiseImage(t, 8<<20, map[int][]byte{1 << 20: append(hdr, rec...), 4 << 20: ok.Bytes})
	run := carveAndRebuild(t, image)
	if run.err == nil || !strings.Contains(run.err.Error(), "not emitted") {
		t.Fatalf("rebuild: %v, want an error naming the disk not emitted", run.err)
	}
	if len(run.reports) != 1 || run.reports[0].Disk.Capacity != 4096 {
		t.Fatalf("%d reports, want the small disk's", len(run.reports))
	}
}
