package pipeline

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sync/singleflight"

	"vmdkcarve/fingerprint"
)

// fingerprints.bin layout (all little-endian):
//
//	0  [4]byte "VCFP"
//	4  u32     version (5)
//	8  u32     block size (4096)
//	12 u32     reserved, zero (keeps the u64 fields 8-aligned)
//	16 u64     image offset of the first block
//	24 u64     number of blocks
//	32 u64 ... one record per block, in offset order: its fingerprint
//	           (fingerprint.Hash, XXH3: 0 = all-zero block; bit 63 clear),
//	           or, with bit 63 set, a run of that many all-zero blocks
//
// A run stands for at least minZeroRun zero blocks, so that holes and
// zeroed areas cost a record instead of 8 bytes per 4 KiB; shorter runs of
// zero blocks are written block by block. Earlier versions are still
// read, their blocks hashed with xxhash64 (fingerprint.HashXXH64): version
// 4 (runs), 3 (one record per block) and 2 (bit 63 flagging random-looking
// blocks). From version 3 on, randomness is left to rebuild (UseImage),
// which tests only the blocks it asks about.
const (
	fpMagic        = "VCFP"
	fpVersion      = 5
	fpVersionXXH64 = 4 // runs, xxhash64
	fpVersionDense = 3 // one record per block
	fpVersionRand  = 2 // one record per block, bit 63 = random-looking
	fpHeaderSize   = 32
	fpCountOffset  = 24
	fpEntrySize    = 8
	fpZeroRun      = 1 << 63
	minZeroRun     = 256 // blocks (1 MiB) a zero run must hold

	maxFingerprint = 1 << 40 // blocks: 4 PiB of image, a plausibility cap on the header count
)

// ErrFingerprints reports a fingerprints.bin that is not one or is damaged.
var ErrFingerprints = errors.New("pipeline: bad fingerprints file")

// Fingerprints reads a fingerprints.bin file. Once set up (UseImage,
// Unknown), its lookups are safe for concurrent use: rebuild places
// several files at once.
type Fingerprints struct {
	First     int64 // image offset of the first block
	Count     int64 // blocks
	BlockSize int64

	// segs are the runs of blocks that have records of their own, in
	// block order; blocks between them are zero. Their records are in
	// memory for small files, else read from file one by one.
	segs  []fpSegment
	file  *os.File
	errMu sync.Mutex
	err   error // the first read error a lookup met (errMu)

	// version of the file: from 3 on, bit 63 is not stored and At computes
	// it from the image given to UseImage, remembering every block tested;
	// before 5, blocks were hashed with xxhash64.
	version uint32
	random  *randomBits
	// unknown are image areas whose blocks At does not know (not rescued,
	// by a ddrescue mapfile): their stored fingerprints are of the zeros
	// ddrescue filled in.
	unknown []Range
}

func fpHeader(first, count int64) []byte {
	h := make([]byte, fpHeaderSize)
	copy(h, fpMagic)
	binary.LittleEndian.PutUint32(h[4:], fpVersion)
	binary.LittleEndian.PutUint32(h[8:], fingerprint.BlockSize)
	binary.LittleEndian.PutUint64(h[16:], uint64(first))
	binary.LittleEndian.PutUint64(h[24:], uint64(count))
	return h
}

// OpenFingerprints opens and checks a fingerprints.bin file: the header must
// be ours and the file exactly as long as the header's count says.
func OpenFingerprints(path string) (*Fingerprints, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening fingerprints: %w", err)
	}
	fp, err := readFingerprints(f, path)
	if err != nil || fp.file == nil {
		f.Close()
	}
	return fp, err
}

// fpSegment is a run of n blocks from block first with a record each, at
// file offset off (vals, when the file is read into memory).
type fpSegment struct {
	first, n, off int64
	vals          []uint64
}

