// Package entropy classifies block contents: all zero, random-looking
// (encrypted or compressed) or neither, for the carver's fingerprints, the
// writers' sparse output and the planner's damage checks alike.
package entropy

// RandomLooking reports whether a block's byte histogram is as flat as
// random data's. A chi-square test against the uniform distribution:
// random data gives about 255 ± 23 for 4096 bytes; text, code, tables and
// filesystem metadata give thousands. The first 512 bytes are tested
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
	// Four histograms break the store-to-load dependency between equal
	// neighbouring bytes; this loop is the cost of a random block.
	var c1, c2, c3 [256]uint32
	rest := block[512:]
	for len(rest) >= 4 {
		counts[rest[0]]++
		c1[rest[1]]++
		c2[rest[2]]++
		c3[rest[3]]++
		rest = rest[4:]
	}
	for _, c := range rest {
		counts[c]++
	}
	expected := float64(len(block)) / 256
	chi2 := 0.0
	for i, n := range counts {
		d := float64(n+c1[i]+c2[i]+c3[i]) - expected
		chi2 += d * d / expected
	}
	// 255 degrees of freedom: random data lands within ~4 standard
	// deviations of 255. Far below is too even to be random (a counter,
	// a repeated permutation), far above is structure.
	return chi2 > 160 && chi2 < 350
}

// Zero reports whether b is all zero bytes.
func Zero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
