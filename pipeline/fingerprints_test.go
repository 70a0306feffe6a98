package pipeline

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/tooltest"
)

// TestFingerprintsRandomConcurrent looks the random bit of every block up
// from several goroutines at once, each in an order of its own (run it
// with -race): every answer is the block's own, as fingerprint.Of gives
// it, whichever lookup tested the block's window.
func TestFingerprintsRandomConcurrent(t *testing.T) {
	const blocks = 3*randomWindowBlocks + 5 // the last window part-filled
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, blocks*fingerprint.BlockSize-100) // the last block short
	var want []uint64
	var buf bytes.Buffer
	buf.Write(fpHeader(0, blocks))
	e := &fpEncoder{w: &buf}
	for i := range blocks {
		b := img[i*fingerprint.BlockSize : min((i+1)*fingerprint.BlockSize, len(img))]
		switch i % 3 {
		case 0: // random
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		case 1: // text
			copy(b, bytes.Repeat([]byte("plain text "), len(b)/11+1))
		} // else zero
		v := fingerprint.Of(b)
		want = append(want, v)
		e.add(v &^ fingerprint.RandomBit)
	}
	if err := e.flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FingerprintsName)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The image read by a reader, and tested in place on a mapping.
	readers := map[string]io.ReaderAt{"reader": bytes.NewReader(img)}
	if m := mapImage(tooltest.TempFile(t, img), int64(len(img))); m != nil {
		defer m.Close()
		readers["mapped"] = m
	} else if runtime.GOOS == "linux" {
		t.Errorf("mapImage maps nothing on Linux")
	}
	for name, r := range readers {
		fp, err := OpenFingerprints(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fp.Close()
		fp.UseImage(r, int64(len(img)))
		var wg sync.WaitGroup
		for w := range 8 {
			order := rand.New(rand.NewPCG(uint64(w), 3)).Perm(blocks)
			wg.Go(func() {
				for _, i := range order {
					if got, ok := fp.At(int64(i)*fingerprint.BlockSize + 7); !ok || got != want[i] {
						t.Errorf("%s, block %d: %#x %v, want %#x", name, i, got, ok, want[i])
					}
				}
			})
		}
		wg.Wait()
		if fp.Err() != nil {
			t.Fatalf("%s: %v", name, fp.Err())
		}
	}
	if random := want[0] & fingerprint.RandomBit; random == 0 || want[1]&fingerprint.RandomBit != 0 {
		t.Fatalf("the test's blocks are not what it needs: %#x %#x", want[0], want[1])
	}
}
