package carver

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/holes"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// testImage is noise with VMDK structures planted at known offsets.
type testImage struct {
	data    []byte
	planted map[int64]signatures.Kind
}

func noise(size int, seed uint64) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'v', 'm', 'd', 'k'})
	r.Read(b)
	return b
}

func sparseHeaderBytes(t testing.TB) []byte {
	h := &vmdk.SparseHeader{
		Version: 1, Flags: 3, Capacity: 1 << 21, GrainSize: 128, DescriptorOffset: 1,
		DescriptorSize: 20, NumGTEsPerGT: 512, RGDOffset: 21, GDOffset: 300, OverHead: 640,
	}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal sparse header: %v", err)
	}
	return b
}

// grainRecord is a stream grain record of one 64 KiB grain whose first
// 16 KiB are noise and the rest zeros, so the record is about 16 KiB long.
func grainRecord(t testing.TB, lba uint64) []byte {
	data := make([]byte, 128*vmdk.SectorSize)
	copy(data, noise(16<<10, lba))
	rec, err := vmdk.EncodeGrain(nil, lba, data, 6)
	if err != nil {
		t.Fatalf("encode grain: %v", err)
	}
	if len(rec) > 20<<10 {
		t.Fatalf("grain record is %d bytes, want about 16 KiB", len(rec))
	}
	return rec
}

func (im *testImage) plant(off int64, kind signatures.Kind, b []byte) {
	copy(im.data[off:], b)
	im.planted[off] = kind
}

// newTestImage plants headers and grain records around every multiple of
// boundary (a chunk size the tests use, at least 64 KiB), so that structures
// straddle the chunk boundaries: a header just before a grain record that
// starts 4 KiB before a boundary and runs 12 KiB into the next chunk, and a
// header after it.
func newTestImage(t testing.TB, size int, boundary int64, seed uint64) *testImage {
	im := &testImage{data: noise(size, seed), planted: map[int64]signatures.Kind{}}
	hdr := sparseHeaderBytes(t)
	lba := uint64(0)
	for b := boundary; b+boundary <= int64(size); b += boundary {
		im.plant(b-4608, signatures.KindSparseHeader, hdr)
		im.plant(b-4096, signatures.KindGrainMarker, grainRecord(t, lba))
		im.plant(b+20<<10, signatures.KindSparseHeader, hdr)
		lba += 128
	}
	// A header in the last sector, and the image is not a whole number of
	// blocks, so the last window and the last fingerprint are short.
	last := int64(size) &^ 511
	if last == int64(size) {
		last -= 512
	}
	im.plant(last-512, signatures.KindSparseHeader, hdr)
	return im
}

type collectingSink struct {
	t    testing.TB
	next int64 // the Start the next chunk must have
	hits []signatures.Hit
	fps  []uint64
}

func (s *collectingSink) Chunk(c ChunkResult) error {
	if c.Start != s.next {
		s.t.Errorf("chunk starts at %d, want %d (out of order or gap)", c.Start, s.next)
	}
	s.next = c.End
	if want := int((c.End - c.Start + BlockSize - 1) / BlockSize); len(c.Fingerprints) != want {
		s.t.Errorf("chunk [%d,%d) has %d fingerprints, want %d", c.Start, c.End, len(c.Fingerprints), want)
	}
	for _, h := range c.Hits {
		if h.Offset < c.Start || h.Offset >= c.End {
			s.t.Errorf("chunk [%d,%d) reports a hit at %d", c.Start, c.End, h.Offset)
		}
	}
	s.hits = append(s.hits, c.Hits...)
	s.fps = append(s.fps, c.Fingerprints...)
	return nil
}

func scan(t testing.TB, data []byte, start, end int64, opts Options) ([]signatures.Hit, []uint64) {
	t.Helper()
	if opts.Recognizers == nil {
		opts.Recognizers = signatures.All()
	}
	opts.ImageSize = int64(len(data))
	s := &collectingSink{t: t, next: start}
	if err := Scan(context.Background(), bytes.NewReader(data), start, end, opts, s); err != nil {
		t.Fatalf("Scan [%d,%d): %v", start, end, err)
	}
	if start != end && s.next != end {
		t.Fatalf("Scan [%d,%d) stopped at %d", start, end, s.next)
	}
	return s.hits, s.fps
}

