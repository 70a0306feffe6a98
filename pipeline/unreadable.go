package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"vmdkcarve/internal/mapfile"
)

// ErrUnreadable is returned for reads of image bytes that are unknown,
// never zeros (Evidence.Unreadable); the error says why, by the area's
// source.
var ErrUnreadable = errors.New("unreadable")

// areaWords says why an area of a source is unreadable, in an error.
func areaWords(source string) string {
	switch source {
	case AreaMapfile:
		return "not rescued (ddrescue mapfile)"
	case AreaEWFError2:
		return "not read by the acquisition (E01 error2 section)"
	case AreaEWFChunk:
		return "a damaged E01 chunk"
	}
	return "recorded unreadable in case.json"
}

// readMapfile reads the areas of the image a ddrescue mapfile says were
// not rescued, clipped to the image; what the mapfile does not cover is
// not rescued either.
func readMapfile(path string, size int64) ([]Range, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: --mapfile: %w", err)
	}
	defer f.Close()
	areas, covered, err := mapfile.Unreadable(f)
	if err != nil {
		return nil, fmt.Errorf("pipeline: --mapfile %s: %w", path, err)
	}
	var out []Range
	for _, a := range areas {
		if a.Start < size {
			out = append(out, Range{a.Start, min(a.End, size)})
		}
	}
	if covered < size {
		if n := len(out); n > 0 && out[n-1].End == covered {
			out[n-1].End = size
		} else {
			out = append(out, Range{covered, size})
		}
	}
	return out, nil
}

// checkAreas checks areas read from a case file a user may have edited:
// sorted, disjoint, non-empty and inside an image of size bytes, as
// readMapfile makes them and overlapsAny needs them.
func checkAreas(areas []Range, size int64) error {
	prev := int64(0)
	for i, a := range areas {
		if a.Start < prev || a.End <= a.Start || a.End > size {
			return fmt.Errorf("area %d [%d, %d): want sorted, disjoint, non-empty areas inside the image's %d bytes", i, a.Start, a.End, size)
		}
		prev = a.End
	}
	return nil
}

// overlapsAny reports whether [lo, hi) meets one of the sorted, disjoint
// ranges, and returns the first it meets.
func overlapsAny(rs []Range, lo, hi int64) (Range, bool) {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End > lo })
	if i < len(rs) && rs[i].Start < hi {
		return rs[i], true
	}
	return Range{}, false
}

// unreadableImage is the image as rebuild reads it when some of it is
// unreadable (a mapfile's areas not rescued, an E01's error2 sectors or
// damaged chunks): a read that touches an unreadable area fails, so that
// nothing is decided from bytes filled in for it (a table read there is
// lost, a grain read there missing) unless another copy proves it.
type unreadableImage struct {
	r     io.ReaderAt
	areas []Range
	// why words each area's error by its sources (nil: generic).
	why []string
}

// newUnreadableImage reads r as the evidence ev says: its Unreadable
// areas fail, each error worded by the sources of the area.
func newUnreadableImage(r io.ReaderAt, ev Evidence) *unreadableImage {
	u := &unreadableImage{r: r, areas: ev.Unreadable, why: make([]string, len(ev.Unreadable))}
	for _, a := range ev.UnreadableAreas {
		i := sort.Search(len(u.areas), func(i int) bool { return u.areas[i].End > a.Start })
		if i == len(u.areas) || u.areas[i].Start > a.Start {
			continue // not in the union: an edited case.json
		}
		if w := areaWords(a.Source); !strings.Contains(u.why[i], w) {
			if u.why[i] != "" {
				u.why[i] += "; "
			}
			u.why[i] += w
		}
	}
	return u
}

func (u *unreadableImage) ReadAt(b []byte, off int64) (int, error) {
	i := sort.Search(len(u.areas), func(i int) bool { return u.areas[i].End > off })
	if i < len(u.areas) && u.areas[i].Start < off+int64(len(b)) {
		a, why := u.areas[i], ""
		if i < len(u.why) {
			why = u.why[i]
		}
		if why == "" {
			why = areaWords("")
		}
		return 0, fmt.Errorf("image bytes [%d, %d): %w: %s", a.Start, a.End, ErrUnreadable, why)
	}
	return u.r.ReadAt(b, off)
}
