package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"vmdkcarve/internal/mapfile"
)

// ErrUnreadable is returned for reads of image bytes that a ddrescue
// mapfile says were not rescued: they are unknown, never zeros.
var ErrUnreadable = errors.New("not rescued (ddrescue mapfile)")

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

// unreadableImage is the image as rebuild reads it when a mapfile came
// with it: a read that touches an area not rescued fails, so that nothing
// is decided from bytes ddrescue filled in (a table read there is lost, a
// grain read there missing) unless another copy proves it.
type unreadableImage struct {
	r     io.ReaderAt
	areas []Range
}

func (u *unreadableImage) ReadAt(b []byte, off int64) (int, error) {
	if a, ok := overlapsAny(u.areas, off, off+int64(len(b))); ok {
		return 0, fmt.Errorf("image bytes [%d, %d): %w", a.Start, a.End, ErrUnreadable)
	}
	return u.r.ReadAt(b, off)
}
