package reassemble

import (
	"errors"
	"fmt"
	"io"
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
		k, err := v.image.ReadAt(p[done:done+int(n)], f.ImageOffset+off-f.FileOffset)
		done += k
		off += int64(k)
		if err != nil && (err != io.EOF || k < int(n)) {
			return done, err
		}
	}
	return done, nil
}
