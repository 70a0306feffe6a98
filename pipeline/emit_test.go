package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/vmdk"
)

// TestHashingWriter: the SHA-256 a file is committed with is its bytes',
// whether it was written front to back (hashed on the way) or not (read
// back).
func TestHashingWriter(t *testing.T) {
	data := noise(3<<20+100, 9)
	for _, tc := range []struct {
		name       string
		writes     [][2]int // [from, to) of data, in the order written
		sequential bool
	}{
		{"front to back", [][2]int{{0, 1 << 20}, {1 << 20, 3 << 20}, {3 << 20, len(data)}}, true},
		{"head last", [][2]int{{1 << 20, len(data)}, {0, 1 << 20}}, false},
		{"rewritten", [][2]int{{0, len(data)}, {0, 512}}, false},
		{"a gap", [][2]int{{0, 1 << 20}, {2 << 20, len(data)}, {1 << 20, 2 << 20}}, false},
	} {
		path := filepath.Join(t.TempDir(), "out")
		f, err := CreateAtomic(path)
		if err != nil {
			t.Fatal(err)
		}
		hw := newHashingWriter(f)
		for _, w := range tc.writes {
			if _, err := hw.WriteAt(data[w[0]:w[1]], int64(w[0])); err != nil {
				t.Fatal(err)
			}
		}
		if hw.broken == tc.sequential {
			t.Errorf("%s: hashed on the way %v, want %v", tc.name, !hw.broken, tc.sequential)
		}
		sum, err := hw.sum(f, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(got); sum != hex.EncodeToString(want[:]) || len(got) != len(data) {
			t.Errorf("%s: committed with SHA-256 %s, the file's is %x", tc.name, sum, want)
		}
	}
}

// TestDecodeRecord: a stream grain is decoded by the fast inflater when its
// bytes are the carve's, and by the carve's own when they are not: a
// record the fast inflater reads otherwise (here one that flips a byte) is
// still placed, with the carve's bytes, and counted as decoded again.
func TestDecodeRecord(t *testing.T) {
	text := noise(65536, 3)[:65536]
	for i := range text {
		text[i] = 'a' + text[i]%16
	}
	rec, err := vmdk.EncodeGrain(nil, 0, text, 6)
	if err != nil {
		t.Fatal(err)
	}
	otherwise := func(b, dst []byte) (vmdk.GrainMarker, int, error) {
		m, n, err := vmdk.DecodeGrainFast(b, dst)
		dst[100] ^= 1
		return m, n, err
	}
	for _, tc := range []struct {
		name        string
		fast        func(b, dst []byte) (vmdk.GrainMarker, int, error)
		want        uint64
		same, again bool
	}{
		{"fast", vmdk.DecodeGrainFast, xxhash.Sum64(text), true, false},
		{"fast, another hash", vmdk.DecodeGrainFast, xxhash.Sum64(text) + 1, false, true},
		{"read otherwise", otherwise, xxhash.Sum64(text), true, true},
		{"read otherwise, another hash", otherwise, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(f func(b, dst []byte) (vmdk.GrainMarker, int, error)) { decodeFast = f }(decodeFast)
			decodeFast = tc.fast
			dst := make([]byte, 65536)
			k, same, again, err := decodeRecord(rec, dst, tc.want)
			if err != nil || same != tc.same || again != tc.again {
				t.Fatalf("same %v, decoded again %v (%v); want %v, %v", same, again, err, tc.same, tc.again)
			}
			if tc.same && !bytes.Equal(dst[:k], text) {
				t.Fatalf("decoded %d bytes, not the grain", k)
			}
		})
	}
}
