package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	write(`{"offset":512,"kind":"sparse-header","verdict":"valid"}` + "\n\n" + `{"offset":1024,"kind":"error","verdict":"damaged"}` + "\n")
	hits, err := c.LoadHits()
	if err != nil || len(hits) != 2 || hits[1].Offset != 1024 || hits[1].Kind != signatures.KindError {
		t.Errorf("LoadHits: %v, %+v", err, hits)
	}
	write(`{"offset":512,"kind":"sparse-header"}` + "\n" + `{"offset":1024,"ki` + "\n")
	if _, err := c.LoadHits(); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("corrupt line: %v, want an error naming line 2", err)
	}
	write(strings.Repeat("x", MaxHitLine+10))
	if _, err := c.LoadHits(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("overlong line: %v", err)
	}
}

func TestFingerprintsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FingerprintsName)
	b := fpHeader(8192, 3)
	for _, v := range []uint64{0, 7, 1 << 63} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	os.WriteFile(path, b, 0o644)
	for _, inMemory := range []bool{true, false} {
		old := fpInMemoryMax
		if !inMemory {
			fpInMemoryMax = 0
		}
		fp, err := OpenFingerprints(path)
		fpInMemoryMax = old
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			off  int64
			want uint64
			ok   bool
		}{{0, 0, false}, {8191, 0, false}, {8192, 0, true}, {12288 + 100, 7, true}, {16384, 1 << 63, true}, {20480, 0, false}} {
			if got, ok := fp.At(tc.off); got != tc.want || ok != tc.ok {
				t.Errorf("in memory %v: At(%d) = %d %v, want %d %v", inMemory, tc.off, got, ok, tc.want, tc.ok)
			}
		}
		if fp.Err() != nil || fp.Close() != nil {
			t.Errorf("Err %v", fp.Err())
		}
	}
	for name, bad := range map[string][]byte{
		"truncated entry":  b[:len(b)-3],
		"truncated header": b[:20],
		"bad magic":        append([]byte("XXXX"), b[4:]...),
		"huge count":       append(append(append([]byte(nil), b[:24]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), b[32:]...),
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
