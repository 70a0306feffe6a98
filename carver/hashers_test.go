package carver

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"testing"
	"time"
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

// TestHashersCanceledWhileWaited: a lane that sees the scan canceled stops
// hashing and drains its input, which closes only once collect returns;
// collect, waiting for the lane at a checkpoint, must be told, not wait
// for ever (as a carve canceled midway once did, at random).
func TestHashersCanceledWhileWaited(t *testing.T) {
	pool := make(chan []byte, 4)
	x := newHashers([]hash.Hash{sha256.New()}, 4, pool, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- x.run(ctx, x.lanes[0]) }()
	token := make([]byte, 8)
	chunkOf := func() *chunk { return &chunk{n: 8, avail: 8, buf: token, token: token} }
	if err := x.feed(ctx, chunkOf()); err != nil {
		t.Fatal(err)
	}
	if !x.wait(1) {
		t.Fatal("wait(1): the lane stopped before hashing its chunk")
	}
	// Canceled with a chunk queued: the lane hashes it, sees the cancel
	// and drains. A checkpoint then waits for a chunk it will not hash.
	cancel()
	if err := x.feed(context.Background(), chunkOf()); err != nil {
		t.Fatal(err)
	}
	waited := make(chan bool, 1)
	go func() { waited <- x.wait(3) }()
	select {
	case ok := <-waited:
		if ok {
			t.Error("wait(3) reported 3 chunks hashed: only 2 were fed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait(3) still blocked 10 s after the scan was canceled: the draining lane never said it stopped")
	}
	x.close()
	if err := <-ran; !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v, want %v", err, context.Canceled)
	}
}
