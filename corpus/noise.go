package corpus

import (
	"encoding/binary"
	"math/rand/v2"
)

// Noise streams. Each is an independent, seekable pseudo-random byte
// stream: the bytes at an offset depend only on (seed, stream, offset), so
// any range can be regenerated without the bytes before it.
const (
	streamImage  = 1 // the host image's background
	streamDamage = 2 // bytes written over damaged ranges
	streamGrain  = 3 // the incompressible grains of guest disks
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
