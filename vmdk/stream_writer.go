package vmdk

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// StreamLayout selects where a stream-optimized writer puts its grain
// directory and tables (FORMAT.md §3.1).
type StreamLayout int

const (
	// StreamGDFront is the open-vmdk layout: header version 3, flags
	// 0x30001, descriptor at sectors 1..20, GD at 21 and every GT
	// pre-allocated right after it, overHead at the exact end of the tables
	// (not grain-aligned), the grain records, then one EOS sector.
	StreamGDFront StreamLayout = iota

	// StreamGDAtEnd is the VMware spec / ovftool layout (FORMAT.md §3.5):
	// header gdOffset = GD_AT_END, grains from a grain-aligned overHead,
	// a GT marker + GT after each 512-grain group that has data (no GT for
	// empty groups: their GDE is 0), a GD marker + GD, a footer marker,
	// the footer (the header with the real gdOffset) and the EOS sector as
	// the very last 512 bytes.
	StreamGDAtEnd
)

func (l StreamLayout) String() string {
	switch l {
	case StreamGDFront:
		return "gd-front"
	case StreamGDAtEnd:
		return "gd-at-end"
	}
	return fmt.Sprintf("StreamLayout(%d)", int(l))
}

// StreamWriterOptions configures WriteStreamOptimized. The zero value of
// every field but Capacity and FileName means the default.
type StreamWriterOptions struct {
	Capacity  uint64 // virtual sectors
	GrainSize uint64 // sectors; 0 = 128
	// FileName is written in the descriptor's extent line. libvmdk opens
	// the extent by this name, so it must be the output file's base name.
	FileName string
	// Descriptor is an optional template: CID, ParentCID and DDB are
	// copied from it as they are. Without it the CID is derived from
	// FileName and Capacity, so the same input gives the same bytes.
	Descriptor *Descriptor
	Layout     StreamLayout
	// Level is the zlib level, 1..9. 0 means 6 (qemu's level), because the
	// zero value must be the default; "store only" cannot be asked for.
	Level int
}

// streamDescriptorSectors is the embedded descriptor area every writer
// seen reserves (qemu, open-vmdk: sectors 1..20).
const streamDescriptorSectors = 20

// defaultStreamLevel is the zlib level qemu uses (grains start 78 9C).
const defaultStreamLevel = 6

// errStreamTooLarge reports an extent whose grain records would be
// addressed beyond the 32-bit sector numbers of a GTE.
var errStreamTooLarge = errors.New("vmdk: stream grows beyond 2^32 sectors; GTEs cannot address it")

// WriteStreamOptimized writes a single-extent streamOptimized VMDK to w in
// the chosen layout and returns the number of bytes written.
//
// read is called for the grains 0..n-1 in order with a buffer of one grain
// (the last one shorter when Capacity is not a multiple of GrainSize); the
// buffer is zeroed before each call. It returns false for an absent grain.
// Absent and all-zero grains get no grain record, as with qemu and
// open-vmdk. Every grain record is EncodeGrain output with lba = grain ×
// GrainSize.
//
// StreamGDFront needs the grain tables before the grains. If w is an
// io.WriteSeeker that can seek (a regular file), the table area is reserved
// and filled in at the end, so read is called once per grain. Otherwise
// (a pipe, a buffer) each grain is read and compressed twice: a sizing pass
// and a writing pass. This keeps memory bounded by one grain plus the
// tables whatever the disk size, at the cost of CPU for non-seekable
// writers. StreamGDAtEnd is always a single pass.
func WriteStreamOptimized(w io.Writer, opts StreamWriterOptions, read func(grain uint64, buf []byte) (bool, error)) (int64, error) {
	s, err := newStreamWriter(opts)
	if err != nil {
		return 0, err
	}
	switch opts.Layout {
	case StreamGDFront:
		if ws, ok := w.(io.WriteSeeker); ok {
			if base, err := ws.Seek(0, io.SeekCurrent); err == nil {
				return s.writeFrontSeek(ws, base, read)
			}
		}
		return s.writeFrontTwoPass(w, read)
	case StreamGDAtEnd:
		return s.writeAtEnd(w, read)
	}
	return 0, fmt.Errorf("vmdk: stream writer: unknown layout %d", int(opts.Layout))
}

