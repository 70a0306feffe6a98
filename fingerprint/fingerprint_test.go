package fingerprint

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"vmdkcarve/internal/entropy"
)

func TestValues(t *testing.T) {
	zero := make([]byte, BlockSize)
	if got := Of(zero); got != 0 {
		t.Errorf("zero block: %d, want 0", got)
	}
	if got := Of(zero[:100]); got != 0 {
		t.Errorf("short zero block: %d, want 0", got)
	}
	one := append([]byte(nil), zero...)
	one[4095] = 1
	if Of(one) == 0 {
		t.Errorf("non-zero block fingerprinted as zero")
	}
}

// TestHashIsOfWithoutTheRandomBit: copy anchors look blocks up by Hash
// among the fingerprints the carve recorded with Of, for every kind of
// block.
func TestHashIsOfWithoutTheRandomBit(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	random := make([]byte, BlockSize)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	text := bytes.Repeat([]byte("disk=0001 /docs/a.txt @4096 "), 147)[:BlockSize]
	tail := append(append([]byte(nil), text[:1000]...), make([]byte, 3096)...)
	for name, b := range map[string][]byte{"zero": make([]byte, BlockSize), "random": random, "text": text, "tail": tail} {
		if got, want := Hash(b), Of(b)&^RandomBit; got != want {
			t.Errorf("%s: Hash %#x, Of %#x", name, got, want)
		}
	}
}

func TestRandomBit(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	block := make([]byte, BlockSize)
	misses := 0
	for i := 0; i < 2000; i++ {
		for j := range block {
			block[j] = byte(rng.Uint32())
		}
		if Of(block)&RandomBit == 0 {
			misses++
		}
	}
	if misses > 4 {
		t.Errorf("%d of 2000 random blocks not classified random", misses)
	}
	for _, tc := range []struct {
		name  string
		block []byte
	}{
		{"text", bytes.Repeat([]byte("vmdkcarve disk=0001 lba=000000001234 "), 111)[:BlockSize]},
		{"counter", func() []byte {
			b := make([]byte, BlockSize)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()},
		{"u32 table", func() []byte {
			b := make([]byte, BlockSize)
			for i := 0; i < BlockSize; i += 4 {
				binary.LittleEndian.PutUint32(b[i:], uint32(i*128+4096))
			}
			return b
		}()},
		{"short", []byte{1, 2, 3}},
	} {
		if Of(tc.block)&RandomBit != 0 || entropy.RandomLooking(tc.block) {
			t.Errorf("%s classified random", tc.name)
		}
	}
}

func BenchmarkOf(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	random := make([]byte, BlockSize)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("vmdkcarve disk=0001 lba=000000001234 "), 111)[:BlockSize]
	for _, bc := range []struct {
		name  string
		block []byte
	}{{"random", random}, {"text", text}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(BlockSize)
			for i := 0; i < b.N; i++ {
				Of(bc.block)
			}
		})
	}
}
