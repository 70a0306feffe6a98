package vmdk

import (
	"fmt"
	"io"

	"vmdkcarve/internal/entropy"
)

// SparseWriterOptions configures WriteMonolithicSparse.
type SparseWriterOptions struct {
	Capacity   uint64      // virtual sectors
	GrainSize  uint64      // sectors; 0 means 128, the size every writer uses
	FileName   string      // base name of the output file, for the extent line
	Descriptor *Descriptor // optional template: CID, ParentCID and DDB are kept

	// NoRedundant omits the redundant GD/GTs. By default they are written,
	// byte-identical but for their GDEs, as qemu and VMware do.
	NoRedundant bool
	// Order, when set, is the order grains are appended in (a permutation
	// of 0..n-1): a disk grown by a running guest appends grains as the
	// guest first writes them, not in virtual order. nil is virtual order.
	Order []uint64
	// Allocated, when set, says before any grain is read whether read
	// will give it and not all zeros (a rebuild knows this from its plan).
	// The tables are then written first and the file front to back, so
	// that w can hash it as it goes instead of reading it back. A grain
	// that belies it costs only that: the file is still right.
	Allocated func(grain uint64) bool
	// ReadFills, when set, says that read fills every byte of its buffer
	// whenever it returns true, so the buffer is not zeroed before each
	// call (clearing every grain's buffer was a tenth of a rebuild's CPU).
	ReadFills bool
}

// descriptorSectors is what qemu and open-vmdk reserve for the embedded
// descriptor; qemu reads the CID from these sectors only (FORMAT.md §1.2).
const descriptorSectors = 20

// SparseLayout is where WriteMonolithicSparse puts the metadata: the
// qemu layout of FORMAT.md §2.4 with every GT pre-allocated.
type SparseLayout struct {
	Header  SparseHeader
	GDSecs  uint64
	GTCount uint64
}

// NewSparseLayout computes the header of a monolithicSparse extent.
func NewSparseLayout(capacity, grainSize uint64, redundant bool) (*SparseLayout, error) {
	if grainSize == 0 {
		grainSize = 128
	}
	h := SparseHeader{
		Version: 1, Flags: FlagValidNewlines, Capacity: capacity, GrainSize: grainSize,
		DescriptorOffset: 1, DescriptorSize: descriptorSectors, NumGTEsPerGT: GTEsPerGT,
	}
	if capacity == 0 || capacity > MaxSparseCapacity || !isPowerOfTwo(grainSize) || grainSize < MinGrainSize || grainSize > MaxGrainSize {
		return nil, fmt.Errorf("vmdk: cannot write a sparse extent of %d sectors with %d-sector grains", capacity, grainSize)
	}
	l := &SparseLayout{GDSecs: h.GDSectors(), GTCount: h.GDEntries()}
	next := 1 + h.DescriptorSize
	if redundant {
		h.Flags |= FlagRedundantGD
		h.RGDOffset = next
		next += l.GDSecs + l.GTCount*h.GTSectors()
	}
	h.GDOffset = next
	next += l.GDSecs + l.GTCount*h.GTSectors()
	h.OverHead = ceilDiv(next, grainSize) * grainSize
	l.Header = h
	return l, h.Validate()
}

