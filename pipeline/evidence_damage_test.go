package pipeline

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/findings"
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
		got, err := mergeDamaged(split)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("mergeDamaged = %v, %v; want %v", got, err, want)
		}
	}
	bad := shard(1)
	bad.st.DamagedChunks[0].Source = AreaMapfile
	if _, err := mergeDamaged([]shardInfo{bad}); err == nil {
		t.Error("a mapfile area among a shard's damaged chunks: no error")
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
