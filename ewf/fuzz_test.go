package ewf

import (
	"bytes"
	"crypto/md5"
	"io"
	"testing"
)

// fuzzSeeds are small synthetic sets of every layout writeSet makes.
func fuzzSeeds() [][]byte {
	media := testMedia(6*1024, 30)
	sum := md5.Sum(media)
	var seeds [][]byte
	for _, ts := range []testSet{
		{sectorsPerChunk: 16, chunksPerSeg: 100},
		{sectorsPerChunk: 16, chunksPerSeg: 100, compress: func(c int) bool { return c%2 == 0 }, md5: sum[:], sha1: sum[:4*5%16+4]},
		{sectorsPerChunk: 8, chunksPerSeg: 100, compress: func(int) bool { return true }, errors: []SectorRun{{First: 3, Count: 9}}},
	} {
		seeds = append(seeds, writeSet(media, ts)...)
	}
	return seeds
}

// FuzzSections runs the section parsers over arbitrary bytes: none may
// panic, and what they accept must be within their bounds.
func FuzzSections(f *testing.F) {
	for _, s := range fuzzSeeds() {
		for off := fileHeaderSize; off+descriptorSize <= len(s); {
			sec, err := parseDescriptor(s[off:], int64(off), int64(len(s)))
			if err != nil || sec.Next == int64(off) {
				break
			}
			f.Add(s[off:sec.Next])
			off = int(sec.Next)
		}
	}
	// Section data at the parsers' size edges (an error2 header with no
	// room for its entries' checksum once read past its end).
	for _, size := range []int{error2HeaderSize, error2HeaderSize + 3, error2HeaderSize + 4} {
		f.Add(error2Section(size, 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if sec, err := parseDescriptor(b, 0, int64(len(b))); err == nil {
			if sec.Next > int64(len(b)) || (sec.Next < descriptorSize && sec.Type != secNext && sec.Type != secDone) {
				t.Fatalf("accepted a section running to %d of %d bytes", sec.Next, len(b))
			}
		}
		if v, err := parseVolume(b, 0); err == nil {
			if v.ChunkSize() <= 0 || v.ChunkSize() > MaxChunkSize || v.MediaSize() < 0 {
				t.Fatalf("accepted volume %+v", v)
			}
		}
		if n, _, err := parseTableHeader(b, 0, int64(len(b))); err == nil && tableHeaderSize+n*tableEntrySize > int64(len(b)) {
			t.Fatalf("accepted %d entries in %d bytes", n, len(b))
		}
		parseHash(b, 0)
		parseDigest(b, 0)
		if runs, err := parseError2(b, 0); err == nil && int64(len(runs))*error2EntrySize > int64(len(b)) {
			t.Fatalf("%d runs from %d bytes", len(runs), len(b))
		}
		ParseFileHeader(b)
	})
}

// FuzzOpenSegment opens arbitrary bytes as a single-segment image and
// reads all of it: errors, never a panic, and never more media than the
// tables can map.
func FuzzOpenSegment(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := NewImage([]SegmentFile{{Path: "fuzz.E01", R: bytes.NewReader(b), Size: int64(len(b))}})
		if err != nil {
			return
		}
		if m.Size() > m.vol.ChunkCount*m.chunkSize {
			t.Fatalf("media of %d bytes from %d chunks of %d", m.Size(), m.vol.ChunkCount, m.chunkSize)
		}
		// Bounded: a crafted size cannot make the fuzzer read gigabytes.
		io.Copy(io.Discard, io.NewSectionReader(m, 0, min(m.Size(), 64<<20)))
		buf := make([]byte, 1000)
		m.ReadAt(buf, m.Size()/2)
		// Past damaged chunks: each listed once, inside the read, with
		// its bytes zero.
		all := make([]byte, min(m.Size(), 1<<20))
		n, damaged, _ := m.ReadAtZeroDamaged(all, 0)
		prev := int64(-1)
		for _, ce := range damaged {
			if ce.Chunk <= prev || ce.Media < 0 || ce.Length <= 0 || ce.Media+ce.Length > m.Size() || !IsDamage(ce) {
				t.Fatalf("damaged chunk %+v after chunk %d", ce, prev)
			}
			prev = ce.Chunk
			if lo, hi := ce.Media, min(ce.Media+ce.Length, int64(n)); lo < hi && bytes.Count(all[lo:hi], []byte{0}) != int(hi-lo) {
				t.Fatalf("damaged chunk %d reads non-zero", ce.Chunk)
			}
		}
	})
}
