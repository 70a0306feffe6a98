// Package entropy classifies block contents: all zero, random-looking
// (encrypted or compressed) or neither, for the carver's fingerprints, the
// writers' sparse output and the planner's damage checks alike.
package entropy

import "bytes"

// RandomLooking reports whether a block's byte histogram is as flat as
// random data's. A chi-square test against the uniform distribution:
// random data gives about 255 ± 23 whatever the sample size; text, code,
// tables and filesystem metadata give far more. The first 512 bytes are tested
// first (no byte value may occur more than 11 times, which random data
// fails with probability ~4e-4), so most non-random blocks cost little.
func RandomLooking(block []byte) bool {
	if len(block) < 512 {
		return false
	}
	var counts [256]uint32
	for _, c := range block[:512] {
		counts[c]++
		if counts[c] > 11 {
			return false
		}
	}
	// The rest of the block is sampled, one byte in four: a random block
	// stays uniform under sampling and a structured one stays skewed, and
	// the cost of a random block (every block of an encrypted or
	// compressed region) drops fourfold. About 1400 samples per 4 KiB
	// keep every bin's expectation above 5, where the chi-square test holds.
	samples := 512
	for i := 512; i < len(block); i += 4 {
		counts[block[i]]++
		samples++
	}
	expected := float64(samples) / 256
	chi2 := 0.0
	for _, n := range counts {
		d := float64(n) - expected
		chi2 += d * d / expected
	}
	// 255 degrees of freedom: random data lands within ~4 standard
	// deviations of 255. Far below is too even to be random (a counter,
	// a repeated permutation), far above is structure.
	return chi2 > 160 && chi2 < 350
}

// Zero reports whether b is all zero bytes. It compares b with zeros a
// piece at a time by bytes.Equal, whose vector loop reads a zero block
// several times faster than a loop over its bytes (BenchmarkZero): the
// carver asks for every 4 KiB block of the image, and reads the zero ones
// whole.
func Zero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// zeros is what Zero compares with.
var zeros [4096]byte
