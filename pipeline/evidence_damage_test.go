package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/ewf"
	"vmdkcarve/findings"
	"vmdkcarve/internal/tooltest"
)

func chunkArea(n int64) UnreadableArea {
	return UnreadableArea{Start: n << 15, End: (n + 1) << 15, Source: AreaEWFChunk,
		Chunk: &DamagedChunk{Segment: 1 + int(n/100), Number: n, FileOffset: 1000 + n, Error: "ewf: checksum mismatch"}}
}

// TestUnreadableAreaSources: the areas of every source make Unreadable
// their union; the areas given before the carve (mapfile, error2) are
// those every shard must share, the damaged chunks not among them; the
// merge's chunks replace those recorded before; a case recorded before
// areas had sources keeps its areas.
func TestUnreadableAreaSources(t *testing.T) {
	var ev Evidence
	ev.addUnreadable(sourcedAreas([]Range{{0, 512}, {1 << 20, 1<<20 + 4096}}, AreaEWFError2))
	ev.addUnreadable(sourcedAreas([]Range{{256, 1024}}, AreaMapfile))
	given := []Range{{0, 1024}, {1 << 20, 1<<20 + 4096}}
	if !slices.Equal(ev.Unreadable, given) || !slices.Equal(ev.givenAreas(), given) {
		t.Fatalf("unreadable %v, given %v: want %v", ev.Unreadable, ev.givenAreas(), given)
	}
	if got := []string{ev.UnreadableAreas[0].Source, ev.UnreadableAreas[1].Source}; !slices.Equal(got, []string{AreaEWFError2, AreaMapfile}) {
		t.Errorf("sources %v: want sorted by start", got)
	}
	ev.setDamagedChunks([]UnreadableArea{chunkArea(0), chunkArea(32), chunkArea(33)})
	want := []Range{{0, 1 << 15}, {1 << 20, 34 << 15}}
	if !slices.Equal(ev.Unreadable, want) || !slices.Equal(ev.givenAreas(), given) || len(ev.damagedChunks()) != 3 {
		t.Fatalf("with chunks: unreadable %v (want %v), given %v, %d chunks", ev.Unreadable, want, ev.givenAreas(), len(ev.damagedChunks()))
	}
	// A merge of more shards: its chunks replace the earlier ones.
	ev.setDamagedChunks([]UnreadableArea{chunkArea(40)})
	if want := []Range{{0, 1024}, {1 << 20, 1<<20 + 4096}, {40 << 15, 41 << 15}}; !slices.Equal(ev.Unreadable, want) || len(ev.UnreadableAreas) != 4 {
		t.Fatalf("chunks replaced: unreadable %v, want %v; areas %d", ev.Unreadable, want, len(ev.UnreadableAreas))
	}
	ev.setDamagedChunks(nil)
	if !slices.Equal(ev.Unreadable, given) || len(ev.UnreadableAreas) != 3 {
		t.Errorf("no chunks: unreadable %v, %d areas", ev.Unreadable, len(ev.UnreadableAreas))
	}

	old := Evidence{Unreadable: []Range{{0, 4096}}}
	if !slices.Equal(old.givenAreas(), old.Unreadable) {
		t.Errorf("a case without sources: given %v", old.givenAreas())
	}
	old.setDamagedChunks([]UnreadableArea{chunkArea(1)})
	if len(old.UnreadableAreas) != 2 || old.UnreadableAreas[0].Source != "" || !slices.Equal(old.Unreadable, []Range{{0, 4096}, {1 << 15, 2 << 15}}) || !slices.Equal(old.givenAreas(), []Range{{0, 4096}}) {
		t.Errorf("a case without sources, with chunks: %+v", old)
	}
}

