package entropy

import (
	"math/rand/v2"
	"testing"
)

func benchBlocks() (random, text []byte) {
	rng := rand.New(rand.NewPCG(3, 4))
	random = make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text = make([]byte, 4096)
	for i := range text {
		text[i] = "the quick brown fox jumps over the lazy dog "[i%44]
	}
	return random, text
}

func BenchmarkRandomLooking(b *testing.B) {
	random, text := benchBlocks()
	b.Run("random", func(b *testing.B) {
		b.SetBytes(4096)
		for b.Loop() {
			RandomLooking(random)
		}
	})
	b.Run("text", func(b *testing.B) {
		b.SetBytes(4096)
		for b.Loop() {
			RandomLooking(text)
		}
	})
}

func TestRandomLooking(t *testing.T) {
	random, text := benchBlocks()
	counter := make([]byte, 4096)
	for i := range counter {
		counter[i] = byte(i)
	}
	skewed := append([]byte(nil), random...)
	for i := 0; i < len(skewed); i += 3 {
		skewed[i] = 'e'
	}
	for _, tc := range []struct {
		name  string
		block []byte
		want  bool
	}{
		{"random 4 KiB", random, true},
		{"random 512 bytes", random[:512], true},
		{"random, shorter than 512 bytes", random[:511], false},
		{"text", text, false},
		{"zeros", make([]byte, 4096), false},
		{"a counter: too even to be random", counter, false},
		{"random with every third byte the same", skewed, false},
	} {
		if got := RandomLooking(tc.block); got != tc.want {
			t.Errorf("%s: RandomLooking %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, true},
		{"zeros, 4 KiB", make([]byte, 4096), true},
		{"zeros, odd length", make([]byte, 13), true},
		{"the last byte of 4 KiB set", append(make([]byte, 4095), 1), false},
		{"a byte set in a short tail", append(make([]byte, 9), 1), false},
		{"the first byte set", append([]byte{1}, make([]byte, 4095)...), false},
		{"zeros, 3 pieces and a bit", make([]byte, 3*4096+100), true},
		{"a byte set in the second piece", append(make([]byte, 4096+7), append([]byte{0x80}, make([]byte, 5000)...)...), false},
		{"a byte set in the last, short piece", append(make([]byte, 2*4096+99), 1), false},
	} {
		if got := Zero(tc.b); got != tc.want {
			t.Errorf("%s: Zero %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkZero tests a zero 4 KiB block, the one Zero reads whole: the
// carver asks for every block of the image before fingerprinting it.
func BenchmarkZero(b *testing.B) {
	zero := make([]byte, 4096)
	b.SetBytes(int64(len(zero)))
	for b.Loop() {
		if !Zero(zero) {
			b.Fatal("a zero block is not Zero")
		}
	}
}
