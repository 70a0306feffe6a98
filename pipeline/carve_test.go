package pipeline

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/carver"
	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/holes"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// testChunk keeps test carves to many chunks on small images.
const testChunk = 64 << 10

func noise(size int, seed uint64) []byte {
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), 'p', 'i', 'p', 'e'}).Read(b)
	return b
}

// writeImage writes noise with a sparse header and a stream grain record
// planted every 256 KiB (the records straddle 64 KiB chunk boundaries) and
// a size that is not a whole number of blocks. It returns the path and the
// offsets of the planted headers.
func writeImage(t *testing.T, size int, seed uint64) (string, []byte, []int64) {
	t.Helper()
	data := noise(size, seed)
	hdr, err := (&vmdk.SparseHeader{
		Version: 1, Flags: 3, Capacity: 1 << 21, GrainSize: 128, DescriptorOffset: 1,
		DescriptorSize: 20, NumGTEsPerGT: 512, RGDOffset: 21, GDOffset: 300, OverHead: 640,
	}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var planted []int64
	for off := 256<<10 - 8192; off+64<<10 < size; off += 256 << 10 {
		copy(data[off:], hdr)
		grain := make([]byte, 64<<10)
		copy(grain, noise(8<<10, uint64(off)))
		rec, err := vmdk.EncodeGrain(nil, uint64(off/512)&^127, grain, 6)
		if err != nil {
			t.Fatal(err)
		}
		copy(data[off+512:], rec)
		planted = append(planted, int64(off))
	}
	path := filepath.Join(t.TempDir(), "evidence.dd")
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	return path, data, planted
}

func carve(t *testing.T, caseDir, image string, opts CarveOptions) *CarveResult {
	t.Helper()
	if opts.ChunkSize == 0 {
		opts.ChunkSize = testChunk
	}
	res, err := Carve(context.Background(), caseDir, image, opts)
	if err != nil {
		t.Fatalf("Carve %s: %v", caseDir, err)
	}
	return res
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameOutputs fails unless two cases have byte-identical merged outputs.
func sameOutputs(t *testing.T, what, caseA, caseB string) {
	t.Helper()
	for _, name := range []string{HitsName, FingerprintsName} {
		a, b := readFile(t, filepath.Join(caseA, name)), readFile(t, filepath.Join(caseB, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: %s differs (%d vs %d bytes)", what, name, len(a), len(b))
		}
	}
}

func TestCarveWholeImage(t *testing.T) {
	image, data, planted := writeImage(t, 3<<20+1000, 1)
	dir := filepath.Join(t.TempDir(), "case")
	res := carve(t, dir, image, CarveOptions{Workers: 3})
	if !res.Complete || res.Skipped || res.Scanned != int64(len(data)) {
		t.Fatalf("result: complete %v skipped %v scanned %d; want a complete scan of %d bytes (%s)", res.Complete, res.Skipped, res.Scanned, len(data), res.Reason)
	}
	c, err := OpenCase(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ev := c.Manifest.Evidence
	if abs, _ := filepath.Abs(image); ev.Path != abs || ev.Size != int64(len(data)) || ev.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("evidence %+v, want path %s size %d sha256 %x", ev, abs, len(data), sum)
	}
	if !c.CarveComplete() || c.Manifest.Tool != Tool {
		t.Errorf("manifest: carve complete %v, tool %q", c.CarveComplete(), c.Manifest.Tool)
	}
	hits, err := c.LoadHits()
	if err != nil {
		t.Fatal(err)
	}
	found := map[int64]bool{}
	grains := 0
	for i, h := range hits {
		if i > 0 && (h.Offset < hits[i-1].Offset || h.Offset == hits[i-1].Offset && h.Kind < hits[i-1].Kind) {
			t.Errorf("hits not sorted at line %d", i+1)
		}
		switch h.Kind {
		case signatures.KindSparseHeader:
			found[h.Offset] = true
		case signatures.KindGrainMarker:
			grains++
		}
	}
	for _, off := range planted {
		if !found[off] {
			t.Errorf("planted header at %d not found", off)
		}
	}
	if grains != len(planted) || res.Counts[signatures.KindGrainMarker].Valid != int64(grains) {
		t.Errorf("%d grain hits (result counts %+v), want %d", grains, res.Counts[signatures.KindGrainMarker], len(planted))
	}
	if got := c.Manifest.Stages[StageCarve].Counts["hits.sparse-header"]; got != int64(len(planted)) {
		t.Errorf("manifest counts hits.sparse-header = %d, want %d", got, len(planted))
	}
	fp, err := c.Fingerprints()
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	if want := int64(len(data)+carver.BlockSize-1) / carver.BlockSize; fp.Count != want || fp.First != 0 {
		t.Fatalf("fingerprints: first %d count %d, want 0 and %d", fp.First, fp.Count, want)
	}
	for off := 0; off < len(data); off += carver.BlockSize {
		got, ok := fp.At(int64(off) + 5)
		if want := fingerprint.Hash(data[off:min(off+carver.BlockSize, len(data))]); !ok || got != want {
			t.Fatalf("fingerprint at %d = %x %v, want %x", off, got, ok, want)
		}
	}
	if _, ok := fp.At(int64(len(data)) + carver.BlockSize); ok {
		t.Errorf("fingerprint past the end reported")
	}
	// Given the image, the fingerprints say which blocks read random, as
	// fingerprint.Of does, though the carve did not test them. Asked
	// backwards, so that a block's window is read before the block itself
	// is asked for.
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fp.UseImage(f, int64(len(data)))
	random, plain := 0, 0
	for off := (len(data) - 1) / carver.BlockSize * carver.BlockSize; off >= 0; off -= carver.BlockSize {
		got, ok := fp.At(int64(off))
		want := fingerprint.Of(data[off:min(off+carver.BlockSize, len(data))])
		if !ok || got != want {
			t.Fatalf("fingerprint at %d with the image = %x %v, want %x", off, got, ok, want)
		}
		switch {
		case want&fingerprint.RandomBit != 0:
			random++
		case want != 0:
			plain++
		}
	}
	if random == 0 || plain == 0 || fp.Err() != nil {
		t.Errorf("%d random and %d plain blocks (err %v): the image does not test both", random, plain, fp.Err())
	}
	// Nothing may be written beside the evidence.
	ents, _ := os.ReadDir(filepath.Dir(image))
	if len(ents) != 1 {
		t.Errorf("the evidence directory holds %d entries, want only the image", len(ents))
	}
}

func TestShardsMergeExactly(t *testing.T) {
	image, data, _ := writeImage(t, 2<<20+1000, 2)
	size := int64(len(data))
	whole := filepath.Join(t.TempDir(), "whole")
	carve(t, whole, image, CarveOptions{Workers: 2})
	for _, tc := range []struct {
		name   string
		shards []Range
	}{
		{"two halves", []Range{{0, 1 << 20}, {1 << 20, size}}},
		{"split inside a grain record", []Range{{0, 256<<10 + 4096}, {256<<10 + 4096, 0}}},
		{"three, out of order, one open-ended", []Range{{1 << 20, 0}, {0, 4096}, {4096, 1 << 20}}},
		{"overlapping", []Range{{0, 1<<20 + 64<<10}, {512 << 10, size}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sharded")
			for i, r := range tc.shards {
				res := carve(t, dir, image, CarveOptions{Workers: 1 + i%3, Range: &r})
				if last := i == len(tc.shards)-1; res.Complete != last {
					t.Errorf("after shard %d of %d: complete = %v (%s)", i+1, len(tc.shards), res.Complete, res.Reason)
				}
			}
			sameOutputs(t, tc.name, whole, dir)
			c, _ := OpenCase(dir)
			if c.Manifest.Evidence.SHA256 != "" {
				t.Errorf("sharded case records a SHA-256 no single run computed")
			}
		})
	}
}

func TestResumeAfterInterruption(t *testing.T) {
	old := checkpointInterval
	checkpointInterval = 128 << 10
	defer func() { checkpointInterval = old }()
	image, data, _ := writeImage(t, 2<<20+1000, 3)
	whole := filepath.Join(t.TempDir(), "whole")
	const all = "sha256,md5,sha1" // any order, as a user may write it
	carve(t, whole, image, CarveOptions{Hash: all})

	dir := filepath.Join(t.TempDir(), "resumed")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Carve(ctx, dir, image, CarveOptions{Hash: all, ChunkSize: testChunk, Workers: 2, Progress: progressFunc(func(done, total, hits int64) {
		if done >= 700<<10 {
			cancel()
		}
	})})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted carve: %v, want context.Canceled", err)
	}
	shard := filepath.Join(dir, ShardsDirName, Range{0, int64(len(data))}.String())
	st, err := readShardState(shard)
	if err != nil || st == nil || st.Complete || st.Checkpoint < 700<<10 || st.Checkpoint >= int64(len(data)) {
		t.Fatalf("after interruption: shard state %+v, %v; want an incomplete checkpoint past 700 KiB", st, err)
	}
	c, _ := OpenCase(dir)
	if c.CarveComplete() || c.Manifest.Stages[StageCarve].Reason == "" {
		t.Errorf("interrupted stage: complete %v, reason %q", c.CarveComplete(), c.Manifest.Stages[StageCarve].Reason)
	}
	// A killed process also leaves unflushed bytes after the checkpoint.
	f, _ := os.OpenFile(filepath.Join(shard, HitsName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"offset": 99999999, "kind": "torn`)
	f.Close()

	var firstDone int64 = -1
	res := carve(t, dir, image, CarveOptions{Hash: all, Workers: 3, Progress: progressFunc(func(done, total, hits int64) {
		if firstDone < 0 {
			firstDone = done
		}
	})})
	if res.ResumedFrom != st.Checkpoint || res.Scanned != int64(len(data))-st.Checkpoint || !res.Complete {
		t.Errorf("resume: from %d scanned %d complete %v; want from %d", res.ResumedFrom, res.Scanned, res.Complete, st.Checkpoint)
	}
	if firstDone <= st.Checkpoint {
		t.Errorf("resumed progress starts at %d, want past the checkpoint %d", firstDone, st.Checkpoint)
	}
	sameOutputs(t, "resumed", whole, dir)
	a, _ := OpenCase(whole)
	b, _ := OpenCase(dir)
	s256, s1, s5 := sha256.Sum256(data), sha1.Sum(data), md5.Sum(data)
	want := Evidence{SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]), MD5: hex.EncodeToString(s5[:])}
	for _, ev := range []Evidence{a.Manifest.Evidence, b.Manifest.Evidence} {
		if ev.SHA256 != want.SHA256 || ev.SHA1 != want.SHA1 || ev.MD5 != want.MD5 {
			t.Errorf("digests md5 %s sha1 %s sha256 %s, want %s %s %s", ev.MD5, ev.SHA1, ev.SHA256, want.MD5, want.SHA1, want.SHA256)
		}
	}
}

type progressFunc func(done, total, hits int64)

func (f progressFunc) Scanned(done, total, hits int64) { f(done, total, hits) }

func TestCompleteShardNotRedone(t *testing.T) {
	image, _, _ := writeImage(t, 1<<20, 4)
	dir := filepath.Join(t.TempDir(), "case")
	first := carve(t, dir, image, CarveOptions{})
	again := carve(t, dir, image, CarveOptions{})
	if !again.Skipped || again.Scanned != 0 || again.Hits != first.Hits || !again.Complete {
		t.Errorf("second run: skipped %v scanned %d hits %d complete %v; want skipped with %d hits", again.Skipped, again.Scanned, again.Hits, again.Complete, first.Hits)
	}
	forced := carve(t, dir, image, CarveOptions{Force: true})
	if forced.Skipped || forced.Scanned != 1<<20 || forced.Hits != first.Hits {
		t.Errorf("forced run: skipped %v scanned %d hits %d", forced.Skipped, forced.Scanned, forced.Hits)
	}
	// Another recognizer set may not silently reuse or mix with the shard.
	if _, err := Carve(context.Background(), dir, image, CarveOptions{Disable: []string{"grain-table"}}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("carve with other recognizers over a complete shard: %v, want an error suggesting --force", err)
	}
}

func TestCarveRefusesOtherEvidence(t *testing.T) {
	imageA, _, _ := writeImage(t, 1<<20, 5)
	imageB, _, _ := writeImage(t, 1<<20+4096, 6)
	dir := filepath.Join(t.TempDir(), "case")
	carve(t, dir, imageA, CarveOptions{})
	_, err := Carve(context.Background(), dir, imageB, CarveOptions{})
	if err == nil || !strings.Contains(err.Error(), "belongs to evidence") {
		t.Errorf("carving other evidence into a case: %v, want a refusal", err)
	}
}

func TestCarveBadInputs(t *testing.T) {
	tmp := t.TempDir()
	write := func(name string, n int) string {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, make([]byte, n), 0o444)
		return p
	}
	empty, tiny, ok := write("empty", 0), write("tiny", 100), write("ok", 1<<20+512)
	size := int64(1<<20 + 512)
	for _, tc := range []struct {
		name  string
		image string
		opts  CarveOptions
		want  string
	}{
		{"empty image", empty, CarveOptions{}, "too small"},
		{"tiny image", tiny, CarveOptions{}, "too small"},
		{"missing image", filepath.Join(tmp, "nope"), CarveOptions{}, "opening evidence"},
		{"directory", tmp, CarveOptions{}, "directory"},
		{"unaligned start", ok, CarveOptions{Range: &Range{512, size}}, "not a multiple"},
		{"end past image", ok, CarveOptions{Range: &Range{0, size + 4096}}, "past the end"},
		{"reversed", ok, CarveOptions{Range: &Range{8192, 4096}}, "empty or reversed"},
		{"unaligned end", ok, CarveOptions{Range: &Range{0, 5000}}, "neither a multiple"},
		{"unknown hash", ok, CarveOptions{Hash: "md5,crc32"}, "unknown hash"},
		{"unknown recognizer", ok, CarveOptions{Enable: []string{"nope"}}, "unknown recognizer"},
		{"bad chunk size", ok, CarveOptions{ChunkSize: 1000}, "chunk size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Carve(context.Background(), filepath.Join(t.TempDir(), "case"), tc.image, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Carve: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *Range
		wantErr bool
	}{
		{"0:4096", &Range{0, 4096}, false},
		{"1M:2G", &Range{1 << 20, 2 << 30}, false},
		{"4k:1T", &Range{4096, 1 << 40}, false},
		{"8KiB:", &Range{8192, 0}, false},
		{"1MB:2MB", &Range{1 << 20, 2 << 20}, false},
		{"5", nil, true},
		{"x:5", nil, true},
		{"0:0", nil, true},
		{"-1:5", nil, true},
		{"0:99999999T", nil, true},
	} {
		got, err := ParseRange(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && *got != *tc.want) {
			t.Errorf("ParseRange(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// A run killed after its last checkpoint but before it marked the shard
// complete leaves a checkpoint at the (unaligned) image end: the rerun only
// finishes the shard.
func TestResumeAtShardEnd(t *testing.T) {
	image, data, _ := writeImage(t, 1<<20+1000, 7)
	whole := filepath.Join(t.TempDir(), "whole")
	carve(t, whole, image, CarveOptions{Hash: "none"})
	dir := filepath.Join(t.TempDir(), "case")
	carve(t, dir, image, CarveOptions{Hash: "none"})
	shard := filepath.Join(dir, ShardsDirName, Range{0, int64(len(data))}.String())
	st, err := readShardState(shard)
	if err != nil {
		t.Fatal(err)
	}
	st.Complete = false
	if err := writeShardState(shard, st); err != nil {
		t.Fatal(err)
	}
	res := carve(t, dir, image, CarveOptions{Hash: "none"})
	if res.Skipped || res.Scanned != 0 || !res.Complete || res.Hits != st.Hits {
		t.Errorf("finishing rerun: skipped %v scanned %d complete %v hits %d (want %d)", res.Skipped, res.Scanned, res.Complete, res.Hits, st.Hits)
	}
	sameOutputs(t, "finished", whole, dir)
}

// TestCarveSparseImage carves a 64 GiB sparse file holding 3 MiB of data
// at 40 GiB: the hits are those of the same data carved dense (moved by
// its offset), and the fingerprints file holds runs for the holes (the
// hashes over holes are carver's TestHolesSkipped).
func TestCarveSparseImage(t *testing.T) {
	_, data, planted := writeImage(t, 3<<20, 9)
	const size, at = 64 << 30, 40 << 30
	path := filepath.Join(t.TempDir(), "sparse.dd")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, at); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if zs, _ := holes.Zeros(tooltest.Open(t, path), size); len(zs) == 0 {
		// The filesystems CI runs on (ext4, xfs, tmpfs, overlayfs) keep
		// holes: there the test must run.
		tooltest.Missing(t, "the filesystem of the temporary directory keeps no holes")
	}
	dir := filepath.Join(t.TempDir(), "case")
	res := carve(t, dir, path, CarveOptions{Hash: "none", Workers: 2})
	if !res.Complete {
		t.Fatalf("carve incomplete: %s", res.Reason)
	}
	c, _ := OpenCase(dir)
	hits, err := c.LoadHits()
	if err != nil {
		t.Fatal(err)
	}
	headers := 0
	for _, h := range hits {
		if h.Kind == signatures.KindSparseHeader {
			if !slices.Contains(planted, h.Offset-at) {
				t.Errorf("header hit at %d, not one planted", h.Offset)
			}
			headers++
		}
	}
	if headers != len(planted) {
		t.Errorf("%d headers found, %d planted", headers, len(planted))
	}
	st, err := os.Stat(filepath.Join(dir, FingerprintsName))
	if err != nil {
		t.Fatal(err)
	}
	if dense := int64(len(data)) / 4096 * 8; st.Size() > 2*dense+4096 {
		t.Errorf("fingerprints.bin is %d bytes for %d bytes of data", st.Size(), len(data))
	}
	fp, err := c.Fingerprints()
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	for _, off := range []int64{0, at - 4096, at + int64(len(data)), size - 1} {
		if v, ok := fp.At(off); !ok || v != 0 {
			t.Errorf("fingerprint in a hole at %d: %x %v", off, v, ok)
		}
	}
	if v, ok := fp.At(at); !ok || v != fingerprint.Hash(data[:4096]) {
		t.Errorf("fingerprint of the data's first block: %x %v", v, ok)
	}
}

// TestUnreadableAreasChecked: areas a user edited into case.json out of
// order, or past the image, are refused by rebuild with the file named.
func TestUnreadableAreasChecked(t *testing.T) {
	image, data, _ := writeImage(t, 1<<20, 4)
	dir := filepath.Join(t.TempDir(), "case")
	carve(t, dir, image, CarveOptions{Hash: "none"})
	for _, areas := range [][]Range{
		{{Start: 8192, End: 16384}, {Start: 4096, End: 6000}},
		{{Start: 4096, End: 4096}},
		{{Start: 0, End: int64(len(data)) + 1}},
	} {
		c, err := OpenCase(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.UpdateManifest(func(m *Manifest) error { m.Evidence.Unreadable = areas; return nil }); err != nil {
			t.Fatal(err)
		}
		_, err = Rebuild(context.Background(), dir, RebuildOptions{Force: true})
		if err == nil || !strings.Contains(err.Error(), "evidence.unreadable") {
			t.Errorf("areas %v: rebuild %v, want it refused", areas, err)
		}
	}
}

// TestCarveSharesShardFiles: a carve in one run keeps its hits and
// fingerprints once, the case's files and its shard's being one file each,
// also where checkpoints split the shard's runs of zero blocks; a forced
// carve of the shard, interrupted, rewrites the shard's files without
// touching the case's, and once done leaves what a fresh case holds.
func TestCarveSharesShardFiles(t *testing.T) {
	old := checkpointInterval
	checkpointInterval = 128 << 10
	defer func() { checkpointInterval = old }()
	for _, tc := range []struct {
		name  string
		zeros [2]int // a run of zero bytes in the image
	}{
		{"noise", [2]int{0, 0}},
		{"a zero run over checkpoints", [2]int{300 << 10, 1800 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image, data, _ := writeImage(t, 2<<20+1000, 7)
			clear(data[tc.zeros[0]:tc.zeros[1]])
			os.Remove(image) // (written read-only)
			if err := os.WriteFile(image, data, 0o444); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "case")
			carve(t, dir, image, CarveOptions{Workers: 2})
			shard := filepath.Join(dir, ShardsDirName, Range{0, int64(len(data))}.String())
			fi, err := os.Stat(filepath.Join(dir, FingerprintsName))
			if err != nil {
				t.Fatal(err)
			}
			_, linksKnown := linkCount(fi)
			before := map[string][]byte{}
			for _, name := range []string{HitsName, FingerprintsName} {
				a, _ := os.Stat(filepath.Join(dir, name))
				b, _ := os.Stat(filepath.Join(shard, name))
				if shared := os.SameFile(a, b); shared != linksKnown {
					t.Errorf("%s: the case's and the shard's are one file: %v, want %v", name, shared, linksKnown)
				}
				before[name] = readFile(t, filepath.Join(dir, name))
			}
			if st, err := readShardState(shard); err != nil || st.FingerprintBytes != fi.Size() {
				t.Errorf("shard.json says %d bytes of fingerprints (%v), the file has %d", st.FingerprintBytes, err, fi.Size())
			}

			ctx, cancel := context.WithCancel(context.Background())
			_, err = Carve(ctx, dir, image, CarveOptions{Force: true, ChunkSize: testChunk, Workers: 2, Progress: progressFunc(func(done, total, hits int64) {
				if done >= 512<<10 {
					cancel()
				}
			})})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted forced carve: %v, want context.Canceled", err)
			}
			for _, name := range []string{HitsName, FingerprintsName} {
				if got := readFile(t, filepath.Join(dir, name)); !bytes.Equal(got, before[name]) {
					t.Errorf("%s of the case changed (%d bytes, was %d) while the shard was carved again", name, len(got), len(before[name]))
				}
			}
			carve(t, dir, image, CarveOptions{Workers: 3})
			fresh := filepath.Join(t.TempDir(), "fresh")
			carve(t, fresh, image, CarveOptions{Workers: 1})
			sameOutputs(t, "forced again", fresh, dir)
		})
	}
}

// TestUnshare: a file linked under two names is given back a name of its
// own, its first bytes kept, and the other name is left as it was.
func TestUnshare(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, b); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if err := unshare(b, 4); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.Stat(a)
	fb, _ := os.Stat(b)
	if _, known := linkCount(fa); known && os.SameFile(fa, fb) {
		t.Errorf("still one file")
	}
	if got := string(readFile(t, a)); got != "0123456789" {
		t.Errorf("the other name reads %q", got)
	}
	if got := string(readFile(t, b)); got != "0123" && !(runtime.GOOS == "windows" && got == "0123456789") {
		t.Errorf("the unshared name reads %q, want its first 4 bytes", got)
	}
}