// TestMergeDamaged: whatever the split, the shards' damaged chunks union
// into the same list (a chunk several shards met listed once); an entry
// that is no damaged chunk is an error.
func TestMergeDamaged(t *testing.T) {
	shard := func(ns ...int64) shardInfo {
		st := &shardState{}
		for _, n := range ns {
			st.DamagedChunks = append(st.DamagedChunks, chunkArea(n))
		}
		return shardInfo{dir: "s", st: st}
	}
	want := []UnreadableArea{chunkArea(3), chunkArea(4), chunkArea(90)}
	for _, split := range [][]shardInfo{
		{shard(3, 4, 90)},
		{shard(3, 4), shard(4, 90)}, // the first met chunk 4 in its margin
		{shard(90), shard(), shard(3), shard(4)},
	} {
		got, err := mergeDamaged(split, 1<<30)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("mergeDamaged = %v, %v; want %v", got, err, want)
		}
	}
	bad := shard(1)
	bad.st.DamagedChunks[0].Source = AreaMapfile
	if _, err := mergeDamaged([]shardInfo{bad}, 1<<30); err == nil {
		t.Error("a mapfile area among a shard's damaged chunks: no error")
	}
	// Chunk 90 ends at 91<<15: past media of 90<<15 bytes.
	if _, err := mergeDamaged([]shardInfo{shard(3, 90)}, 90<<15); err == nil {
		t.Error("a damaged chunk past the end of the media: no error")
	}
	if _, err := mergeDamaged([]shardInfo{shard(3, 90)}, 91<<15); err != nil {
		t.Errorf("a damaged chunk ending the media: %v", err)
	}
}

// TestStoredNotCompared: digests over zeros for damaged chunks are not
// compared with the stored ones, and say why.
func TestStoredNotCompared(t *testing.T) {
	ev := Evidence{MD5: "aa", DigestsZeroed: true, StoredHashes: map[string]*StoredHash{"md5": {Stored: "ab", Computed: "aa", Match: new(false)}}}
	ev.compareStored()
	if sh := ev.StoredHashes["md5"]; ev.StoredHashMismatch || sh.Match != nil || sh.Computed != "" || !strings.Contains(sh.NotCompared, "damaged chunks") {
		t.Errorf("stored %+v, mismatch %v: want not compared", sh, ev.StoredHashMismatch)
	}
	for _, f := range evidenceFindings(ev) {
		if f.Code == findings.CodeEvidenceHashMismatch {
			t.Errorf("finding %s for digests not compared", f.Code)
		}
	}
}

// TestAreaFindingsBySource: each area's finding says its source; damaged
// chunks are evidence-chunk-damaged findings naming the chunk, folded
// past maxAreaFindings like the others.
func TestAreaFindingsBySource(t *testing.T) {
	var ev Evidence
	ev.SHA256 = "x"
	ev.addUnreadable(sourcedAreas([]Range{{0, 512}}, AreaEWFError2))
	ev.addUnreadable(sourcedAreas([]Range{{4096, 8192}}, AreaMapfile))
	var chunks []UnreadableArea
	for n := range int64(maxAreaFindings + 3) {
		chunks = append(chunks, chunkArea(10+2*n))
	}
	ev.setDamagedChunks(chunks)
	var chunkFindings int
	var words []string
	for _, f := range evidenceFindings(ev) {
		switch f.Code {
		case findings.CodeEvidenceChunkDamaged:
			chunkFindings++
			if chunkFindings == 1 && (!strings.Contains(f.Message, "Chunk 10 of the E01 set (segment 1, file offset 1010)") || *f.ImageOffset != 10<<15) {
				t.Errorf("first chunk finding: %s at %d", f.Message, *f.ImageOffset)
			}
			if chunkFindings == maxAreaFindings+1 && f.Detail["chunks"] != 3 {
				t.Errorf("folded chunk finding %+v", f)
			}
		case findings.CodeUnreadableArea:
			words = append(words, f.Message)
		}
	}
	if chunkFindings != maxAreaFindings+1 {
		t.Errorf("%d chunk findings, want %d listed and one folded", chunkFindings, maxAreaFindings)
	}
	if len(words) != 2 || !strings.Contains(words[0], "error2") || !strings.Contains(words[1], "ddrescue mapfile") {
		t.Errorf("area findings %q: want the error2 area's and the mapfile area's, each saying so", words)
	}
}

