package ewf

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testMedia is n bytes that spell out their own offsets in places, are
// random in others (incompressible) and zero in others, so that chunks of
// every kind occur and a misplaced chunk names where it came from.
func testMedia(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for off := 0; off < n; off += 4096 {
		blk := b[off:min(off+4096, n)]
		switch (off / 4096) % 7 {
		case 0, 1, 2:
			for i := range blk {
				blk[i] = byte(r.Uint32())
			}
		case 5:
			for i := 0; i+8 <= len(blk); i += 8 {
				binary.BigEndian.PutUint64(blk[i:], uint64(off+i))
			}
		case 3, 4: // zeros
		case 6:
			copy(blk, strings.Repeat("offset text ", 400))
		}
	}
	return b
}

func readAll(t *testing.T, m *Image) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(m, 0, m.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSyntheticSets(t *testing.T) {
	media := testMedia(300*1024+1536, 1) // not a whole number of chunks
	sum := md5.Sum(media)
	sh := sha1.Sum(media)
	for _, tc := range []struct {
		name string
		ts   testSet
		segs int
	}{
		{"raw-one-segment", testSet{sectorsPerChunk: 64, chunksPerSeg: 100}, 1},
		{"deflate-three-segments", testSet{sectorsPerChunk: 64, chunksPerSeg: 4, compress: func(int) bool { return true }}, 3},
		{"mixed-small-chunks", testSet{sectorsPerChunk: 16, chunksPerSeg: 7, compress: func(c int) bool { return c%3 != 0 }}, 6},
		{"hashes", testSet{sectorsPerChunk: 64, chunksPerSeg: 100, md5: sum[:], sha1: sh[:]}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs := writeSet(media, tc.ts)
			if len(segs) != tc.segs {
				t.Fatalf("%d segments, want %d", len(segs), tc.segs)
			}
			m, err := NewImage(segmentFiles(segs))
			if err != nil {
				t.Fatal(err)
			}
			if m.Size() != int64(len(media)) {
				t.Fatalf("size %d, want %d", m.Size(), len(media))
			}
			if got := readAll(t, m); !bytes.Equal(got, media) {
				t.Fatal("media read back differs")
			}
			// Reads of every size at odd offsets, through the cache.
			r := rand.New(rand.NewPCG(2, 2))
			for range 300 {
				off := r.IntN(len(media))
				n := r.IntN(min(len(media)-off, 200<<10)) + 1
				b := make([]byte, n)
				if k, err := m.ReadAt(b, int64(off)); k != n || err != nil {
					t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, k, err)
				}
				if !bytes.Equal(b, media[off:off+n]) {
					t.Fatalf("ReadAt(%d, %d) differs", n, off)
				}
			}
			if tc.ts.md5 != nil {
				if m.StoredMD5() != hex.EncodeToString(sum[:]) || m.StoredSHA1() != hex.EncodeToString(sh[:]) {
					t.Errorf("stored %s %s", m.StoredMD5(), m.StoredSHA1())
				}
				if len(m.StoredHashes()) != 3 {
					t.Errorf("stored hashes %v, want md5 twice and sha1", m.StoredHashes())
				}
			} else if m.StoredMD5() != "" || m.StoredSHA1() != "" {
				t.Errorf("hashes where none were stored: %v", m.StoredHashes())
			}
		})
	}
}

func TestReadAtEnd(t *testing.T) {
	media := testMedia(64*1024, 3)
	m, err := NewImage(segmentFiles(writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 10})))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	if n, err := m.ReadAt(b, int64(len(media))-40); n != 40 || err != io.EOF {
		t.Errorf("read across the end: %d, %v; want 40, EOF", n, err)
	}
	if n, err := m.ReadAt(b, int64(len(media))); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v; want 0, EOF", n, err)
	}
	if _, err := m.ReadAt(b, -1); err == nil {
		t.Error("read at -1: no error")
	}
}