func readFingerprints(f *os.File, path string) (*Fingerprints, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", path, err)
	}
	h := make([]byte, fpHeaderSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, fmt.Errorf("%w: %s: header: %v", ErrFingerprints, path, err)
	}
	le := binary.LittleEndian
	fp := &Fingerprints{First: int64(le.Uint64(h[16:])), BlockSize: int64(le.Uint32(h[8:]))}
	count, version := le.Uint64(h[24:]), le.Uint32(h[4:])
	switch {
	case string(h[:4]) != fpMagic:
		return nil, fmt.Errorf("%w: %s: magic %q, want %q", ErrFingerprints, path, h[:4], fpMagic)
	case version != fpVersion && version != fpVersionXXH64 && version != fpVersionDense && version != fpVersionRand:
		return nil, fmt.Errorf("%w: %s: version %d, want %d", ErrFingerprints, path, version, fpVersion)
	case fp.BlockSize != fingerprint.BlockSize:
		return nil, fmt.Errorf("%w: %s: block size %d, want %d", ErrFingerprints, path, fp.BlockSize, fingerprint.BlockSize)
	case fp.First < 0 || fp.First%fingerprint.BlockSize != 0:
		return nil, fmt.Errorf("%w: %s: first block offset %d is not block-aligned", ErrFingerprints, path, fp.First)
	case count > maxFingerprint || (version <= fpVersionDense && st.Size() != fpHeaderSize+int64(count)*fpEntrySize):
		return nil, fmt.Errorf("%w: %s: header says %d blocks but the file is %d bytes (truncated or unfinished)", ErrFingerprints, path, count, st.Size())
	case (st.Size()-fpHeaderSize)%fpEntrySize != 0:
		return nil, fmt.Errorf("%w: %s: %d bytes is not a whole number of records", ErrFingerprints, path, st.Size())
	}
	fp.Count = int64(count)
	fp.version = version
	runs := version >= fpVersionXXH64
	inMemory := st.Size() <= fpInMemoryMax
	// In memory, every segment's values are one slice of vals, allocated
	// once for all the records: growing each segment's own slice as its
	// records came had copied the values of a dense case over and over.
	var vals []uint64
	if inMemory {
		vals = make([]uint64, 0, (st.Size()-fpHeaderSize)/fpEntrySize)
	}
	if !runs {
		fp.segs = []fpSegment{{first: 0, n: fp.Count, off: fpHeaderSize}}
	}
	// One pass over the records: the dense versions' values (in memory),
	// or version 4's segments between its zero runs.
	// The records are read a chunk at a time and decoded from it: a read
	// per record (a million per 4 GiB of image) had cost more than the rest
	// of this loop.
	size := st.Size()
	buf := make([]byte, min(1<<20, size-fpHeaderSize))
	block := int64(0)
	// seg is the segment the records read last belong to, nil after a zero
	// run (and before the first record).
	var seg *fpSegment
	for at := int64(fpHeaderSize); at < size; {
		chunk := buf[:min(int64(len(buf)), size-at)]
		if _, err := io.ReadFull(f, chunk); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFingerprints, path, err)
		}
		if !runs {
			if inMemory {
				for i := 0; i < len(chunk); i += fpEntrySize {
					vals = append(vals, le.Uint64(chunk[i:]))
				}
			}
			at += int64(len(chunk))
			continue
		}
		for i := 0; i < len(chunk); i += fpEntrySize {
			v := le.Uint64(chunk[i:])
			if v&fpZeroRun != 0 {
				n := int64(v &^ fpZeroRun)
				if n < 1 || n > fp.Count-block {
					return nil, fmt.Errorf("%w: %s: a zero run of %d blocks at block %d of %d", ErrFingerprints, path, n, block, fp.Count)
				}
				block += n
				seg = nil
				continue
			}
			if block >= fp.Count {
				return nil, fmt.Errorf("%w: %s: records past the %d blocks the header says", ErrFingerprints, path, fp.Count)
			}
			if seg == nil {
				fp.segs = append(fp.segs, fpSegment{first: block, off: at + int64(i)})
				seg = &fp.segs[len(fp.segs)-1]
			}
			seg.n++
			if inMemory {
				vals = append(vals, v)
			}
			block++
		}
		at += int64(len(chunk))
	}
	if inMemory {
		// The segments' records follow each other in vals.
		for i := range fp.segs {
			seg := &fp.segs[i]
			seg.vals, vals = vals[:seg.n:seg.n], vals[seg.n:]
		}
	}
	if runs && block != fp.Count {
		return nil, fmt.Errorf("%w: %s: header says %d blocks but the records hold %d (truncated or unfinished)", ErrFingerprints, path, count, block)
	}
	if !inMemory {
		fp.file = f
	}
	return fp, nil
}

