package ewf

import (
	"bytes"
	"compress/zlib"
	"container/list"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
)

// cacheBytes is the chunk cache's budget: the chunks a read only partly
// covers (a read's head and tail, small reads of headers and tables) are
// kept, since the next read usually starts inside the last one's tail
// (the carver reads its chunks with a margin). Chunks a read covers whole
// are decoded straight into the caller's buffer and not kept.
const cacheBytes = 16 << 20

// Segment describes one segment file of an image.
type Segment struct {
	Number int
	Path   string
	Size   int64
}

// SegmentFile is a segment file's bytes, for NewImage.
type SegmentFile struct {
	Path string
	R    io.ReaderAt
	Size int64
}

// Image is an EWF-E01 image: an io.ReaderAt over the acquired media.
// It is safe for concurrent use.
type Image struct {
	segs      []*segment
	tables    []tableRef // by first chunk
	vol       Volume
	size      int64
	chunkSize int64
	hashes    []StoredHash
	errors    []SectorRun
	closers   []io.Closer
	cache     *chunkCache
	// decoding admits GOMAXPROCS chunk decodes at a time across all
	// ReadAt calls (the carver's workers read at once, each read decodes
	// in parallel): that bounds the CPU they take and the scratch memory.
	decoding  chan struct{}
	scratch   sync.Pool // *[]byte of maxStoredSize(chunkSize)
	inflaters sync.Pool // *inflater
}

// tableRef is a table in the set and the first chunk it maps.
type tableRef struct {
	seg   *segment
	t     table
	first int64
}

// Open opens the image whose first segment file is path (image.E01),
// finding the others beside it by the naming scheme (image.E02, …,
// image.E99, image.EAA, …): as many as the segments' own next and done
// sections say there are, each checked to carry its segment number and
// the set's media. The files are only ever read.
func Open(path string) (*Image, error) {
	var closers []io.Closer
	fail := func(err error) (*Image, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, err
	}
	var segs []*segment
	var vol *Volume
	for n := 1; ; n++ {
		p := path
		if n > 1 {
			var err error
			if p, err = SegmentPath(path, n); err != nil {
				return fail(err)
			}
		}
		f, err := os.Open(p)
		if err != nil {
			if n > 1 && errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("%w: segment %d of %s is missing (%s): segment %d ends with a next section", ErrSegments, n, path, p, n-1)
			}
			return fail(fmt.Errorf("ewf: %w", err))
		}
		closers = append(closers, f)
		fi, err := f.Stat()
		if err != nil {
			return fail(fmt.Errorf("ewf: %w", err))
		}
		s, err := readSegment(f, fi.Size(), p, vol)
		if err != nil {
			return fail(err)
		}
		if s.number != n {
			return fail(fmt.Errorf("%w: %s is segment %d of its set, not %d (open the set's first segment, .E01)", ErrSegments, p, s.number, n))
		}
		vol = s.volume
		segs = append(segs, s)
		if s.last {
			break
		}
		if n == MaxSegments {
			return fail(fmt.Errorf("%w: segment %d (%s) ends with a next section, but the naming scheme stops there", ErrSegments, n, p))
		}
	}
	m, err := assemble(segs)
	if err != nil {
		return fail(err)
	}
	m.closers = closers
	return m, nil
}

// NewImage reads an image from its segment files, given in order (for
// segments that are not files of their own: tests, fuzzing, archives).
func NewImage(files []SegmentFile) (*Image, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no segment files", ErrSegments)
	}
	var segs []*segment
	var vol *Volume
	for i, f := range files {
		s, err := readSegment(f.R, f.Size, f.Path, vol)
		if err != nil {
			return nil, err
		}
		if s.number != i+1 {
			return nil, fmt.Errorf("%w: %s is segment %d of its set, not %d", ErrSegments, f.Path, s.number, i+1)
		}
		if s.last != (i == len(files)-1) {
			if s.last {
				return nil, fmt.Errorf("%w: segment %d (%s) ends with done, but %d more were given", ErrSegments, s.number, f.Path, len(files)-1-i)
			}
			return nil, fmt.Errorf("%w: segment %d (%s) ends with a next section, but it is the last given", ErrSegments, s.number, f.Path)
		}
		vol = s.volume
		segs = append(segs, s)
	}
	return assemble(segs)
}

