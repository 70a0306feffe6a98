package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"vmdkcarve/fingerprint"
	"vmdkcarve/signatures"
)

func TestAtomicFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	if err := WriteFileAtomic(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := string(readFile(t, path)); got != "two" {
		t.Errorf("after two writes: %q", got)
	}
	f, err := CreateAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("three, abandoned")
	if got := string(readFile(t, path)); got != "two" {
		t.Errorf("an uncommitted write is visible: %q", got)
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Errorf("commit after abort succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %d entries", len(ents))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Errorf("writing into a missing directory succeeded")
	}
}

// TestAtomicFileWriteback: a file of several writebackEvery spans, written
// by WriteAt and Write, is committed whole (writeback started on the way
// changes nothing of what is written).
func TestAtomicFileWriteback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	f, err := CreateAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	want := make([]byte, 2*writebackEvery+12345)
	for i := range want {
		want[i] = byte(i*7 + i>>16)
	}
	half := len(want) / 2
	for off := 0; off < half; off += 1 << 20 {
		if _, err := f.WriteAt(want[off:min(off+1<<20, half)], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Seek(int64(half), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(want[half:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Errorf("committed %d bytes, not the %d written", len(got), len(want))
	}
}

// TestAtomicFileWriteDirect: with WriteDirect, aligned writes go past the
// page cache and the others through it, and the file committed holds every
// one of them; a direct write the kernel refuses for its alignment
// (EINVAL) is written through the page cache instead, and so are the writes
// after it.
func TestAtomicFileWriteDirect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	f, err := CreateAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	f.WriteDirect()
	if runtime.GOOS == "linux" && f.direct == nil {
		t.Logf("%s refuses O_DIRECT: every write goes through the page cache", filepath.Dir(path))
	}
	buf := make([]byte, 4<<20) // a large allocation: page-aligned
	for i := range buf {
		buf[i] = byte(i*7 + i>>12)
	}
	want := make([]byte, 6<<20)
	write := func(p []byte, off int64) {
		t.Helper()
		if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
			t.Fatalf("WriteAt(%d bytes, %d): %d, %v", len(p), off, n, err)
		}
		copy(want[off:], p)
	}
	write(buf[:1<<20], 0)          // aligned
	write(buf[:1<<20], 2<<20)      // aligned, past a hole
	write(buf[100:1100], 1<<20+17) // unaligned: offset, length and memory
	if f.direct != nil {
		if !f.alignedForDirect(buf[:1<<20], 0) || f.alignedForDirect(buf[1:1<<20+1], 0) || f.alignedForDirect(buf[:1000], 0) || f.alignedForDirect(buf[:4096], 17) {
			t.Errorf("alignedForDirect misjudges (memory %d, offset %d)", f.memAlign, f.offAlign)
		}
		// Said aligned when the kernel disagrees: memory one byte off.
		f.memAlign = 1
		write(buf[1:1<<20+1], 3<<20)
		if f.direct != nil {
			t.Errorf("a direct write refused as unaligned left direct writes on")
		}
	} else {
		write(buf[1:1<<20+1], 3<<20)
	}
	write(buf[:2<<20], 4<<20) // after the fallback: the page cache
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Errorf("committed %d bytes, not the %d written", len(got), len(want))
	}
}

func TestCaseManifestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "case")
	if _, err := OpenCase(dir); !errors.Is(err, ErrNoCase) {
		t.Errorf("OpenCase of nothing: %v, want ErrNoCase", err)
	}
	c, err := CreateOrOpenCase(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Manifest.Stages["rebuild"] = &Stage{Reason: "not run", Params: []byte(`{"x":1}`), Counts: map[string]int64{"disks": 2}}
	if err := c.SaveManifest(); err != nil {
		t.Fatal(err)
	}
	c2, err := CreateOrOpenCase(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := c2.Manifest.Stages["rebuild"]
	var params bytes.Buffer
	if s != nil {
		json.Compact(&params, s.Params) // MarshalIndent re-indents raw params
	}
	if s == nil || s.Reason != "not run" || params.String() != `{"x":1}` || s.Counts["disks"] != 2 || c2.CarveComplete() {
		t.Errorf("manifest did not round-trip: %+v", s)
	}
	os.WriteFile(filepath.Join(dir, ManifestName), []byte("{not json"), 0o644)
	if _, err := OpenCase(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt manifest: %v", err)
	}
}

func TestLoadHitsErrors(t *testing.T) {
	dir := t.TempDir()
	c := &Case{Dir: dir, Manifest: &Manifest{}}
	write := func(s string) { os.WriteFile(filepath.Join(dir, HitsName), []byte(s), 0o644) }
	write(`{"offset":512,"kind":"sparse-header","verdict":"damaged"}` + "\n\n" + `{"offset":1024,"kind":"error","verdict":"damaged"}` + "\n")
	hits, err := c.LoadHits()
	if err != nil || len(hits) != 2 || hits[1].Offset != 1024 || hits[1].Kind != signatures.KindError {
		t.Errorf("LoadHits: %v, %+v", err, hits)
	}
	write(`{"offset":512,"kind":"sparse-header","verdict":"damaged"}` + "\n" + `{"offset":1024,"ki` + "\n")
	if _, err := c.LoadHits(); err == nil || !strings.Contains(err.Error(), HitsName+":2:") {
		t.Errorf("corrupt line: %v, want an error naming line 2", err)
	}
	write(strings.Repeat("x", MaxHitLine+10))
	if _, err := c.LoadHits(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("overlong line: %v", err)
	}
}

// TestFingerprintsFile writes fingerprints with the encoder (short zero
// runs block by block, long ones as one record) and reads them back in
// memory and from the file, with the dense versions 2 and 3 still read,
// and damaged files refused.
func TestFingerprintsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FingerprintsName)
	const first = 8192
	var blocks []uint64
	blocks = append(blocks, 0, 7, 9)
	blocks = append(blocks, make([]uint64, minZeroRun-1)...) // too short for a run
	blocks = append(blocks, 11)
	// More records than one read of the file holds (1 MiB).
	const many = 200_000
	for i := range uint64(many) {
		blocks = append(blocks, 100+i)
	}
	blocks = append(blocks, make([]uint64, 3*minZeroRun)...) // a run
	blocks = append(blocks, 13, 0)
	blocks = append(blocks, make([]uint64, minZeroRun)...) // a run to the end
	var buf bytes.Buffer
	buf.Write(fpHeader(first, int64(len(blocks))))
	e := &fpEncoder{w: &buf}
	for _, v := range blocks {
		e.add(v)
	}
	if err := e.flush(); err != nil {
		t.Fatal(err)
	}
	v4 := buf.Bytes()
	if want := fpHeaderSize + (3+minZeroRun-1+1+many+1+1+1)*fpEntrySize; len(v4) != want {
		t.Fatalf("encoded %d bytes, want %d (two runs)", len(v4), want)
	}
	dense := func(version uint32) []byte {
		b := fpHeader(first, int64(len(blocks)))
		binary.LittleEndian.PutUint32(b[4:], version)
		for _, v := range blocks {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	withVersion := func(b []byte, v uint32) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(b[4:], v)
		return b
	}
	for name, file := range map[string][]byte{"v5": v4, "v4": withVersion(v4, fpVersionXXH64), "v3": dense(fpVersionDense), "v2": dense(fpVersionRand)} {
		os.WriteFile(path, file, 0o644)
		for _, inMemory := range []bool{true, false} {
			old := fpInMemoryMax
			if !inMemory {
				fpInMemoryMax = 0
			}
			fp, err := OpenFingerprints(path)
			fpInMemoryMax = old
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, want := range blocks {
				for _, off := range []int64{0, 100, 4095} {
					if got, ok := fp.At(first + int64(i)*4096 + off); got != want || !ok {
						t.Fatalf("%s, in memory %v: block %d: %d %v, want %d", name, inMemory, i, got, ok, want)
					}
				}
			}
			for _, off := range []int64{0, first - 1, first + int64(len(blocks))*4096} {
				if _, ok := fp.At(off); ok {
					t.Errorf("%s: At(%d) outside the file's blocks", name, off)
				}
			}
			// Copied out and encoded again: the version 4 bytes.
			var again bytes.Buffer
			again.Write(fpHeader(first, int64(len(blocks))))
			e := &fpEncoder{w: &again}
			if err := fp.copyTo(e, 0, int64(len(blocks))); err != nil || e.flush() != nil || !bytes.Equal(again.Bytes(), v4) {
				t.Errorf("%s, in memory %v: copied and encoded again differs (%v)", name, inMemory, err)
			}
			// Each version is looked up with the hash it was made with.
			blk := bytes.Repeat([]byte("block"), 800)
			want := fingerprint.HashXXH64(blk)
			if name == "v5" {
				want = fingerprint.Hash(blk)
			}
			if fp.BlockHash(blk) != want || fingerprint.Hash(blk) == fingerprint.HashXXH64(blk) {
				t.Errorf("%s: BlockHash is not the version's hash", name)
			}
			if fp.Err() != nil || fp.Close() != nil {
				t.Errorf("Err %v", fp.Err())
			}
		}
	}
	run := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, fpZeroRun|n) }
	withCount := func(b []byte, n uint64) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint64(b[fpCountOffset:], n)
		return b
	}
	for name, bad := range map[string][]byte{
		"truncated entry":   v4[:len(v4)-3],
		"truncated header":  v4[:20],
		"bad magic":         append([]byte("XXXX"), v4[4:]...),
		"huge count":        withCount(v4, 1<<63),
		"count too high":    withCount(v4, uint64(len(blocks)+1)),
		"count too low":     withCount(v4, uint64(len(blocks)-1)),
		"empty run":         append(withCount(v4, uint64(len(blocks)+1)), run(0)...),
		"run past the end":  append(append([]byte(nil), v4...), run(5)...),
		"records past end":  append(append([]byte(nil), v4...), 1, 0, 0, 0, 0, 0, 0, 0),
		"dense, wrong size": dense(fpVersionDense)[:len(dense(fpVersionDense))-8],
	} {
		os.WriteFile(path, bad, 0o644)
		if _, err := OpenFingerprints(path); !errors.Is(err, ErrFingerprints) {
			t.Errorf("%s: %v, want ErrFingerprints", name, err)
		}
	}
}

