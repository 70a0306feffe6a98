package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"vmdkcarve/fingerprint"
)

// fingerprints.bin layout (all little-endian):
//
//	0  [4]byte "VCFP"
//	4  u32     version (1)
//	8  u32     block size (4096)
//	12 u32     reserved, zero (keeps the u64 fields 8-aligned)
//	16 u64     image offset of the first block
//	24 u64     number of blocks
//	32 u64 ... one fingerprint per block, in offset order (fingerprint.Of:
//	           0 = all-zero block; bit 63 = the block looks random)
const (
	fpMagic       = "VCFP"
	fpVersion     = 2 // 2: bit 63 flags random-looking blocks
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
	case le.Uint32(h[4:]) != fpVersion:
		return nil, fmt.Errorf("%w: %s: version %d, want %d", ErrFingerprints, path, le.Uint32(h[4:]), fpVersion)
	case fp.BlockSize != fingerprint.BlockSize:
		return nil, fmt.Errorf("%w: %s: block size %d, want %d", ErrFingerprints, path, fp.BlockSize, fingerprint.BlockSize)
	case fp.First < 0 || fp.First%fingerprint.BlockSize != 0:
		return nil, fmt.Errorf("%w: %s: first block offset %d is not block-aligned", ErrFingerprints, path, fp.First)
	case count > maxFingerprint || st.Size() != fpHeaderSize+int64(count)*fpEntrySize:
		return nil, fmt.Errorf("%w: %s: header says %d blocks but the file is %d bytes (truncated or unfinished)", ErrFingerprints, path, count, st.Size())
	}
	fp.Count = int64(count)
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

// At returns the fingerprint of the block holding image offset off; false
// if the file does not cover it (or a read failed: see Err).
func (fp *Fingerprints) At(off int64) (uint64, bool) {
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