// streamWriter holds the derived geometry of one stream being written.
type streamWriter struct {
	opts       StreamWriterOptions
	hdr        SparseHeader // template; gdOffset/overHead set per layout
	desc       []byte       // descriptor text padded to streamDescriptorSectors
	grains     uint64
	grainBytes int
	gtCount    uint64 // GD entries
	gdSectors  uint64
	gtSectors  uint64
	level      int
}

func newStreamWriter(opts StreamWriterOptions) (*streamWriter, error) {
	if opts.GrainSize == 0 {
		opts.GrainSize = 128
	}
	if opts.Level == 0 {
		opts.Level = defaultStreamLevel
	}
	if opts.Level < 1 || opts.Level > 9 {
		return nil, fmt.Errorf("vmdk: stream writer: zlib level %d, want 1..9", opts.Level)
	}
	// libvmdk opens the extent by this name (FORMAT.md §6.1): it must be
	// a name the extent line can hold as it is.
	if err := CheckExtentName(opts.FileName); err != nil {
		return nil, fmt.Errorf("vmdk: stream writer: FileName: %w", err)
	}
	h := SparseHeader{
		Version:           3,
		Flags:             FlagValidNewlines | FlagCompressed | FlagMarkers,
		Capacity:          opts.Capacity,
		GrainSize:         opts.GrainSize,
		DescriptorOffset:  1,
		DescriptorSize:    streamDescriptorSectors,
		NumGTEsPerGT:      GTEsPerGT,
		GDOffset:          1 + streamDescriptorSectors, // checked by Validate; set per layout below
		CompressAlgorithm: CompressDeflate,
	}
	// Validate catches a zero or absurd capacity and a bad grain size
	// before any table is allocated.
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("vmdk: stream writer: %w", err)
	}
	desc, err := streamDescriptor(opts)
	if err != nil {
		return nil, err
	}
	return &streamWriter{
		opts:       opts,
		hdr:        h,
		desc:       desc,
		grains:     h.Grains(),
		grainBytes: int(h.GrainBytes()),
		gtCount:    h.GDEntries(),
		gdSectors:  h.GDSectors(),
		gtSectors:  h.GTSectors(),
		level:      opts.Level,
	}, nil
}

// streamDescriptor builds the embedded descriptor, NUL-padded to 20 sectors.
func streamDescriptor(opts StreamWriterOptions) ([]byte, error) {
	d := &Descriptor{
		Version:    1,
		ParentCID:  0xffffffff,
		CreateType: "streamOptimized",
		Extents:    []Extent{{Access: "RW", Sectors: opts.Capacity, Type: "SPARSE", FileName: opts.FileName}},
	}
	if t := opts.Descriptor; t != nil {
		d.CID, d.ParentCID = t.CID, t.ParentCID
		d.DDB = d.fitDDB(t.DDB, streamDescriptorSectors*SectorSize)
	} else {
		d.CID = derivedCID(opts.FileName, opts.Capacity)
		d.DDB = map[string]string{"ddb.adapterType": "lsilogic", "ddb.virtualHWVersion": "4"}
	}
	text, err := d.Encode()
	if err != nil {
		return nil, err
	}
	area := streamDescriptorSectors * SectorSize
	if len(text) > area {
		return nil, fmt.Errorf("vmdk: stream writer: descriptor is %d bytes, more than the %d-byte area", len(text), area)
	}
	out := make([]byte, area)
	copy(out, text)
	return out, nil
}

