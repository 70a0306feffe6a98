package pipeline

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"hash/adler32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/internal/tooltest"
)

// TestRanges: the areas of two sources, each sorted and disjoint, merge
// into one sorted, disjoint list (overlapping and touching areas joined).
func TestRanges(t *testing.T) {
	for _, tc := range []struct {
		a, b, want []Range
	}{
		{nil, nil, nil},
		{[]Range{{0, 10}}, nil, []Range{{0, 10}}},
		{nil, []Range{{5, 6}}, []Range{{5, 6}}},
		{[]Range{{0, 10}, {20, 30}}, []Range{{5, 22}, {40, 50}}, []Range{{0, 30}, {40, 50}}},
		{[]Range{{0, 10}}, []Range{{10, 12}}, []Range{{0, 12}}},
		{[]Range{{20, 30}}, []Range{{0, 5}}, []Range{{0, 5}, {20, 30}}},
	} {
		areas := append(sourcedAreas(tc.a, AreaMapfile), sourcedAreas(tc.b, AreaEWFError2)...)
		if got := ranges(areas); !slices.Equal(got, tc.want) {
			t.Errorf("ranges(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCompareStored(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name     string
		ev       Evidence
		match    map[string]*bool
		mismatch bool
	}{
		{"both match", Evidence{MD5: "aa", SHA1: "BB", StoredHashes: map[string]*StoredHash{"md5": {Stored: "AA"}, "sha1": {Stored: "bb"}}},
			map[string]*bool{"md5": &yes, "sha1": &yes}, false},
		{"md5 differs", Evidence{MD5: "ab", SHA1: "bb", StoredHashes: map[string]*StoredHash{"md5": {Stored: "aa"}, "sha1": {Stored: "bb"}}},
			map[string]*bool{"md5": &no, "sha1": &yes}, true},
		{"not computed", Evidence{SHA256: "cc", StoredHashes: map[string]*StoredHash{"md5": {Stored: "aa"}}},
			map[string]*bool{"md5": nil}, false},
		{"the set contradicts itself", Evidence{MD5: "aa", StoredHashes: map[string]*StoredHash{"md5": {Stored: "aa", OtherStored: "ab"}}},
			map[string]*bool{"md5": &no}, true},
		{"raw evidence", Evidence{MD5: "aa"}, nil, false},
		{"an edited case.json's null", Evidence{MD5: "aa", StoredHashes: map[string]*StoredHash{"md5": nil}}, nil, false},
	} {
		tc.ev.compareStored()
		if tc.ev.StoredHashMismatch != tc.mismatch {
			t.Errorf("%s: mismatch %v, want %v", tc.name, tc.ev.StoredHashMismatch, tc.mismatch)
		}
		for name, want := range tc.match {
			got := tc.ev.StoredHashes[name].Match
			if (got == nil) != (want == nil) || (got != nil && *got != *want) {
				t.Errorf("%s: %s match %v, want %v", tc.name, name, got, want)
			}
		}
	}
}

func TestDefaultHashes(t *testing.T) {
	for _, tc := range []struct {
		stored []string
		want   string
	}{
		{nil, "sha256"},
		{[]string{"md5"}, "md5,sha256"},
		{[]string{"sha1", "md5"}, "md5,sha1,sha256"},
	} {
		ev := Evidence{}
		for _, n := range tc.stored {
			if ev.StoredHashes == nil {
				ev.StoredHashes = map[string]*StoredHash{}
			}
			ev.StoredHashes[n] = &StoredHash{Stored: "00"}
		}
		if got := ev.defaultHashes(); got != tc.want {
			t.Errorf("stored %v: default %q, want %q", tc.stored, got, tc.want)
		}
	}
}

// TestOpenEvidence: evidence is told apart by its signature: a raw image
// (even one named .E01) is raw, an E01 set (even one not so named, when it
// is a single segment) is read through package ewf and described with its
// segments and stored hashes.
func TestOpenEvidence(t *testing.T) {
	tooltest.Need(t, "ewfacquire")
	dir := t.TempDir()
	media := make([]byte, 2<<20)
	for i := range media {
		media[i] = byte(i * 7 / 512)
	}
	raw := filepath.Join(dir, "raw.E01")
	if err := os.WriteFile(raw, media, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := openEvidence(raw)
	if err != nil {
		t.Fatal(err)
	}
	if src.ev.Format != "" || src.raw == nil || src.ev.Size != int64(len(media)) {
		t.Errorf("a raw image named .E01: format %q, size %d", src.ev.Format, src.ev.Size)
	}
	if _, ok := src.scanReader().(*os.File); !ok {
		t.Errorf("a raw image is scanned through %T, not its *os.File: the carver cannot map it", src.scanReader())
	}
	src.Close()

	tooltest.Run(t, "ewfacquire", "-u", "-q", "-t", filepath.Join(dir, "set"), "-c", "deflate:fast", "-f", "encase6", "-d", "sha1", raw)
	first := filepath.Join(dir, "set.E01")
	src, err = openEvidence(first)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ev := src.ev
	if ev.Format != FormatEWF || src.ewf == nil || ev.Size != int64(len(media)) || len(ev.Segments) != 1 || ev.Segments[0].Path != first {
		t.Fatalf("E01: %+v", ev)
	}
	m5, s1 := md5.Sum(media), sha1.Sum(media)
	if md := ev.StoredHashes["md5"]; md == nil || md.Stored != hex.EncodeToString(m5[:]) || len(md.Sections) != 2 || md.OtherStored != "" {
		t.Errorf("stored md5 %+v, want the media's from the hash and digest sections", md)
	}
	if sh := ev.StoredHashes["sha1"]; sh == nil || sh.Stored != hex.EncodeToString(s1[:]) {
		t.Errorf("stored sha1 %+v", sh)
	}
	if got := ev.defaultHashes(); got != "md5,sha1,sha256" {
		t.Errorf("default hashes %q", got)
	}
	if size, err := EvidenceSize(first); err != nil || size != int64(len(media)) {
		t.Errorf("EvidenceSize = %d, %v", size, err)
	}
	// The same set under another case's record: the checks rebuild makes.
	if err := sameEvidence(ev, ev); err != nil {
		t.Error(err)
	}
	other := ev
	other.Segments = []EvidenceFile{{Path: first, Size: ev.Segments[0].Size + 1}}
	if err := sameEvidence(other, ev); err == nil || !strings.Contains(err.Error(), "segment files") {
		t.Errorf("changed segment: %v", err)
	}
	other = ev
	other.Format = ""
	if err := sameEvidence(other, ev); err == nil {
		t.Error("changed format: no error")
	}
}

// TestE01ReadErrors: the sectors an E01 set's error2 section lists (the
// acquisition could not read them) are unreadable areas of the evidence,
// as a mapfile's unrescued ones are. The section is added to a set
// ewfacquire wrote, in place of its done section, as EnCase writes it.
func TestE01ReadErrors(t *testing.T) {
	tooltest.Need(t, "ewfacquire")
	dir := t.TempDir()
	raw := filepath.Join(dir, "media.raw")
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "ewfacquire", "-u", "-q", "-t", filepath.Join(dir, "set"), "-c", "deflate:fast", "-f", "encase6", raw)
	first := filepath.Join(dir, "set.E01")
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	done := bytes.LastIndex(b, []byte("done\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	if done < 0 {
		t.Fatal("no done section")
	}
	// error2: 520-byte header (count, checksum), entries, their checksum.
	data := make([]byte, 520)
	binary.LittleEndian.PutUint32(data, 2)
	binary.LittleEndian.PutUint32(data[516:], adler32.Checksum(data[:516]))
	entries := binary.LittleEndian.AppendUint32(nil, 100)
	entries = binary.LittleEndian.AppendUint32(entries, 8) // sectors 100-107
	entries = binary.LittleEndian.AppendUint32(entries, 2040)
	entries = binary.LittleEndian.AppendUint32(entries, 100) // past the end: clipped
	data = append(data, entries...)
	data = binary.LittleEndian.AppendUint32(data, adler32.Checksum(entries))
	section := func(typ string, next, size int) []byte {
		d := make([]byte, 76)
		copy(d, typ)
		binary.LittleEndian.PutUint64(d[16:], uint64(next))
		binary.LittleEndian.PutUint64(d[24:], uint64(size))
		binary.LittleEndian.PutUint32(d[72:], adler32.Checksum(d[:72]))
		return d
	}
	end := done + 76 + len(data)
	out := append(b[:done:done], section("error2", end, 76+len(data))...)
	out = append(out, data...)
	out = append(out, section("done", end, 0)...)
	if err := os.WriteFile(first, out, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := openEvidence(first)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := []Range{{100 * 512, 108 * 512}, {2040 * 512, 1 << 20}}
	if !slices.Equal(src.ev.Unreadable, want) {
		t.Errorf("unreadable %v, want %v", src.ev.Unreadable, want)
	}
	res, err := Carve(context.Background(), filepath.Join(dir, "case"), first, CarveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Evidence.Unreadable, want) {
		t.Errorf("case.json unreadable %v, want %v", res.Evidence.Unreadable, want)
	}
}
