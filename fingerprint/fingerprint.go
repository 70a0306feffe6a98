// Package fingerprint defines the carve's record of one image block, the
// one value the carver writes for every block, the case keeps in
// fingerprints.bin and rebuild reads back: to find a block's bytes again
// elsewhere (copy anchors), to tell zeros, and to tell random-looking
// bytes from structure (the damage policy).
package fingerprint

import (
	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/xxh3"

	"vmdkcarve/internal/entropy"
)

// BlockSize is the fingerprint granularity: the smallest grain a hosted
// sparse extent can have is 16 sectors (8 KiB), and every grain is a whole
// number of 4 KiB blocks, so a 4 KiB fingerprint can identify any
// candidate grain's pieces.
const BlockSize = 4096

// RandomBit marks a fingerprint whose block looks random: encrypted or
// compressed bytes, where a guest structure or text would not be.
const RandomBit = 1 << 63

// Of is the record of one block: 0 for an all-zero block, else Hash with
// RandomBit set when the block's bytes look random
// (entropy.RandomLooking).
func Of(block []byte) uint64 {
	h := Hash(block)
	if h != 0 && Random(block) {
		h |= RandomBit
	}
	return h
}

// Random is Of's test for RandomBit, for a caller that has a block's Hash
// already (rebuild, which tests only the blocks it consults).
func Random(block []byte) bool { return entropy.RandomLooking(block) }

// Hash is Of without RandomBit, and without the cost of the randomness
// test: 0 for an all-zero block, else the low 63 bits of the block's
// XXH3-64, never 0. A caller looking a block up among the fingerprints
// compares Hash with a fingerprint less its RandomBit. XXH3 (of the
// xxHash family) hashes a 4 KiB block about four times faster than
// xxhash64 here, and every block of an image is hashed.
func Hash(block []byte) uint64 { return nonZero(block, xxh3.Hash) }

// HashXXH64 is Hash as carves before fingerprints.bin version 5 computed
// it, with xxhash64: a case they made is looked up with it.
func HashXXH64(block []byte) uint64 { return nonZero(block, xxhash.Sum64) }

func nonZero(block []byte, sum func([]byte) uint64) uint64 {
	if entropy.Zero(block) {
		return 0
	}
	h := sum(block) &^ RandomBit
	if h == 0 {
		h = 1
	}
	return h
}
