package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/ewf"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
)

// acquireE01 writes image as an EWF-E01 set with ewfacquire (EnCase 6,
// MD5 and SHA-1 stored) into a new directory and returns its first
// segment. compression is ewfacquire's -c, segment its -S ("" for the
// default, which keeps these images in one segment).
func acquireE01(t *testing.T, image, compression, segment string) string {
	t.Helper()
	tooltest.Need(t, "ewfacquire")
	target := filepath.Join(t.TempDir(), "evidence")
	args := []string{"-u", "-q", "-t", target, "-c", compression, "-f", "encase6", "-d", "sha1"}
	if segment != "" {
		args = append(args, "-S", segment)
	}
	tooltest.Run(t, "ewfacquire", append(args, image)...)
	return target + ".E01"
}

// carveCase carves image into a fresh case (opts as given) and rebuilds
// it, failing the test on an error.
func carveCase(t *testing.T, image string, opts pipeline.CarveOptions) (string, *pipeline.CarveResult) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "case")
	res, err := pipeline.Carve(context.Background(), dir, image, opts)
	if err != nil {
		t.Fatalf("carve %s: %v", image, err)
	}
	if _, err := pipeline.Rebuild(context.Background(), dir, pipeline.RebuildOptions{}); err != nil {
		t.Fatalf("rebuild %s: %v", image, err)
	}
	return dir, res
}

// TestE01Evidence carves a corpus image and the E01 sets ewfacquire makes
// of it (no compression in one segment, fast and best deflate in several)
// and requires the same hits.jsonl, fingerprints.bin and rebuilt disks,
// byte for byte; the SHA-256 of the media read back equals the raw
// image's, the stored MD5 and SHA-1 (which ewfverify agrees with) are
// checked and match, and a sharded carve of the E01 gives what one run
// does.
func TestE01Evidence(t *testing.T) {
	tooltest.Need(t, "ewfacquire", "ewfverify")
	spec, err := corpus.Scenario("variants", 3, 64<<20+2560, corpus.HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	raw := generate(t, spec).Image
	rawCase, rawRes := carveCase(t, raw, pipeline.CarveOptions{})
	if rawRes.Evidence.Format != "" || rawRes.Evidence.SHA256 == "" {
		t.Fatalf("raw evidence: format %q, sha256 %q", rawRes.Evidence.Format, rawRes.Evidence.SHA256)
	}
	for _, tc := range []struct {
		name, compression, segment string
		minSegments                int
	}{
		{"none-one-segment", "none", "", 1},
		{"fast-segments", "deflate:fast", "1MiB", 3},
		{"best-segments", "deflate:best", "4MiB", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := acquireE01(t, raw, tc.compression, tc.segment)
			if out := tooltest.Run(t, "ewfverify", "-q", first); !strings.Contains(out, "SUCCESS") {
				t.Fatalf("ewfverify:\n%s", out)
			}
			dir, res := carveCase(t, first, pipeline.CarveOptions{})
			ev := res.Evidence
			if ev.Format != pipeline.FormatEWF || len(ev.Segments) < tc.minSegments || ev.Size != rawRes.Evidence.Size {
				t.Fatalf("evidence: format %q, %d segments (want %d+), size %d (want %d)", ev.Format, len(ev.Segments), tc.minSegments, ev.Size, rawRes.Evidence.Size)
			}
			if ev.SHA256 != rawRes.Evidence.SHA256 {
				t.Errorf("sha256 of the media read back %s, the raw image's %s", ev.SHA256, rawRes.Evidence.SHA256)
			}
			for _, name := range []string{"md5", "sha1"} {
				sh := ev.StoredHashes[name]
				if sh == nil || sh.Match == nil || !*sh.Match || sh.Computed != sh.Stored {
					t.Errorf("stored %s: %+v, want checked and matching", name, sh)
				}
			}
			if ev.StoredHashMismatch {
				t.Error("a stored hash mismatch on an intact set")
			}
			sameCase(t, tc.name, rawCase, dir)
			if tc.segment == "" {
				return
			}
			// Three shards of the E01, the last first.
			size, err := pipeline.EvidenceSize(first)
			if err != nil || size != rawRes.Evidence.Size {
				t.Fatalf("EvidenceSize = %d, %v", size, err)
			}
			sharded := filepath.Join(t.TempDir(), "case")
			for k := 2; k >= 0; k-- {
				r, err := pipeline.ShardRange(k, 3, size)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := pipeline.Carve(context.Background(), sharded, first, pipeline.CarveOptions{Range: &r}); err != nil {
					t.Fatalf("shard %d: %v", k, err)
				}
			}
			if _, err := pipeline.Rebuild(context.Background(), sharded, pipeline.RebuildOptions{}); err != nil {
				t.Fatal(err)
			}
			sameCase(t, tc.name+" in 3 shards", rawCase, sharded)
		})
	}
}

