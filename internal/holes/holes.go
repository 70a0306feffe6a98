// Package holes finds the holes of a sparse file (an image saved with
// ddrescue --sparse, a thin copy) with SEEK_DATA and SEEK_HOLE, so that a
// carve neither reads nor scans what the filesystem already knows to be
// zeros. Where the platform or the filesystem cannot tell, no hole is
// reported and every byte is read, which is always correct.
//
// Platforms: Linux, macOS and FreeBSD have SEEK_DATA/SEEK_HOLE (and
// golang.org/x/sys/unix their values); elsewhere (Windows, the other BSDs)
// Zeros is None.
package holes

import "os"

// An Extent is the byte range [Start, End) of a file.
type Extent struct{ Start, End int64 }

// Supported says whether Zeros asks the filesystem on this platform (true)
// or is None (false).
const Supported = supported

// None is the fallback where the platform cannot tell: no holes, so every
// byte is read and scanned. It is Zeros where Supported is false.
func None(f *os.File, size int64) ([]Extent, error) { return nil, nil }
