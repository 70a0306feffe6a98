package reassemble

import (
	"strings"
	"sync"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/reassemble/damage"
)

// The damage policy's types, as the reports show them (package damage).
type (
	Lattice          = damage.Lattice
	DamageReport     = damage.Report
	DamageThresholds = damage.Thresholds
)

// DamagePolicyThresholds are the damage policy's named thresholds.
func DamagePolicyThresholds() DamageThresholds { return damage.PolicyThresholds() }

// newDamagePolicy classifies the chunks of the first size bytes of a file
// from the carve's fingerprints (nil: no policy, nothing is damaged),
// up to workers ranges of chunks at once (each chunk's class is its own
// blocks' alone, so the split changes nothing).
func newDamagePolicy(view *fileView, fp Fingerprints, size int64, flat bool, workers int) *damage.Policy {
	if fp == nil || size <= 0 {
		return nil
	}
	n := int((size + damage.ChunkSize - 1) / damage.ChunkSize)
	class, first, last := make([]damage.Class, n), make([]damage.Class, n), make([]damage.Class, n)
	classify := func(from, to int) {
		bc := newBlockClassifier(view, fp)
		blocks := make([]damage.Class, 0, damage.ChunkSize/fingerprint.BlockSize)
		for k := from; k < to; k++ {
			blocks = blocks[:0]
			lo, hi := int64(k)*damage.ChunkSize, min(size, int64(k+1)*damage.ChunkSize)
			for off := lo; off < hi; off += fingerprint.BlockSize {
				b := bc.class(off, min(fingerprint.BlockSize, size-off))
				blocks = append(blocks, b)
				if b == damage.Unknown {
					break // (the chunk says nothing)
				}
			}
			class[k], first[k], last[k] = damage.ChunkOf(blocks)
		}
	}
	// A range of chunks is worth a goroutine from minChunksPerWorker on.
	const minChunksPerWorker = 16
	workers = max(1, min(workers, n/minChunksPerWorker))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { classify(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
	return damage.New(class, first, last, flat)
}

// blockClassifier tells what a file's 4 KiB blocks hold (class), for one
// goroutine: it keeps the buffer the blocks it must read go into.
type blockClassifier struct {
	view *fileView
	fp   Fingerprints
	hash func(int64) (uint64, bool) // fp without the randomness test
	buf  []byte
}

func newBlockClassifier(view *fileView, fp Fingerprints) *blockClassifier {
	return &blockClassifier{view: view, fp: fp, hash: hashAt(fp)}
}

// class is what the file's 4 KiB block at off (n bytes of it in the file)
// holds: a hole of the host file (Empty), not known (unmapped, unreadable
// or no fingerprint), plain or random-looking.
//
// The carve's fingerprints cover the image's own 4 KiB blocks, so they
// tell a file's block only where the file lies at a multiple of 4 KiB in
// the image. A file at any other sector (an MBR partition at sector 63
// puts every file of its volume there) straddles two image blocks with
// each of its own: class then reads the block's bytes from the image and
// tests them as the carve tests a block (fingerprint.Of: all-zero is
// plain, fingerprint.Random is random), provided the fingerprints know
// both image blocks it straddles (an unreadable area says nothing). The
// cost is what the aligned case costs: the fingerprints' random bits are
// themselves tested from the image's bytes (pipeline.Fingerprints), each
// block once; here every block the policy consults is read once, 4 KiB
// at a time into the classifier's one buffer, so memory stays bounded
// whatever the file's size.
func (bc *blockClassifier) class(off, n int64) damage.Class {
	img, err := bc.view.imageOffset(off, n)
	switch {
	case err == nil && img == -1:
		return damage.Empty
	case err != nil || n <= 0:
		return damage.Unknown
	case img%fingerprint.BlockSize != 0:
		return bc.readClass(img, n)
	}
	v, ok := bc.fp.At(img)
	switch {
	case !ok:
		return damage.Unknown
	case v&fingerprint.RandomBit != 0:
		return damage.Random
	}
	return damage.Plain
}

// readClass classifies the n bytes at image offset img, not at a 4 KiB
// boundary, from the bytes themselves.
func (bc *blockClassifier) readClass(img, n int64) damage.Class {
	if _, ok := bc.hash(img); !ok {
		return damage.Unknown
	}
	if _, ok := bc.hash(img + n - 1); !ok {
		return damage.Unknown
	}
	if int64(cap(bc.buf)) < n {
		bc.buf = make([]byte, fingerprint.BlockSize)
	}
	b := bc.buf[:n]
	if m, _ := bc.view.image.ReadAt(b, img); m < len(b) {
		return damage.Unknown // (a short read: the bytes say nothing)
	}
	if !entropy.Zero(b) && fingerprint.Random(b) {
		return damage.Random
	}
	return damage.Plain
}

// inheritLattices applies the lattices proven on some files to the other
// files of the evidence (damage.Policy.Inherit), and marks the grains
// placed on them damaged.
func inheritLattices(instances []*Instance) {
	type proven struct {
		l    Lattice
		from int
	}
	var ls []proven
	for _, inst := range instances {
		for _, l := range inst.damage.Lattices() {
			if !strings.HasPrefix(l.Proof, "inherited") {
				ls = append(ls, proven{l, inst.ID})
			}
		}
	}
	if len(ls) == 0 {
		return
	}
	for _, inst := range instances {
		p := inst.damage
		if p == nil || len(p.Lattices()) > 0 {
			continue
		}
		for _, c := range ls {
			if c.from != inst.ID && p.Inherit(c.l, c.from) {
				break
			}
		}
		if len(p.Lattices()) == 0 {
			continue
		}
		gb := inst.Header.GrainBytes()
		damaged := uint64(0)
		for g, gr := range inst.grains.one {
			if gr.Status == Damaged {
				damaged++
				continue
			}
			if gr.Status != Placed || gr.Source == nil || gr.Source.Compressed {
				continue
			}
			if l, ok := p.On(gr.Source.FileOffset, gb); ok {
				inst.grains.set(g, damagedGrain(l, gr.Source.FileOffset))
				damaged++
			}
		}
		inst.Damage = p.Report(damaged)
		inst.Notes = append(inst.Notes, inst.Damage.Decision)
	}
}