// TestDamagedChunks: a flipped byte in a raw chunk, in a deflated chunk,
// and a chunk cut short each fail the read with a ChunkError naming the
// segment, chunk and offset; the chunks before still read.
func TestDamagedChunks(t *testing.T) {
	media := testMedia(256*1024, 4)
	for _, compressed := range []bool{false, true} {
		segs := writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 4, compress: func(int) bool { return compressed }})
		m, err := NewImage(segmentFiles(segs))
		if err != nil {
			t.Fatal(err)
		}
		// Chunk 5 is the second of segment 2.
		locs, err := m.locate(5, 5)
		if err != nil {
			t.Fatal(err)
		}
		at := locs[0].off + 100
		segs[1][at] ^= 0x40
		m, err = NewImage(segmentFiles(segs))
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, len(media))
		n, err := m.ReadAt(b, 0)
		var ce *ChunkError
		if !errors.As(err, &ce) || ce.Segment != 2 || ce.Chunk != 5 || ce.Offset != locs[0].off || ce.Media != 5*32768 {
			t.Fatalf("compressed %v: %v, want a ChunkError for chunk 5 of segment 2 at %d", compressed, err, locs[0].off)
		}
		if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrFormat) {
			t.Errorf("compressed %v: %v is neither a checksum nor a format error", compressed, err)
		}
		if n != 5*32768 || !bytes.Equal(b[:n], media[:n]) {
			t.Errorf("compressed %v: %d bytes before the damaged chunk, want %d intact", compressed, n, 5*32768)
		}
		if !strings.Contains(err.Error(), "segment 2 (test.E02): chunk 5") {
			t.Errorf("message %q names no segment and chunk", err)
		}
		segs[1][at] ^= 0x40
	}
}

// TestReadAtZeroDamaged: damaged chunks in two segments read as zeros
// and are listed, in media order, with their media ranges; every other
// byte reads as the media's, through whole-chunk and partial reads alike,
// and the same read fails with ReadAt.
func TestReadAtZeroDamaged(t *testing.T) {
	media := testMedia(256*1024+1024, 5) // the last chunk is short
	for _, compressed := range []bool{false, true} {
		segs := writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 4, compress: func(int) bool { return compressed }})
		m, err := NewImage(segmentFiles(segs))
		if err != nil {
			t.Fatal(err)
		}
		// Chunk 1 (segment 1) and chunk 8, the media's short last chunk
		// (segment 3).
		bad := []int64{1, 8}
		for _, c := range bad {
			locs, err := m.locate(c, c)
			if err != nil {
				t.Fatal(err)
			}
			segs[c/4][locs[0].off+7] ^= 0x81
		}
		if m, err = NewImage(segmentFiles(segs)); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(media)
		for _, c := range bad {
			clear(want[c*32768 : min((c+1)*32768, int64(len(want)))])
		}
		for _, r := range []struct{ off, n int }{{0, len(media)}, {100, 40000}, {32768 + 5, 10}, {60000, 300 * 1024}} {
			n := min(r.n, len(media)-r.off)
			b := bytes.Repeat([]byte{0xee}, r.n)
			got, damaged, err := m.ReadAtZeroDamaged(b, int64(r.off))
			if got != n || (err != nil && err != io.EOF) {
				t.Fatalf("compressed %v: ReadAtZeroDamaged(%d, %d) = %d, %v", compressed, r.n, r.off, got, err)
			}
			if !bytes.Equal(b[:n], want[r.off:r.off+n]) {
				t.Errorf("compressed %v: ReadAtZeroDamaged(%d, %d): bytes differ from the media with the damaged chunks zero", compressed, r.n, r.off)
			}
			var listed []int64
			for _, ce := range damaged {
				listed = append(listed, ce.Chunk)
				if ce.Media != ce.Chunk*32768 || ce.Length != min(32768, int64(len(media))-ce.Media) || ce.Segment != int(ce.Chunk/4)+1 || !IsDamage(ce) {
					t.Errorf("compressed %v: %+v: wrong range or segment, or not damage", compressed, ce)
				}
			}
			var inRead []int64
			for _, c := range bad {
				if c*32768 < int64(r.off+n) && (c+1)*32768 > int64(r.off) {
					inRead = append(inRead, c)
				}
			}
			if fmt.Sprint(listed) != fmt.Sprint(inRead) {
				t.Errorf("compressed %v: read [%d, %d) lists damaged chunks %v, want %v", compressed, r.off, r.off+n, listed, inRead)
			}
			if _, err := m.ReadAt(b, int64(r.off)); len(inRead) > 0 && !IsDamage(err) {
				t.Errorf("compressed %v: ReadAt over a damaged chunk: %v", compressed, err)
			}
		}
	}
	if IsDamage(io.ErrUnexpectedEOF) || IsDamage(&ChunkError{Err: io.ErrUnexpectedEOF}) {
		t.Error("a short read of a segment file counted as damage")
	}
}