// At returns the fingerprint of the block holding image offset off, as
// fingerprint.Of gives it (bit 63 set for a random-looking block, once
// UseImage has given the image); false if the file does not cover it (or
// a read failed: see Err).
func (fp *Fingerprints) At(off int64) (uint64, bool) {
	v, ok := fp.known(off)
	if !ok || v == 0 || fp.version == fpVersionRand || fp.random == nil {
		return v, ok
	}
	r, err := fp.random.at(fp, off)
	if err != nil {
		fp.fail(err)
		return 0, false
	}
	if r {
		v |= fingerprint.RandomBit
	}
	return v, true
}

// HashAt returns the fingerprint of the block holding off without its
// RandomBit, and without testing the block for randomness: for a lookup
// by hash over many blocks (copy anchors walk the whole image).
func (fp *Fingerprints) HashAt(off int64) (uint64, bool) {
	v, ok := fp.known(off)
	return v &^ fingerprint.RandomBit, ok
}

// known is entry, but not for the blocks Unknown names.
func (fp *Fingerprints) known(off int64) (uint64, bool) {
	if fp.unknown != nil {
		blk := off / fp.BlockSize * fp.BlockSize
		if _, bad := overlapsAny(fp.unknown, blk, blk+fp.BlockSize); bad {
			return 0, false
		}
	}
	return fp.entry(off)
}

