package corpus

import (
	"encoding/binary"
	"math/rand/v2"

	"vmdkcarve/internal/entropy"
)

// Noise streams. Each is an independent, seekable pseudo-random byte
// stream: the bytes at an offset depend only on (seed, stream, offset), so
// any range can be regenerated without the bytes before it.
const (
	streamImage  = 1 // the host image's background
	streamDamage = 2 // bytes written over damaged ranges
	streamGrain  = 3 // the incompressible grains of guest disks
	streamGuest  = 4 // the binary files of guest filesystems
	streamCipher = 5 // the cipher text of encrypted guest partitions
	streamMiB    = 6 // the random MiBs of synthetic disks
)

// noiseBlock is the unit keyed by (seed, stream, block index). 64 KiB keeps
// the waste of an unaligned request small and the key setup negligible.
const noiseBlock = 64 << 10

// fillNoise fills buf with the bytes of stream at offsets off..off+len(buf).
func fillNoise(seed, stream uint64, off int64, buf []byte) {
	var scratch []byte
	for len(buf) > 0 {
		blk := off / noiseBlock
		in := int(off % noiseBlock)
		n := min(len(buf), noiseBlock-in)
		c := rand.NewChaCha8(noiseKey(seed, stream, uint64(blk)))
		if in == 0 {
			c.Read(buf[:n])
		} else {
			// Generate the block up to the end of the request and keep the
			// tail; only unaligned requests (damage ranges) get here.
			if scratch == nil {
				scratch = make([]byte, noiseBlock)
			}
			c.Read(scratch[:in+n])
			copy(buf[:n], scratch[in:in+n])
		}
		buf = buf[n:]
		off += int64(n)
	}
}

// randomBlock is the unit fillRandom guarantees random-looking: the
// carver's fingerprint block.
const randomBlock = 4096

// fillRandom is fillNoise whose every whole 4 KiB block (counted from
// off, which callers keep 4096-aligned) passes entropy.RandomLooking:
// plain noise fails it about once in 2500 blocks, and a region promised
// random must be random to the carver in every block. A failing block is
// drawn again under a derived seed, so the bytes still depend only on
// (seed, stream, offset).
func fillRandom(seed, stream uint64, off int64, buf []byte) {
	fillNoise(seed, stream, off, buf)
	for i := 0; i+randomBlock <= len(buf); i += randomBlock {
		ensureRandom(seed, stream, off+int64(i), buf[i:i+randomBlock], nil)
	}
}

// ensureRandom redraws blk (the bytes at off) until, with head laid over
// its start, it looks random; after a bounded number of draws it keeps the
// last (head bytes can make a block structured whatever follows).
func ensureRandom(seed, stream uint64, off int64, blk, head []byte) {
	copy(blk, head)
	for try := uint64(1); try <= 16 && !entropy.RandomLooking(blk); try++ {
		fillNoise(mix(seed^try<<56), stream, off, blk)
		copy(blk, head)
	}
}

func noiseKey(seed, stream, block uint64) [32]byte {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[0:], seed)
	binary.LittleEndian.PutUint64(k[8:], stream)
	binary.LittleEndian.PutUint64(k[16:], block)
	binary.LittleEndian.PutUint64(k[24:], 0x766d646b63617276) // "vmdkcarv": domain separation
	return k
}

// mix is splitmix64's finaliser: a cheap, well-spread hash of one word.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
