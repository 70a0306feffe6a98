package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/adler32"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/ewf"
	"vmdkcarve/findings"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
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
// recorded as a mismatch; damaged chunks are carved around (unreadable
// areas naming the segment and chunk: TestE01DamagedChunks has the
// rest); a truncated segment and a broken table, which leave the media's
// layout unknown, are clear errors naming the segment.
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
		res, err := pipeline.Carve(context.Background(), filepath.Join(t.TempDir(), "case"), first, pipeline.CarveOptions{})
		if err != nil || !res.Complete {
			t.Fatalf("carve of a set with damaged chunks: %v (%+v), want it carved around them", err, res)
		}
		var chunks []string
		for _, a := range res.Evidence.UnreadableAreas {
			if a.Source != pipeline.AreaEWFChunk || a.Chunk == nil || a.Chunk.Segment != 2 || !strings.Contains(a.Chunk.Error, "ewf:") {
				t.Errorf("unreadable area %s: want a damaged chunk of segment 2, saying why", jsonString(a))
				continue
			}
			chunks = append(chunks, fmt.Sprintf("chunk %d: %s", a.Chunk.Number, a.Chunk.Error))
		}
		if len(chunks) == 0 {
			t.Fatal("no damaged chunk recorded")
		}
		t.Logf("%s", strings.Join(chunks, "; "))
	})

	t.Run("broken-table", func(t *testing.T) {
		seg := segs[1].Path
		orig := readBytes(t, seg)
		defer os.WriteFile(seg, orig, 0o644)
		b := bytes.Clone(orig)
		// An entry of the table and of its table2 mirror: neither checks.
		for _, typ := range []string{"table", "table2"} {
			i := bytes.Index(b, append([]byte(typ), make([]byte, 16-len(typ))...))
			if i < 0 {
				t.Fatalf("no %s section", typ)
			}
			b[i+76+24+4*3+1] ^= 0x10
		}
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := pipeline.Carve(context.Background(), filepath.Join(t.TempDir(), "case"), first, pipeline.CarveOptions{})
		var fe *ewf.FormatError
		if !errors.As(err, &fe) || fe.Struct != "table" || !strings.Contains(err.Error(), "segment 2") {
			t.Fatalf("carve of a set with a broken table: %v, want an error naming segment 2's table", err)
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

// TestE01DamagedChunks: an E01 set with one damaged chunk, and one with
// two in different segments, carves to completion. The damaged chunks'
// media ranges are unreadable areas (source ewf-chunk) in case.json; the
// hits and fingerprints are the raw image's outside them (no hit from
// inside); every grain outside them is rebuilt as from the raw image,
// byte for byte, and every grain inside is missing, saying why; the
// stored digests are not compared (the carve's are over zeros, as
// ewfexport -w exports the set); a finding names each chunk; and a carve
// in 3 shards gives the same case files.
func TestE01DamagedChunks(t *testing.T) {
	tooltest.Need(t, "ewfacquire", "ewfexport", "qemu-img")
	truth := generate(t, corpus.Spec{Seed: 97, ImageSize: 40 << 20, Disks: []corpus.DiskSpec{disk(1, 16<<20), disk(2, 16<<20)},
		Files: []corpus.FileSpec{{Disk: 1, Variant: corpus.QemuSparse}, {Disk: 2, Variant: corpus.QemuStream}}})
	rawRun := carveAndRebuild(t, truth.Image)
	if rawRun.err != nil || len(rawRun.reports) != 2 {
		t.Fatalf("raw image: %d disks, %v", len(rawRun.reports), rawRun.err)
	}
	const chunkSize = 32768 // ewfacquire's default: 64 sectors
	// The chunks: one holding a stream grain record (hits to drop), one
	// holding a sparse grain's data, in another segment.
	stream, sparse := truth.Files[1], truth.Files[0]
	streamChunk := stream.Grains[len(stream.Grains)/3].ImageOffset / chunkSize
	for _, tc := range []struct {
		name  string
		picks func(img *ewf.Image) []int64
	}{
		{"one-chunk", func(*ewf.Image) []int64 { return []int64{streamChunk} }},
		{"two-chunks-two-segments", func(img *ewf.Image) []int64 {
			a := storedChunk(t, img, streamChunk)
			for i := len(sparse.Grains) - 1; i >= 0; i-- {
				c := (sparse.Grains[i].ImageOffset + 16<<10) / chunkSize
				if storedChunk(t, img, c).Segment != a.Segment {
					return []int64{min(c, streamChunk), max(c, streamChunk)}
				}
			}
			t.Fatal("the file's grains all lie in the stream chunk's segment")
			return nil
		}},
		// The chunks either side of the second shard's start (cut below):
		// the first shard meets both (the second in its margin), the
		// second shard one.
		{"chunks-at-a-shard-boundary", func(*ewf.Image) []int64 { return []int64{streamChunk, streamChunk + 1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := acquireE01(t, truth.Image, "deflate:fast", "1MiB")
			img, err := ewf.Open(first)
			if err != nil {
				t.Fatal(err)
			}
			chunks := tc.picks(img)
			var want []pipeline.UnreadableArea
			for _, c := range chunks {
				sc := storedChunk(t, img, c)
				damageChunk(t, sc)
				want = append(want, pipeline.UnreadableArea{Start: c * chunkSize, End: (c + 1) * chunkSize, Source: pipeline.AreaEWFChunk,
					Chunk: &pipeline.DamagedChunk{Segment: sc.Segment, Number: c, FileOffset: sc.Offset}})
			}
			img.Close()
			var unknown []pipeline.Range // adjacent chunks are one area
			for _, a := range want {
				if n := len(unknown); n > 0 && unknown[n-1].End == a.Start {
					unknown[n-1].End = a.End
					continue
				}
				unknown = append(unknown, pipeline.Range{Start: a.Start, End: a.End})
			}
			// ewfverify agrees the set is damaged there.
			if out, err := exec.Command("ewfverify", "-q", first).CombinedOutput(); err == nil || !strings.Contains(string(out), "FAILURE") {
				t.Fatalf("ewfverify of the damaged set: %v\n%s", err, out)
			}

			run := carveAndRebuild(t, first)
			if run.err != nil {
				t.Fatalf("rebuild: %v", run.err)
			}
			m := readManifest(t, run.caseDir)
			ev := m.Evidence
			if s := m.Stages["carve"]; s == nil || !s.Complete {
				t.Fatalf("carve stage %+v: want complete", s)
			}
			got := ev.UnreadableAreas
			for i := range got {
				if got[i].Chunk != nil {
					if !strings.Contains(got[i].Chunk.Error, "ewf:") {
						t.Errorf("damaged chunk %d: error %q says nothing", got[i].Chunk.Number, got[i].Chunk.Error)
					}
					c := *got[i].Chunk
					c.Error = ""
					got[i].Chunk = &c
				}
			}
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(ev.Unreadable, unknown) {
				t.Fatalf("unreadable areas %s (union %v), want %s", jsonString(got), ev.Unreadable, jsonString(want))
			}
			// The digests: over zeros for the damaged chunks, as ewfexport
			// -w exports them; the stored ones not compared.
			export := filepath.Join(t.TempDir(), "export")
			tooltest.Run(t, "ewfexport", "-q", "-u", "-w", "-f", "raw", "-t", export, first)
			if sum := sha256.Sum256(readBytes(t, export+".raw")); !ev.DigestsZeroed || ev.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("digests zeroed %v, sha256 %s; ewfexport -w's %x", ev.DigestsZeroed, ev.SHA256, sum)
			}
			for _, name := range []string{"md5", "sha1"} {
				if sh := ev.StoredHashes[name]; sh == nil || sh.Match != nil || sh.Computed != "" || sh.NotCompared == "" {
					t.Errorf("stored %s %+v: want not compared, saying why", name, sh)
				}
			}
			if ev.StoredHashMismatch {
				t.Error("stored hash mismatch recorded for digests over zeros")
			}

			// Hits: the raw image's, but for those meeting a damaged chunk.
			var wantHits [][]byte
			dropped := 0
			for _, line := range bytes.SplitAfter(readBytes(t, filepath.Join(rawRun.caseDir, pipeline.HitsName)), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var h struct{ Offset, Length int64 }
				if err := json.Unmarshal(line, &h); err != nil {
					t.Fatal(err)
				}
				if meets(unknown, h.Offset, h.Offset+max(h.Length, 1)) {
					dropped++
					continue
				}
				wantHits = append(wantHits, line)
			}
			if !bytes.Equal(readBytes(t, filepath.Join(run.caseDir, pipeline.HitsName)), bytes.Join(wantHits, nil)) {
				t.Error("hits.jsonl is not the raw image's without the hits in the damaged chunks")
			}
			if dropped == 0 {
				t.Error("no hit of the raw image lies in the damaged chunks: the test damages nothing the carve finds")
			}
			// Fingerprints: the raw image's outside the chunks; inside,
			// unknown to rebuild (fp.Unknown) and of the zeros read.
			rawFp, err := pipeline.OpenFingerprints(filepath.Join(rawRun.caseDir, pipeline.FingerprintsName))
			if err != nil {
				t.Fatal(err)
			}
			defer rawFp.Close()
			fp, err := pipeline.OpenFingerprints(filepath.Join(run.caseDir, pipeline.FingerprintsName))
			if err != nil {
				t.Fatal(err)
			}
			defer fp.Close()
			same, inside := 0, 0
			for off := int64(0); off < ev.Size; off += 4096 {
				a, okA := rawFp.HashAt(off)
				b, okB := fp.HashAt(off)
				switch {
				case meets(unknown, off, off+4096):
					inside++
					if !okB || b != 0 {
						t.Errorf("block at %d in a damaged chunk: fingerprint %x, %v; want the zeros read", off, b, okB)
					}
				case !okA || !okB || a != b:
					t.Errorf("block at %d: fingerprint %x, the raw image's %x", off, b, a)
				default:
					same++
				}
			}

			// Rebuilt disks: every grain outside the chunks as from the
			// raw image, every grain inside missing.
			placedRaw, placed, touched := 0, 0, 0
			for _, rep := range run.reports {
				id := diskOf(t, truth, rep)
				var rawRep *pipeline.DiskReport
				for _, r := range rawRun.reports {
					if diskOf(t, truth, r) == id {
						rawRep = r
					}
				}
				s := scoreDisk(t, run, truth, rep)
				sRaw := scoreDisk(t, rawRun, truth, rawRep)
				placed, placedRaw = placed+s.placed, placedRaw+sRaw.placed
				if s.wrong != 0 {
					t.Errorf("disk %d: %d wrong grains", id, s.wrong)
				}
				in := map[uint64]bool{}
				streamed := false
				for _, f := range truth.Files {
					if f.Disk != id {
						continue
					}
					streamed = f.Variant == corpus.QemuStream
					for _, g := range f.Grains {
						if meets(unknown, g.ImageOffset, g.ImageOffset+g.Length) {
							in[g.Grain] = true
						}
					}
				}
				touched += len(in)
				st, stRaw := statuses(rep.Disk), statuses(rawRep.Disk)
				data, rawData := rebuiltRaw(t, run.caseDir, rep), rebuiltRaw(t, rawRun.caseDir, rawRep)
				for g := range st {
					lo, hi := g*grainBytes, min((g+1)*grainBytes, len(data))
					switch {
					case in[uint64(g)]:
						// A sparse grain is read where its table says, and
						// fails there; a stream grain's record is a hit,
						// dropped from the damaged chunk: its table then
						// names no record.
						r, _ := rep.Disk.RunOf(uint64(g))
						if st[g] != reassemble.Missing || !streamed && !strings.Contains(r.Reason, "damaged E01 chunk") {
							t.Errorf("disk %d grain %d in a damaged chunk: %s (%q), want missing for the chunk", id, g, st[g], r.Reason)
						}
					case st[g] != stRaw[g] || !bytes.Equal(data[lo:hi], rawData[lo:hi]):
						t.Errorf("disk %d grain %d: %s, from the raw image %s (bytes equal %v)", id, g, st[g], stRaw[g], bytes.Equal(data[lo:hi], rawData[lo:hi]))
					}
				}
			}
			t.Logf("%s: chunks %v; %d hits dropped; %d blocks as the raw image's, %d in the chunks; grains placed %d (raw image %d), %d in the chunks missing",
				tc.name, chunks, dropped, same, inside, placed, placedRaw, touched)
			if touched < len(chunks) || placed != placedRaw-touched {
				t.Errorf("placed %d grains, want the raw image's %d less the %d in the damaged chunks", placed, placedRaw, touched)
			}

			// A finding per chunk, none of a hash mismatch.
			fs := readFindingsFile(t, run.caseDir)
			var at []int64
			for _, f := range fs.Findings {
				switch f.Code {
				case findings.CodeEvidenceChunkDamaged:
					at = append(at, *f.ImageOffset)
				case findings.CodeEvidenceHashMismatch, findings.CodeUnreadableArea:
					t.Errorf("finding %s: %s", f.Code, f.Message)
				}
			}
			if fmt.Sprint(at) != fmt.Sprint(mediaStarts(want)) {
				t.Errorf("evidence-chunk-damaged findings at %v, want %v", at, mediaStarts(want))
			}

			// Three shards, the last first: the same case files.
			sharded := filepath.Join(t.TempDir(), "case")
			for k := 2; k >= 0; k-- {
				r, err := pipeline.ShardRange(k, 3, ev.Size)
				if err != nil {
					t.Fatal(err)
				}
				if cut := (streamChunk + 1) * chunkSize; tc.name == "chunks-at-a-shard-boundary" && k < 2 {
					r = [2]pipeline.Range{{Start: 0, End: cut}, {Start: cut, End: r.End}}[k]
				}
				if _, err := pipeline.Carve(context.Background(), sharded, first, pipeline.CarveOptions{Range: &r}); err != nil {
					t.Fatalf("shard %d: %v", k, err)
				}
			}
			if _, err := pipeline.Rebuild(context.Background(), sharded, pipeline.RebuildOptions{Raw: true}); err != nil {
				t.Fatal(err)
			}
			sameCase(t, tc.name+" in 3 shards", run.caseDir, sharded)
			if cut := (streamChunk + 1) * chunkSize; tc.name == "chunks-at-a-shard-boundary" {
				// The first shard met the second chunk in its margin too.
				var st struct {
					DamagedChunks []pipeline.UnreadableArea `json:"damaged_chunks"`
				}
				if err := json.Unmarshal(readBytes(t, filepath.Join(sharded, pipeline.ShardsDirName, pipeline.Range{Start: 0, End: cut}.String(), pipeline.ShardStateName)), &st); err != nil {
					t.Fatal(err)
				}
				if len(st.DamagedChunks) != 2 {
					t.Errorf("the first shard recorded %s, want both chunks", jsonString(st.DamagedChunks))
				}
			}
			if sm := readManifest(t, sharded); !reflect.DeepEqual(sm.Evidence.UnreadableAreas, readManifest(t, run.caseDir).Evidence.UnreadableAreas) {
				t.Errorf("3 shards: unreadable areas %s, one run's %s", jsonString(sm.Evidence.UnreadableAreas), jsonString(ev.UnreadableAreas))
			}
		})
	}
}

// storedChunk says where chunk c of the set is stored.
func storedChunk(t *testing.T, img *ewf.Image, c int64) ewf.StoredChunk {
	t.Helper()
	sc, err := img.Chunk(c)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// damageChunk flips bytes all through a chunk's stored bytes, in place,
// and checks that the set now fails to read it.
func damageChunk(t *testing.T, sc ewf.StoredChunk) {
	t.Helper()
	b := readBytes(t, sc.Path)
	for i := sc.Offset + 2; i < sc.Offset+sc.Size-4; i += 61 {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(sc.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func meets(areas []pipeline.Range, lo, hi int64) bool {
	for _, a := range areas {
		if a.Start < hi && lo < a.End {
			return true
		}
	}
	return false
}

func mediaStarts(areas []pipeline.UnreadableArea) []int64 {
	var out []int64
	for _, a := range areas {
		out = append(out, a.Start)
	}
	return out
}

func readManifest(t *testing.T, caseDir string) *pipeline.Manifest {
	t.Helper()
	m := new(pipeline.Manifest)
	if err := json.Unmarshal(readBytes(t, filepath.Join(caseDir, pipeline.ManifestName)), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