// TestUnreadableImageWording: a read of an unreadable area fails with
// ErrUnreadable, saying the area's sources.
func TestUnreadableImageWording(t *testing.T) {
	var ev Evidence
	ev.addUnreadable(sourcedAreas([]Range{{0, 512}}, AreaEWFError2))
	ev.addUnreadable(sourcedAreas([]Range{{256, 1024}, {1 << 20, 2 << 20}}, AreaMapfile))
	ev.setDamagedChunks([]UnreadableArea{chunkArea(100)})
	u := newUnreadableImage(zeroReader{}, ev)
	for _, tc := range []struct {
		off  int64
		want string // "" for a read that succeeds
	}{
		{0, "not read by the acquisition (E01 error2 section); not rescued (ddrescue mapfile)"},
		{2048, ""},
		{1<<20 + 7, "image bytes [1048576, 2097152): unreadable: not rescued (ddrescue mapfile)"},
		{100<<15 + 512, "a damaged E01 chunk"},
	} {
		_, err := u.ReadAt(make([]byte, 512), tc.off)
		if tc.want == "" {
			if err != nil {
				t.Errorf("read at %d: %v", tc.off, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("read at %d: %v, want %q", tc.off, err, tc.want)
		}
	}
	// An image whose case has no sources says so generically.
	u = newUnreadableImage(zeroReader{}, Evidence{Unreadable: []Range{{0, 512}}})
	if _, err := u.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "recorded unreadable in case.json") {
		t.Errorf("no sources: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) ReadAt(b []byte, off int64) (int, error) { clear(b); return len(b), nil }

// TestDamageReader: reads of an E01 set through the carve's reader go on
// past a damaged chunk, read it as zeros and record it once, whichever
// reads meet it and in whatever order; overlaps answers for it; a
// resumed run's chunks are restored.
func TestDamageReader(t *testing.T) {
	tooltest.Need(t, "ewfacquire")
	dir := t.TempDir()
	media := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range media {
		media[i] = byte(rng.Uint32())
	}
	raw := filepath.Join(dir, "media.raw")
	if err := os.WriteFile(raw, media, 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "ewfacquire", "-u", "-q", "-t", filepath.Join(dir, "set"), "-c", "deflate:fast", "-f", "encase6", raw)
	first := filepath.Join(dir, "set.E01")
	img, err := ewf.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := img.Chunk(5)
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(sc.Path)
	b[sc.Offset+sc.Size/2] ^= 0xff
	if err := os.WriteFile(sc.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if img, err = ewf.Open(first); err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	cs := img.ChunkSize()
	want := bytes.Clone(media)
	clear(want[5*cs : 6*cs])
	d := newDamageReader(img)
	if d.overlaps(0, 1<<20) || d.areas() != nil {
		t.Fatal("damage before any read")
	}
	// Two overlapping reads (a chunk and the next one's margin), the
	// later one first.
	for _, r := range []Range{{4 * cs, 8 * cs}, {0, 6*cs - 100}, {0, int64(len(media))}} {
		p := make([]byte, r.End-r.Start)
		if n, err := d.ReadAt(p, r.Start); n != len(p) || err != nil {
			t.Fatalf("read %v: %d, %v", r, n, err)
		}
		if !bytes.Equal(p, want[r.Start:r.End]) {
			t.Fatalf("read %v: not the media with chunk 5 zero", r)
		}
	}
	got := d.areas()
	if len(got) != 1 || got[0].Start != 5*cs || got[0].End != 6*cs || got[0].Source != AreaEWFChunk || got[0].Chunk == nil ||
		got[0].Chunk.Number != 5 || got[0].Chunk.Segment != 1 || got[0].Chunk.FileOffset != sc.Offset || got[0].Chunk.Error == "" {
		t.Fatalf("areas %s: want chunk 5", mustJSON(got))
	}
	for _, tc := range []struct {
		lo, hi int64
		want   bool
	}{{0, 5 * cs, false}, {5*cs - 1, 5 * cs, false}, {5*cs - 1, 5*cs + 1, true}, {6*cs - 1, 6 * cs, true}, {6 * cs, 7 * cs, false}, {0, 1 << 40, true}} {
		if d.overlaps(tc.lo, tc.hi) != tc.want {
			t.Errorf("overlaps(%d, %d) = %v", tc.lo, tc.hi, !tc.want)
		}
	}
	// A resumed run knows the chunks of the run it resumes before it
	// reads them.
	d2 := newDamageReader(img)
	d2.restore(got)
	if !reflect.DeepEqual(d2.areas(), got) {
		t.Errorf("restored %s, want %s", mustJSON(d2.areas()), mustJSON(got))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