// TestTableEntryChangedAfterOpen: a table entry that no longer checks
// when read again (the file changed after it was opened) damages the
// chunks it bounds, the one it starts and the one before, which end
// there, and no other.
func TestTableEntryChangedAfterOpen(t *testing.T) {
	media := testMedia(8*32768, 6)
	segs := writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 8, compress: func(int) bool { return true }})
	m, err := NewImage(segmentFiles(segs))
	if err != nil {
		t.Fatal(err)
	}
	entry := m.tables[0].t.entries + 3*tableEntrySize // chunk 3's
	le.PutUint32(segs[0][entry:], entryCompressed|0x7fffffff)
	b := make([]byte, len(media))
	_, damaged, err := m.ReadAtZeroDamaged(b, 0)
	var listed []int64
	for _, ce := range damaged {
		listed = append(listed, ce.Chunk)
	}
	if err != nil || fmt.Sprint(listed) != "[2 3]" {
		t.Fatalf("damaged chunks %v, %v; want 2 and 3", listed, err)
	}
	want := bytes.Clone(media)
	clear(want[2*32768 : 4*32768])
	if !bytes.Equal(b, want) {
		t.Error("the chunks not bounded by the entry differ from the media")
	}
	if _, err := m.ReadAt(b, 0); !IsDamage(err) || !strings.Contains(err.Error(), "chunk 2") {
		t.Errorf("ReadAt: %v, want chunk 2's error", err)
	}
}

// TestTable2StandsIn: a table whose entries fail their checksum is read
// from its table2 mirror; with no mirror the segment fails.
func TestTable2StandsIn(t *testing.T) {
	media := testMedia(128*1024, 5)
	for _, noTable2 := range []bool{false, true} {
		segs := writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 10, noTable2: noTable2})
		seg := segs[0]
		i := bytes.Index(seg, []byte(secTable+"\x00"))
		seg[i+descriptorSize+tableHeaderSize] ^= 1 // first entry
		m, err := NewImage(segmentFiles(segs))
		if noTable2 {
			if !errors.Is(err, ErrChecksum) {
				t.Errorf("no table2: %v, want a checksum error", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readAll(t, m), media) {
			t.Error("read through table2 differs")
		}
	}
}

// TestTruncation cuts a segment at every section boundary and inside
// sections: every cut is an error (a truncated structure or a set that
// maps fewer chunks), never a panic nor a short image.
func TestTruncation(t *testing.T) {
	media := testMedia(96*1024, 6)
	segs := writeSet(media, testSet{sectorsPerChunk: 16, chunksPerSeg: 5, compress: func(c int) bool { return c%2 == 0 }})
	for s := range segs {
		orig := segs[s]
		for cut := 0; cut < len(orig); cut += max(1, len(orig)/97) {
			segs[s] = orig[:cut]
			if _, err := NewImage(segmentFiles(segs)); err == nil {
				t.Fatalf("segment %d cut to %d of %d bytes: no error", s+1, cut, len(orig))
			}
		}
		segs[s] = orig
	}
}

func TestSegmentErrors(t *testing.T) {
	media := testMedia(96*1024, 7)
	segs := writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 1})
	files := segmentFiles(segs)
	if _, err := NewImage(files[:2]); !errors.Is(err, ErrSegments) {
		t.Errorf("a missing last segment: %v", err)
	}
	if _, err := NewImage([]SegmentFile{files[0], files[2], files[1]}); !errors.Is(err, ErrSegments) {
		t.Errorf("segments out of order: %v", err)
	}
	other := writeSet(testMedia(128*1024, 8), testSet{sectorsPerChunk: 64, chunksPerSeg: 1})
	if _, err := NewImage([]SegmentFile{files[0], segmentFiles(other)[1], files[2]}); !errors.Is(err, ErrSegments) {
		t.Errorf("a segment of another set: %v", err)
	}
	if _, err := NewImage(segmentFiles([][]byte{[]byte("not an image at all")})); !errors.Is(err, ErrNotEWF) {
		t.Errorf("not EWF: %v", err)
	}
	for magic, want := range map[string]string{"EVF2\r\n\x81\x00\x02\x01": "EWF2 (Ex01)", Signature: "", "LVF\x09\x0d\x0a\xff\x00": "EWF logical evidence (L01)", "EVF2": ""} {
		if got := OtherFormat([]byte(magic)); got != want {
			t.Errorf("OtherFormat(%q) = %q, want %q", magic, got, want)
		}
	}
}

