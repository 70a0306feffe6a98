package pipeline

import (
	"fmt"
	"runtime"
	"sync"

	"vmdkcarve/vmdk"
)

// readAhead reads the grains of a disk 0, 1, 2, ... on several goroutines
// ahead of the one writer that takes them in that order: reading a grain
// (from the image, inflating a stream record, checking its hash) costs
// about what writing and hashing it does, and a rebuild of one disk would
// otherwise use one core. Each goroutine reads with a diskReader of its
// own; their counts add up to what one reader reading every grain counts.
type readAhead struct {
	main    *diskReader
	readers []*diskReader
	slots   []aheadSlot
	grains  uint64
	next    uint64 // the grain the writer takes next
	done    chan struct{}
	wg      sync.WaitGroup
	stopped bool
}

// aheadSlot holds one grain read ahead: grain i goes to slot i % len(slots)
// once grain i - len(slots) has been taken from it.
type aheadSlot struct {
	buf   []byte
	ok    bool
	err   error
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
	a.slots = make([]aheadSlot, 2*workers)
	for i := range a.slots {
		s := &a.slots[i]
		s.buf = make([]byte, gb)
		s.free, s.ready = make(chan struct{}, 1), make(chan struct{}, 1)
		s.free <- struct{}{}
	}
	// The dispatcher hands out grains in order, each once its slot is
	// free, so that a slot never holds a grain the writer is not yet at.
	jobs := make(chan uint64)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(jobs)
		for g := range a.grains {
			select {
			case <-a.slots[g%uint64(len(a.slots))].free:
			case <-a.done:
				return
			}
			select {
			case jobs <- g:
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
			for g := range jobs {
				s := &a.slots[g%uint64(len(a.slots))]
				s.ok, s.err = false, nil
				if gr := d.Placed(g); gr != nil && gr.Source != nil {
					b := s.buf[:grainLen(d.Capacity, gb, g)]
					clear(b) // a read cut by the image's end leaves the rest
					s.ok, s.err = r.readGrain(g, b)
				}
				s.ready <- struct{}{}
			}
		}()
	}
	return a
}

func grainLen(capacity uint64, gb int64, g uint64) int64 {
	return min(gb, int64(capacity)*vmdk.SectorSize-int64(g)*gb)
}

// readGrain is diskReader.readGrain for the next grain in order.
func (a *readAhead) readGrain(g uint64, buf []byte) (bool, error) {
	if g != a.next || g >= a.grains {
		return false, fmt.Errorf("pipeline: read ahead gives grain %d next, not %d", a.next, g)
	}
	a.next++
	s := &a.slots[g%uint64(len(a.slots))]
	<-s.ready
	ok, err := s.ok, s.err
	if ok {
		copy(buf, s.buf)
	}
	s.free <- struct{}{}
	return ok, err
}

// stop ends the goroutines, whether or not every grain was taken, and
// adds what their readers counted to the main reader's counts.
func (a *readAhead) stop() {
	if a.stopped {
		return
	}
	a.stopped = true
	// The dispatcher returns, closing jobs, and the workers with it; none
	// blocks handing in a grain, as its slot's ready had been taken.
	close(a.done)
	a.wg.Wait()
	for _, r := range a.readers {
		a.main.verify.GrainsRead += r.verify.GrainsRead
		a.main.verify.HashMismatch += r.verify.HashMismatch
		a.main.verify.DecodeFailure += r.verify.DecodeFailure
	}
}