// WriteMonolithicSparse writes a monolithicSparse VMDK to w that qemu-img
// and libvmdk open (FORMAT.md §6.1). read is called for every grain 0..n-1
// in order (opts.Order, or virtual order) with a zeroed buffer of one grain
// (the last grain's buffer is shorter when the capacity is not a multiple
// of the grain size); it returns false for an absent grain. All-zero and
// absent grains are left unallocated, so they read as zeros. Grains are
// appended in that order after the metadata. With opts.Allocated the
// file is written front to back, the metadata first; without it (or when
// a grain belies it) the tables are written last. It returns the file
// size.
func WriteMonolithicSparse(w io.WriterAt, opts SparseWriterOptions, read func(grain uint64, buf []byte) (bool, error)) (int64, error) {
	l, err := NewSparseLayout(opts.Capacity, opts.GrainSize, !opts.NoRedundant)
	if err != nil {
		return 0, err
	}
	h := &l.Header
	desc := Descriptor{Version: 1, CID: 0xfffffffe, ParentCID: 0xffffffff}
	if opts.Descriptor != nil {
		// The DDB comes from evidence: only the entries that can be
		// written as they are (the report keeps every one as parsed).
		desc.CID, desc.ParentCID = opts.Descriptor.CID, opts.Descriptor.ParentCID
	}
	desc.CreateType = "monolithicSparse"
	desc.Extents = []Extent{{Access: "RW", Sectors: opts.Capacity, Type: "SPARSE", FileName: opts.FileName}}
	if opts.Descriptor != nil {
		desc.DDB = desc.fitDDB(opts.Descriptor.DDB, descriptorSectors*SectorSize)
	}
	text, err := desc.Encode()
	if err != nil {
		return 0, fmt.Errorf("vmdk: %w", err)
	}
	if len(text) > descriptorSectors*SectorSize {
		return 0, fmt.Errorf("vmdk: descriptor of %d bytes does not fit %d sectors", len(text), descriptorSectors)
	}

	grains := h.Grains()
	if opts.Order != nil && uint64(len(opts.Order)) != grains {
		return 0, fmt.Errorf("vmdk: write order names %d grains, the disk has %d", len(opts.Order), grains)
	}
	order := func(i uint64) uint64 { return i }
	if opts.Order != nil {
		seen := make([]bool, grains)
		for _, g := range opts.Order {
			if g >= grains || seen[g] {
				return 0, fmt.Errorf("vmdk: write order is not a permutation (grain %d)", g)
			}
			seen[g] = true
		}
		order = func(i uint64) uint64 { return opts.Order[i] }
	}
	gtes := make([]uint32, l.GTCount*GTEsPerGT)
	meta := func() []byte {
		hdr, _ := h.MarshalBinary()
		meta := make([]byte, h.OverHead*SectorSize)
		copy(meta, hdr)
		copy(meta[SectorSize:], text)
		putTables := func(gdSector uint64) {
			gd := make([]uint32, l.GTCount)
			gtSector := gdSector + l.GDSecs
			for i := range gd {
				gd[i] = uint32(gtSector + uint64(i)*h.GTSectors())
			}
			copy(meta[gdSector*SectorSize:], EncodeEntries(gd))
			copy(meta[gtSector*SectorSize:], EncodeEntries(gtes))
		}
		if h.HasRedundantGD() {
			putTables(h.RGDOffset)
		}
		putTables(h.GDOffset)
		return meta
	}

	// With the allocation known, the tables are too: they are written
	// first, and the grains after them in one sequential pass.
	ahead := opts.Allocated != nil
	if ahead {
		next := h.OverHead
		for i := range grains {
			if g := order(i); opts.Allocated(g) {
				gtes[g] = uint32(next)
				next += h.GrainSize
			}
		}
		if next > MaxSparseCapacity {
			ahead = false // let the grains say where the extent overflows
			clear(gtes)
		} else if _, err := w.WriteAt(meta(), 0); err != nil {
			return 0, err
		}
	}

	grainBytes := h.GrainBytes()
	out := newGrainBatch(w, int64(h.OverHead)*SectorSize, int(grainBytes))
	// No write of a batch may outlive the call: the caller closes w.
	defer out.wait()
	next := h.OverHead // sector of the next grain
	for i := range grains {
		g := order(i)
		n := grainBytes
		if rest := int64(h.Capacity-g*h.GrainSize) * SectorSize; rest < n {
			n = rest
		}
		// A short last grain is written whole (zero-padded) so the file
		// contains every grain entirely, as readers expect.
		b := out.next(opts.ReadFills)
		if opts.ReadFills {
			clear(b[n:]) // the padding
		}
		ok, err := read(g, b[:n])
		if err != nil {
			return 0, fmt.Errorf("vmdk: reading grain %d: %w", g, err)
		}
		written := ok && !entropy.Zero(b[:n])
		if ahead && written != opts.Allocated(g) {
			// The grain belies the allocation: the tables already
			// written are wrong from here on. The rest is written as
			// without Allocated, and the tables again at the end.
			ahead = false
			for j := i; j < grains; j++ {
				gtes[order(j)] = 0
			}
		}
		if !written {
			continue
		}
		if next+h.GrainSize > MaxSparseCapacity {
			return 0, fmt.Errorf("vmdk: extent would exceed 2^32 sectors")
		}
		if err := out.keep(); err != nil {
			return 0, err
		}
		gtes[g] = uint32(next)
		next += h.GrainSize
	}
	if err := out.flush(); err != nil {
		return 0, err
	}
	if !ahead {
		if _, err := w.WriteAt(meta(), 0); err != nil {
			return 0, err
		}
	}
	return int64(next) * SectorSize, nil
}

// grainBatchBytes is how many bytes of consecutive grains are written in
// one call: one write per 64 KiB grain cost the rebuild of the 4 GiB
// bench image more CPU in the kernel than the writes of 4 MiB it now
// makes, and a disk written past the page cache (O_DIRECT) takes large
// writes faster.
const grainBatchBytes = 4 << 20

// grainBatch gathers consecutive grains of the file into one buffer and
// writes them together, on a goroutine of its own while the next batch
// fills a second buffer: reading a batch (an inflate, a hash) and writing
// the one before (a copy or a device transfer, a hash in w) then overlap.
// At most one write is in flight, so w sees its writes one at a time and
// in file order.
type grainBatch struct {
	w          io.WriterAt
	off        int64 // file offset of buf[0]
	buf, spare []byte
	used, size int
	inFlight   bool
	written    chan error // the write in flight's result
}

func newGrainBatch(w io.WriterAt, off int64, grainBytes int) *grainBatch {
	n := max(grainBatchBytes/grainBytes, 1) * grainBytes
	return &grainBatch{w: w, off: off, buf: make([]byte, n), size: grainBytes, written: make(chan error, 1)}
}

// next returns the buffer for the next grain: zeroed, or as the last grain
// left it when the reader fills what it reads (SparseWriterOptions.
// ReadFills).
func (b *grainBatch) next(filled bool) []byte {
	g := b.buf[b.used : b.used+b.size]
	if !filled {
		clear(g)
	}
	return g
}

// keep adds the grain next returned to the file.
func (b *grainBatch) keep() error {
	b.used += b.size
	if b.used == len(b.buf) {
		return b.send()
	}
	return nil
}

// send starts writing the grains kept, once the write before has ended.
func (b *grainBatch) send() error {
	if err := b.wait(); err != nil || b.used == 0 {
		return err
	}
	p, off := b.buf[:b.used], b.off
	b.inFlight = true
	go func() {
		_, err := b.w.WriteAt(p, off)
		b.written <- err
	}()
	if b.spare == nil {
		b.spare = make([]byte, len(b.buf))
	}
	b.buf, b.spare = b.spare, b.buf
	b.off += int64(b.used)
	b.used = 0
	return nil
}

// wait waits for the write in flight, if any, and returns its error.
func (b *grainBatch) wait() error {
	if !b.inFlight {
		return nil
	}
	b.inFlight = false
	return <-b.written
}

// flush writes what is kept and waits until it is written.
func (b *grainBatch) flush() error {
	if err := b.send(); err != nil {
		return err
	}
	return b.wait()
}