func TestReadErrors(t *testing.T) {
	media := testMedia(64*1024, 9)
	m, err := NewImage(segmentFiles(writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 10,
		errors: []SectorRun{{First: 10, Count: 2}, {First: 3, Count: 4}, {First: 6, Count: 1}, {First: 127, Count: 50}}})))
	if err != nil {
		t.Fatal(err)
	}
	got := m.ReadErrors()
	want := []ByteRange{{3 * 512, 7 * 512}, {10 * 512, 12 * 512}, {127 * 512, 128 * 512}}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}

// error2Section makes error2 section data of size bytes saying it holds
// count entries (all zero), with a good header checksum and, where it
// fits, a good entries checksum.
func error2Section(size int, count uint32) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, count)
	binary.LittleEndian.PutUint32(b[error2Checksum:], adler32.Checksum(b[:error2Checksum]))
	if end := error2HeaderSize + int(count)*error2EntrySize; end+4 <= size {
		binary.LittleEndian.PutUint32(b[end:], adler32.Checksum(b[error2HeaderSize:end]))
	}
	return b
}

// TestParseError2Sizes: the entry count and the entries' checksum must
// fit in the section; a section with no room for the checksum is an
// error, not an index out of range.
func TestParseError2Sizes(t *testing.T) {
	for _, tc := range []struct {
		size    int
		count   uint32
		wantErr error
	}{
		{error2HeaderSize + 4, 0, nil},
		{error2HeaderSize + 8 + 4, 1, nil},
		{error2HeaderSize, 0, ErrTruncated},
		{error2HeaderSize + 3, 0, ErrTruncated},
		{error2HeaderSize + 8, 1, ErrTruncated},
		{error2HeaderSize + 8 + 3, 1, ErrTruncated},
		{error2HeaderSize + 4, 1, ErrTruncated},
		{error2HeaderSize + 4, MaxError2Entries + 1, ErrFormat},
	} {
		_, err := parseError2(error2Section(tc.size, tc.count), 0)
		if (err == nil) != (tc.wantErr == nil) || (err != nil && !errors.Is(err, tc.wantErr)) {
			t.Errorf("%d bytes, %d entries: %v, want %v", tc.size, tc.count, err, tc.wantErr)
		}
	}
}

func TestSegmentPath(t *testing.T) {
	for _, tc := range []struct {
		first string
		n     int
		want  string
	}{
		{"/x/img.E01", 2, "/x/img.E02"},
		{"/x/img.E01", 99, "/x/img.E99"},
		{"/x/img.E01", 100, "/x/img.EAA"},
		{"/x/img.E01", 125, "/x/img.EAZ"},
		{"/x/img.E01", 126, "/x/img.EBA"},
		{"/x/img.E01", 775, "/x/img.EZZ"},
		{"/x/img.E01", 776, "/x/img.FAA"},
		{"/x/img.E01", MaxSegments, "/x/img.ZZZ"},
		{"img.e01", 100, "img.eaa"},
	} {
		if got, err := SegmentPath(tc.first, tc.n); err != nil || got != tc.want {
			t.Errorf("SegmentPath(%s, %d) = %s, %v; want %s", tc.first, tc.n, got, err, tc.want)
		}
	}
	for _, bad := range []string{"img.raw", "img.E02", "img", "img.E1"} {
		if _, err := SegmentPath(bad, 2); err == nil {
			t.Errorf("SegmentPath(%s): no error", bad)
		}
	}
	if _, err := SegmentPath("img.E01", MaxSegments+1); err == nil {
		t.Error("past ZZZ: no error")
	}
}

