// Package signatures holds the recognizers the carver runs at every aligned
// offset of an image: pure functions from a window of bytes to a typed hit
// (or nothing). They do no I/O and keep no state, so a window can be
// recognised by any worker in any order with the same result.
package signatures

import (
	"vmdkcarve/fs/ext4"
	"vmdkcarve/fs/ntfs"
	"vmdkcarve/vmdk"
)

// Kind names what a hit is.
type Kind string

// Hit kinds.
const (
	KindSparseHeader Kind = "sparse-header"   // "KDMV" header or stream footer
	KindDescriptor   Kind = "descriptor"      // text descriptor, embedded or standalone
	KindGrainMarker  Kind = "grain-marker"    // compressed grain record of a stream
	KindMetaMarker   Kind = "meta-marker"     // GT, GD or footer marker of a stream
	KindGD           Kind = "grain-directory" // block shaped like a pre-allocated GD
	KindGT           Kind = "grain-table"     // block shaped like a grain table
	KindCOWD         Kind = "cowd-header"     // ESX vmfsSparse delta header
	KindSESparse     Kind = "sesparse-header" // ESXi seSparse header
	KindNTFS         Kind = "ntfs"            // NTFS host structure (MFT record, boot sector)
	KindExt4         Kind = "ext4"            // ext4 host structure (superblock, inode, extent block)
	KindMBR          Kind = "partition-table" // MBR sector: where a flat extent may start
	KindError        Kind = "error"           // a recognizer failed on this window
)

// Verdict grades a hit.
type Verdict string

const (
	// Valid: every plausibility rule passed.
	Valid Verdict = "valid"
	// Damaged: the magic and enough structure matched to be evidence, but a
	// rule failed; Reason says which. Damaged structures are never trusted
	// to place data, but they are reported.
	Damaged Verdict = "damaged"
)

// Hit is one recognised structure at an image offset. Exactly one of the
// detail pointers is set, matching Kind. Hits are stored one JSON object
// per line, sorted by Offset then Kind.
type Hit struct {
	Offset  int64   `json:"offset"`
	Kind    Kind    `json:"kind"`
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason,omitempty"`
	Length  int64   `json:"length,omitempty"` // bytes the structure spans

	Sparse     *vmdk.SparseHeader   `json:"sparse,omitempty"`
	Descriptor *vmdk.Descriptor     `json:"descriptor,omitempty"`
	Grain      *GrainInfo           `json:"grain,omitempty"`
	Meta       *vmdk.MetaMarker     `json:"meta,omitempty"`
	Table      *TableInfo           `json:"table,omitempty"`
	COWD       *vmdk.COWDHeader     `json:"cowd,omitempty"`
	SESparse   *vmdk.SESparseHeader `json:"sesparse,omitempty"`
	NTFS       *ntfs.Record         `json:"ntfs,omitempty"`
	Ext4       *ext4.Record         `json:"ext4,omitempty"`
	MBR        *MBRInfo             `json:"mbr,omitempty"`
}

// GrainInfo describes a decoded stream grain record.
type GrainInfo struct {
	LBA       uint64 `json:"lba"`
	Size      uint32 `json:"size"`           // compressed bytes after the marker
	DataBytes int    `json:"data_bytes"`     // decompressed bytes (0 if damaged)
	Hash      uint64 `json:"hash,omitempty"` // xxhash64 of the decompressed data
	Zero      bool   `json:"zero,omitempty"` // decompressed data is all zero
}

// TableInfo describes a GD- or GT-shaped block.
type TableInfo struct {
	Entries int    `json:"entries"`        // GD: entries in the run; GT: non-zero entries
	First   uint32 `json:"first"`          // GD: first entry; GT: smallest non-zero entry
	Last    uint32 `json:"last,omitempty"` // GT: largest entry
}
