//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos

package carver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"os"
	"reflect"
	"testing"

	"vmdkcarve/internal/mmap"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/signatures"
)

// TestMappedMatchesRead: a scan of an *os.File, which maps its chunks,
// gives the hits, fingerprints and hash of the same scan reading them,
// over whole images and shards whose margins run past their end.
func TestMappedMatchesRead(t *testing.T) {
	im := newTestImage(t, 3<<20+1234, testBoundary, 21)
	f := tooltest.TempFile(t, im.data)
	n := int64(len(im.data))
	for _, tc := range []struct {
		start, end int64
		opts       Options
	}{
		{0, n, Options{Workers: 1}},
		{0, n, Options{Workers: 3, ChunkSize: testBoundary}},
		{testBoundary, 2<<20 + BlockSize, Options{Workers: 2, ChunkSize: 3 * BlockSize}},
		{n &^ (BlockSize - 1), n, Options{Workers: 2}},
	} {
		run := func(r interface {
			ReadAt([]byte, int64) (int, error)
		}, noMap bool) ([]signatures.Hit, []uint64, []byte) {
			h := sha256.New()
			s := &collectingSink{t: t, next: tc.start}
			opts := tc.opts
			opts.Recognizers, opts.ImageSize, opts.Hashes, opts.NoMap = signatures.All(), n, []hash.Hash{h}, noMap
			if err := Scan(context.Background(), r, tc.start, tc.end, opts, s); err != nil {
				t.Fatalf("[%d,%d): %v", tc.start, tc.end, err)
			}
			return s.hits, s.fps, h.Sum(nil)
		}
		wantHits, wantFPs, wantSum := run(bytes.NewReader(im.data), false)
		for _, noMap := range []bool{false, true} {
			hits, fps, sum := run(f, noMap)
			if !reflect.DeepEqual(hits, wantHits) || !reflect.DeepEqual(fps, wantFPs) || !bytes.Equal(sum, wantSum) {
				t.Errorf("[%d,%d) workers %d, noMap %v: %d hits, %d fingerprints differ from the read scan's %d, %d (or the hash does)",
					tc.start, tc.end, tc.opts.Workers, noMap, len(hits), len(fps), len(wantHits), len(wantFPs))
			}
		}
	}
}

// TestMappedShrunk: an image that shrinks after it was measured makes the
// mapped pages past its new end fault; the scan and the hashes report an
// error naming the offset instead of crashing the process.
func TestMappedShrunk(t *testing.T) {
	data := noise(2<<20, 22)
	n := int64(len(data))
	f := tooltest.TempFile(t, data)
	if err := os.Truncate(f.Name(), n/2); err != nil {
		t.Fatal(err)
	}
	sink := SinkFunc(func(ChunkResult) error { return nil })
	opts := Options{Workers: 2, ChunkSize: 256 << 10, Recognizers: signatures.All(), ImageSize: n, Hashes: []hash.Hash{sha256.New()}}
	err := Scan(context.Background(), f, 0, n, opts, sink)
	if !errors.Is(err, errMappedRead) {
		t.Fatalf("Scan of a shrunk image: %v, want %v", err, errMappedRead)
	}
	t.Log(err)

	// The hashes read the chunks too, after the scan: the same fault
	// there is an error as well.
	data2, release, err := mmap.Range(f, n/2-BlockSize, 2*BlockSize, true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	c := &chunk{start: n/2 - BlockSize, n: 2 * BlockSize, avail: 2 * BlockSize, buf: data2, unmap: release}
	if err := write(sha256.New(), c, data2); !errors.Is(err, errMappedRead) {
		t.Errorf("hashing a faulting chunk: %v, want %v", err, errMappedRead)
	}
}

// TestMappedSinkError: a sink error ends a scan of mapped chunks with
// that error, the chunks still in flight unmapped (run with -race).
func TestMappedSinkError(t *testing.T) {
	data := noise(4<<20, 23)
	f := tooltest.TempFile(t, data)
	errSink := errors.New("sink failed")
	for _, hashes := range [][]hash.Hash{nil, {sha256.New()}} {
		n := 0
		sink := SinkFunc(func(ChunkResult) error {
			if n++; n == 2 {
				return errSink
			}
			return nil
		})
		opts := Options{Workers: 3, ChunkSize: 128 << 10, Recognizers: signatures.All(), ImageSize: int64(len(data)), Hashes: hashes}
		if err := Scan(context.Background(), f, 0, int64(len(data)), opts, sink); !errors.Is(err, errSink) {
			t.Errorf("hashes %d: Scan: %v, want %v", len(hashes), err, errSink)
		}
	}
}

// TestMappedHashFault: a hash lane that faults reading a mapped chunk
// ends with the error at once, and a sink waiting for the hashes is told
// they will never catch up instead of waiting for ever.
func TestMappedHashFault(t *testing.T) {
	data := noise(1<<20, 24)
	f := tooltest.TempFile(t, data)
	buf, release, err := mmap.Range(f, 0, len(data), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.Name(), 0); err != nil {
		t.Fatal(err)
	}
	pool := make(chan []byte, 4)
	hs := newHashers([]hash.Hash{sha256.New()}, 2, pool, 0)
	done := make(chan error, 1)
	go func() { done <- hs.run(context.Background(), hs.lanes[0]) }()
	c := &chunk{n: len(data), avail: len(data), buf: buf, unmap: release}
	if err := hs.feed(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if hs.wait(1) {
		t.Error("wait: the hash caught up with a chunk it could not read")
	}
	if err := <-done; !errors.Is(err, errMappedRead) {
		t.Errorf("hash lane: %v, want %v", err, errMappedRead)
	}
	hs.close()
}
