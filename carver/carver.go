// Package carver reads a byte range of an evidence image in large chunks,
// each read and scanned by one of a pool of workers: it hands every aligned
// window whose magic holds to the signature recognizers, fingerprints every
// 4 KiB block, feeds the evidence hashes, and delivers the results to a
// Sink strictly in image order. It knows nothing about any format: all format
// knowledge lives in the signatures.Recognizer values it is given.
//
// Pages with margins (bulk_extractor's sbuf_t, STYLE.md 9): each chunk is
// scanned together with the MaxWindow bytes that follow it, but only hits
// that start inside the chunk are reported. Every window therefore sees the
// same bytes it would see in a single whole-image pass, so no hit is lost or
// doubled at a chunk boundary, and a scan of [a,b) reports exactly the hits a
// scan of the whole image reports in [a,b): shards merge exactly.
package carver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/holes"
	"vmdkcarve/internal/mmap"
	"vmdkcarve/signatures"
)

const (
	// BlockSize is the fingerprint granularity (fingerprint.BlockSize):
	// chunks start on its multiples.
	BlockSize = fingerprint.BlockSize

	// DefaultChunkSize is the read size: large enough that reads run at
	// disk speed and the ~1 MiB margin read again with every chunk stays a
	// small overhead, small enough that a few chunks in flight per worker
	// keep the memory bounded.
	DefaultChunkSize = 8 << 20

	// MaxChunkSize bounds --chunk so that a typo cannot allocate gigabytes
	// per worker.
	MaxChunkSize = 1 << 30

	// hashLag is how many chunks the hashes may lag the scan by.
	hashLag = 2
)

// ErrOptions reports invalid Scan arguments.
var ErrOptions = errors.New("carver: invalid options")

// Options tunes a Scan. The zero value means the defaults.
type Options struct {
	// Workers is the number of goroutines running recognizers
	// (0 = runtime.NumCPU()).
	Workers int
	// ChunkSize is the read size in bytes, a multiple of BlockSize
	// (0 = DefaultChunkSize).
	ChunkSize int
	// Recognizers are run at every offset that is a multiple of their
	// Align. An empty list still fingerprints and hashes.
	Recognizers []signatures.Recognizer
	// Hashes are each fed every byte of [start,end) in order, each on a
	// goroutine of its own beside the scan (hashers.go). A Sink that needs
	// their state to match a chunk's End exactly (to checkpoint it,
	// encoding.BinaryMarshaler) calls the chunk's WaitHashed first.
	Hashes []hash.Hash
	// Progress receives counts after every chunk (nil = no-op).
	Progress Progress
	// Zeros are byte ranges of the image known to read as zeros, sorted
	// and disjoint: the holes of a sparse file (internal/holes). A chunk
	// inside one, margin and all, is neither read nor scanned: its blocks
	// fingerprint zero and it holds no hit (Scan checks that no recognizer
	// accepts a zero window; if one does, every chunk is read). The hashes
	// are fed its zeros.
	Zeros []holes.Extent
	// ImageSize is the size of the whole image. Windows of hits near end
	// read past end up to ImageSize, so that a shard sees exactly what a
	// whole-image scan sees. 0 means end (no margin past the range).
	ImageSize int64
	// NoMap reads an *os.File with ReadAt, as any other reader, instead
	// of mapping its chunks into memory (mapped_unix.go): the fallback,
	// for tests and measurements.
	NoMap bool
}

// ChunkResult is what Scan found in one chunk [Start,End) of the image.
type ChunkResult struct {
	Start, End int64
	// Hits start inside [Start,End), sorted by Offset then Kind; Offset is
	// an absolute image offset.
	Hits []signatures.Hit
	// Fingerprints holds one value per BlockSize block of [Start,End) (the
	// last block may be short): fingerprint.Hash of the block (0 for an
	// all-zero block, and never 0 otherwise).
	Fingerprints []uint64
	// WaitHashed blocks until every hash of Options.Hashes has been fed
	// the image up to End; false if one never will be (the scan ended in
	// an error first).
	WaitHashed func() bool
}

