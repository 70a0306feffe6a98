//go:build linux || darwin || freebsd

package holes

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

const supported = true

// Zeros returns the holes of the first size bytes of f, sorted and
// disjoint. A filesystem that does not track holes reports none.
func Zeros(f *os.File, size int64) ([]Extent, error) {
	var out []Extent
	for off := int64(0); off < size; {
		data, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			// No data from off to the end: a hole.
			out = append(out, Extent{off, size})
			break
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
			return nil, nil // the filesystem cannot say: read everything
		}
		if err != nil {
			return nil, fmt.Errorf("holes: SEEK_DATA at %d: %w", off, err)
		}
		if data > off {
			out = append(out, Extent{off, min(data, size)})
		}
		if data >= size {
			break
		}
		hole, err := f.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("holes: SEEK_HOLE at %d: %w", data, err)
		}
		if hole <= data {
			return nil, fmt.Errorf("holes: SEEK_HOLE at %d went back to %d", data, hole)
		}
		off = hole
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("holes: %w", err)
	}
	return out, nil
}
