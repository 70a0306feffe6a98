//go:build !(linux || darwin || freebsd)

package holes

import "os"

const supported = false

// Zeros reports no holes where the platform has no SEEK_DATA/SEEK_HOLE
// (Windows, the BSDs other than FreeBSD): every byte is read and scanned.
func Zeros(f *os.File, size int64) ([]Extent, error) { return None(f, size) }