// referenceScan is the obviously correct, slow scan every configuration
// must agree with: every recognizer at every aligned offset, its window cut
// only by the image end.
func referenceScan(data []byte, rs []signatures.Recognizer) ([]signatures.Hit, []uint64) {
	var hits []signatures.Hit
	for off := 0; off < len(data); off++ {
		for i := range rs {
			r := &rs[i]
			if off%r.Align != 0 {
				continue
			}
			if h, ok := signatures.Run(r, data[off:min(off+r.Window, len(data))], make([]byte, r.ScratchBytes)); ok {
				h.Offset = int64(off)
				hits = append(hits, h)
			}
		}
	}
	slices.SortStableFunc(hits, func(a, b signatures.Hit) int {
		if a.Offset != b.Offset {
			return int(a.Offset - b.Offset)
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	var fps []uint64
	for off := 0; off < len(data); off += BlockSize {
		fps = append(fps, fingerprint.Hash(data[off:min(off+BlockSize, len(data))]))
	}
	return hits, fps
}

const testBoundary = 64 << 10

func TestScanMatchesReference(t *testing.T) {
	im := newTestImage(t, 2<<20+1234, testBoundary, 1)
	wantHits, wantFPs := referenceScan(im.data, signatures.All())
	for _, tc := range []struct {
		name    string
		workers int
		chunk   int
	}{
		{"1 worker, chunk = boundary", 1, testBoundary},
		{"4 workers, chunk = boundary", 4, testBoundary},
		{"3 workers, 4 KiB chunks", 3, BlockSize},
		{"2 workers, 12 KiB chunks", 2, 3 * BlockSize},
		{"defaults (8 MiB chunk > image)", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits, fps := scan(t, im.data, 0, int64(len(im.data)), Options{Workers: tc.workers, ChunkSize: tc.chunk})
			if !reflect.DeepEqual(hits, wantHits) {
				t.Errorf("hits differ from the reference scan: got %d, want %d", len(hits), len(wantHits))
			}
			if !reflect.DeepEqual(fps, wantFPs) {
				t.Errorf("fingerprints differ from the reference scan")
			}
		})
	}
}

func TestPlantedFoundExactlyOnce(t *testing.T) {
	im := newTestImage(t, 2<<20+1234, testBoundary, 2)
	hits, _ := scan(t, im.data, 0, int64(len(im.data)), Options{Workers: 4, ChunkSize: testBoundary})
	seen := map[int64]int{}
	for _, h := range hits {
		if h.Kind != signatures.KindSparseHeader && h.Kind != signatures.KindGrainMarker {
			continue
		}
		if im.planted[h.Offset] != h.Kind {
			t.Errorf("unexpected %s hit at %d", h.Kind, h.Offset)
			continue
		}
		if h.Verdict != signatures.Valid {
			t.Errorf("%s at %d: verdict %s (%s), want valid", h.Kind, h.Offset, h.Verdict, h.Reason)
		}
		seen[h.Offset]++
	}
	for off, kind := range im.planted {
		if seen[off] != 1 {
			t.Errorf("planted %s at %d (chunk offset %d) found %d times, want once", kind, off, off%testBoundary, seen[off])
		}
	}
}

func TestShardsConcatenate(t *testing.T) {
	im := newTestImage(t, 1<<20+700, testBoundary, 3)
	n := int64(len(im.data))
	opts := Options{Workers: 2, ChunkSize: testBoundary}
	wantHits, wantFPs := scan(t, im.data, 0, n, opts)
	for _, a := range []int64{0, BlockSize, testBoundary - BlockSize, testBoundary, 5 * testBoundary, 7*testBoundary + BlockSize, n &^ (BlockSize - 1)} {
		h1, f1 := scan(t, im.data, 0, a, opts)
		h2, f2 := scan(t, im.data, a, n, opts)
		if got := append(h1, h2...); !reflect.DeepEqual(got, wantHits) && !(len(got) == 0 && len(wantHits) == 0) {
			t.Errorf("split at %d: hits of [0,a)+[a,n) differ from [0,n): %d vs %d", a, len(got), len(wantHits))
		}
		if got := append(f1, f2...); !reflect.DeepEqual(got, wantFPs) {
			t.Errorf("split at %d: fingerprints of [0,a)+[a,n) differ from [0,n)", a)
		}
	}
}

func TestPanickingRecognizer(t *testing.T) {
	data := noise(256<<10, 4)
	bomb := []byte("BOOM")
	bombs := []int64{0, 4096, 70 * 512, 256<<10 - 512}
	for _, off := range bombs {
		copy(data[off:], bomb)
	}
	copy(data[8192:], sparseHeaderBytes(t))
	panicky := signatures.Recognizer{
		Name: "panicky", Kind: "test", Align: 512, Window: 512,
		Recognize: func(w, _ []byte) (signatures.Hit, bool) {
			if bytes.HasPrefix(w, bomb) {
				var m map[string]int
				m["boom"]++ // a nil-map write: a real runtime panic
			}
			return signatures.Hit{}, false
		},
	}
	rs := append([]signatures.Recognizer{panicky}, signatures.All()...)
	hits, _ := scan(t, data, 0, int64(len(data)), Options{Workers: 2, ChunkSize: 64 << 10, Recognizers: rs})
	var errs []int64
	header := false
	for _, h := range hits {
		switch h.Kind {
		case signatures.KindError:
			errs = append(errs, h.Offset)
			if !strings.Contains(h.Reason, "panicky") {
				t.Errorf("error hit at %d does not name the recognizer: %q", h.Offset, h.Reason)
			}
		case signatures.KindSparseHeader:
			header = h.Offset == 8192
		}
	}
	if !reflect.DeepEqual(errs, bombs) {
		t.Errorf("error hits at %v, want %v", errs, bombs)
	}
	if !header {
		t.Errorf("the scan did not go on to find the header after the panics")
	}
}

// TestHashCoversRange: every hash, each on its own goroutine, is fed
// exactly the scanned range, and a sink that waits for them at a chunk
// sees their states at that chunk's end.
func TestHashCoversRange(t *testing.T) {
	data := noise(300<<10+17, 5)
	for _, r := range [][2]int64{{0, int64(len(data))}, {8192, 100 << 10}, {4096, 4096}} {
		h256, h1, h5 := sha256.New(), sha1.New(), md5.New()
		var atChunk []bool
		sink := SinkFunc(func(c ChunkResult) error {
			if !c.WaitHashed() {
				t.Fatal("WaitHashed: a hash stopped")
			}
			want := sha256.Sum256(data[r[0]:c.End])
			atChunk = append(atChunk, bytes.Equal(h256.Sum(nil), want[:]))
			return nil
		})
		opts := Options{Workers: 3, ChunkSize: 16 << 10, Hashes: []hash.Hash{h256, h1, h5}, ImageSize: int64(len(data))}
		if err := Scan(context.Background(), bytes.NewReader(data), r[0], r[1], opts, sink); err != nil {
			t.Fatal(err)
		}
		s256, s1, s5 := sha256.Sum256(data[r[0]:r[1]]), sha1.Sum(data[r[0]:r[1]]), md5.Sum(data[r[0]:r[1]])
		if !bytes.Equal(h256.Sum(nil), s256[:]) || !bytes.Equal(h1.Sum(nil), s1[:]) || !bytes.Equal(h5.Sum(nil), s5[:]) {
			t.Errorf("hashes of [%d,%d) are wrong", r[0], r[1])
		}
		if slices.Contains(atChunk, false) || (len(atChunk) == 0 && r[1] > r[0]) {
			t.Errorf("[%d,%d): hash state at each chunk's end: %v", r[0], r[1], atChunk)
		}
	}
}

func TestScanErrors(t *testing.T) {
	data := noise(1<<20, 6)
	n := int64(len(data))
	sink := SinkFunc(func(ChunkResult) error { return nil })
	rs := signatures.All()
	for _, tc := range []struct {
		name       string
		r          io.ReaderAt
		start, end int64
		opts       Options
		want       error
	}{
		{"unaligned start", bytes.NewReader(data), 100, n, Options{}, ErrOptions},
		{"end before start", bytes.NewReader(data), 8192, 4096, Options{}, ErrOptions},
		{"chunk not a block multiple", bytes.NewReader(data), 0, n, Options{ChunkSize: 5000}, ErrOptions},
		{"end past image size", bytes.NewReader(data), 0, n, Options{ImageSize: n - 1}, ErrOptions},
		{"truncated image", bytes.NewReader(data[:n/2]), 0, n, Options{ChunkSize: 64 << 10}, io.ErrUnexpectedEOF},
		{"truncated margin", bytes.NewReader(data[:n-10]), 0, n - 4096, Options{ImageSize: n}, io.ErrUnexpectedEOF},
		{"read error", tooltest.FailingReaderAt{R: bytes.NewReader(data), Off: 300 << 10}, 0, n, Options{ChunkSize: 64 << 10, Workers: 3}, tooltest.ErrRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Recognizers = rs
			err := Scan(context.Background(), tc.r, tc.start, tc.end, tc.opts, sink)
			if !errors.Is(err, tc.want) {
				t.Errorf("Scan: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSinkErrorAndCancel(t *testing.T) {
	data := noise(1<<20, 7)
	errStop := errors.New("stop")
	calls := 0
	err := Scan(context.Background(), bytes.NewReader(data), 0, int64(len(data)), Options{ChunkSize: 16 << 10, Workers: 2},
		SinkFunc(func(ChunkResult) error {
			calls++
			if calls == 3 {
				return errStop
			}
			return nil
		}))
	if !errors.Is(err, errStop) || calls != 3 {
		t.Errorf("sink error: Scan returned %v after %d chunks, want errStop after 3", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Scan(ctx, bytes.NewReader(data), 0, int64(len(data)), Options{ChunkSize: 16 << 10, Workers: 2},
		SinkFunc(func(ChunkResult) error {
			calls++
			if calls == 2 {
				cancel()
			}
			return nil
		}))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: Scan returned %v, want context.Canceled", err)
	}
}

// BenchmarkScan measures the whole carve path (read, recognizers at every
// sector, fingerprints, ordered collection) over 256 MiB of noise with
// structures planted at every 8 MiB.
func BenchmarkScan(b *testing.B) {
	const size = 256 << 20
	im := newTestImage(b, size, 8<<20, 8)
	r := bytes.NewReader(im.data)
	opts := Options{Recognizers: signatures.All(), ImageSize: size}
	sink := SinkFunc(func(ChunkResult) error { return nil })
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if err := Scan(context.Background(), r, 0, size, opts, sink); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanFile is BenchmarkScan from a file in the page cache, whose
// chunks the scan maps (Mapped) or reads with ReadAt (Copied).
func BenchmarkScanFile(b *testing.B) {
	const size = 256 << 20
	im := newTestImage(b, size, 8<<20, 8)
	path := filepath.Join(b.TempDir(), "image.dd")
	if err := os.WriteFile(path, im.data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sink := SinkFunc(func(ChunkResult) error { return nil })
	for _, noMap := range []bool{false, true} {
		name := "Mapped"
		if noMap {
			name = "Copied"
		}
		b.Run(name, func(b *testing.B) {
			opts := Options{Recognizers: signatures.All(), ImageSize: size, NoMap: noMap}
			b.SetBytes(size)
			for b.Loop() {
				if err := Scan(context.Background(), f, 0, size, opts, sink); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// holeReader is an image whose zero extents must not be read.
type holeReader struct {
	t     *testing.T
	r     io.ReaderAt
	zeros []holes.Extent
	reads atomic.Int64 // bytes read inside them
}

func (h *holeReader) ReadAt(b []byte, off int64) (int, error) {
	for _, z := range h.zeros {
		lo, hi := max(off, z.Start), min(off+int64(len(b)), z.End)
		if hi > lo {
			h.reads.Add(hi - lo)
		}
	}
	return h.r.ReadAt(b, off)
}

// TestHolesSkipped: zero extents given as holes give the hits,
// fingerprints and hash of a scan that reads them, and the chunks wholly
// inside one (margin included) are not read. Structures sit just before
// and just after each hole, and a grain table starts in a hole's last
// sector and runs into the data.
func TestHolesSkipped(t *testing.T) {
	const chunk = 1 << 20 // the margin is a grain record's, about 1 MiB
	im := newTestImage(t, 24<<20, 4<<20, 11)
	data := append([]byte(nil), im.data...)
	zeros := []holes.Extent{{Start: 256 << 10, End: 8<<20 - 512}, {Start: 8<<20 + 4096, End: 9 << 20}, {Start: 12 << 20, End: 24 << 20}}
	for _, z := range zeros {
		clear(data[z.Start:z.End])
	}
	// A grain table whose first sector lies in the hole before it.
	gt := vmdk.EncodeEntries([]uint32{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 256, 384, 512})
	copy(data[8<<20-512:], gt)
	want, wantFPs := referenceScan(data, signatures.All())
	ws := sha256.Sum256(data)
	for _, workers := range []int{1, 3} {
		hr := &holeReader{t: t, r: bytes.NewReader(data), zeros: zeros}
		h := sha256.New()
		s := &collectingSink{t: t}
		opts := Options{Workers: workers, ChunkSize: chunk, Recognizers: signatures.All(), ImageSize: int64(len(data)), Zeros: zeros, Hashes: []hash.Hash{h}}
		if err := Scan(context.Background(), hr, 0, int64(len(data)), opts, s); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.hits, want) || !reflect.DeepEqual(s.fps, wantFPs) {
			t.Errorf("workers %d: the scan with holes differs from reading them: %d hits, want %d", workers, len(s.hits), len(want))
		}
		if !bytes.Equal(h.Sum(nil), ws[:]) {
			t.Errorf("workers %d: hash over the holes differs", workers)
		}
		// What is read inside the holes is only the chunks a margin or a
		// structure reaches into: well under their size.
		var holeBytes int64
		for _, z := range zeros {
			holeBytes += z.End - z.Start
		}
		if got := hr.reads.Load(); got > holeBytes/2 {
			t.Errorf("workers %d: %d of the holes' %d bytes read", workers, got, holeBytes)
		}
		t.Logf("workers %d: %d of the holes' %d bytes read", workers, hr.reads.Load(), holeBytes)
	}
}
