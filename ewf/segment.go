package ewf

import (
	"errors"
	"fmt"
	"hash/adler32"
	"io"
)

// A table is one checked table section: count chunks, whose entries lie
// at file offset entries, each relative to base, all inside the sectors
// section data [dataStart, dataEnd) it follows.
type table struct {
	entries            int64
	count              int64
	base               int64
	dataStart, dataEnd int64
}

// A segment is one parsed segment file.
type segment struct {
	number int
	path   string
	r      io.ReaderAt
	size   int64

	volume *Volume // from its volume, disk or data section (nil if none)
	tables []table
	hashes []StoredHash
	errors []SectorRun
	last   bool // it ends with a done section (else with next)
}

// maxSections bounds the sections walked in one segment: each is at least
// a descriptor, so a file cannot hold more than size/76; the bound only
// stops a loop that would not advance (which parseDescriptor refuses).
func maxSections(size int64) int64 { return size/descriptorSize + 1 }

// readSegment parses the segment file r of size bytes. vol is the set's
// volume section (nil for the first segment, which must carry it).
func readSegment(r io.ReaderAt, size int64, path string, vol *Volume) (*segment, error) {
	var fh [fileHeaderSize]byte
	n, err := r.ReadAt(fh[:], 0)
	if n < len(fh) && !IsEWF(fh[:n]) {
		if err == nil || err == io.EOF {
			err = ErrNotEWF
		}
		return nil, fmt.Errorf("ewf: %s: %w", path, err)
	}
	number, err := ParseFileHeader(fh[:n])
	if err != nil {
		return nil, fmt.Errorf("ewf: %s: %w", path, err)
	}
	s := &segment{number: number, path: path, r: r, size: size, volume: vol}
	if err := s.walk(); err != nil {
		return nil, fmt.Errorf("ewf: segment %d (%s): %w", number, path, err)
	}
	return s, nil
}

// walk reads the sections from the file header to next or done.
func (s *segment) walk() error {
	var (
		desc    [descriptorSize]byte
		sectors *section // the sectors section the next table describes
		failed  error    // a table that did not check: its table2 may stand in
	)
	off := int64(fileHeaderSize)
	for i := int64(0); ; i++ {
		if i > maxSections(s.size) {
			return &FormatError{Struct: "section descriptor", Offset: off, Field: "sections", Value: i, Reason: "more sections than the file can hold"}
		}
		n, err := s.r.ReadAt(desc[:], off)
		if n < descriptorSize && err != nil && err != io.EOF {
			return fmt.Errorf("ewf: reading the section descriptor at %d: %w", off, err)
		}
		if n < descriptorSize {
			return &FormatError{Struct: "section descriptor", Offset: off, Field: "length", Value: n,
				Reason: "the file ends before its next or done section: the segment is truncated", Err: ErrTruncated}
		}
		sec, err := parseDescriptor(desc[:], off, s.size)
		if err != nil {
			return err
		}
		if failed != nil && sec.Type != secTable2 {
			return failed
		}
		switch sec.Type {
		case secVolume, secDisk, secData:
			if err := s.readVolume(sec); err != nil {
				return err
			}
		case secSectors:
			sectors = &sec
		case secTable:
			failed = s.readTable(sec, sectors)
		case secTable2:
			if failed != nil {
				// The table's mirror stands in for it only if it checks.
				if err := s.readTable(sec, sectors); err != nil {
					return failed
				}
				failed = nil
			}
			sectors = nil
		case secHash, secDigest, secError2:
			if err := s.readTrailer(sec); err != nil {
				return err
			}
		case secNext, secDone:
			s.last = sec.Type == secDone
			return nil
		}
		// header, header2 and the sections of other formats (ltree,
		// session, map, ...) hold nothing the media's bytes depend on.
		off = sec.Next
	}
}

// sectionData reads a section's data, at most limit bytes of it (the
// sections read whole are small; a larger one is cut to what its parser
// reads, so a crafted size allocates nothing).
func (s *segment) sectionData(sec section, limit int64) ([]byte, error) {
	n := min(sec.dataEnd()-sec.dataStart(), limit)
	b := make([]byte, n)
	if k, err := s.r.ReadAt(b, sec.dataStart()); k < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("ewf: reading the %s section at %d: %w", sec.Type, sec.Offset, err)
	}
	return b, nil
}

func (s *segment) readVolume(sec section) error {
	b, err := s.sectionData(sec, volumeSizeE01)
	if err != nil {
		return err
	}
	v, err := parseVolume(b, sec.dataStart())
	if err != nil {
		return err
	}
	if s.volume != nil && !s.volume.sameMedia(&v) {
		return &FormatError{Struct: sec.Type, Offset: sec.dataStart(), Field: "media", Value: fmt.Sprintf("%d chunks of %d sectors, %d sectors", v.ChunkCount, v.SectorsPerChunk, v.SectorCount),
			Reason: fmt.Sprintf("the set's volume section says %d chunks of %d sectors, %d sectors: a segment of another image", s.volume.ChunkCount, s.volume.SectorsPerChunk, s.volume.SectorCount), Err: ErrSegments}
	}
	if s.volume == nil {
		s.volume = &v
	}
	return nil
}