// eachRecord reads every grain in order and hands the encoded record of
// each non-empty one to fn. rec is reused between calls.
func (s *streamWriter) eachRecord(read func(uint64, []byte) (bool, error), fn func(grain uint64, rec []byte) error) error {
	buf := make([]byte, s.grainBytes)
	rec := make([]byte, 0, MaxCompressedGrain(int64(s.grainBytes))+2*SectorSize)
	capBytes := s.opts.Capacity * SectorSize
	for g := range s.grains {
		n := uint64(s.grainBytes)
		if end := (g + 1) * n; end > capBytes {
			n -= end - capBytes
		}
		b := buf[:n]
		clear(b)
		ok, err := read(g, b)
		if err != nil {
			return fmt.Errorf("vmdk: stream writer: grain %d: %w", g, err)
		}
		if !ok || streamAllZero(b) {
			continue
		}
		rec, err = EncodeGrain(rec[:0], g*s.opts.GrainSize, b, s.level)
		if err != nil {
			return fmt.Errorf("vmdk: stream writer: grain %d: %w", g, err)
		}
		if err := fn(g, rec); err != nil {
			return err
		}
	}
	return nil
}

func streamAllZero(b []byte) bool {
	// Compare in chunks against a zero block: much faster than a byte loop.
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// frontGeometry sets the header of the GD-front layout and returns the
// first grain sector.
func (s *streamWriter) frontGeometry() SparseHeader {
	h := s.hdr
	h.GDOffset = 1 + streamDescriptorSectors
	h.OverHead = h.GDOffset + s.gdSectors + s.gtCount*s.gtSectors
	return h
}

// frontTables encodes the GD (pointing at the pre-allocated GTs) followed
// by all GTs, as one block starting at sector h.GDOffset.
func (s *streamWriter) frontTables(h SparseHeader, gtes []uint32) []byte {
	gd := make([]uint32, s.gtCount)
	for i := range gd {
		gd[i] = uint32(h.GDOffset + s.gdSectors + uint64(i)*s.gtSectors)
	}
	out := EncodeEntries(gd)
	return append(out, EncodeEntries(gtes)...)
}

// countingWriter tracks the byte position of a buffered stream.
type countingWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) sector() uint64 { return uint64(c.n) / SectorSize }

func (s *streamWriter) writePrefix(cw *countingWriter, h SparseHeader) error {
	hb, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := cw.Write(hb); err != nil {
		return err
	}
	_, err = cw.Write(s.desc)
	return err
}

// writeRecords streams the grain records from the current position,
// recording each record's sector in gtes.
func (s *streamWriter) writeRecords(cw *countingWriter, gtes []uint32, read func(uint64, []byte) (bool, error)) error {
	return s.eachRecord(read, func(g uint64, rec []byte) error {
		sec := cw.sector()
		if sec+uint64(len(rec))/SectorSize >= MaxSparseCapacity {
			return errStreamTooLarge
		}
		if gtes != nil {
			gtes[g] = uint32(sec)
		}
		_, err := cw.Write(rec)
		return err
	})
}

func (s *streamWriter) writeFrontSeek(ws io.WriteSeeker, base int64, read func(uint64, []byte) (bool, error)) (int64, error) {
	h := s.frontGeometry()
	cw := &countingWriter{w: bufio.NewWriterSize(ws, 1<<20)}
	if err := s.writePrefix(cw, h); err != nil {
		return cw.n, err
	}
	// Reserve the table area; it is written once the grains are placed.
	tableBytes := int64(h.OverHead-h.GDOffset) * SectorSize
	if _, err := cw.Write(make([]byte, tableBytes)); err != nil {
		return cw.n, err
	}
	gtes := make([]uint32, s.gtCount*GTEsPerGT)
	if err := s.writeRecords(cw, gtes, read); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(MarshalMetaMarker(0, MarkerEOS)); err != nil {
		return cw.n, err
	}
	if err := cw.w.Flush(); err != nil {
		return cw.n, err
	}
	if _, err := ws.Seek(base+int64(h.GDOffset)*SectorSize, io.SeekStart); err != nil {
		return cw.n, err
	}
	if _, err := ws.Write(s.frontTables(h, gtes)); err != nil {
		return cw.n, err
	}
	if _, err := ws.Seek(base+cw.n, io.SeekStart); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func (s *streamWriter) writeFrontTwoPass(w io.Writer, read func(uint64, []byte) (bool, error)) (int64, error) {
	h := s.frontGeometry()
	// Sizing pass: where each record will land.
	gtes := make([]uint32, s.gtCount*GTEsPerGT)
	sec := h.OverHead
	err := s.eachRecord(read, func(g uint64, rec []byte) error {
		if sec+uint64(len(rec))/SectorSize >= MaxSparseCapacity {
			return errStreamTooLarge
		}
		gtes[g] = uint32(sec)
		sec += uint64(len(rec)) / SectorSize
		return nil
	})
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: bufio.NewWriterSize(w, 1<<20)}
	if err := s.writePrefix(cw, h); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(s.frontTables(h, gtes)); err != nil {
		return cw.n, err
	}
	// Writing pass: the records must land where the sizing pass said;
	// a read callback that is not deterministic would break that.
	check := make([]uint32, len(gtes))
	if err := s.writeRecords(cw, check, read); err != nil {
		return cw.n, err
	}
	for i := range gtes {
		if gtes[i] != check[i] {
			return cw.n, fmt.Errorf("vmdk: stream writer: grain %d changed between the sizing and writing passes", i)
		}
	}
	if _, err := cw.Write(MarshalMetaMarker(0, MarkerEOS)); err != nil {
		return cw.n, err
	}
	return cw.n, cw.w.Flush()
}