func TestCarveSmallestImages(t *testing.T) {
	for _, size := range []int{512, 1000, 4096, 4097} {
		path := filepath.Join(t.TempDir(), "small.dd")
		os.WriteFile(path, noise(size, uint64(size)), 0o444)
		res, err := Carve(context.Background(), filepath.Join(t.TempDir(), "case"), path, CarveOptions{})
		if err != nil || !res.Complete {
			t.Fatalf("%d-byte image: %v", size, err)
		}
		fp, err := OpenFingerprints(filepath.Join(res.Case, FingerprintsName))
		if err != nil || fp.Count != int64((size+4095)/4096) {
			t.Errorf("%d-byte image: fingerprints %v %v", size, fp, err)
		}
	}
}

func TestCreateCaseRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "evidence.dd"), []byte("x"), 0o644)
	if _, err := CreateOrOpenCase(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("CreateOrOpenCase over a non-case directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files were written into a foreign directory: %v", ents)
	}
}

// TestCaseAfterKilledCreate: a carve killed while it wrote case.json
// leaves only its temporary file; the next run makes the case there, and a
// directory holding anything else is still refused.
func TestCaseAfterKilledCreate(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "."+ManifestName+".tmp-123"), []byte(`{"tool":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateOrOpenCase(dir); err != nil {
		t.Fatalf("a case holding only our temporary file: %v", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateOrOpenCase(other); err == nil {
		t.Fatal("a directory of someone else's files was taken for a case")
	}
}

// BenchmarkOpenFingerprints opens the fingerprints of a 4 GiB image (a
// million blocks, a zero run every 1000 of them), as each rebuild does
// before it plans.
func BenchmarkOpenFingerprints(b *testing.B) {
	path := filepath.Join(b.TempDir(), FingerprintsName)
	const blocks = 1 << 20
	var buf bytes.Buffer
	buf.Write(fpHeader(0, blocks))
	e := &fpEncoder{w: &buf}
	for i := range uint64(blocks) {
		if i%1000 < minZeroRun {
			e.add(0)
			continue
		}
		e.add(i)
	}
	if err := e.flush(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		fp, err := OpenFingerprints(path)
		if err != nil {
			b.Fatal(err)
		}
		fp.Close()
	}
}