// entry returns the fingerprint stored for the block holding off.
func (fp *Fingerprints) entry(off int64) (uint64, bool) {
	if off < fp.First {
		return 0, false
	}
	i := (off - fp.First) / fp.BlockSize
	if i >= fp.Count {
		return 0, false
	}
	k := sort.Search(len(fp.segs), func(k int) bool { return fp.segs[k].first+fp.segs[k].n > i })
	if k == len(fp.segs) || fp.segs[k].first > i {
		return 0, true // in a zero run
	}
	seg := &fp.segs[k]
	if seg.vals != nil || fp.file == nil {
		return seg.vals[i-seg.first], true
	}
	var b [fpEntrySize]byte
	if _, err := fp.file.ReadAt(b[:], seg.off+(i-seg.first)*fpEntrySize); err != nil {
		fp.fail(fmt.Errorf("pipeline: reading fingerprint of block %d: %w", i, err))
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

// copyTo encodes the records of n blocks from block first into e, in
// order, zero runs as runs.
func (fp *Fingerprints) copyTo(e *fpEncoder, first, n int64) error {
	end := first + n
	for b := first; b < end; {
		k := sort.Search(len(fp.segs), func(k int) bool { return fp.segs[k].first+fp.segs[k].n > b })
		if k == len(fp.segs) || fp.segs[k].first > b {
			next := end
			if k < len(fp.segs) {
				next = min(end, fp.segs[k].first)
			}
			e.zeros(next - b)
			b = next
			continue
		}
		seg := &fp.segs[k]
		stop := min(end, seg.first+seg.n)
		if seg.vals != nil || fp.file == nil {
			for _, v := range seg.vals[b-seg.first : stop-seg.first] {
				e.add(v)
			}
			b = stop
			continue
		}
		// A file too large for memory: its records read in one sweep,
		// not one read per block.
		r := bufio.NewReaderSize(io.NewSectionReader(fp.file, seg.off+(b-seg.first)*fpEntrySize, (stop-b)*fpEntrySize), 1<<20)
		var rec [fpEntrySize]byte
		for ; b < stop; b++ {
			if _, err := io.ReadFull(r, rec[:]); err != nil {
				return fmt.Errorf("%w: block %d: %v", ErrFingerprints, b, err)
			}
			e.add(binary.LittleEndian.Uint64(rec[:]))
		}
	}
	return nil
}

// fpEncoder writes fingerprint records: a run of minZeroRun or more zero
// blocks as one record, every other block as its fingerprint. The encoding
// depends only on the blocks, so a merge that encodes the same blocks
// writes the same bytes however they were split into shards.
type fpEncoder struct {
	w       io.Writer
	pending int64 // zero blocks not yet written
	buf     []byte
	written int64 // bytes
	err     error
}

func (e *fpEncoder) add(v uint64) {
	if v == 0 {
		e.pending++
		return
	}
	e.flushZeros()
	e.record(v)
}

func (e *fpEncoder) zeros(n int64) { e.pending += n }

func (e *fpEncoder) flushZeros() {
	switch {
	case e.pending >= minZeroRun:
		e.record(fpZeroRun | uint64(e.pending))
	default:
		for range e.pending {
			e.record(0)
		}
	}
	e.pending = 0
}

func (e *fpEncoder) record(v uint64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, v)
	if len(e.buf) >= 64<<10 {
		e.drain()
	}
}

func (e *fpEncoder) drain() {
	if e.err == nil && len(e.buf) > 0 {
		var n int
		n, e.err = e.w.Write(e.buf)
		e.written += int64(n)
	}
	e.buf = e.buf[:0]
}

// flush writes everything added so far; the bytes written then stand for
// every block added.
func (e *fpEncoder) flush() error {
	e.flushZeros()
	e.drain()
	return e.err
}

// Unknown makes At answer "not known" for the blocks that meet areas
// (sorted, disjoint).
func (fp *Fingerprints) Unknown(areas []Range) { fp.unknown = areas }

// BlockHash is the hash the file's fingerprints were made with, for
// looking a block up among them: fingerprint.Hash, or HashXXH64 for a
// file of an earlier version.
func (fp *Fingerprints) BlockHash(block []byte) uint64 {
	if fp.version < fpVersion {
		return fingerprint.HashXXH64(block)
	}
	return fingerprint.Hash(block)
}

// UseImage gives At the image the fingerprints were carved from, so that
// it can tell random-looking blocks (fingerprint.RandomBit), which a
// version 3 file does not store. Without it, no block reads random.
func (fp *Fingerprints) UseImage(image io.ReaderAt, size int64) {
	fp.random = &randomBits{image: image, size: size, pages: map[int64]*randomPage{}}
	fp.random.bufs.New = func() any { return new([randomWindowBlocks * fingerprint.BlockSize]byte) }
}

// randomBits computes and remembers which blocks of the image read random
// (entropy.RandomLooking, as fingerprint.Of tests them). Rebuild asks of
// a small share of the image's blocks, those of the files it found and
// the places it follows them to, each many times: a block is read and
// tested once, with the others of its window, and the answer kept in a
// page of bits allocated when first touched. Lookups may come from several
// goroutines (rebuild places files in parallel, and files followed by
// their anchors each scan the whole image): the pages are read and written
// under mu, a window is read and tested outside it, and a lookup in a
// window another is testing waits for its bits instead of testing it too
// (singleflight).
type randomBits struct {
	image   io.ReaderAt
	size    int64
	mu      sync.Mutex
	pages   map[int64]*randomPage // (mu)
	windows singleflight.Group    // windows being tested, by first block
	bufs    sync.Pool             // *[randomWindowBlocks * fingerprint.BlockSize]byte
}

const (
	randomWindowBlocks = 16    // blocks read and tested together (64 KiB)
	randomPageBlocks   = 65536 // blocks a page of bits covers (256 MiB)
)

type randomPage struct{ known, random [randomPageBlocks / 64]uint64 }

func (rb *randomBits) at(fp *Fingerprints, off int64) (bool, error) {
	blk := off / fingerprint.BlockSize
	i := blk % randomPageBlocks
	if random, known := rb.lookup(blk/randomPageBlocks, i); known {
		return random, nil
	}
	// One test of the window however many lookups want it at once: the
	// others wait for its bits.
	window := blk / randomWindowBlocks * randomWindowBlocks
	_, err, _ := rb.windows.Do(strconv.FormatInt(window, 10), func() (any, error) {
		if _, known := rb.lookup(blk/randomPageBlocks, i); known {
			return nil, nil // tested since our lookup
		}
		tested, random, err := rb.test(fp, window, blk)
		if err != nil {
			return nil, err
		}
		rb.mu.Lock()
		defer rb.mu.Unlock()
		p := rb.page(blk / randomPageBlocks)
		for k := range randomWindowBlocks {
			if tested&(1<<k) == 0 {
				continue
			}
			j := (window + int64(k)) % randomPageBlocks
			p.known[j/64] |= 1 << (j % 64)
			if random&(1<<k) != 0 {
				p.random[j/64] |= 1 << (j % 64)
			}
		}
		return nil, nil
	})
	if err != nil {
		return false, err
	}
	// A block past the image's end is never known, never random.
	random, _ := rb.lookup(blk/randomPageBlocks, i)
	return random, nil
}

// lookup reports block i of page n's bits: whether it reads random, and
// whether that is known.
func (rb *randomBits) lookup(n, i int64) (random, known bool) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	p := rb.page(n)
	return p.random[i/64]&(1<<(i%64)) != 0, p.known[i/64]&(1<<(i%64)) != 0
}

