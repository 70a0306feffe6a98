package carver

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"testing"
)

// TestHashersFeedCanceled: a chunk fed to no lane because the scan was
// canceled goes back to the pool (and is unmapped) all the same, however
// many lanes there are.
func TestHashersFeedCanceled(t *testing.T) {
	for _, lanes := range []int{1, 2, 3} {
		pool := make(chan []byte, 1)
		var hs []hash.Hash
		for range lanes {
			hs = append(hs, sha256.New())
		}
		// Depth 0 and no lane running: no lane can take the chunk.
		x := newHashers(hs, 0, pool, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		unmapped := 0
		token := make([]byte, 8)
		c := &chunk{n: 8, avail: 8, buf: token, token: token, unmap: func() { unmapped++ }}
		if err := x.feed(ctx, c); !errors.Is(err, context.Canceled) {
			t.Errorf("%d lanes: feed: %v, want %v", lanes, err, context.Canceled)
		}
		if len(pool) != 1 || unmapped != 1 {
			t.Errorf("%d lanes: %d buffers back in the pool, unmapped %d times; want 1 and 1", lanes, len(pool), unmapped)
		}
		x.close()
	}
}