// assemble checks that the segments' tables map the media and makes the
// image.
func assemble(segs []*segment) (*Image, error) {
	first := segs[0]
	if first.volume == nil {
		return nil, &FormatError{Struct: "segment", Field: "volume", Value: "none", Reason: "the first segment has no volume section"}
	}
	m := &Image{segs: segs, vol: *first.volume}
	m.chunkSize = m.vol.ChunkSize()
	m.size = m.vol.MediaSize()
	chunks := int64(0)
	for _, s := range segs {
		for _, t := range s.tables {
			m.tables = append(m.tables, tableRef{seg: s, t: t, first: chunks})
			chunks += t.count
		}
		m.hashes = append(m.hashes, s.hashes...)
		m.errors = append(m.errors, s.errors...)
	}
	if chunks != m.vol.ChunkCount {
		return nil, fmt.Errorf("%w: the %d segments' tables map %d chunks, the volume section says %d: a segment is missing, truncated or of another set",
			ErrSegments, len(segs), chunks, m.vol.ChunkCount)
	}
	m.cache = newChunkCache(max(4, cacheBytes/int(m.chunkSize)))
	m.decoding = make(chan struct{}, runtime.GOMAXPROCS(0))
	stored := int(maxStoredSize(m.chunkSize))
	m.scratch.New = func() any { b := make([]byte, stored); return &b }
	m.inflaters.New = func() any { return new(inflater) }
	return m, nil
}

// Close closes the segment files Open opened.
func (m *Image) Close() error {
	var first error
	for _, c := range m.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.closers = nil
	return first
}

// Size is the media's size in bytes.
func (m *Image) Size() int64 { return m.size }

// ChunkSize is the media bytes one chunk holds.
func (m *Image) ChunkSize() int64 { return m.chunkSize }

// Volume is what the set's volume section says.
func (m *Image) Volume() Volume { return m.vol }

// Segments lists the segment files, in order.
func (m *Image) Segments() []Segment {
	out := make([]Segment, len(m.segs))
	for i, s := range m.segs {
		out[i] = Segment{Number: s.number, Path: s.path, Size: s.size}
	}
	return out
}

// StoredHashes lists the digests of the media the set records, as found
// (the hash section's MD5, the digest section's MD5 and SHA-1).
func (m *Image) StoredHashes() []StoredHash { return append([]StoredHash(nil), m.hashes...) }

// StoredMD5 is the MD5 the set records (hex), "" if none: the digest
// section's, else the hash section's.
func (m *Image) StoredMD5() string { return m.stored("md5") }

// StoredSHA1 is the SHA-1 the set records (hex), "" if none.
func (m *Image) StoredSHA1() string { return m.stored("sha1") }

func (m *Image) stored(name string) string {
	v := ""
	for _, h := range m.hashes {
		if h.Name == name && (v == "" || h.Section == secDigest) {
			v = h.Value
		}
	}
	return v
}

// ByteRange is the media bytes [Start, End).
type ByteRange struct{ Start, End int64 }

