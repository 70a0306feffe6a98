package pipeline

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"

	"vmdkcarve/ewf"
)

// The sources of an unreadable area (UnreadableArea.Source): what says
// its bytes are unknown.
const (
	// AreaMapfile: a ddrescue mapfile (carve --mapfile) says the area was
	// not rescued.
	AreaMapfile = "mapfile"
	// AreaEWFError2: an E01 set's error2 section says its acquisition
	// could not read these sectors.
	AreaEWFError2 = "ewf-error2"
	// AreaEWFChunk: an E01 chunk that does not decode or check (found by
	// the carve reading it): its media range is unknown.
	AreaEWFChunk = "ewf-chunk"
)

// UnreadableArea is an area of the media whose bytes are unknown, as its
// source reported it.
type UnreadableArea struct {
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Source string `json:"source"`
	// Chunk says where a damaged E01 chunk (AreaEWFChunk) is stored and
	// why it does not read.
	Chunk *DamagedChunk `json:"chunk,omitempty"`
}

// DamagedChunk is an E01 chunk that does not read.
type DamagedChunk struct {
	Segment    int    `json:"segment"`     // segment number, from 1
	Number     int64  `json:"number"`      // chunk number in the media, from 0
	FileOffset int64  `json:"file_offset"` // of its stored bytes in the segment file
	Error      string `json:"error"`       // why it does not read
}

func (a UnreadableArea) rng() Range { return Range{a.Start, a.End} }

// sourcedAreas tags sorted, disjoint ranges with their source.
func sourcedAreas(rs []Range, source string) []UnreadableArea {
	out := make([]UnreadableArea, 0, len(rs))
	for _, r := range rs {
		out = append(out, UnreadableArea{Start: r.Start, End: r.End, Source: source})
	}
	return out
}

// addUnreadable records areas of one source and makes Unreadable the
// union of every source's areas again. UnreadableAreas stays sorted by
// start, then source.
func (ev *Evidence) addUnreadable(areas []UnreadableArea) {
	if len(areas) == 0 {
		return
	}
	if ev.UnreadableAreas == nil && len(ev.Unreadable) > 0 {
		// A case recorded before areas had sources: keep its areas.
		ev.UnreadableAreas = sourcedAreas(ev.Unreadable, "")
	}
	ev.UnreadableAreas = append(ev.UnreadableAreas, areas...)
	slices.SortStableFunc(ev.UnreadableAreas, func(a, b UnreadableArea) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Source, b.Source))
	})
	ev.Unreadable = ranges(ev.UnreadableAreas)
}

// givenAreas are the unreadable areas known before the carve reads the
// evidence (mapfile, error2): every shard of a case must be carved with
// the same. The damaged chunks a carve finds are not among them.
func (ev *Evidence) givenAreas() []Range {
	if ev.UnreadableAreas == nil {
		return ev.Unreadable // a case recorded before areas had sources
	}
	return ranges(slices.DeleteFunc(slices.Clone(ev.UnreadableAreas), func(a UnreadableArea) bool { return a.Source == AreaEWFChunk }))
}

// damagedChunks are the E01 chunks the carve found damaged, sorted.
func (ev *Evidence) damagedChunks() []UnreadableArea {
	var out []UnreadableArea
	for _, a := range ev.UnreadableAreas {
		if a.Source == AreaEWFChunk {
			out = append(out, a)
		}
	}
	return out
}

// setDamagedChunks records the damaged chunks the merged shards found,
// replacing those recorded before (a merge sees every shard).
func (ev *Evidence) setDamagedChunks(chunks []UnreadableArea) {
	kept := slices.DeleteFunc(slices.Clone(ev.UnreadableAreas), func(a UnreadableArea) bool { return a.Source == AreaEWFChunk })
	if ev.UnreadableAreas == nil && len(ev.Unreadable) > 0 {
		kept = sourcedAreas(ev.Unreadable, "")
	}
	if len(kept) == 0 {
		kept = nil
	}
	ev.UnreadableAreas, ev.Unreadable = nil, nil
	ev.addUnreadable(kept)
	ev.addUnreadable(chunks)
}