func (s *streamWriter) writeAtEnd(w io.Writer, read func(uint64, []byte) (bool, error)) (int64, error) {
	h := s.hdr
	h.GDOffset = GDAtEnd
	// Grains start grain-aligned after zero padding, as packer/VMware
	// streams do (FORMAT.md §3.1); readers do not check overHead.
	h.OverHead = ceilDiv(1+streamDescriptorSectors, h.GrainSize) * h.GrainSize
	cw := &countingWriter{w: bufio.NewWriterSize(w, 1<<20)}
	if err := s.writePrefix(cw, h); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(make([]byte, int64(h.OverHead)*SectorSize-cw.n)); err != nil {
		return cw.n, err
	}

	gd := make([]uint32, s.gtCount)
	gt := make([]uint32, GTEsPerGT)
	group, hasData := uint64(0), false
	// flushGT emits the GT marker and GT of the current group if it had any
	// grain; empty groups keep GDE 0 (FORMAT.md §2.2).
	flushGT := func() error {
		if !hasData {
			return nil
		}
		if _, err := cw.Write(MarshalMetaMarker(s.gtSectors, MarkerGT)); err != nil {
			return err
		}
		gd[group] = uint32(cw.sector())
		if _, err := cw.Write(EncodeEntries(gt)); err != nil {
			return err
		}
		clear(gt)
		hasData = false
		return nil
	}
	err := s.eachRecord(read, func(g uint64, rec []byte) error {
		if g/GTEsPerGT != group {
			if err := flushGT(); err != nil {
				return err
			}
			group = g / GTEsPerGT
		}
		sec := cw.sector()
		// The record, the remaining GTs, the GD and the footer must all
		// stay addressable by 32-bit sector numbers.
		if sec+uint64(len(rec))/SectorSize+(s.gtCount-group)*(1+s.gtSectors)+s.gdSectors+4 >= MaxSparseCapacity {
			return errStreamTooLarge
		}
		gt[g%GTEsPerGT] = uint32(sec)
		hasData = true
		_, err := cw.Write(rec)
		return err
	})
	if err != nil {
		return cw.n, err
	}
	if err := flushGT(); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(MarshalMetaMarker(s.gdSectors, MarkerGD)); err != nil {
		return cw.n, err
	}
	footer := h
	footer.GDOffset = cw.sector()
	if _, err := cw.Write(EncodeEntries(gd)); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(MarshalMetaMarker(1, MarkerFooter)); err != nil {
		return cw.n, err
	}
	fb, err := footer.MarshalBinary()
	if err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(fb); err != nil {
		return cw.n, err
	}
	// The EOS must be the very last sector: readers find the footer at
	// EOF-1024, and even one sector of slack breaks them (FORMAT.md §3.5).
	if _, err := cw.Write(MarshalMetaMarker(0, MarkerEOS)); err != nil {
		return cw.n, err
	}
	return cw.n, cw.w.Flush()
}
