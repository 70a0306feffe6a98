package ewf

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/internal/tooltest"
)

// Acquire writes media with ewfacquire (EnCase 6 format, MD5 and SHA-1)
// into dir as name.E01, … and returns the first segment's path.
// compression is ewfacquire's -c value (none, deflate:fast, deflate:best);
// segment its -S value ("" for its default, one segment here).
func acquire(t testing.TB, media []byte, dir, name, compression, segment string, extra ...string) string {
	t.Helper()
	tooltest.Need(t, "ewfacquire")
	src := filepath.Join(dir, name+".raw")
	if err := os.WriteFile(src, media, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-u", "-q", "-t", filepath.Join(dir, name), "-c", compression, "-f", "encase6", "-d", "sha1"}
	if segment != "" {
		args = append(args, "-S", segment)
	}
	args = append(args, extra...)
	tooltest.Run(t, "ewfacquire", append(args, src)...)
	return filepath.Join(dir, name+".E01")
}

// TestEwfacquire reads sets ewfacquire wrote at every compression level,
// in one and in several segments, and requires the media to read back
// byte for byte, the stored hashes to be the media's, ewfverify to agree,
// and ewfexport's raw output to equal our reads.
func TestEwfacquire(t *testing.T) {
	tooltest.Need(t, "ewfacquire", "ewfverify", "ewfexport")
	// 6 MiB and 3 sectors: the last chunk is partial; random blocks keep
	// even "best" above 3 MiB, so 1 MiB segments make at least three.
	media := testMedia(6<<20+3*512, 20)
	md5sum, sha1sum, sha := md5.Sum(media), sha1.Sum(media), sha256.Sum256(media)
	for _, tc := range []struct {
		name, compression, segment string
		minSegments                int
		extra                      []string
	}{
		{"none", "none", "", 1, nil},
		{"fast", "deflate:fast", "", 1, nil},
		{"none-1MiB", "none", "1MiB", 6, nil},
		{"fast-1MiB", "deflate:fast", "1MiB", 3, nil},
		{"best-1MiB", "deflate:best", "1MiB", 3, nil},
		// 1 MiB chunks (2048 sectors), and 16 KiB ones of 4 KiB sectors.
		{"fast-big-chunks", "deflate:fast", "", 1, []string{"-b", "2048"}},
		{"fast-4k-sectors", "deflate:fast", "1MiB", 3, []string{"-P", "4096", "-b", "16", "-B", "6291456"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first := acquire(t, media, dir, "img", tc.compression, tc.segment, tc.extra...)
			media, md5sum, sha1sum, sha := media, md5sum, sha1sum, sha
			if len(tc.extra) > 0 && tc.extra[len(tc.extra)-2] == "-B" { // a sector multiple of 4096-byte sectors
				media = media[:6<<20]
				md5sum, sha1sum, sha = md5.Sum(media), sha1.Sum(media), sha256.Sum256(media)
			}
			m, err := Open(first)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if len(m.Segments()) < tc.minSegments {
				t.Fatalf("%d segments, want at least %d", len(m.Segments()), tc.minSegments)
			}
			if m.Size() != int64(len(media)) {
				t.Fatalf("size %d, want %d", m.Size(), len(media))
			}
			wantChunk := map[string]int64{"fast-big-chunks": 1 << 20, "fast-4k-sectors": 64 << 10}[tc.name]
			if wantChunk == 0 {
				wantChunk = 32 << 10 // ewfacquire's default, 64 sectors of 512 bytes
			}
			if m.ChunkSize() != wantChunk {
				t.Errorf("chunk size %d, want %d", m.ChunkSize(), wantChunk)
			}
			got := readAll(t, m)
			if s := sha256.Sum256(got); s != sha {
				t.Fatalf("sha256 of the media read back %x, want %x", s, sha)
			}
			if m.StoredMD5() != hex.EncodeToString(md5sum[:]) || m.StoredSHA1() != hex.EncodeToString(sha1sum[:]) {
				t.Errorf("stored md5 %s sha1 %s, want the media's %x %x", m.StoredMD5(), m.StoredSHA1(), md5sum, sha1sum)
			}
			out := tooltest.Run(t, "ewfverify", "-q", "-d", "sha1", first)
			if !strings.Contains(out, "SUCCESS") || !strings.Contains(out, m.StoredMD5()) {
				t.Errorf("ewfverify:\n%s", out)
			}
			exp := filepath.Join(dir, "export")
			tooltest.Run(t, "ewfexport", "-u", "-q", "-f", "raw", "-t", exp, first)
			b, err := os.ReadFile(exp + ".raw")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, got) {
				t.Errorf("ewfexport's raw output (%d bytes) differs from our reads", len(b))
			}
		})
	}
}