// TestOpenFiles: Open finds the segments beside the first, and refuses to
// start anywhere but the first or to go on without a missing one.
func TestOpenFiles(t *testing.T) {
	media := testMedia(96*1024, 10)
	dir := t.TempDir()
	for i, s := range writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 1}) {
		if err := os.WriteFile(filepath.Join(dir, "img.E0"+string(rune('1'+i))), s, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Open(filepath.Join(dir, "img.E01"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Segments()) != 3 || !bytes.Equal(readAll(t, m), media) {
		t.Errorf("%d segments", len(m.Segments()))
	}
	m.Close()
	if _, err := Open(filepath.Join(dir, "img.E02")); !errors.Is(err, ErrSegments) {
		t.Errorf("opening segment 2: %v", err)
	}
	os.Remove(filepath.Join(dir, "img.E03"))
	if _, err := Open(filepath.Join(dir, "img.E01")); !errors.Is(err, ErrSegments) || !strings.Contains(err.Error(), "img.E03") {
		t.Errorf("a missing segment: %v", err)
	}
}

func TestParseDescriptor(t *testing.T) {
	mk := func(typ string, next, size uint64) []byte {
		b := make([]byte, descriptorSize)
		copy(b, typ)
		binary.LittleEndian.PutUint64(b[sdNext:], next)
		binary.LittleEndian.PutUint64(b[sdSize:], size)
		binary.LittleEndian.PutUint32(b[sdChecksum:], adler32.Checksum(b[:sdChecksum]))
		return b
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		off     int64
		wantErr error
	}{
		{"good", mk("sectors", 1000, 900), 100, nil},
		{"size zero", mk("sectors", 1000, 0), 100, nil},
		{"done names itself", mk("done", 100, 0), 100, nil},
		{"done elsewhere (the original format)", mk("done", 200, 0), 100, nil},
		{"no advance", mk("table", 150, 0), 100, ErrFormat},
		{"size disagrees", mk("table", 1000, 800), 100, ErrFormat},
		{"past the end", mk("sectors", 5000, 0), 100, ErrTruncated},
		{"short", mk("sectors", 1000, 900)[:40], 100, ErrTruncated},
		{"bad type", mk("sec\x01tors", 1000, 900), 100, ErrFormat},
	} {
		_, err := parseDescriptor(tc.b, tc.off, 4096)
		if (err == nil) != (tc.wantErr == nil) || (err != nil && !errors.Is(err, tc.wantErr)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	b := mk("sectors", 1000, 900)
	b[3] ^= 1
	if _, err := parseDescriptor(b, 100, 4096); !errors.Is(err, ErrChecksum) {
		t.Errorf("bad checksum: %v", err)
	}
}

func TestParseVolumeLimits(t *testing.T) {
	mk := func(chunks, spc, bps uint32, sectors uint64) []byte {
		v := make([]byte, volumeSizeE01)
		binary.LittleEndian.PutUint32(v[volChunkCount:], chunks)
		binary.LittleEndian.PutUint32(v[volSectorsPerChunk:], spc)
		binary.LittleEndian.PutUint32(v[volBytesPerSector:], bps)
		binary.LittleEndian.PutUint64(v[volSectorCount:], sectors)
		binary.LittleEndian.PutUint32(v[volChecksumE01:], adler32.Checksum(v[:volChecksumE01]))
		return v
	}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"ewfacquire default", mk(156, 64, 512, 9979), true},
		{"zero sector size", mk(1, 64, 0, 64), false},
		{"huge chunks", mk(1, 1<<20, 4096, 64), false},
		{"zero sectors per chunk", mk(1, 0, 512, 64), false},
		{"too few chunks", mk(155, 64, 512, 9979), false},
		{"huge media", mk(1<<32-1, 64, 512, 1<<60), false},
		{"short", mk(1, 64, 512, 64)[:50], false},
	} {
		if _, err := parseVolume(tc.b, 0); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// BenchmarkReadAt reads a deflated set in the carver's 8 MiB reads (with
// its margin re-read), the chunks of each read inflated in parallel.
func BenchmarkReadAt(b *testing.B) {
	media := testMedia(64<<20, 40)
	m, err := NewImage(segmentFiles(writeSet(media, testSet{sectorsPerChunk: 64, chunksPerSeg: 1 << 20, compress: func(int) bool { return true }})))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8<<20+20<<10)
	b.SetBytes(int64(len(media)))
	for b.Loop() {
		for off := int64(0); off < m.Size(); off += 8 << 20 {
			if _, err := m.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}

// TestConcurrentReads: an Image serves reads from many goroutines at once
// (the carver's workers, the hashes), through one cache (run with -race).
func TestConcurrentReads(t *testing.T) {
	media := testMedia(2<<20, 11)
	m, err := NewImage(segmentFiles(writeSet(media, testSet{sectorsPerChunk: 16, chunksPerSeg: 50, compress: func(c int) bool { return c%4 != 0 }})))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 3))
			for range 40 {
				off := r.IntN(len(media))
				b := make([]byte, r.IntN(min(len(media)-off, 300<<10))+1)
				if _, err := m.ReadAt(b, int64(off)); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(b, media[off:off+len(b)]) {
					errs <- errors.New("a concurrent read differs")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
