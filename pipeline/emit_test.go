package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
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
