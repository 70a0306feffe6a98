// Package ewf reads disk images stored in the Expert Witness Compression
// Format, EWF-E01 (the .E01, .E02, … segment files EnCase, FTK Imager and
// libewf's ewfacquire write), as an io.ReaderAt over the acquired media.
//
// The Go module proxy serves no EWF reader, so this package is our own:
// it is written from the format's public description (the "Expert Witness
// Compression Format (EWF)" document of the libewf project; section
// numbers below are that document's) and checked against images written
// by ewfacquire and read back by ewfexport and ewfverify.
//
// A segment file is a 13-byte file header followed by sections, each a
// 76-byte descriptor (type, offset of the next section, size, Adler-32)
// and its data. The first segment holds the header/header2 sections (case
// metadata, not needed to read the media) and the volume section (chunk
// count and size, sector count); every segment holds one or more sectors
// sections (the chunks) each followed by a table section (one 32-bit entry
// per chunk: its offset from the table's base offset, the top bit set when
// the chunk is zlib-compressed) and its mirror table2. A segment other
// than the last ends with a next section, the last with hash (MD5),
// digest (MD5 and SHA-1) and error2 (acquiry read errors) sections before
// done.
//
// Every value read from a segment is bounded before it is used: sections
// must lie inside their file and advance, tables inside their sections,
// chunks inside the sectors section their table follows, and chunk sizes
// under MaxChunkSize. A damaged structure gives a *FormatError; a damaged
// chunk a *ChunkError naming segment, chunk and file offset, from ReadAt,
// while ReadAtZeroDamaged reads past it (zeros, the chunk listed) for a
// caller that treats its bytes as unknown. Nothing here panics on crafted
// input; the fuzz targets check that.
package ewf

import (
	"errors"
	"fmt"

	"vmdkcarve/internal/formaterr"
)

// File header (§ File header, EWF-E01): signature, 0x01, segment number
// (u16), 0x0000.
const (
	Signature      = "EVF\x09\x0d\x0a\xff\x00"
	fileHeaderSize = 13
	fhStartFields  = 8  // u8 0x01
	fhSegment      = 9  // u16, 1 or higher
	fhEndFields    = 11 // u16 0
)

// Section descriptor (§ Section descriptor): 76 bytes at the start of
// every section.
const (
	descriptorSize = 76
	sdType         = 0  // 16 bytes, NUL-padded ASCII
	sdNext         = 16 // u64, from the start of the segment file
	sdSize         = 24 // u64, including the descriptor
	sdChecksum     = 72 // Adler-32 of bytes 0..71
)

// Section types read by this package; others are skipped.
const (
	secHeader  = "header"
	secHeader2 = "header2"
	secVolume  = "volume"
	secDisk    = "disk" // FTK Imager's name for a volume section
	secData    = "data" // the volume section's copy in later segments
	secSectors = "sectors"
	secTable   = "table"
	secTable2  = "table2"
	secHash    = "hash"
	secDigest  = "digest"
	secError2  = "error2"
	secNext    = "next"
	secDone    = "done"
)

// Volume section data (§ Volume section): the EWF-E01 layout is 1052
// bytes; the original EWF (and SMART) layout is 94, with a 32-bit sector
// count and the checksum at 90.
const (
	volumeSizeE01      = 1052
	volumeSizeEWF      = 94
	volChunkCount      = 4  // u32
	volSectorsPerChunk = 8  // u32
	volBytesPerSector  = 12 // u32
	volSectorCount     = 16 // u64 (E01) or u32 (EWF)
	volSetID           = 64 // 16-byte segment file set GUID (E01)
	volChecksumE01     = 1048
	volChecksumEWF     = 90
)

// Table section data (§ Table section, EnCase 6): a 24-byte header (entry
// count, base offset, Adler-32), the entries, and an Adler-32 of the
// entries.
const (
	tableHeaderSize  = 24
	thCount          = 0  // u32
	thBase           = 8  // u64; the entries are relative to it (0 before EnCase 6)
	thChecksum       = 20 // Adler-32 of bytes 0..19
	tableEntrySize   = 4
	tableFooterSize  = 4
	entryCompressed  = 1 << 31 // top bit: the chunk is zlib-compressed
	entryOffsetMask  = entryCompressed - 1
	chunkChecksumLen = 4 // an uncompressed chunk is followed by its Adler-32
)

