package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/entropy"
)

// fingerprints.bin layout (all little-endian):
//
//	0  [4]byte "VCFP"
//	4  u32     version (1)
//	8  u32     block size (4096)
//	12 u32     reserved, zero (keeps the u64 fields 8-aligned)
//	16 u64     image offset of the first block
//	24 u64     number of blocks
//	32 u64 ... one fingerprint per block, in offset order
//	           (fingerprint.Hash: 0 = all-zero block; bit 63 clear)
//
// Version 2 files (earlier carves) also set bit 63 on random-looking
// blocks; version 3 leaves that to rebuild (UseImage), which tests only
// the blocks it asks about instead of the carve testing every block.
const (
	fpMagic       = "VCFP"
	fpVersion     = 3
	fpVersionRand = 2 // bit 63 stored: still read
	fpHeaderSize  = 32
	fpCountOffset = 24
	fpEntrySize   = 8

	maxFingerprint = 1 << 40 // blocks: 4 PiB of image, a plausibility cap on the header count
)

// ErrFingerprints reports a fingerprints.bin that is not one or is damaged.
var ErrFingerprints = errors.New("pipeline: bad fingerprints file")

// Fingerprints reads a fingerprints.bin file.
type Fingerprints struct {
	First     int64 // image offset of the first block
	Count     int64 // blocks
	BlockSize int64

	mem  []uint64 // the whole table, for small files
	file *os.File // otherwise read entry by entry
	err  error

	// stored: bit 63 is in the file (version 2); otherwise At computes it
	// from the image given to UseImage, remembering every block tested.
	stored bool
	random *randomBits
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
	count := le.Uint64(h[24:])
	switch {
	case string(h[:4]) != fpMagic:
		return nil, fmt.Errorf("%w: %s: magic %q, want %q", ErrFingerprints, path, h[:4], fpMagic)
	case le.Uint32(h[4:]) != fpVersion && le.Uint32(h[4:]) != fpVersionRand:
		return nil, fmt.Errorf("%w: %s: version %d, want %d", ErrFingerprints, path, le.Uint32(h[4:]), fpVersion)
	case fp.BlockSize != fingerprint.BlockSize:
		return nil, fmt.Errorf("%w: %s: block size %d, want %d", ErrFingerprints, path, fp.BlockSize, fingerprint.BlockSize)
	case fp.First < 0 || fp.First%fingerprint.BlockSize != 0:
		return nil, fmt.Errorf("%w: %s: first block offset %d is not block-aligned", ErrFingerprints, path, fp.First)
	case count > maxFingerprint || st.Size() != fpHeaderSize+int64(count)*fpEntrySize:
		return nil, fmt.Errorf("%w: %s: header says %d blocks but the file is %d bytes (truncated or unfinished)", ErrFingerprints, path, count, st.Size())
	}
	fp.Count = int64(count)
	fp.stored = le.Uint32(h[4:]) == fpVersionRand
	if st.Size() > fpInMemoryMax {
		fp.file = f
		return fp, nil
	}
	b := make([]byte, st.Size()-fpHeaderSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFingerprints, path, err)
	}
	fp.mem = make([]uint64, fp.Count)
	for i := range fp.mem {
		fp.mem[i] = le.Uint64(b[i*fpEntrySize:])
	}
	return fp, nil
}

// At returns the fingerprint of the block holding image offset off, as
// fingerprint.Of gives it (bit 63 set for a random-looking block, once
// UseImage has given the image); false if the file does not cover it (or
// a read failed: see Err).
func (fp *Fingerprints) At(off int64) (uint64, bool) {
	v, ok := fp.entry(off)
	if !ok || v == 0 || fp.stored || fp.random == nil {
		return v, ok
	}
	r, err := fp.random.at(fp, off)
	if err != nil {
		if fp.err == nil {
			fp.err = err
		}
		return 0, false
	}
	if r {
		v |= fingerprint.RandomBit
	}
	return v, true
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
	if fp.mem != nil || fp.file == nil {
		return fp.mem[i], true
	}
	var b [fpEntrySize]byte
	if _, err := fp.file.ReadAt(b[:], fpHeaderSize+i*fpEntrySize); err != nil {
		if fp.err == nil {
			fp.err = fmt.Errorf("pipeline: reading fingerprint of block %d: %w", i, err)
		}
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

// UseImage gives At the image the fingerprints were carved from, so that
// it can tell random-looking blocks (fingerprint.RandomBit), which a
// version 3 file does not store. Without it, no block reads random.
func (fp *Fingerprints) UseImage(image io.ReaderAt, size int64) {
	fp.random = &randomBits{image: image, size: size, pages: map[int64]*randomPage{}}
}

// randomBits computes and remembers which blocks of the image read random
// (entropy.RandomLooking, as fingerprint.Of tests them). Rebuild asks of
// a small share of the image's blocks, those of the files it found and
// the places it follows them to, each many times: a block is read and
// tested once, with the others of its window, and the answer kept in a
// page of bits allocated when first touched.
type randomBits struct {
	image io.ReaderAt
	size  int64
	pages map[int64]*randomPage
	buf   []byte
}

const (
	randomWindowBlocks = 16    // blocks read and tested together (64 KiB)
	randomPageBlocks   = 65536 // blocks a page of bits covers (256 MiB)
)

type randomPage struct{ known, random [randomPageBlocks / 64]uint64 }

func (rb *randomBits) at(fp *Fingerprints, off int64) (bool, error) {
	blk := off / fingerprint.BlockSize
	p := rb.pages[blk/randomPageBlocks]
	if p == nil {
		p = new(randomPage)
		rb.pages[blk/randomPageBlocks] = p
	}
	i := blk % randomPageBlocks
	if p.known[i/64]&(1<<(i%64)) == 0 {
		if err := rb.test(fp, p, blk); err != nil {
			return false, err
		}
	}
	return p.random[i/64]&(1<<(i%64)) != 0, nil
}

// test reads the window of blocks holding block blk (none past the page
// p holding blk, nor the image's end) and tests those not yet known whose
// fingerprint is not zero.
func (rb *randomBits) test(fp *Fingerprints, p *randomPage, blk int64) error {
	first := blk / randomWindowBlocks * randomWindowBlocks
	start := first * fingerprint.BlockSize
	n := min(randomWindowBlocks*fingerprint.BlockSize, rb.size-start)
	if n <= 0 {
		return fmt.Errorf("pipeline: fingerprint of block %d past the image's %d bytes", blk, rb.size)
	}
	if rb.buf == nil {
		rb.buf = make([]byte, randomWindowBlocks*fingerprint.BlockSize)
	}
	b := rb.buf[:n]
	if m, err := rb.image.ReadAt(b, start); m < len(b) {
		return fmt.Errorf("pipeline: reading image blocks at %d to test them: %d of %d bytes: %v", start, m, len(b), err)
	}
	for k := int64(0); k*fingerprint.BlockSize < n; k++ {
		i := (first + k) % randomPageBlocks
		if p.known[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		p.known[i/64] |= 1 << (i % 64)
		// As fingerprint.Of tests the block: the last one of the image may
		// be short.
		block := b[k*fingerprint.BlockSize : min((k+1)*fingerprint.BlockSize, n)]
		if v, ok := fp.entry(start + k*fingerprint.BlockSize); ok && v != 0 && entropy.RandomLooking(block) {
			p.random[i/64] |= 1 << (i % 64)
		}
	}
	return nil
}

// Err is the first read error At met, if any.
func (fp *Fingerprints) Err() error { return fp.err }

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
