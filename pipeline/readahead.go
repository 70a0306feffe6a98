package pipeline

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"vmdkcarve/vmdk"
)

// readAhead reads the grains of a disk 0, 1, 2, ... on several goroutines
// ahead of the one writer that takes them in that order: reading a grain
// (from the image, inflating a stream record, checking its hash) costs
// about what writing and hashing it does, and a rebuild of one disk would
// otherwise use one core. Each goroutine reads with a diskReader of its
// own; their counts add up to what one reader reading every grain counts.
//
// Grains travel in batches of aheadBatch consecutive ones, so that the
// hand-overs between goroutines cost little beside the reads.
type readAhead struct {
	main    *diskReader
	readers []*diskReader
	slots   []aheadSlot
	grains  uint64
	next    uint64 // the grain the writer takes next
	err     error  // the read error the writer was given: it gets no more
	done    chan struct{}
	wg      sync.WaitGroup
	stopped bool
}

// aheadBatch is how many grains a slot holds: 512 KiB of 64 KiB grains.
const aheadBatch = 8

// aheadSlot holds batch i (grains i*aheadBatch ...) once batch
// i - len(slots) has been taken from it.
type aheadSlot struct {
	bufs  [aheadBatch][]byte
	ok    [aheadBatch]bool
	err   error // of the grain after the last one read
	upto  int   // the grains of the batch read (all, unless err)
	free  chan struct{}
	ready chan struct{}
}

// newReadAhead starts reading dr's disk ahead with workers goroutines
// (0 = one per CPU); stop ends them and adds their counts to dr's.
func newReadAhead(dr *diskReader, workers int) *readAhead {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	d := dr.disk
	gb := int64(d.GrainSize) * vmdk.SectorSize
	a := &readAhead{main: dr, grains: d.Grains(), done: make(chan struct{})}
	batches := (a.grains + aheadBatch - 1) / aheadBatch
	a.slots = make([]aheadSlot, min(2*uint64(workers), max(batches, 1)))
	for i := range a.slots {
		s := &a.slots[i]
		for j := range s.bufs {
			s.bufs[j] = make([]byte, gb)
		}
		s.free, s.ready = make(chan struct{}, 1), make(chan struct{}, 1)
		s.free <- struct{}{}
	}
	// The dispatcher hands out batches in order, each once its slot is
	// free, so that a slot never holds a batch the writer is not yet at.
	jobs := make(chan uint64)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(jobs)
		for i := range batches {
			select {
			case <-a.slot(i).free:
			case <-a.done:
				return
			}
			select {
			case jobs <- i:
			case <-a.done:
				return
			}
		}
	}()
	for range workers {
		r := newDiskReader(dr.img, d)
		a.readers = append(a.readers, r)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for i := range jobs {
				s := a.slot(i)
				s.err, s.upto = nil, 0
				for j := range aheadBatch {
					g := i*aheadBatch + uint64(j)
					if g >= a.grains {
						break
					}
					s.ok[j] = false
					if gr := d.Placed(g); gr != nil && gr.Source != nil {
						// readGrain fills all of b when it gives the grain
						// (and the writer takes nothing of it otherwise).
						b := s.bufs[j][:grainLen(d.Capacity, gb, g)]
						if s.ok[j], s.err = r.readGrain(g, b); s.err != nil {
							break // the writer stops at the error, as with one reader
						}
					}
					s.upto = j + 1
				}
				s.ready <- struct{}{}
			}
		}()
	}
	return a
}

// emitPending counts the disks emitDisks has yet to finish writing, those
// waiting for a core included.
var emitPending atomic.Int64

// readGrains returns the reader of dr's grains for its writer: read ahead
// on the CPUs the other disks still to write leave free, or dr itself when
// there are none (each disk then has a core of its own, and reading ahead
// would only add its copies and hand-overs). stop ends it, and may be
// called more than once.
func readGrains(dr *diskReader) (read func(uint64, []byte) (bool, error), stop func()) {
	workers := runtime.NumCPU()/int(max(emitPending.Load(), 1)) - 1
	if workers <= 0 {
		return dr.readGrain, func() {}
	}
	a := newReadAhead(dr, workers)
	return a.readGrain, a.stop
}

func (a *readAhead) slot(batch uint64) *aheadSlot { return &a.slots[batch%uint64(len(a.slots))] }

func grainLen(capacity uint64, gb int64, g uint64) int64 {
	return min(gb, int64(capacity)*vmdk.SectorSize-int64(g)*gb)
}

// readGrain is diskReader.readGrain for the next grain in order.
func (a *readAhead) readGrain(g uint64, buf []byte) (bool, error) {
	if a.err != nil {
		return false, a.err
	}
	if g != a.next || g >= a.grains {
		return false, fmt.Errorf("pipeline: read ahead gives grain %d next, not %d", a.next, g)
	}
	a.next++
	s, j := a.slot(g/aheadBatch), int(g%aheadBatch)
	if j == 0 {
		<-s.ready // the batch is in
	}
	if j == s.upto {
		a.err = s.err
		return false, a.err
	}
	ok := s.ok[j]
	if ok {
		copy(buf, s.bufs[j])
	}
	if j == aheadBatch-1 || a.next == a.grains {
		s.free <- struct{}{}
	}
	return ok, nil
}

// stop ends the goroutines, whether or not every grain was taken, and
// adds what their readers counted to the main reader's counts.
func (a *readAhead) stop() {
	if a.stopped {
		return
	}
	a.stopped = true
	// The dispatcher returns, closing jobs, and the workers with it; none
	// blocks handing in a batch, as its slot's ready had been taken.
	close(a.done)
	a.wg.Wait()
	for _, r := range a.readers {
		a.main.verify.GrainsRead += r.verify.GrainsRead
		a.main.verify.HashMismatch += r.verify.HashMismatch
		a.main.verify.DecodeFailure += r.verify.DecodeFailure
		a.main.verify.Redecoded += r.verify.Redecoded
	}
}
