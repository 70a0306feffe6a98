package carver

import (
	"context"
	"hash"
	"runtime/debug"
	"sync"
)

// hashers feed every scanned chunk, in image order, to each hash of
// Options.Hashes on a goroutine of its own: the hashes run beside the scan
// and beside each other instead of after it, so a carve that hashes costs
// what its slowest hash costs, not the sum. A chunk's buffer goes back to
// the pool once every hash has read it.
type hashers struct {
	lanes []*hashLane
	pool  chan<- []byte
	zeros []byte // a hole chunk's bytes
}

type hashLane struct {
	h    hash.Hash
	in   chan *chunk
	mu   sync.Mutex
	cond *sync.Cond
	done int  // chunks hashed
	quit bool // the lane stopped (an error ended the scan)
}

// newHashers makes a lane per hash, each queueing depth chunks; holes is
// the longest hole chunk they may be fed (0: none).
func newHashers(hs []hash.Hash, depth int, pool chan<- []byte, holes int) *hashers {
	x := &hashers{pool: pool}
	if len(hs) > 0 && holes > 0 {
		x.zeros = make([]byte, holes)
	}
	for _, h := range hs {
		l := &hashLane{h: h, in: make(chan *chunk, depth)}
		l.cond = sync.NewCond(&l.mu)
		x.lanes = append(x.lanes, l)
	}
	return x
}

// run hashes the chunks one lane is given until its input is closed.
func (x *hashers) run(ctx context.Context, l *hashLane) error {
	defer l.stop()
	for c := range l.in {
		b := c.buf
		if c.hole {
			b = x.zeros
		}
		if err := write(l.h, c, b[:c.n]); err != nil {
			// The error ends the scan (and so the chunks still queued,
			// which Scan unmaps); quit tells any waiter at once.
			x.release(c)
			return err
		}
		l.mu.Lock()
		l.done++
		l.cond.Broadcast()
		l.mu.Unlock()
		x.release(c)
		if err := ctx.Err(); err != nil {
			// Drain: the buffers still queued go back to the pool. The
			// input closes only once collect returns, and collect may be
			// waiting for this lane (a checkpoint's WaitHashed): it is
			// told first that no more will be hashed.
			l.stop()
			for c := range l.in {
				x.release(c)
			}
			return err
		}
	}
	return nil
}

// stop tells whoever waits for the lane (wait) that it hashes no more.
func (l *hashLane) stop() {
	l.mu.Lock()
	l.quit = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// write feeds b, the bytes of c, to h; an error if reading them (a
// mapped chunk) faults.
func write(h hash.Hash, c *chunk, b []byte) (err error) {
	if c.unmap != nil {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				err = c.fault(p)
			}
		}()
	}
	h.Write(b) // hash.Hash.Write never fails
	return nil
}

func (x *hashers) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		c.free(x.pool)
	}
}

// feed gives chunk c (the seq-th in image order) to every lane; with no
// lane, its buffer goes straight back to the pool.
func (x *hashers) feed(ctx context.Context, c *chunk) error {
	if len(x.lanes) == 0 {
		c.free(x.pool)
		return nil
	}

	c.refs.Store(int32(len(x.lanes)))
	for i, l := range x.lanes {
		select {
		case l.in <- c:
		case <-ctx.Done():
			// The lanes not fed never see it: drop their references,
			// so that the last lane fed (or this) frees the buffer.
			for range x.lanes[i:] {
				x.release(c)
			}
			return ctx.Err()
		}
	}
	return nil
}

// wait blocks until every lane has hashed n chunks; false if one
// stopped before.
func (x *hashers) wait(n int) bool {
	for _, l := range x.lanes {
		l.mu.Lock()
		for l.done < n && !l.quit {
			l.cond.Wait()
		}
		ok := l.done >= n
		l.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (x *hashers) close() {
	for _, l := range x.lanes {
		close(l.in)
	}
}