// TestEwfacquireDamage: a flipped byte in a chunk of a set ewfacquire
// wrote fails the read naming segment and chunk; a segment cut short
// fails Open saying it is truncated; a renamed first segment is found by
// its signature when it is the only one.
func TestEwfacquireDamage(t *testing.T) {
	media := testMedia(5<<20, 21)
	dir := t.TempDir()
	first := acquire(t, media, dir, "img", "deflate:fast", "1MiB")
	m, err := Open(first)
	if err != nil {
		t.Fatal(err)
	}
	segs := m.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	// The first chunk of segment 2.
	c := m.tables[1].first
	locs, err := m.locate(c, c)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	seg2 := segs[1].Path
	orig, err := os.ReadFile(seg2)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[locs[0].off+200] ^= 0x10
	if err := os.WriteFile(seg2, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err = Open(first)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.ReadAt(make([]byte, m.Size()), 0)
	m.Close()
	var ce *ChunkError
	if !errors.As(err, &ce) || ce.Segment != 2 || ce.Chunk != c {
		t.Fatalf("%v, want a ChunkError for chunk %d of segment 2", err, c)
	}
	t.Logf("damaged chunk: %v", err)

	if err := os.WriteFile(seg2, orig[:len(orig)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(first)
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "segment 2") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated segment 2: %v", err)
	}
	t.Logf("truncated segment: %v", err)

	one := acquire(t, media, dir, "single", "deflate:fast", "")
	renamed := filepath.Join(dir, "evidence.bin")
	if err := os.Rename(one, renamed); err != nil {
		t.Fatal(err)
	}
	m, err = Open(renamed)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !bytes.Equal(readAll(t, m), media) {
		t.Error("the renamed single segment reads back wrong")
	}
}

// TestEwfacquireFormats reads the set in every EWF-E01 flavour ewfacquire
// writes (its -f), and refuses the original EWF and SMART layouts, whose
// chunks lie inside their tables, with an error that says so.
func TestEwfacquireFormats(t *testing.T) {
	media := testMedia(3<<20, 22)
	sum := md5.Sum(media)
	for _, f := range []string{"ftk", "encase2", "encase3", "encase4", "encase5", "encase7", "linen5", "linen6", "linen7", "ewfx", "ewf", "smart"} {
		t.Run(f, func(t *testing.T) {
			tooltest.Need(t, "ewfacquire")
			dir := t.TempDir()
			src := filepath.Join(dir, "img.raw")
			if err := os.WriteFile(src, media, 0o644); err != nil {
				t.Fatal(err)
			}
			tooltest.Run(t, "ewfacquire", "-u", "-q", "-t", filepath.Join(dir, "img"), "-c", "deflate:fast", "-S", "1MiB", "-f", f, src)
			first, _ := filepath.Glob(filepath.Join(dir, "img.[Eesv]01"))
			if len(first) != 1 {
				t.Fatalf("ewfacquire -f %s wrote %v", f, first)
			}
			m, err := Open(first[0])
			if f == "ewf" || f == "smart" {
				if err == nil || !strings.Contains(err.Error(), "not read") {
					t.Fatalf("%v, want an error saying the layout is not read", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if len(m.Segments()) < 2 || !bytes.Equal(readAll(t, m), media) || m.StoredMD5() != hex.EncodeToString(sum[:]) {
				t.Errorf("%d segments, stored md5 %s: the media does not read back", len(m.Segments()), m.StoredMD5())
			}
		})
	}
}

// TestSyntheticSetsEwfexport: the synthetic sets most of this package's
// tests and fuzz seeds read (writeSet) are EWF-E01 as libewf reads it:
// ewfexport exports each to the media byte for byte, and ewfverify finds
// the stored MD5 the media's. Else those tests would check our reader
// only against our own writer.
func TestSyntheticSetsEwfexport(t *testing.T) {
	tooltest.Need(t, "ewfexport", "ewfverify")
	media := testMedia(300*1024+1536, 1) // not a whole number of chunks
	sum := md5.Sum(media)
	sh := sha1.Sum(media)
	for _, tc := range []struct {
		name string
		ts   testSet
	}{
		{"raw-one-segment", testSet{sectorsPerChunk: 64, chunksPerSeg: 100}},
		{"mixed-small-chunks", testSet{sectorsPerChunk: 16, chunksPerSeg: 7, compress: func(c int) bool { return c%3 != 0 }}},
		{"hashes-and-errors", testSet{sectorsPerChunk: 64, chunksPerSeg: 4, compress: func(int) bool { return true },
			md5: sum[:], sha1: sh[:], errors: []SectorRun{{First: 3, Count: 9}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			segs := writeSet(media, tc.ts)
			for i, s := range segs {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("set.E%02d", i+1)), s, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			first := filepath.Join(dir, "set.E01")
			exp := filepath.Join(dir, "exp")
			tooltest.Run(t, "ewfexport", "-u", "-q", "-f", "raw", "-t", exp, first)
			got, err := os.ReadFile(exp + ".raw")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, media) {
				t.Fatalf("ewfexport of the %d segments: %d bytes, not the media's %d", len(segs), len(got), len(media))
			}
			if tc.ts.md5 != nil {
				out := tooltest.Run(t, "ewfverify", "-q", first)
				if !strings.Contains(out, "SUCCESS") || !strings.Contains(out, hex.EncodeToString(sum[:])) {
					t.Errorf("ewfverify:\n%s", out)
				}
			}
		})
	}
}