// TestE01Damage: a tampered stored MD5 is carved all the same and
// recorded as a mismatch; a damaged chunk and a truncated segment are
// clear errors naming the segment (and the chunk).
func TestE01Damage(t *testing.T) {
	tooltest.Need(t, "ewfacquire")
	spec, err := corpus.Scenario("variants", 5, 32<<20, corpus.HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	raw := generate(t, spec).Image
	first := acquireE01(t, raw, "deflate:fast", "1MiB")
	img, err := ewf.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	segs := img.Segments()
	img.Close()
	last := segs[len(segs)-1].Path

	t.Run("tampered-md5", func(t *testing.T) {
		orig := readBytes(t, last)
		defer os.WriteFile(last, orig, 0o644)
		b := bytes.Clone(orig)
		fake := md5.Sum([]byte("not the media"))
		if n := tamperMD5(b, fake[:]); n != 2 {
			t.Fatalf("rewrote %d sections' MD5, want the hash and digest sections'", n)
		}
		if err := os.WriteFile(last, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, res := carveCase(t, first, pipeline.CarveOptions{})
		ev := res.Evidence
		md, sha := ev.StoredHashes["md5"], ev.StoredHashes["sha1"]
		if !ev.StoredHashMismatch || md == nil || md.Match == nil || *md.Match || sha == nil || sha.Match == nil || !*sha.Match {
			t.Fatalf("stored hashes %+v %+v, mismatch %v: want md5 recorded as not matching, sha1 matching", md, sha, ev.StoredHashMismatch)
		}
		if !res.Complete {
			t.Errorf("carve incomplete: %s", res.Reason)
		}
		// An explicit --hash wins: the MD5 is then not computed, so not checked.
		_, res = carveCase(t, first, pipeline.CarveOptions{Hash: "sha256"})
		if md := res.Evidence.StoredHashes["md5"]; md == nil || md.Match != nil || res.Evidence.StoredHashMismatch || res.Evidence.MD5 != "" {
			t.Errorf("--hash sha256: md5 %+v, mismatch %v", md, res.Evidence.StoredHashMismatch)
		}
	})

	t.Run("damaged-chunk", func(t *testing.T) {
		seg := segs[1].Path
		orig := readBytes(t, seg)
		defer os.WriteFile(seg, orig, 0o644)
		b := bytes.Clone(orig)
		// Inside the first chunks of the segment's sectors section.
		i := bytes.Index(b, []byte("sectors\x00"))
		if i < 0 {
			t.Fatal("no sectors section")
		}
		for j := i + 200; j < i+200+4096; j += 512 {
			b[j] ^= 0x5a
		}
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := pipeline.Carve(context.Background(), filepath.Join(t.TempDir(), "case"), first, pipeline.CarveOptions{})
		var ce *ewf.ChunkError
		if !errors.As(err, &ce) || ce.Segment != 2 || !strings.Contains(err.Error(), "segment 2") || !strings.Contains(err.Error(), "chunk") {
			t.Fatalf("carve of a damaged chunk: %v, want an error naming segment 2 and the chunk", err)
		}
		t.Logf("%v", err)
	})

	t.Run("truncated-segment", func(t *testing.T) {
		seg := segs[1].Path
		orig := readBytes(t, seg)
		defer os.WriteFile(seg, orig, 0o644)
		if err := os.WriteFile(seg, orig[:len(orig)*2/3], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := pipeline.Carve(context.Background(), filepath.Join(t.TempDir(), "case"), first, pipeline.CarveOptions{})
		if !errors.Is(err, ewf.ErrTruncated) || !strings.Contains(err.Error(), "segment 2") {
			t.Fatalf("carve of a truncated segment: %v", err)
		}
		t.Logf("%v", err)
	})
}

// tamperMD5 overwrites the MD5 of every hash and digest section in a
// segment with md5 and fixes their checksums, as someone covering their
// tracks would; it returns how many it rewrote.
func tamperMD5(seg, md5 []byte) int {
	n := 0
	for _, s := range []struct {
		typ      string
		checksum int
	}{{"hash", 32}, {"digest", 76}} {
		i := bytes.Index(seg, append([]byte(s.typ), make([]byte, 16-len(s.typ))...))
		if i < 0 {
			continue
		}
		data := seg[i+76:]
		copy(data, md5)
		binary.LittleEndian.PutUint32(data[s.checksum:], adler32.Checksum(data[:s.checksum]))
		n++
	}
	return n
}