// page is page n of bits, allocated when first touched (mu held).
func (rb *randomBits) page(n int64) *randomPage {
	p := rb.pages[n]
	if p == nil {
		p = new(randomPage)
		rb.pages[n] = p
	}
	return p
}

// test reads the window of blocks from block first that holds block blk
// (none past the page holding it, nor the image's end) and tests each
// whose fingerprint is not zero. It returns, by a bit per block of the
// window, those tested and those that read random.
func (rb *randomBits) test(fp *Fingerprints, first, blk int64) (tested, random uint16, err error) {
	start := first * fingerprint.BlockSize
	n := min(randomWindowBlocks*fingerprint.BlockSize, rb.size-start)
	if n <= 0 {
		return 0, 0, fmt.Errorf("pipeline: fingerprint of block %d past the image's %d bytes", blk, rb.size)
	}
	testBlocks := func(b []byte) {
		for k := int64(0); k*fingerprint.BlockSize < n; k++ {
			tested |= 1 << k
			// As fingerprint.Of tests the block: the last one of the
			// image may be short.
			block := b[k*fingerprint.BlockSize : min((k+1)*fingerprint.BlockSize, n)]
			if v, ok := fp.entry(start + k*fingerprint.BlockSize); ok && v != 0 && fingerprint.Random(block) {
				random |= 1 << k
			}
		}
	}
	// A mapped image is tested in place (mappedImage).
	if m, ok := rb.image.(interface {
		view(off, n int64, fn func([]byte)) error
	}); ok {
		if err := m.view(start, n, testBlocks); err != nil {
			return 0, 0, fmt.Errorf("pipeline: reading image blocks at %d to test them: %w", start, err)
		}
		return tested, random, nil
	}
	buf := rb.bufs.Get().(*[randomWindowBlocks * fingerprint.BlockSize]byte)
	defer rb.bufs.Put(buf)
	b := buf[:n]
	if m, err := rb.image.ReadAt(b, start); m < len(b) {
		return 0, 0, fmt.Errorf("pipeline: reading image blocks at %d to test them: %d of %d bytes: %v", start, m, len(b), err)
	}
	testBlocks(b)
	return tested, random, nil
}

// Err is the first read error At met, if any.
func (fp *Fingerprints) Err() error {
	fp.errMu.Lock()
	defer fp.errMu.Unlock()
	return fp.err
}

// fail keeps err if it is the first read error met.
func (fp *Fingerprints) fail(err error) {
	fp.errMu.Lock()
	defer fp.errMu.Unlock()
	if fp.err == nil {
		fp.err = err
	}
}

// Close releases the file, if one is held open.
func (fp *Fingerprints) Close() error {
	if fp.file == nil {
		return nil
	}
	return fp.file.Close()
}

// fpInMemoryMax is the file size up to which OpenFingerprints reads the
// whole table into memory (64 MiB: 8 Mi blocks, a 32 GiB image); larger
// files are read entry by entry. A variable so tests can cover both paths.
var fpInMemoryMax int64 = 64 << 20
