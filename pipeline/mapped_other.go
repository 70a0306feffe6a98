//go:build !unix

package pipeline

import (
	"errors"
	"os"
)

// mappedImage is not available here: rebuild reads the image with pread.
type mappedImage struct{}

func mapImage(*os.File, int64) *mappedImage { return nil }

func (*mappedImage) view(off, n int64, fn func([]byte)) error { return errors.ErrUnsupported }

func (*mappedImage) ReadAt([]byte, int64) (int, error) { return 0, errors.ErrUnsupported }

func (*mappedImage) Close() error { return nil }