// damageReader reads an E01 set for the carve: a damaged chunk reads as
// zeros instead of ending the carve, and is recorded; the carve treats its
// media range as unknown (no hit from it, its fingerprints unknown to
// rebuild, the digests marked as over zeros). Errors reading a segment
// file still end the carve. It is safe for concurrent use.
type damageReader struct {
	img *ewf.Image
	mu  sync.Mutex
	hit map[int64]UnreadableArea // by media start
}

func newDamageReader(img *ewf.Image) *damageReader {
	return &damageReader{img: img, hit: map[int64]UnreadableArea{}}
}

func (d *damageReader) ReadAt(p []byte, off int64) (int, error) {
	n, damaged, err := d.img.ReadAtZeroDamaged(p, off)
	if len(damaged) > 0 {
		d.mu.Lock()
		for _, ce := range damaged {
			if _, ok := d.hit[ce.Media]; !ok {
				d.hit[ce.Media] = damagedArea(ce)
			}
		}
		d.mu.Unlock()
	}
	return n, err
}

func damagedArea(ce *ewf.ChunkError) UnreadableArea {
	return UnreadableArea{Start: ce.Media, End: ce.Media + ce.Length, Source: AreaEWFChunk,
		Chunk: &DamagedChunk{Segment: ce.Segment, Number: ce.Chunk, FileOffset: ce.Offset, Error: ce.Err.Error()}}
}

// restore adds the damaged chunks an interrupted run of the shard found.
func (d *damageReader) restore(areas []UnreadableArea) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range areas {
		if _, ok := d.hit[a.Start]; !ok && a.Source == AreaEWFChunk {
			d.hit[a.Start] = a
		}
	}
}

// areas lists the damaged chunks read so far, sorted.
func (d *damageReader) areas() []UnreadableArea {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]UnreadableArea, 0, len(d.hit))
	for _, k := range slices.Sorted(maps.Keys(d.hit)) {
		out = append(out, d.hit[k])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// overlaps reports whether [lo, hi) meets a damaged chunk read so far.
func (d *damageReader) overlaps(lo, hi int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.hit) == 0 {
		return false
	}
	cs := d.img.ChunkSize()
	if (hi-lo)/cs > int64(len(d.hit)) {
		// A hit longer than the damaged chunks are many (a damaged
		// record's claimed length): ask each chunk instead.
		for start, a := range d.hit {
			if start < hi && lo < a.End {
				return true
			}
		}
		return false
	}
	for c := lo / cs; c*cs < hi; c++ {
		if _, ok := d.hit[c*cs]; ok {
			return true
		}
	}
	return false
}

var _ io.ReaderAt = (*damageReader)(nil)

// mergeDamaged unions the damaged chunks the shards found: each records
// every damaged chunk its reads met, so together the shards that cover
// the media name every damaged chunk of it, whatever the split. A chunk
// two shards both name is listed once (the first in dir order). Each
// must lie inside the media's size bytes: the merged areas go into
// case.json, which rebuild refuses otherwise, naming no shard.
func mergeDamaged(shards []shardInfo, size int64) ([]UnreadableArea, error) {
	byStart := map[int64]UnreadableArea{}
	for _, s := range shards {
		for i, a := range s.st.DamagedChunks {
			if a.Source != AreaEWFChunk || a.Start < 0 || a.End <= a.Start || a.End > size || a.Chunk == nil {
				return nil, fmt.Errorf("pipeline: %s: damaged_chunks[%d] [%d, %d) %q: not a damaged chunk's media range in the evidence's %d bytes", s.dir, i, a.Start, a.End, a.Source, size)
			}
			if _, ok := byStart[a.Start]; !ok {
				byStart[a.Start] = a
			}
		}
	}
	var out []UnreadableArea
	for _, k := range slices.Sorted(maps.Keys(byStart)) {
		out = append(out, byStart[k])
	}
	return out, nil
}

// ranges are the areas' media ranges as sorted, disjoint ranges (areas
// of different sources may overlap, or touch).
func ranges(areas []UnreadableArea) []Range {
	var out []Range
	for _, a := range areas {
		out = append(out, a.rng())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, r.End)
			continue
		}
		merged = append(merged, r)
	}
	if len(merged) == 0 {
		return nil
	}
	return merged
}