// ReadErrors lists the media bytes that the acquiring tool could not read
// (its error2 section), sorted and merged: the image holds what the tool
// filled in there (zeros), not the media's bytes.
func (m *Image) ReadErrors() []ByteRange {
	var out []ByteRange
	bps := m.vol.BytesPerSector
	for _, r := range m.errors {
		// First and Count are 32-bit and bps at most 2^16: no overflow.
		if lo, hi := r.First*bps, min((r.First+r.Count)*bps, m.size); hi > lo {
			out = append(out, ByteRange{lo, hi})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, r.End)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// StoredChunk is where a chunk's bytes are stored.
type StoredChunk struct {
	Segment    int    // segment number, from 1
	Path       string // segment file
	Offset     int64  // of the stored bytes in the segment file
	Size       int64  // stored bytes (the zlib stream, or the data and its Adler-32)
	Compressed bool
}

// Chunk says where chunk i (from 0) is stored: for examiners' reports
// and for tests that damage a chunk on purpose.
func (m *Image) Chunk(i int64) (StoredChunk, error) {
	if i < 0 || i >= m.vol.ChunkCount {
		return StoredChunk{}, fmt.Errorf("ewf: chunk %d: the set has chunks 0 to %d", i, m.vol.ChunkCount-1)
	}
	locs, err := m.locate(i, i)
	if err != nil {
		return StoredChunk{}, err
	}
	loc := locs[0]
	if loc.err != nil {
		return StoredChunk{}, loc.err
	}
	return StoredChunk{Segment: loc.seg.number, Path: loc.seg.path, Offset: loc.off, Size: loc.end - loc.off, Compressed: loc.compressed}, nil
}

// chunkLoc is where one chunk is stored.
type chunkLoc struct {
	seg        *segment
	index      int64 // chunk number
	off, end   int64 // stored bytes [off, end) in the segment file
	compressed bool
	err        error // its table entries do not check: where it lies is not known
}

// ReadAt reads media bytes. Chunks are decoded (and checked) as they are
// read; a read of many chunks decodes them in parallel, on up to
// GOMAXPROCS goroutines. A chunk that fails gives a *ChunkError, and n
// counts the bytes before it.
func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	n, _, err := m.read(p, off, false)
	return n, err
}

// ReadAtZeroDamaged reads as ReadAt does, except that a damaged chunk (a
// *ChunkError that IsDamage: its stored bytes do not decode or check, or
// its table entry does not) does not end the read: its bytes in p are
// zeros, and its error is returned in damaged, in media order. Errors
// reading a segment file still end the read, as ReadAt's do. The caller
// must treat the damaged chunks' bytes as unknown: the zeros are not the
// media's.
func (m *Image) ReadAtZeroDamaged(p []byte, off int64) (n int, damaged []*ChunkError, err error) {
	return m.read(p, off, true)
}

// IsDamage reports whether err is a chunk whose stored bytes are damaged
// (ErrChecksum, ErrFormat): the chunk will fail every read, and only it.
// Other errors (reading a segment file) may be passing, or not the
// chunk's.
func IsDamage(err error) bool {
	var ce *ChunkError
	return errors.As(err, &ce) && (errors.Is(ce.Err, ErrChecksum) || errors.Is(ce.Err, ErrFormat))
}

func (m *Image) read(p []byte, off int64, zeroDamaged bool) (int, []*ChunkError, error) {
	if off < 0 {
		return 0, nil, fmt.Errorf("ewf: read at negative offset %d", off)
	}
	if off >= m.size {
		if len(p) == 0 {
			return 0, nil, nil
		}
		return 0, nil, io.EOF
	}
	n := int(min(int64(len(p)), m.size-off))
	if n == 0 {
		return 0, nil, nil
	}
	firstChunk, lastChunk := off/m.chunkSize, (off+int64(n)-1)/m.chunkSize
	locs, err := m.locate(firstChunk, lastChunk)
	if err != nil {
		return 0, nil, err
	}
	errs := make([]error, len(locs))
	read := func(i int) {
		loc := locs[i]
		start := loc.index * m.chunkSize
		want := min(m.chunkSize, m.size-start)
		// The part of the chunk p wants: [lo, hi) of the chunk's bytes.
		lo, hi := max(off-start, 0), min(off+int64(n)-start, want)
		dst := p[start+lo-off : start+hi-off]
		defer func() {
			if errs[i] != nil && zeroDamaged && IsDamage(errs[i]) {
				clear(dst) // whatever a failed decode left there
			}
		}()
		if loc.err != nil {
			errs[i] = loc.err
			return
		}
		if lo == 0 && hi == want {
			errs[i] = m.decode(loc, dst)
			return
		}
		b, ok := m.cache.get(loc.index)
		if !ok {
			b = make([]byte, want)
			if errs[i] = m.decode(loc, b); errs[i] != nil {
				return
			}
			m.cache.put(loc.index, b)
		}
		copy(dst, b[lo:hi])
	}
	if len(locs) == 1 {
		read(0)
	} else {
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for i := range locs {
			g.Go(func() error { read(i); return nil })
		}
		g.Wait()
	}
	// The first failing chunk in media order, whichever goroutine met it
	// first: the same read gives the same error.
	var damaged []*ChunkError
	for i, err := range errs {
		if err == nil {
			continue
		}
		if zeroDamaged && IsDamage(err) {
			var ce *ChunkError
			errors.As(err, &ce)
			damaged = append(damaged, ce)
			continue
		}
		return int(max(locs[i].index*m.chunkSize-off, 0)), damaged, err
	}
	if n < len(p) {
		return n, damaged, io.EOF
	}
	return n, damaged, nil
}

// locate finds where chunks first..last are stored, reading each table's
// entries for them in one read. A chunk whose entries do not check (the
// file changed since it was opened) gets its error in its loc.
func (m *Image) locate(first, last int64) ([]chunkLoc, error) {
	locs := make([]chunkLoc, 0, last-first+1)
	ti := sort.Search(len(m.tables), func(i int) bool { return m.tables[i].first+m.tables[i].t.count > first })
	var buf []byte
	for c := first; c <= last; ti++ {
		if ti >= len(m.tables) {
			return nil, fmt.Errorf("%w: chunk %d is in no table", ErrFormat, c) // assemble makes this impossible
		}
		tr := &m.tables[ti]
		t := &tr.t
		j0, j1 := c-tr.first, min(last-tr.first, t.count-1) // entries j0..j1 of this table
		k := j1 - j0 + 1
		if j1+1 < t.count {
			k++ // and the next one, where chunk j1 ends
		}
		if need := int(k * tableEntrySize); cap(buf) < need {
			buf = make([]byte, need)
		}
		b := buf[:k*tableEntrySize]
		at := t.entries + j0*tableEntrySize
		if got, err := tr.seg.r.ReadAt(b, at); got < len(b) {
			return nil, fmt.Errorf("ewf: segment %d (%s): reading table entries at %d: %w", tr.seg.number, tr.seg.path, at, noEOF(err))
		}
		maxStored := maxStoredSize(m.chunkSize)
		for j := j0; j <= j1; j++ {
			e := le.Uint32(b[(j-j0)*tableEntrySize:])
			loc := chunkLoc{seg: tr.seg, index: tr.first + j, off: entryOffset(t.base, e), end: t.dataEnd, compressed: e&entryCompressed != 0}
			if j+1 < t.count {
				loc.end = entryOffset(t.base, le.Uint32(b[(j+1-j0)*tableEntrySize:]))
			}
			// Checked when the segment was opened; checked again, as the
			// file is read again.
			err := t.checkChunk("table", j, -1, loc.off, maxStored)
			if err == nil {
				err = t.checkChunk("table", j+1, loc.off, loc.end, maxStored)
			}
			if err != nil {
				loc.err = m.chunkError(loc, err)
			}
			locs = append(locs, loc)
		}
		c = tr.first + j1 + 1
	}
	return locs, nil
}

func (m *Image) chunkError(loc chunkLoc, err error) error {
	media := loc.index * m.chunkSize
	return &ChunkError{Segment: loc.seg.number, Path: loc.seg.path, Chunk: loc.index, Media: media, Length: min(m.chunkSize, m.size-media), Offset: loc.off, Err: err}
}

// inflater is a reusable zlib reader.
type inflater struct {
	br bytes.Reader
	zr io.ReadCloser
}

// decode reads chunk loc into dst, which is the chunk's media bytes (the
// chunk size, or less for the media's last chunk), and checks it: zlib's
// Adler-32 for a compressed chunk, the one stored after the data for one
// that is not.
func (m *Image) decode(loc chunkLoc, dst []byte) error {
	m.decoding <- struct{}{}
	defer func() { <-m.decoding }()
	sp := m.scratch.Get().(*[]byte)
	defer m.scratch.Put(sp)
	stored := (*sp)[:loc.end-loc.off]
	if got, err := loc.seg.r.ReadAt(stored, loc.off); got < len(stored) {
		return m.chunkError(loc, fmt.Errorf("reading %d stored bytes: %w", len(stored), noEOF(err)))
	}
	// The media's last chunk may hold more than the media's last bytes
	// (a sector count rounded down): those are read and dropped.
	extra := m.chunkSize - int64(len(dst))
	if !loc.compressed {
		data := len(stored) - chunkChecksumLen
		if int64(data) < int64(len(dst)) || int64(data) > int64(len(dst))+extra {
			return m.chunkError(loc, fmt.Errorf("%w: an uncompressed chunk of %d bytes, want %d", ErrFormat, data, len(dst)))
		}
		if got, want := adler32.Checksum(stored[:data]), le.Uint32(stored[data:]); got != want {
			return m.chunkError(loc, fmt.Errorf("%w: the chunk's Adler-32 is %s, %s stored", ErrChecksum, hex32(got), hex32(want)))
		}
		copy(dst, stored)
		return nil
	}
	inf := m.inflaters.Get().(*inflater)
	defer m.inflaters.Put(inf)
	inf.br.Reset(stored)
	var err error
	if inf.zr == nil {
		inf.zr, err = zlib.NewReader(&inf.br)
	} else {
		err = inf.zr.(zlib.Resetter).Reset(&inf.br, nil)
	}
	if err != nil {
		inf.zr = nil
		return m.chunkError(loc, fmt.Errorf("%w: zlib: %v", ErrFormat, err))
	}
	if _, err := io.ReadFull(inf.zr, dst); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return m.chunkError(loc, fmt.Errorf("%w: inflates to fewer than its %d bytes", ErrFormat, len(dst)))
		}
		return m.chunkError(loc, zlibError(err))
	}
	// Read to the stream's end: only there does zlib check its Adler-32.
	switch k, err := io.CopyN(io.Discard, inf.zr, extra+1); {
	case err == nil:
		return m.chunkError(loc, fmt.Errorf("%w: inflates to more than the chunk size %d", ErrFormat, m.chunkSize))
	case err != io.EOF:
		return m.chunkError(loc, zlibError(err))
	case k > extra:
		return m.chunkError(loc, fmt.Errorf("%w: inflates to more than the chunk size %d", ErrFormat, m.chunkSize))
	}
	return nil
}

