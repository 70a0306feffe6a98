// Package vmdk reads and writes the on-disk structures of VMware virtual
// disks: the hosted sparse extent header ("KDMV"), the text descriptor, grain
// directories and tables, streamOptimized markers, and the COWD and seSparse
// headers of ESXi deltas.
//
// Every parser takes untrusted bytes and checks every length and offset it
// reads against explicit limits before using it. Headers, descriptors and
// tables report problems as a *FormatError naming the field; stream markers
// and grain records, tried at every sector of an image, report the
// sentinels ErrNotVMDK, ErrTruncated and ErrGrainData with context. The
// byte layouts are documented in FORMAT.md (shared design notes) and in
// VMware's "Virtual Disk Format 5.0" technical note.
package vmdk

import (
	"errors"
	"vmdkcarve/internal/formaterr"
)

// SectorSize is the unit of every sector number in a VMDK.
const SectorSize = 512

// Hosted sparse extent header (FORMAT.md §1).
const (
	SparseMagic      = "KDMV" // u32 0x564D444B, little-endian
	sparseHeaderSize = SectorSize

	// Flag bits at offset 8.
	FlagValidNewlines  = 1 << 0  // bytes 73..76 hold the newline-detection characters
	FlagRedundantGD    = 1 << 1  // rgdOffset names a redundant grain directory
	FlagZeroedGrainGTE = 1 << 2  // a GTE of 1 means "reads as zeros" (version 2+)
	FlagCompressed     = 1 << 16 // grains are compressed (compressAlgorithm)
	FlagMarkers        = 1 << 17 // grains and metadata are preceded by markers
	knownFlags         = FlagValidNewlines | FlagRedundantGD | FlagZeroedGrainGTE | FlagCompressed | FlagMarkers

	CompressNone    = 0
	CompressDeflate = 1 // really a zlib (RFC 1950) stream, FORMAT.md §3.3

	// GDAtEnd in gdOffset means the real grain directory offset is in the
	// stream footer at the end of the file.
	GDAtEnd = ^uint64(0)
)

// Limits on values read from disk. They are wide enough for every writer
// seen (FORMAT.md §5) and tight enough that nothing derived from them can
// ask for an unreasonable allocation.
const (
	// MinGrainSize and MaxGrainSize bound grainSize in sectors. Every writer
	// seen uses 128; libvmdk refuses 8 or less and 2048 (1 MiB) is the
	// largest any reader was shown to handle.
	MinGrainSize = 16
	MaxGrainSize = 2048

	// GTEsPerGT is the only numGTEsPerGT any writer uses; qemu rejects more.
	GTEsPerGT = 512

	// MaxSparseCapacity is the largest hosted sparse capacity in sectors:
	// GTEs are 32-bit sectors, so a hosted extent cannot address more than
	// 2^32 sectors (2 TiB). Stream-optimized extents may claim more; we
	// still refuse anything whose grain directory would exceed MaxGDEntries.
	MaxSparseCapacity = 1 << 32

	// MaxGDEntries is qemu's L1 limit (32 Mi entries); a header that implies
	// a larger directory is rejected before anything is allocated.
	MaxGDEntries = 1 << 25

	// MaxDescriptorSectors is VirtualBox's limit on the embedded descriptor.
	MaxDescriptorSectors = 20480

	// MaxDescriptorBytes bounds how much text ParseDescriptor reads.
	MaxDescriptorBytes = 1 << 20
)

// Errors returned (wrapped) by the parsers.
var (
	ErrNotVMDK   = errors.New("vmdk: not a VMDK structure")
	ErrFormat    = errors.New("vmdk: invalid structure")
	ErrTruncated = errors.New("vmdk: truncated structure")
)

// A FormatError reports an implausible value in an on-disk structure.
type FormatError struct {
	Struct string // "sparse header", "descriptor", "grain marker", ...
	Offset int64  // byte offset of the field within the structure
	Field  string
	Value  any
	Reason string
}

func (e *FormatError) Error() string {
	return formaterr.Message("vmdk", e.Struct, e.Field, e.Value, e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return ErrFormat }

func isPowerOfTwo(v uint64) bool { return v != 0 && v&(v-1) == 0 }

// ceilDiv returns ceil(a/b) for b > 0 without overflowing for large a.
func ceilDiv(a, b uint64) uint64 {
	return a/b + min(a%b, 1)
}