// readTable checks the table (or table2) section sec, whose chunks lie in
// the sectors section before it, and adds it to the segment: header and
// entries checksums, every chunk inside the sectors data, in order, none
// larger than a stored chunk can be.
func (s *segment) readTable(sec section, sectors *section) error {
	if s.volume == nil {
		return &FormatError{Struct: sec.Type, Offset: sec.Offset, Field: "volume", Value: "none", Reason: "a table before any volume section"}
	}
	if sectors == nil {
		return &FormatError{Struct: sec.Type, Offset: sec.Offset, Field: "sectors", Value: "none",
			Reason: "no sectors section before the table (the EnCase 1 and SMART layouts, chunks inside the table, are not read)"}
	}
	dataLen := sec.dataEnd() - sec.dataStart()
	var hb [tableHeaderSize]byte
	if _, err := s.r.ReadAt(hb[:], sec.dataStart()); err != nil && dataLen >= tableHeaderSize {
		return fmt.Errorf("ewf: reading the %s header at %d: %w", sec.Type, sec.dataStart(), err)
	}
	count, base, err := parseTableHeader(hb[:], sec.dataStart(), dataLen)
	if err != nil {
		return err
	}
	t := table{entries: sec.dataStart() + tableHeaderSize, count: count, base: base, dataStart: sectors.dataStart(), dataEnd: sectors.dataEnd()}
	if count == 0 {
		return nil
	}
	if dataLen < tableHeaderSize+count*tableEntrySize+tableFooterSize {
		return &FormatError{Struct: sec.Type, Offset: sec.dataStart(), Field: "entry count", Value: count, Reason: "no room for the entries' checksum", Err: ErrTruncated}
	}
	// The entries are read in pieces: a table can hold millions.
	sum := adler32.New()
	buf := make([]byte, min(count*tableEntrySize, 64<<10))
	prev := int64(-1)
	maxStored := maxStoredSize(s.volume.ChunkSize())
	for i := int64(0); i < count; {
		n := min(int64(len(buf))/tableEntrySize, count-i)
		b := buf[:n*tableEntrySize]
		if _, err := s.r.ReadAt(b, t.entries+i*tableEntrySize); err != nil {
			return fmt.Errorf("ewf: reading the %s entries at %d: %w", sec.Type, t.entries+i*tableEntrySize, err)
		}
		sum.Write(b)
		for j := int64(0); j < n; j++ {
			o := entryOffset(base, le.Uint32(b[j*tableEntrySize:]))
			if err := t.checkChunk(sec.Type, i+j, prev, o, maxStored); err != nil {
				return err
			}
			prev = o
		}
		i += n
	}
	if err := t.checkChunk(sec.Type, count, prev, t.dataEnd, maxStored); err != nil {
		return err
	}
	var fb [tableFooterSize]byte
	footer := t.entries + count*tableEntrySize
	if _, err := s.r.ReadAt(fb[:], footer); err != nil {
		return fmt.Errorf("ewf: reading the %s checksum at %d: %w", sec.Type, footer, err)
	}
	if got, want := sum.Sum32(), le.Uint32(fb[:]); got != want {
		return &FormatError{Struct: sec.Type, Offset: footer, Field: "entries checksum", Value: want, Reason: "Adler-32 of the entries is " + hex32(got), Err: ErrChecksum}
	}
	s.tables = append(s.tables, t)
	return nil
}

// checkChunk checks entry i of a table: its chunk starts at o, after the
// previous chunk (which starts at prev, -1 for none) and inside the
// sectors data, and the previous chunk, which ends at o, is no larger than
// a stored chunk can be. i == count checks the last chunk against the end
// of the sectors data.
func (t *table) checkChunk(typ string, i, prev, o, maxStored int64) error {
	at := t.entries + min(i, t.count-1)*tableEntrySize
	switch {
	case o < t.dataStart || o > t.dataEnd || (o == t.dataEnd && i < t.count):
		return &FormatError{Struct: typ, Offset: at, Field: fmt.Sprintf("entry %d", i), Value: o,
			Reason: fmt.Sprintf("the chunk lies outside its sectors section data [%d, %d)", t.dataStart, t.dataEnd)}
	case prev >= 0 && o <= prev:
		return &FormatError{Struct: typ, Offset: at, Field: fmt.Sprintf("entry %d", i), Value: o, Reason: fmt.Sprintf("not after the previous chunk at %d", prev)}
	case prev >= 0 && o-prev > maxStored:
		return &FormatError{Struct: typ, Offset: at, Field: fmt.Sprintf("entry %d", i-1), Value: prev, Reason: fmt.Sprintf("a chunk of %d stored bytes, more than a chunk can take (%d)", o-prev, maxStored)}
	}
	return nil
}

// maxStoredSize is the most bytes a chunk of chunkSize media bytes can be
// stored in (see maxStoredSlack).
func maxStoredSize(chunkSize int64) int64 {
	return chunkSize + chunkChecksumLen + chunkSize/maxStoredSlackDiv + maxStoredSlack
}

// readTrailer reads a hash, digest or error2 section.
func (s *segment) readTrailer(sec section) error {
	var err error
	switch sec.Type {
	case secHash:
		var b []byte
		if b, err = s.sectionData(sec, hashSize); err == nil {
			var hs []StoredHash
			hs, err = parseHash(b, sec.dataStart())
			s.hashes = append(s.hashes, hs...)
		}
	case secDigest:
		var b []byte
		if b, err = s.sectionData(sec, digestSize); err == nil {
			var hs []StoredHash
			hs, err = parseDigest(b, sec.dataStart())
			s.hashes = append(s.hashes, hs...)
		}
	case secError2:
		var b []byte
		// The section's size bounds the read: it lies inside the file.
		if b, err = s.sectionData(sec, error2HeaderSize+MaxError2Entries*error2EntrySize+4); err == nil {
			var runs []SectorRun
			runs, err = parseError2(b, sec.dataStart())
			s.errors = append(s.errors, runs...)
		}
	}
	return err
}
