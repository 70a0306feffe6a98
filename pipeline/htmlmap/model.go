// Package htmlmap renders a case as one self-contained HTML page (inline
// CSS and SVG, no script, no external URL): the evidence image as a strip
// of where every rebuilt disk's pieces lie, one grain map per rebuilt disk
// coloured by the evidence that placed each grain, the disk table and the
// findings.
//
// It knows nothing of the case directory: it renders its own plain model
// (Map), which pipeline builds from a case. Every string in the model is
// taken as untrusted (it may come from a hostile image through a case
// file) and escaped by html/template; every number is bounded before it
// sizes anything, so a hostile model gives a page of bounded size.
package htmlmap

// Map is what the page shows.
type Map struct {
	// Title names the case (its directory's name).
	Title string
	// Tool is the writer, as "vmdkcarve 0.1.0".
	Tool     string
	Evidence Evidence
	// Segments are ranges of the evidence image: the pieces of every
	// rebuilt disk's files, and the areas known damaged or unreadable.
	// They may overlap and come in any order; bytes no segment covers are
	// foreign (no rebuilt disk's file was found there).
	Segments []Segment
	Disks    []Disk
	Table    Table
	Findings []Finding
}

// Evidence is the image the case was carved from.
type Evidence struct {
	Path   string
	Size   int64
	SHA256 string // empty when not hashed
}

// SegmentKind is what a range of the evidence image holds. Where kinds
// overlap, the first in this order wins: Unreadable, Damaged, Piece,
// Foreign.
type SegmentKind string

const (
	// Unreadable: the imaging tool could not read the bytes (a ddrescue
	// mapfile's areas not rescued); they are unknown, not zeros.
	Unreadable SegmentKind = "unreadable"
	// Damaged: bytes of a disk's file proven destroyed (an accepted
	// intermittent encryption lattice).
	Damaged SegmentKind = "damaged"
	// Piece: a piece of a file of rebuilt disk Segment.Disk.
	Piece SegmentKind = "piece"
	// Foreign: bytes that belong to no rebuilt disk's file.
	Foreign SegmentKind = "foreign"
)

// Segment is the half-open range [Start, End) of the evidence image.
type Segment struct {
	Start, End int64
	Kind       SegmentKind
	// Disk is the rebuilt disk whose file the piece (or damaged area)
	// belongs to; 0 for none.
	Disk int
	// Label says what the range is, for its tooltip and the pieces
	// table ("instance 3, file 0x0..0x2a6000, anchored").
	Label string
}

// Class is what decided one grain of a rebuilt disk: the evidence level
// that placed it, or why it was not placed.
type Class string

// Grain classes, in the order of the legend. A grain placed on several
// evidence levels takes the one its place rests on last (the builder of
// the model decides): a grain the table names and an anchored fragment
// links to the image is anchored.
const (
	ClassTable    Class = "table"    // the VMDK's own grain table, in a file taken as contiguous
	ClassMarker   Class = "marker"   // a stream grain marker's LBA
	ClassHost     Class = "host"     // linked to the image by a host filesystem's map
	ClassAnchored Class = "anchored" // linked to the image by a fragment found from anchors
	ClassFlat     Class = "flat"     // its offset in a flat extent
	ClassFsprobe  Class = "fsprobe"  // tables lost: its own guest structures locate it
	ClassOrder    Class = "order"    // tables lost: write order between two proven grains
	ClassCopy     Class = "copy"     // an identical copy in another instance
	ClassPlaced   Class = "placed"   // placed on evidence of another kind
	ClassZero     Class = "zero"     // proven to read as zeros
	ClassMissing  Class = "missing"  // no trustworthy source: a hole
	ClassConflict Class = "conflict" // sources disagree: a hole
	ClassDamaged  Class = "damaged"  // proven destroyed: a hole
	// ClassUnlisted are grains no run of the model covers.
	ClassUnlisted Class = "unlisted"
)

// GrainRun is Count grains from grain First with one class.
type GrainRun struct {
	First, Count uint64
	Class        Class
}

// Disk is one rebuilt disk.
type Disk struct {
	ID        int
	Name      string // "disk-01"
	Capacity  int64  // bytes
	GrainSize int64  // bytes
	// Runs cover the disk's grains; they may come in any order, and
	// where they overlap the one that starts first wins.
	Runs []GrainRun
}

// Table is the disk table: a header row and one row per disk.
type Table struct {
	Columns []string
	Rows    []Row
}

// Row is one disk's row of the table; its first cell links to the
// disk's map when Disk names one.
type Row struct {
	Disk  int
	Cells []string
}

// Finding is one thing the examiner should know about the case.
type Finding struct {
	Code     string // stable kind, for scripts
	Severity string // "info", "warning" or "error"
	Message  string
	Action   string // what to do about it; may be empty
}
