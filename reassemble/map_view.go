package reassemble

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// ErrUnmapped is returned when a read touches file bytes that no fragment
// maps to the image: they are not evidence, so nothing may be read there.
var ErrUnmapped = errors.New("reassemble: file range not mapped to the image")

// fileView reads an instance's file through its fragment map.
type fileView struct {
	image     io.ReaderAt
	fragments []Fragment // sorted by FileOffset, non-overlapping
}

func newFileView(image io.ReaderAt, fragments []Fragment) *fileView {
	fs := append([]Fragment(nil), fragments...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].FileOffset < fs[j].FileOffset })
	return &fileView{image: image, fragments: fs}
}

// size is the end of the last mapped byte.
func (v *fileView) size() int64 {
	if len(v.fragments) == 0 {
		return 0
	}
	last := v.fragments[len(v.fragments)-1]
	return last.FileOffset + last.Length
}

// imageOffset maps a file range to one contiguous image range, or fails if
// the range is not wholly inside one fragment.
func (v *fileView) imageOffset(off, n int64) (int64, error) {
	i := sort.Search(len(v.fragments), func(i int) bool {
		f := v.fragments[i]
		return f.FileOffset+f.Length > off
	})
	if i == len(v.fragments) || off < v.fragments[i].FileOffset || off+n > v.fragments[i].FileOffset+v.fragments[i].Length {
		return 0, fmt.Errorf("file bytes %d..%d: %w", off, off+n, ErrUnmapped)
	}
	f := v.fragments[i]
	if f.Link == LinkHole {
		return -1, nil
	}
	return f.ImageOffset + off - f.FileOffset, nil
}

// ReadAt implements io.ReaderAt over the mapped file.
func (v *fileView) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		i := sort.Search(len(v.fragments), func(i int) bool {
			f := v.fragments[i]
			return f.FileOffset+f.Length > off
		})
		if i == len(v.fragments) || off < v.fragments[i].FileOffset {
			return done, fmt.Errorf("file byte %d: %w", off, ErrUnmapped)
		}
		f := v.fragments[i]
		n := min(int64(len(p)-done), f.FileOffset+f.Length-off)
		if f.Link == LinkHole {
			clear(p[done : done+int(n)])
			done += int(n)
			off += n
			continue
		}
		k, err := v.image.ReadAt(p[done:done+int(n)], f.ImageOffset+off-f.FileOffset)
		done += k
		off += int64(k)
		if err != nil && (err != io.EOF || k < int(n)) {
			return done, err
		}
	}
	return done, nil
}

// contiguousOnly reports whether the instance's map is only the contiguous
// assumption from its header.
func (inst *Instance) contiguousOnly() bool {
	for _, f := range inst.Fragments {
		if f.Link != LinkContiguous {
			return false
		}
	}
	return true
}

// cutFragments ends the map at file offset off: the bytes past it are not
// where the contiguous assumption put them.
func (inst *Instance) cutFragments(off int64) {
	var out []Fragment
	for _, f := range inst.Fragments {
		if f.FileOffset >= off {
			continue
		}
		if f.FileOffset+f.Length > off {
			f.Length = off - f.FileOffset
			f.Evidence += fmt.Sprintf("; cut at file offset %d where the bytes stop matching", off)
		}
		out = append(out, f)
	}
	inst.Fragments = out
}

// linkEvidence is the per-grain evidence the fragment holding file offset
// off adds: "host" when a host filesystem's map placed it.
func (inst *Instance) linkEvidence(off int64) []string {
	i := sort.Search(len(inst.Fragments), func(i int) bool {
		f := inst.Fragments[i]
		return f.FileOffset+f.Length > off
	})
	if i < len(inst.Fragments) && inst.Fragments[i].FileOffset <= off {
		switch inst.Fragments[i].Link {
		case LinkHost:
			return []string{EvHost}
		case LinkAnchored:
			return []string{EvAnchored}
		}
	}
	return nil
}

// anchoredAt reports whether file offset off lies in a fragment found by
// shift votes (map_follow.go).
func (inst *Instance) anchoredAt(off int64) bool {
	ev := inst.linkEvidence(off)
	return len(ev) == 1 && ev[0] == EvAnchored
}

// fileOffsetOf maps an image offset back to the instance's file, if a
// fragment holds it. Fragments are indexed by image offset on first use,
// so the cost per lookup is logarithmic in the number of fragments.
func (inst *Instance) fileOffsetOf(img int64) (int64, bool) {
	if len(inst.byImage) != len(inst.Fragments) {
		inst.byImage = inst.byImage[:0]
		for _, f := range inst.Fragments {
			if f.Link != LinkHole {
				inst.byImage = append(inst.byImage, f)
			}
		}
		sort.Slice(inst.byImage, func(i, j int) bool { return inst.byImage[i].ImageOffset < inst.byImage[j].ImageOffset })
		// Holes are not indexed; pad so the length check above holds.
		for len(inst.byImage) < len(inst.Fragments) {
			inst.byImage = append(inst.byImage, Fragment{ImageOffset: math.MaxInt64, Link: LinkHole})
		}
	}
	i := sort.Search(len(inst.byImage), func(i int) bool {
		f := inst.byImage[i]
		return f.ImageOffset+f.Length > img
	})
	if i < len(inst.byImage) {
		if f := inst.byImage[i]; f.Link != LinkHole && img >= f.ImageOffset {
			return f.FileOffset + img - f.ImageOffset, true
		}
	}
	return 0, false
}

// pieces maps a file range to the image runs (or holes) that hold it; it
// fails if any byte of the range is unmapped.
func (v *fileView) pieces(off, n int64) ([]Piece, error) {
	var out []Piece
	for done := int64(0); done < n; {
		i := sort.Search(len(v.fragments), func(i int) bool {
			f := v.fragments[i]
			return f.FileOffset+f.Length > off+done
		})
		if i == len(v.fragments) || off+done < v.fragments[i].FileOffset {
			return nil, fmt.Errorf("file byte %d: %w", off+done, ErrUnmapped)
		}
		f := v.fragments[i]
		k := min(n-done, f.FileOffset+f.Length-(off+done))
		img := int64(-1)
		if f.Link != LinkHole {
			img = f.ImageOffset + off + done - f.FileOffset
		}
		out = append(out, Piece{Offset: done, ImageOffset: img, Length: k})
		done += k
	}
	return out, nil
}
