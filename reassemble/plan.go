// Package reassemble turns carved hits into virtual disks: it groups hits
// into VMDK instances, maps each instance's file offsets to image offsets,
// decides for every virtual grain where its bytes come from and how sure we
// are, and merges copies of the same disk. It decides; it writes nothing.
// Emitting the decided disks is the pipeline's job.
//
// The rule everywhere: a grain is placed only on evidence that names its
// source; anything less leaves it missing, and the plan says why.
package reassemble

import (
	"sort"

	"vmdkcarve/fsprobe"
	"vmdkcarve/reassemble/damage"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Status of one virtual grain in a plan.
type Status string

const (
	Placed   Status = "placed"   // bytes come from Source
	Zero     Status = "zero"     // proven to read as zeros (unallocated in a trusted table)
	Missing  Status = "missing"  // no trustworthy source; written as a hole and reported
	Conflict Status = "conflict" // sources disagree; treated as missing
	// Damaged grains lie on an intermittent encryption lattice the damage
	// policy accepted for their file (damage.go): their bytes there are
	// proven destroyed. Written as a hole, like missing.
	Damaged Status = "damaged"
)

// Evidence levels (DESIGN.md, disk report).
const (
	EvTable  = "table"  // the VMDK's own grain table
	EvMarker = "marker" // a stream grain marker's LBA
	EvCopy   = "copy"   // corroborated by an identical copy in another instance
	EvStream = "stream" // a contiguous run of stream records proves the absent grains are zero
	EvHost   = "host"   // the grain's file offset was linked to the image by a host filesystem's map
)

// Source is where a placed grain's bytes lie in the image.
type Source struct {
	Instance    int   `json:"instance"`
	ImageOffset int64 `json:"image_offset"` // grain data, or the grain record of a stream
	FileOffset  int64 `json:"file_offset"`
	Compressed  bool  `json:"compressed,omitempty"`
	RecordBytes int64 `json:"record_bytes,omitempty"` // compressed record length, sector-padded
	// Pieces, when set, are where the grain's bytes (or record's bytes)
	// lie when they are not one run at ImageOffset: the grain straddles
	// fragments of a fragmented host file, or holds a host hole.
	Pieces []Piece `json:"pieces,omitempty"`
}

// Piece is a run of a grain's (or record's) bytes: Length bytes at offset
// Offset within it come from ImageOffset, or are zeros when ImageOffset
// is -1 (a hole of a sparse host file).
type Piece struct {
	Offset      int64 `json:"offset"`
	ImageOffset int64 `json:"image_offset"`
	Length      int64 `json:"length"`
}

// Grain is the decision for one virtual grain.
type Grain struct {
	Status   Status   `json:"status"`
	Evidence []string `json:"evidence,omitempty"`
	Source   *Source  `json:"source,omitempty"`
	Hash     uint64   `json:"hash,omitempty"` // xxhash64 of the grain's bytes when placed
	Copies   int      `json:"copies,omitempty"`
	Reason   Reason   `json:"-"` // why placed so, missing, conflicting, damaged or zero; the report words it (Run)

	// tableLost: missing only because the grain's table is lost (or the
	// file's header with it), the one decision last-resort placement may
	// replace.
	tableLost bool
}

// Fragment links a range of an instance's file to a range of the image.
type Fragment struct {
	FileOffset  int64  `json:"file_offset"`
	ImageOffset int64  `json:"image_offset"` // -1 for a hole
	Length      int64  `json:"length"`
	Evidence    string `json:"evidence"`
	// Link is the kind of evidence for the link: "contiguous" (assumed
	// from the header on, until the bytes contradict it), "host" (a host
	// filesystem's own map), "hole" (a hole of a sparse host file, reads
	// as zeros), "anchored" (a shift backed by anchors, map_follow.go).
	Link string `json:"link"`
	// Anchors and AnchorKinds (anchored fragments) count the structures
	// whose places back the fragment's shift, by kind; Boundary says what
	// placed its end against the next fragment (or why it is not known).
	Anchors     int            `json:"anchors,omitempty"`
	AnchorKinds map[string]int `json:"anchor_kinds,omitempty"`
	Boundary    string         `json:"boundary,omitempty"`
}

// Link kinds of a Fragment.
const (
	LinkContiguous = "contiguous"
	LinkHost       = "host"
	LinkHole       = "hole"
)

// Instance is one VMDK file (extent) found in the image.
type Instance struct {
	ID           int                `json:"id"`
	Variant      string             `json:"variant"` // monolithicSparse, streamOptimized, ...
	HeaderOffset int64              `json:"header_offset"`
	Header       *vmdk.SparseHeader `json:"header"`
	FooterOffset int64              `json:"footer_offset,omitempty"`
	// HeaderLost: no header was found at HeaderOffset; the header is
	// inferred (Notes say from what) and HeaderOffset is where the file
	// must have begun.
	HeaderLost bool             `json:"header_lost,omitempty"`
	Descriptor *vmdk.Descriptor `json:"descriptor,omitempty"`
	Fragments  []Fragment       `json:"fragments"`
	HostMap    *fsprobe.FileMap `json:"host_map,omitempty"` // the host filesystem's map the fragments came from
	Tables     string           `json:"tables"`             // which grain tables were used, and why
	// HeaderFrom, for a file whose header is lost, is what it was found
	// from (HeaderFromFooter, ...).
	HeaderFrom string `json:"header_from,omitempty"`
	// HeaderDamaged, for a file whose header is lost, is why the header
	// found at HeaderOffset, with its magic, was not trusted (it fails a
	// rule); "" when none was there.
	HeaderDamaged string `json:"header_damaged,omitempty"`
	// CapacityBound, when set, says the capacity is known only as a
	// bound, BoundUpper or BoundLower (the header and descriptor that
	// state it are lost).
	CapacityBound string `json:"capacity_bound,omitempty"`
	// TableCopies counts the copy each grain table of a hosted sparse
	// file was read from (nil for other files).
	TableCopies *TableCopies `json:"table_copies,omitempty"`
	// StreamTable is how a stream's surviving grain table compared with
	// its grain records (nil: no table to compare).
	StreamTable *StreamTableCheck `json:"stream_table,omitempty"`
	// UnprovenExtentOf, when set, is the split disk instance this file is
	// an extent of, whose place among its extents is not proven: its
	// grains are not used.
	UnprovenExtentOf int `json:"unproven_extent_of,omitempty"`
	// Breaks are where the file's bytes contradicted the contiguous
	// mapping assumed from its header.
	Breaks []Break `json:"breaks,omitempty"`
	// Damage is the damage policy's account of the file: lattices of
	// intermittent encryption accepted, with their proof, or why its
	// random-looking chunks were taken as content.
	Damage *DamageReport `json:"damage,omitempty"`
	Notes  []string      `json:"notes,omitempty"`
	Counts Counts        `json:"counts"`
	// Unplaced lists the non-zero grain slots of a sparse file whose
	// tables are lost that no evidence placed (up to the last proven slot),
	// UnplacedGrains counts them, TrailingSlots counts the non-zero slots
	// past the last proven one (their bytes may not be this file's).
	Unplaced       []Unplaced `json:"unplaced,omitempty"`
	UnplacedGrains int64      `json:"unplaced_grains,omitempty"`
	TrailingSlots  int64      `json:"trailing_slots,omitempty"`
	// MetadataGrains are the grains the guest's own structures say hold
	// its metadata, MetadataPlaced how many of them are placed (set only
	// by last-resort placement).
	MetadataGrains int64 `json:"metadata_grains,omitempty"`
	MetadataPlaced int64 `json:"metadata_placed,omitempty"`

	grains        *decisions            // decided grains of this instance alone
	damage        *damage.Policy        // the damage policy's state for the file, for inheritLattices
	follow        *followInput          // what fragment following used, to follow again with copies (map_copies.go)
	expect        []fsprobe.Expectation // what the guest predicts beyond its sector 0 (a flat disk found by its NTFS volume)
	misplaced     []structureAt         // guest structures the header's shift reads where they cannot lie (map_follow.go)
	ntfsStart     int64                 // a flat disk found by its NTFS volume: the volume's start
	cutByHeader   bool                  // the contiguous region ends at another VMDK header
	capacityBound bool                  // the inferred header's capacity is only an upper bound
	flat          bool                  // a flat extent: grain g lies at file offset g × grain size
	partOf        int                   // an extent of the split disk instance of this ID (0: none)
	headless      bool                  // found from its guest alone: its slots start at a proven grain
	markers       []*signatures.Hit     // stream: the grain records it owns
	table         func(g uint64) uint32 // stream: its grain table, if it survives (nil otherwise)
	byImage       []Fragment            // Fragments without holes, by image offset (fileOffsetOf)
	lbas          []uint64              // stream: sorted LBAs of its records (knownLBAs)
	size          int64                 // bytes of the file that map to the image
}

// What a file whose header is lost was found from (Instance.HeaderFrom).
const (
	HeaderFromFooter      = "footer"      // its stream footer
	HeaderFromDescriptor  = "descriptor"  // its surviving descriptor and first grain record
	HeaderFromDirectories = "directories" // its grain directories, which name their own place
	HeaderFromGuest       = "guest"       // a guest volume structure in its grain slots
	HeaderFromRecords     = "records"     // its grain records alone (a stream)
)

// Capacity bounds (Instance.CapacityBound).
const (
	BoundUpper = "upper" // the disk is at most this large
	BoundLower = "lower" // the disk is at least this large
)

// TableCopies counts, over the grain directory's entries, the grain
// tables read from the primary copy, from the redundant one, and lost in
// both; PrimaryDirectory and RedundantDirectory say why a directory is
// unusable ("" when it is used).
type TableCopies struct {
	Tables    int `json:"tables"`
	Primary   int `json:"primary"`
	Redundant int `json:"redundant"`
	Lost      int `json:"lost"`
	// Wiped counts the grain slots no table references when the file's
	// all-zero tables are taken as wiped (then lost, not empty).
	Wiped              int64  `json:"wiped_orphan_slots,omitempty"`
	PrimaryDirectory   string `json:"primary_directory,omitempty"`
	RedundantDirectory string `json:"redundant_directory,omitempty"`
}

// StreamTableCheck counts the entries of a stream's grain table that
// agree with the grain records found and those that do not; a table is
// trusted only when some agree and no more disagree.
type StreamTableCheck struct {
	Agree    int  `json:"agree"`
	Disagree int  `json:"disagree"`
	Trusted  bool `json:"trusted"`
}

// Break is where a file's bytes contradicted its contiguous mapping.
type Break struct {
	FileOffset  int64  `json:"file_offset"`
	ImageOffset int64  `json:"image_offset"`
	Why         string `json:"why"`
}

// addBreak records a break once per file offset.
func (inst *Instance) addBreak(fileOff, imgOff int64, why string) {
	for _, b := range inst.Breaks {
		if b.FileOffset == fileOff {
			return
		}
	}
	inst.Breaks = append(inst.Breaks, Break{fileOff, imgOff, why})
}

// Counts summarises grain statuses and evidence.
type Counts struct {
	Grains     uint64            `json:"grains"`
	Placed     uint64            `json:"placed"`
	Zero       uint64            `json:"zero"`
	Missing    uint64            `json:"missing"`
	Conflict   uint64            `json:"conflicting"`
	Damaged    uint64            `json:"damaged"`
	ByEvidence map[string]uint64 `json:"by_evidence,omitempty"`
}

// Disk is the plan for one virtual disk: everything emit needs and
// everything the report says.
type Disk struct {
	ID         int              `json:"id"`
	Capacity   uint64           `json:"capacity_sectors"`
	GrainSize  uint64           `json:"grain_size_sectors"`
	Descriptor *vmdk.Descriptor `json:"descriptor,omitempty"`
	Instances  []*Instance      `json:"instances"`
	// Parts are the extents of a split disk (twoGbMaxExtentSparse), each
	// found as a sparse file of its own; the disk's instance assembles them.
	Parts  []*Instance `json:"parts,omitempty"`
	Counts Counts      `json:"counts"`
	Runs   []Run       `json:"runs"`
	Notes  []string    `json:"notes,omitempty"`
	// Versions, when set, links this disk to the other versions of the
	// same virtual disk found in the image.
	Versions *Versions `json:"versions,omitempty"`

	placed map[uint64]*Grain // the placed grains, for emit; Runs lists all
}

// Placed returns the decision for grain g if it is placed, else nil.
func (d *Disk) Placed(g uint64) *Grain { return d.placed[g] }

// RunOf returns the run holding grain g (Runs cover every grain in order).
func (d *Disk) RunOf(g uint64) (Run, bool) {
	i := sort.Search(len(d.Runs), func(i int) bool { return d.Runs[i].FirstGrain+d.Runs[i].Count > g })
	if i == len(d.Runs) || d.Runs[i].FirstGrain > g {
		return Run{}, false
	}
	return d.Runs[i], true
}

// Grains is the number of virtual grains.
func (d *Disk) Grains() uint64 { return (d.Capacity + d.GrainSize - 1) / max(d.GrainSize, 1) }

// Run is a run of consecutive virtual grains with one status and evidence,
// whose sources (if placed) lie at evenly spaced image offsets of one
// instance. It is how the report lists every grain's provenance compactly.
type Run struct {
	FirstGrain  uint64   `json:"first_grain"`
	Count       uint64   `json:"count"`
	Status      Status   `json:"status"`
	Evidence    []string `json:"evidence,omitempty"`
	Instance    int      `json:"instance,omitempty"`
	ImageOffset int64    `json:"image_offset,omitempty"` // of the first grain's source
	Stride      int64    `json:"stride,omitempty"`       // image bytes between consecutive sources
	Compressed  bool     `json:"compressed,omitempty"`
	RecordBytes int64    `json:"record_bytes,omitempty"` // compressed: the record's length
	Pieces      []Piece  `json:"pieces,omitempty"`       // a single grain split across fragments
	Copies      int      `json:"copies,omitempty"`
	// Code is the kind of the run's decision (a ReasonCode, stable), Reason
	// its words.
	Code   ReasonCode `json:"code,omitempty"`
	Reason string     `json:"reason,omitempty"`
}