// Sink receives chunk results in image order, from a single goroutine.
// An error ends the scan and is returned by Scan.
type Sink interface {
	Chunk(c ChunkResult) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(c ChunkResult) error

// Chunk calls f(c).
func (f SinkFunc) Chunk(c ChunkResult) error { return f(c) }

// Progress receives scan counts: done and total are bytes of the scanned
// range, hits counts hits delivered so far. It is called from one goroutine.
type Progress interface {
	Scanned(done, total int64, hits int64)
}

// NoProgress is the default Progress: it does nothing.
type NoProgress struct{}

// Scanned does nothing.
func (NoProgress) Scanned(done, total, hits int64) {}

// chunk is one unit of work: buf[:n] is the chunk proper, buf[n:avail]
// its margin.
type chunk struct {
	seq   int
	start int64
	n     int
	avail int
	buf   []byte
	// token is the pool's buffer the chunk holds (buf itself, unless the
	// chunk is mapped), given back by free.
	token []byte
	// unmap, when set, releases the mapping buf lies in (mmap.Range).
	unmap func()
	refs  atomic.Int32 // the hashes yet to read it (hashers.go)
	// hole: the chunk and its margin lie in Options.Zeros: buf is nil,
	// nothing was read, and it is all zeros.
	hole bool
}

// free gives the chunk's buffer back to the pool once nothing reads it
// any more.
func (c *chunk) free(pool chan<- []byte) {
	if c.hole {
		return // its token went back when it was taken
	}
	if c.unmap != nil {
		c.unmap()
	}
	pool <- c.token // cannot block: the pool has room for every buffer
}

// errMappedRead is a fault reading a mapped chunk: where ReadAt would
// have returned an error, the access faulted.
var errMappedRead = errors.New("the mapped image could not be read (a read error, or the image shrank while being carved)")

// fault turns a recovered panic p into an error if it is a fault on c's
// mapping (debug.SetPanicOnFault is on in every goroutine that reads
// one), and panics again with p otherwise.
func (c *chunk) fault(p any) error {
	if off, ok := c.faultOffset(p); ok {
		return fmt.Errorf("carver: image offset %d: %w", c.start+off, errMappedRead)
	}
	panic(p)
}

// faultOffset reports whether p is a fault on c's mapping, and where in
// the chunk (mmap.Fault).
func (c *chunk) faultOffset(p any) (int64, bool) {
	if c.unmap == nil {
		return 0, false
	}
	return mmap.Fault(p, c.buf)
}

// result is a scanned chunk on its way to the collector; the buffer travels
// with it because the collector still has to hash it.
type result struct {
	c   *chunk
	res ChunkResult
}

// Scan scans [start,end) of r (see Options and the package comment). start
// must be a multiple of BlockSize. It returns the first error of the
// reader, the sink or ctx; a recognizer that panics becomes an error hit
// instead (signatures.Run).
func Scan(ctx context.Context, r io.ReaderAt, start, end int64, opts Options, sink Sink) error {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	chunkSize := opts.ChunkSize
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	imageSize := opts.ImageSize
	if imageSize == 0 {
		imageSize = end
	}
	progress := opts.Progress
	if progress == nil {
		progress = NoProgress{}
	}
	switch {
	case chunkSize < 0 || chunkSize%BlockSize != 0 || chunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk size %d is not a multiple of %d in (0, %d]", ErrOptions, chunkSize, BlockSize, MaxChunkSize)
	case start < 0 || start%BlockSize != 0:
		return fmt.Errorf("%w: start %d is not a non-negative multiple of %d", ErrOptions, start, BlockSize)
	case end < start:
		return fmt.Errorf("%w: end %d is before start %d", ErrOptions, end, start)
	case imageSize < end:
		return fmt.Errorf("%w: end %d is past the image size %d", ErrOptions, end, imageSize)
	}
	rs := opts.Recognizers
	if len(rs) > maxRecognizers {
		return fmt.Errorf("%w: %d recognizers, at most %d", ErrOptions, len(rs), maxRecognizers)
	}
	step := 0 // the offsets tried: a common divisor of every Align
	scratchBytes := 0
	for i := range rs {
		if rs[i].Align <= 0 || rs[i].Window <= 0 || rs[i].Recognize == nil {
			return fmt.Errorf("%w: recognizer %q has align %d, window %d", ErrOptions, rs[i].Name, rs[i].Align, rs[i].Window)
		}
		step = gcd(step, rs[i].Align)
		scratchBytes = max(scratchBytes, rs[i].ScratchBytes)
	}
	margin := signatures.MaxWindow(rs)
	if start == end {
		return nil
	}

	// A fixed pool of chunk buffers bounds memory whatever the image size:
	// each worker holds one, and the collector those that finished out of
	// order (and the hashes those they have not read yet). A worker takes
	// a buffer before it takes the next chunk's number, so the lowest
	// chunk in work always has one and the scan cannot stall; two more
	// than the workers keep them all busy.
	nbuf := workers + 2
	if len(opts.Hashes) > 0 {
		// Room for the hashes to lag the scan by a chunk or two.
		nbuf += hashLag
	}
	pool := make(chan []byte, nbuf)
	for range nbuf {
		pool <- nil // allocated lazily: a small scan needs no 9 MiB buffers
	}
	var zeros []holes.Extent
	if len(opts.Zeros) > 0 && zeroWindowsRejected(rs, scratchBytes) {
		zeros = opts.Zeros
	}
	rd := &reader{r: r, start: start, end: end, imageSize: imageSize, chunkSize: chunkSize, margin: margin,
		chunks: (end - start + int64(chunkSize) - 1) / int64(chunkSize), pool: pool, zeros: zeros}
	if f, ok := r.(*os.File); ok && !opts.NoMap {
		rd.file = f
	}

	g, ctx := errgroup.WithContext(ctx)
	results := make(chan result, workers)
	// The workers get their own group so that results is closed only after
	// the last of them has returned; their errors reach g through it.
	var wg errgroup.Group
	for range workers {
		wg.Go(func() error {
			// A fault reading a mapped chunk panics, to be recovered as
			// an error, instead of ending the process.
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			s := scanner{rs: rs, step: step, magics: newMagicTable(rs)}
			if scratchBytes > 0 {
				s.scratch = make([]byte, scratchBytes)
			}
			for {
				c, err := rd.next(ctx)
				if c == nil || err != nil {
					return err
				}
				res, err := s.scan(c)
				if err != nil {
					return err
				}
				select {
				case results <- result{c, res}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		})
	}
	g.Go(func() error {
		defer close(results)
		return wg.Wait()
	})
	holeBytes := 0
	if zeros != nil {
		holeBytes = chunkSize
	}
	hs := newHashers(opts.Hashes, hashLag, pool, holeBytes)
	for _, l := range hs.lanes {
		g.Go(func() error { return hs.run(ctx, l) })
	}
	g.Go(func() error {
		defer hs.close()
		return collect(ctx, results, hs, sink, progress, end-start)
	})
	err := g.Wait()
	rd.unmapAll() // the chunks an error left in flight
	return err
}

// reader hands out the chunks of [start,end), each read by the worker
// that scans it, with its margin: the reads run on every core, as the
// scans do, instead of one reader feeding them all. A margin is read again
// as the head of the next chunk (from the page cache, a tenth of a chunk).
type reader struct {
	r                     io.ReaderAt
	start, end, imageSize int64
	chunkSize, margin     int
	chunks                int64 // how many chunks [start,end) has
	taken                 atomic.Int64
	pool                  chan []byte
	zeros                 []holes.Extent
	// file, when set, is mapped chunk by chunk rather than read; the
	// first mapping that fails (a pipe, a filesystem that cannot map)
	// sets noMap, and the chunks from then on are read.
	file  *os.File
	noMap atomic.Bool
	mu    sync.Mutex
	live  map[*chunk]func() // the mapped chunks not yet freed, and their unmaps
}

// unmapAll unmaps the chunks still mapped, once nothing reads them.
func (rd *reader) unmapAll() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, release := range rd.live {
		release()
	}
	rd.live = nil
}

// next takes a buffer, then the next chunk, and reads it; nil when every
// chunk is taken.
func (rd *reader) next(ctx context.Context) (*chunk, error) {
	var b []byte
	select {
	case b = <-rd.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	i := rd.taken.Add(1) - 1
	if i >= rd.chunks {
		rd.pool <- b
		return nil, nil
	}
	pos := rd.start + i*int64(rd.chunkSize)
	n := int(min(int64(rd.chunkSize), rd.end-pos))
	want := int(min(int64(rd.margin), rd.imageSize-pos-int64(n))) // margin bytes that exist
	c := &chunk{seq: int(i), start: pos, n: n, avail: n + want}
	if inZeros(rd.zeros, pos, pos+int64(n+want)) {
		rd.pool <- b
		c.hole = true
		return c, nil
	}
	c.token = b
	if rd.file != nil && !rd.noMap.Load() {
		data, release, err := mmap.Range(rd.file, pos, n+want, true)
		if err == nil {
			c.buf = data
			rd.mu.Lock()
			if rd.live == nil {
				rd.live = map[*chunk]func(){}
			}
			rd.live[c] = release
			rd.mu.Unlock()
			c.unmap = func() {
				rd.mu.Lock()
				delete(rd.live, c)
				rd.mu.Unlock()
				release()
			}
			return c, nil
		}
		rd.noMap.Store(true)
	}
	if b == nil {
		b = make([]byte, rd.chunkSize+rd.margin)
	}
	if err := readFull(rd.r, b[:n+want], pos); err != nil {
		rd.pool <- b
		return nil, err
	}
	c.buf, c.token = b, b
	return c, nil
}

// inZeros reports whether [lo, hi) lies inside one of the sorted extents.
func inZeros(zeros []holes.Extent, lo, hi int64) bool {
	i := sort.Search(len(zeros), func(i int) bool { return zeros[i].End > lo })
	return i < len(zeros) && zeros[i].Start <= lo && hi <= zeros[i].End
}

// zeroWindowsRejected reports whether every recognizer rejects an all-zero
// window: only then may a chunk of zeros go unscanned without losing a hit.
func zeroWindowsRejected(rs []signatures.Recognizer, scratchBytes int) bool {
	w := make([]byte, signatures.MaxWindow(rs))
	scratch := make([]byte, scratchBytes)
	for i := range rs {
		if _, ok := signatures.Run(&rs[i], w[:rs[i].Window], scratch[:rs[i].ScratchBytes]); ok {
			return false
		}
	}
	return true
}

// readFull reads len(b) bytes at off, naming the offset on failure; a short
// read (a truncated or shrinking image) is an error, not a shorter scan.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil // io.ReaderAt may return io.EOF with a full read at the end
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("carver: reading %d bytes at image offset %d: got %d: %w", len(b), off, n, err)
}

// collect delivers results in chunk order, feeds the hash, reports progress
// and returns each buffer to the pool once it is no longer needed.
func collect(ctx context.Context, results <-chan result, hs *hashers, sink Sink, progress Progress, total int64) error {
	pending := make(map[int]result)
	nextSeq := 0
	var done, hits int64
	for res := range results {
		pending[res.c.seq] = res
		for {
			p, ok := pending[nextSeq]
			if !ok {
				break
			}
			delete(pending, nextSeq)
			nextSeq++
			if err := hs.feed(ctx, p.c); err != nil {
				return err
			}
			hashed := nextSeq
			p.res.WaitHashed = func() bool { return hs.wait(hashed) }
			if err := sink.Chunk(p.res); err != nil {
				return err
			}
			done += int64(p.c.n)
			hits += int64(len(p.res.Hits))
			progress.Scanned(done, total, hits)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// scanner is one worker's state: its scratch buffer is reused for every
// window, so the hot loop allocates only for hits.
type scanner struct {
	rs      []signatures.Recognizer
	step    int
	scratch []byte
	magics  magicTable
	fps     *[]uint64 // the chunk's fingerprints so far

	// The position of the call in progress, for recovering from a panic.
	off, ri int
}

// maxRecognizers bounds the recognizers of one scan: the magic test
// marks the ones to call in a 64-bit set.
const maxRecognizers = 64

// magicTable is the recognizers' magics (signatures.Magic) compiled for
// the hot loop: every magic is a load, a mask and a compare, with no call.
// Only the recognizers whose magic holds, or that have none, are called:
// in most of an image, none is.
//
// Before the words, one byte of each magic is looked up: its most
// selective masked byte, in a table per byte position that says which
// magics that byte allows. Few bytes are distinct positions (most magics
// start at the window), so a tried offset costs a handful of loads and
// lookups, and a word is compared only for the magics its byte allows.
type magicTable struct {
	always uint64 // recognizers without magics
	end    int    // the bytes past a tried offset the magics read
	tests  []magicTest
	// keyPos and allowed: per distinct key byte position, the tests each
	// of its values allows (a bit per test), the positions side by side
	// for the hot loop; nil when there are too many tests for a 64-bit
	// set, and every test is compared.
	keyPos  []int
	allowed [][256]uint64
}

type magicTest struct {
	offset      int
	mask, value uint64
	rec         uint64 // the recognizer's bit
}

func newMagicTable(rs []signatures.Recognizer) magicTable {
	var t magicTable
	for i, r := range rs {
		bit := uint64(1) << i
		if len(r.Magics) == 0 {
			t.always |= bit
		}
		for _, m := range r.Magics {
			t.tests = append(t.tests, magicTest{offset: m.Offset, mask: m.Mask, value: m.Value, rec: bit})
			t.end = max(t.end, m.Offset+8)
		}
	}
	if len(t.tests) > 64 {
		return t
	}
	keyOf := map[int]int{}
	for i, m := range t.tests {
		// The byte with the most mask bits: the one random bytes fail
		// most often.
		j, best := 0, -1
		for k := range 8 {
			if n := bits.OnesCount8(uint8(m.mask >> (8 * k))); n > best {
				j, best = k, n
			}
		}
		pos := m.offset + j
		k, ok := keyOf[pos]
		if !ok {
			k = len(t.keyPos)
			keyOf[pos] = k
			t.keyPos = append(t.keyPos, pos)
			t.allowed = append(t.allowed, [256]uint64{})
		}
		mb, vb := uint8(m.mask>>(8*j)), uint8(m.value>>(8*j))
		for b := range 256 {
			if uint8(b)&mb == vb {
				t.allowed[k][b] |= 1 << i
			}
		}
	}
	return t
}

// candidates returns the set of recognizers to call at offset off of buf.
func (t *magicTable) candidates(buf []byte, off int) uint64 {
	set := t.always
	if off+t.end <= len(buf) && t.keyPos != nil {
		w := buf[off : off+t.end]
		allowed := uint64(0)
		tables := t.allowed[:len(t.keyPos)]
		for i, pos := range t.keyPos {
			allowed |= tables[i][w[pos]]
		}
		for ; allowed != 0; allowed &= allowed - 1 {
			m := &t.tests[bits.TrailingZeros64(allowed)]
			if binary.LittleEndian.Uint64(w[m.offset:])&m.mask == m.value {
				set |= m.rec
			}
		}
		return set
	}
	// Near the end of the image: a magic the window is too short for
	// tells nothing, and Recognize decides.
	for _, m := range t.tests {
		if p := off + m.offset; p+8 > len(buf) || binary.LittleEndian.Uint64(buf[p:])&m.mask == m.value {
			set |= m.rec
		}
	}
	return set
}

func (s *scanner) scan(c *chunk) (res ChunkResult, err error) {
	res = ChunkResult{Start: c.start, End: c.start + int64(c.n)}
	if c.hole {
		res.Fingerprints = make([]uint64, (c.n+BlockSize-1)/BlockSize)
		return res, nil
	}
	if c.unmap != nil {
		defer func() {
			if p := recover(); p != nil {
				err = c.fault(p)
			}
		}()
	}
	res.Fingerprints = make([]uint64, 0, (c.n+BlockSize-1)/BlockSize)
	s.fps = &res.Fingerprints
	if s.step > 0 {
		// The first tried offset is the first multiple of step at or after
		// the chunk start (chunks start on BlockSize boundaries, so this is
		// the start itself whenever step divides BlockSize).
		s.off = int((int64(s.step) - c.start%int64(s.step)) % int64(s.step))
		s.ri = 0
		for !s.recognizeFrom(c, &res.Hits) {
			// Recognizer ri panicked at off. signatures.Run turns the
			// same call into the canonical error hit (recognizers are
			// pure, so it panics again, inside Run's recover); then the
			// scan goes on with the next recognizer.
			r := &s.rs[s.ri]
			if h, ok := signatures.Run(r, s.window(c, r), s.scratchFor(r)); ok {
				h.Offset = c.start + int64(s.off)
				res.Hits = append(res.Hits, h)
			}
			s.ri++
		}
	}
	// The loop emits hits by offset then in recognizer order; sort by kind
	// within an offset so the order does not depend on the order the
	// recognizers were selected in.
	slices.SortStableFunc(res.Hits, func(a, b signatures.Hit) int {
		if a.Offset != b.Offset {
			if a.Offset < b.Offset {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	s.fingerprintTo(c, c.n)
	return res, nil
}

// fingerprintTo fingerprints the chunk's blocks that start before off and
// are not yet done. The hot loop calls it as it reaches each block, so
// that hashing brings the block into the cache the recognizers' magics
// are then tested in.
func (s *scanner) fingerprintTo(c *chunk, off int) {
	for done := len(*s.fps) * BlockSize; done < off && done < c.n; done += BlockSize {
		*s.fps = append(*s.fps, fingerprint.Hash(c.buf[done:min(done+BlockSize, c.n)]))
	}
}

// recognizeFrom is the hot loop: every recognizer at every tried offset of
// the chunk, from (s.off, s.ri) on. It calls Recognize directly under one
// deferred recover per chunk rather than through signatures.Run, whose
// per-call defer costs about a quarter of the scan time; it returns false
// if a recognizer panicked, with s.off and s.ri naming the call.
func (s *scanner) recognizeFrom(c *chunk, hits *[]signatures.Hit) (finished bool) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := c.faultOffset(p); ok {
				panic(p) // not the recognizer's: the image's (scan recovers it)
			}
			finished = false
		}
	}()
	buf := c.buf[:c.avail]
	rs := s.rs
	for ; s.off < c.n; s.off, s.ri = s.off+s.step, 0 {
		off := s.off
		abs := c.start + int64(off)
		if off%BlockSize == 0 {
			s.fingerprintTo(c, off+1)
		}
		// The recognizers to call, from ri on (after a panic, the scan
		// resumes at the next one).
		set := s.magics.candidates(buf, off) &^ (1<<s.ri - 1)
		for ; set != 0; set &= set - 1 {
			s.ri = bits.TrailingZeros64(set)
			r := &rs[s.ri]
			if r.Align != s.step && abs%int64(r.Align) != 0 {
				continue
			}
			if h, ok := r.Recognize(buf[off:min(off+r.Window, len(buf))], s.scratchFor(r)); ok {
				h.Offset = abs
				*hits = append(*hits, h)
			}
		}
	}
	return true
}

func (s *scanner) window(c *chunk, r *signatures.Recognizer) []byte {
	return c.buf[s.off:min(s.off+r.Window, c.avail)]
}

func (s *scanner) scratchFor(r *signatures.Recognizer) []byte {
	if r.ScratchBytes == 0 {
		return nil
	}
	return s.scratch[:r.ScratchBytes]
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