// Hash, digest and error2 sections (§ Hash section, § Digest section,
// § Error2 section).
const (
	hashSize         = 36 // MD5 at 0, 16 unknown bytes, Adler-32 at 32
	hashChecksum     = 32
	digestSize       = 80 // MD5 at 0, SHA-1 at 16, padding, Adler-32 at 76
	digestSHA1       = 16
	digestChecksum   = 76
	error2HeaderSize = 520 // entry count at 0, Adler-32 at 516
	error2Checksum   = 516
	error2EntrySize  = 8 // u32 first sector, u32 sector count
)

// Limits on values read from a segment. Each is wide enough for every
// writer the format document lists and tight enough that nothing derived
// from it can ask for an unreasonable allocation.
const (
	// MaxChunkSize bounds sectors per chunk × bytes per sector: the
	// largest ewfacquire offers is 32768 sectors of 512 bytes (16 MiB);
	// 64 MiB leaves room for larger sectors. Every chunk buffer is at
	// most this.
	MaxChunkSize = 64 << 20

	// MaxBytesPerSector bounds the sector size (512, 2048 for optical
	// media and 4096 are the ones seen).
	MaxBytesPerSector = 1 << 16

	// maxStoredSlack is how much larger than its chunk a stored chunk may
	// be: a writer stores a chunk uncompressed (chunk + 4) when deflate
	// would grow it, and deflate's own worst case is 5 bytes per 16 KiB
	// stored block plus the 6-byte zlib wrapper, well under 1/64 + 64.
	maxStoredSlackDiv = 64
	maxStoredSlack    = 64

	// MaxSegments is how many segment files the naming scheme can name
	// (.E01 … .E99, then .EAA … .ZZZ): 99 + 22·26·26.
	MaxSegments = 99 + 22*26*26

	// MaxError2Entries bounds the acquiry errors read (each names a run
	// of sectors): far more than any acquisition that still finished.
	MaxError2Entries = 1 << 20
)

// Errors returned (wrapped) by the package.
var (
	// ErrNotEWF: the bytes do not start with the EWF-E01 signature.
	ErrNotEWF = errors.New("ewf: not an EWF-E01 segment file")
	// ErrFormat: a structure holds an implausible value (a *FormatError).
	ErrFormat = errors.New("ewf: invalid structure")
	// ErrChecksum: a structure's or a chunk's Adler-32 does not match.
	ErrChecksum = errors.New("ewf: checksum mismatch")
	// ErrTruncated: a structure or chunk runs past the end of its file.
	ErrTruncated = errors.New("ewf: truncated")
	// ErrSegments: the segment files do not form one set.
	ErrSegments = errors.New("ewf: segment set")
)

// A FormatError reports an implausible value in an on-disk structure.
// Offset is the field's byte offset within the segment file.
type FormatError struct {
	Struct string // "file header", "section descriptor", "volume", "table", ...
	Offset int64
	Field  string
	Value  any
	Reason string
	Err    error // what it wraps: ErrFormat, ErrChecksum or ErrTruncated
}

func (e *FormatError) Error() string {
	return formaterr.Message("ewf", e.Struct, e.Field, e.Value, e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error {
	if e.Err == nil {
		return ErrFormat
	}
	return e.Err
}

// A ChunkError reports a chunk that cannot be read: its table entry points
// outside its sectors section, it is cut short, or it does not decompress
// or check.
type ChunkError struct {
	Segment int    // segment number, from 1
	Path    string // segment file
	Chunk   int64  // chunk number in the media, from 0
	Media   int64  // the media offset the chunk holds
	Length  int64  // the media bytes it holds, from Media
	Offset  int64  // the chunk's byte offset in the segment file
	Err     error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("ewf: segment %d (%s): chunk %d (media offset %d) at file offset %d: %v",
		e.Segment, e.Path, e.Chunk, e.Media, e.Offset, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }
