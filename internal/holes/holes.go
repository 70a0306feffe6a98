// Package holes finds the holes of a sparse file (an image saved with
// ddrescue --sparse, a thin copy) with SEEK_DATA and SEEK_HOLE, so that a
// carve neither reads nor scans what the filesystem already knows to be
// zeros. Where the platform or the filesystem cannot tell, no hole is
// reported and every byte is read, which is always correct.
package holes

// An Extent is the byte range [Start, End) of a file.
type Extent struct{ Start, End int64 }
