package reassemble

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"vmdkcarve/fingerprint"
	"vmdkcarve/reassemble/damage"
)

// TestDamagePolicyUnaligned lays one file (plain text with 1 MiB of
// random bytes every 4 MiB, a zero MiB and a host hole) at an image offset
// that is a multiple of 4 KiB and at one that is not (sector 63 and on):
// the blocks are classed the same, from the fingerprints in the first
// case and from the image's bytes in the second, and so the policy finds
// the same lattice in both. A block the fingerprints do not know says
// nothing in either.
func TestDamagePolicyUnaligned(t *testing.T) {
	const size = 24 << 20
	file := bytes.Repeat([]byte("the guest's own text, in plain words\n"), size/37+1)[:size]
	r := rand.NewChaCha8([32]byte{3})
	for p := 1 << 20; p < size; p += 4 << 20 {
		_, _ = r.Read(file[p : p+1<<20])
	}
	clear(file[10<<20 : 11<<20])
	const hole = 20 << 20  // [hole, hole+1 MiB) is a hole of the host file
	var reads atomic.Int64 // the image's reads, of classes' last call
	classes := func(at int64, known int64) ([]damage.Class, *damage.Policy) {
		image := make([]byte, at+size+fingerprint.BlockSize)
		copy(image[at:], file)
		reads.Store(0)
		view := newFileView(countingReader{bytes.NewReader(image), &reads}, []Fragment{
			{FileOffset: 0, ImageOffset: at, Length: hole},
			{FileOffset: hole, ImageOffset: -1, Length: 1 << 20, Link: LinkHole},
			{FileOffset: hole + 1<<20, ImageOffset: at + hole + 1<<20, Length: size - hole - 1<<20},
		})
		fp := fakeFingerprints(image[:min(known, int64(len(image)))])
		bc := newBlockClassifier(view, fp)
		var out []damage.Class
		for off := int64(0); off < size; off += fingerprint.BlockSize {
			out = append(out, bc.class(off, fingerprint.BlockSize))
		}
		p := newDamagePolicy(view, fp, size, false, 2)
		p.Decide()
		return out, p
	}
	aligned, pa := classes(4<<20, 1<<40)
	unaligned, pu := classes(63*512+4<<20, 1<<40)
	// Each walk over the file's blocks (the loop above, the policy's)
	// reads its unaligned blocks in windows, not one read per block.
	if blocks := int64(size / fingerprint.BlockSize); reads.Load() > 2*(blocks/(classifyWindow/fingerprint.BlockSize)+8) {
		t.Errorf("%d reads of the image for 2 walks over %d unaligned blocks: not read in windows", reads.Load(), blocks)
	}
	if len(aligned) != len(unaligned) {
		t.Fatalf("%d and %d blocks", len(aligned), len(unaligned))
	}
	count := map[damage.Class]int{}
	for i := range aligned {
		if aligned[i] != unaligned[i] {
			t.Errorf("block %d: %d aligned, %d unaligned", i, aligned[i], unaligned[i])
		}
		count[aligned[i]]++
	}
	if count[damage.Random] != 6*256 || count[damage.Empty] != 256 || count[damage.Unknown] != 0 {
		t.Errorf("classes %v, want 1536 random, 256 empty, none unknown", count)
	}
	la, lu := pa.Lattices(), pu.Lattices()
	if len(la) != 1 || len(lu) != 1 || la[0].String() != lu[0].String() {
		t.Errorf("lattices %v aligned, %v unaligned: want the same one", la, lu)
	}
	// Fingerprints that stop inside the file: its blocks past them are
	// unknown, aligned or not (an unreadable area).
	part, _ := classes(63*512+4<<20, 63*512+4<<20+8<<20)
	if part[2047] == damage.Unknown || part[2048] != damage.Unknown {
		t.Errorf("blocks 2047, 2048 past fingerprints that end at the file's 8 MiB: %d, %d; want known, unknown", part[2047], part[2048])
	}
}

// countingReader counts its ReadAt calls.
type countingReader struct {
	r     io.ReaderAt
	reads *atomic.Int64
}

func (c countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.r.ReadAt(p, off)
}