func zlibError(err error) error {
	if errors.Is(err, zlib.ErrChecksum) {
		return fmt.Errorf("%w: %v", ErrChecksum, err)
	}
	return fmt.Errorf("%w: %v", ErrFormat, err)
}

func noEOF(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// SegmentPath names segment n (2 or more) of the set whose first segment
// is first: first's extension is .E01 (or .e01, .s01, .L01: the letter and
// case are kept), segment n ≤ 99 is .E<n>, and from 100 on the last two
// letters count AA, AB, …, ZZ and then the first letter advances: .EAA …
// .EZZ, .FAA … .ZZZ.
func SegmentPath(first string, n int) (string, error) {
	ext := filepath.Ext(first)
	if len(ext) != 4 || ext[2:] != "01" || !isLetter(ext[1]) {
		return "", fmt.Errorf("%w: %s does not end in a first segment's extension (.E01): its next segment cannot be named", ErrSegments, first)
	}
	if n < 2 || n > MaxSegments {
		return "", fmt.Errorf("%w: segment %d: want 2 to %d", ErrSegments, n, MaxSegments)
	}
	base := first[:len(first)-3]
	if n <= 99 {
		return fmt.Sprintf("%s%c%02d", base, ext[1], n), nil
	}
	a := byte('A')
	if ext[1] >= 'a' {
		a = 'a'
	}
	k := n - 100
	c0 := ext[1] + byte(k/(26*26))
	if c0 > a+25 {
		return "", fmt.Errorf("%w: segment %d cannot be named after %s", ErrSegments, n, first)
	}
	return fmt.Sprintf("%s%c%c%c", base, c0, a+byte(k/26%26), a+byte(k%26)), nil
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

// chunkCache keeps the last decoded chunks that reads covered in part.
// The cached slices are never written after they are put.
type chunkCache struct {
	mu  sync.Mutex
	max int
	ll  list.List // front: most recently used; values are *cachedChunk
	m   map[int64]*list.Element
}

type cachedChunk struct {
	index int64
	data  []byte
}

func newChunkCache(n int) *chunkCache {
	return &chunkCache{max: n, m: make(map[int64]*list.Element, n)}
}

func (c *chunkCache) get(i int64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[i]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cachedChunk).data, true
}

func (c *chunkCache) put(i int64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[i]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.m[i] = c.ll.PushFront(&cachedChunk{index: i, data: data})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.m, e.Value.(*cachedChunk).index)
	}
}
