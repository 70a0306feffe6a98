package carver

import (
	"testing"

	"vmdkcarve/signatures"
)

// BenchmarkCandidates is the magic test alone, at every sector of 32 KiB
// of noise in the cache (as the scan has it, having just fingerprinted
// the block): what the scan pays per sector before any recognizer runs.
func BenchmarkCandidates(b *testing.B) {
	const n = 32 << 10
	buf := noise(n+4096, 30)
	t := newMagicTable(signatures.All())
	b.SetBytes(n)
	var sink uint64
	for b.Loop() {
		for off := 0; off < n; off += 512 {
			sink |= t.candidates(buf, off)
		}
	}
	_ = sink
}
