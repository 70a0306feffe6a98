package reassemble

import "fmt"

// A Reason says why a grain has its decision: Code is the kind of
// decision, stable so that scripts and findings can key on it, and the
// other fields hold what decided it. Only String words it, for the
// report (Run.Reason). Reasons are compared with ==: neighbouring grains
// decided for one reason form one run.
type Reason struct {
	Code ReasonCode
	// Instance, when set, is the copy whose decision the disk took over
	// for want of a better one.
	Instance int
	Offset   int64  // the file offset or sector the code names
	Other    int64  // the second sector, grain or count the code names
	Table    string // which grain table (table-entry-invalid)
	// Detail is what another stage said: a structure, an error, why the
	// contiguous mapping broke, a lattice. For directories-lost and
	// table-lost it is the primary copy's problem, Redundant the
	// redundant copy's.
	Detail    string
	Redundant string
}

// ReasonCode is the kind of a grain's decision.
type ReasonCode string

// Reason codes. Their values appear in the report (Run.Code) and do not
// change; their wording (Reason.String) may.
const (
	// Tables and directories.
	ReasonUnallocated           ReasonCode = "unallocated"             // zero: the grain table says so
	ReasonUnallocatedEmptyTable ReasonCode = "unallocated-empty-table" // zero: its table is all zero, and nothing is orphaned
	ReasonTablesAgree           ReasonCode = "tables-agree"            // placed: primary and redundant entries agree
	ReasonRedundantTable        ReasonCode = "redundant-table"         // placed: from the redundant table alone
	ReasonAllocatedZeros        ReasonCode = "allocated-zeros"         // zero: an allocated grain reads zeros
	ReasonHostHole              ReasonCode = "host-hole"               // zero: the grain lies in a hole of the host file
	ReasonTableEntryInvalid     ReasonCode = "table-entry-invalid"     // missing: Table names sector Offset, which cannot be read as a grain (Detail)
	ReasonSectorUnreadable      ReasonCode = "sector-unreadable"       // missing: reading sector Offset failed (Detail)
	ReasonDirectoriesLost       ReasonCode = "directories-lost"        // missing: both grain directories unusable (Detail, Redundant)
	ReasonTableLost             ReasonCode = "table-lost"              // missing: both copies of the grain's table unusable (Detail, Redundant)
	ReasonZeroTableOrphans      ReasonCode = "zero-table-orphans"      // missing: an all-zero table while Other grain slots are referenced by none
	ReasonZeroEntriesOrphans    ReasonCode = "zero-entries-orphans"    // missing: a zero entry of a table not shown intact (Detail says why) while Other grain slots holding data are referenced by none
	ReasonTablesDisagree        ReasonCode = "tables-disagree"         // conflict: primary says sector Offset, redundant Other
	ReasonSectorShared          ReasonCode = "sector-shared"           // conflict: sector Offset is also grain Other's
	ReasonLastGrainUnreadable   ReasonCode = "last-grain-unreadable"   // missing: the last grain, cut by the capacity, cannot be read again (Detail)
	ReasonMetadataLost          ReasonCode = "metadata-lost"           // missing: header, descriptor and tables lost (a file found from its guest)

	// Streams.
	ReasonRecordsDisagree    ReasonCode = "records-disagree"       // conflict: two different records carry the LBA
	ReasonRecordUnallocated  ReasonCode = "record-unallocated"     // conflict: a record carries the LBA the table says is unallocated
	ReasonRecordNotAtTable   ReasonCode = "record-not-at-table"    // missing: the table names sector Offset, no record of the LBA is there
	ReasonRecordElsewhere    ReasonCode = "record-elsewhere"       // placed: the table names file sector Offset, the record was found elsewhere
	ReasonRecordZeros        ReasonCode = "record-zeros"           // zero: the record decodes to zeros
	ReasonRecordViaHostMap   ReasonCode = "record-via-host-map"    // placed: the record straddles fragments, read through the host map
	ReasonOrphanRun          ReasonCode = "orphan-run"             // placed: a record of a run of Other outside the header's fragment
	ReasonStreamSkippedZero  ReasonCode = "stream-skipped-zero"    // zero: an unbroken chain of records skips the LBA
	ReasonStreamZeroUnproven ReasonCode = "stream-zero-unproven"   // missing: no record, and no unbroken chain proves a zero (Detail)
	ReasonNoRecordNoTable    ReasonCode = "no-record-no-table"     // missing: an orphan stream has no record of the LBA
	ReasonSplitExtentMissing ReasonCode = "split-extent-not-found" // missing: extent Detail of a split disk was not found

	// Contiguity and fragments.
	ReasonContiguityBroken    ReasonCode = "contiguity-broken"           // missing: the bytes contradict the contiguous mapping here (Detail)
	ReasonPastContiguous      ReasonCode = "past-contiguous"             // missing: file offset Offset lies past the break (Detail)
	ReasonAnchoredMapWrong    ReasonCode = "anchored-map-contradicted"   // missing: the anchored map puts bytes here the guest contradicts (Detail)
	ReasonFragmentedNoMap     ReasonCode = "fragmented-no-map"           // missing: the file is fragmented (Detail) and no map says where
	ReasonStraddlesBreak      ReasonCode = "straddles-break"             // missing: the last grain before a break may straddle the fragment's end
	ReasonSelfProven          ReasonCode = "self-proven"                 // placed: in a fragmented file, its own guest structures (Detail) put it here
	ReasonCopyContradicts     ReasonCode = "copy-contradicts-contiguity" // missing: at file offset Offset the file reads other bytes than a proven copy
	ReasonFlatNotLocated      ReasonCode = "flat-not-located"            // missing: the flat extent's data was not located
	ReasonFlatFragmentedNoMap ReasonCode = "flat-fragmented-no-map"      // missing: the flat extent is not contiguous where assumed (Detail)
	ReasonFlatZeros           ReasonCode = "flat-zeros"                  // zero: the flat extent holds zeros here

	// Damage.
	ReasonStructureDestroyed ReasonCode = "structure-destroyed" // damaged: file offset Offset reads random where a structure (Detail) is predicted
	ReasonEncryptionLattice  ReasonCode = "encryption-lattice"  // damaged: file offset Offset lies on an accepted lattice (Detail)
	ReasonDestroyedSpan      ReasonCode = "destroyed-span"      // damaged: file offset Offset reads random inside a span the file's predictions prove destroyed (Detail)

	// Last resort (tables lost).
	ReasonSelfLocated         ReasonCode = "self-located"          // placed: its own guest structures (Detail) say where it lies; Other identical slots claim it
	ReasonWriteOrder          ReasonCode = "write-order"           // placed: its slot in write order (Detail says how)
	ReasonWriteOrderZero      ReasonCode = "write-order-zero"      // zero: its slot in write order holds zeros
	ReasonWriteOrderUnwritten ReasonCode = "write-order-unwritten" // zero: no slot in write order holds it

	// Copies.
	ReasonCopiesDisagree ReasonCode = "copies-disagree" // conflict: copies hold different bytes
	ReasonNoEvidence     ReasonCode = "no-evidence"     // missing: no copy has evidence for the grain
)

// String words the reason for the report.
func (r Reason) String() string {
	if r.Code == "" {
		return ""
	}
	s := r.words()
	if r.Instance != 0 {
		s = fmt.Sprintf("instance %d: %s", r.Instance, s)
	}
	return s
}

func (r Reason) words() string {
	switch r.Code {
	case ReasonUnallocated:
		return "unallocated in the grain table"
	case ReasonUnallocatedEmptyTable:
		return "unallocated in an all-zero grain table"
	case ReasonTablesAgree:
		return "primary and redundant tables agree"
	case ReasonRedundantTable:
		return "entry from the redundant grain table"
	case ReasonAllocatedZeros:
		return "allocated grain holds zeros"
	case ReasonHostHole:
		return "grain lies in a hole of the host file"
	case ReasonTableEntryInvalid:
		return fmt.Sprintf("table (%s) names sector %d but %s", r.Table, r.Offset, r.Detail)
	case ReasonSectorUnreadable:
		return fmt.Sprintf("reading sector %d: %s", r.Offset, r.Detail)
	case ReasonDirectoriesLost:
		return "grain directories lost: primary: " + r.Detail + "; redundant: " + r.Redundant
	case ReasonTableLost:
		return "grain table lost: primary: " + r.Detail + "; redundant: " + r.Redundant
	case ReasonZeroTableOrphans:
		return fmt.Sprintf("grain table is all zero while %d grain slots are referenced by no table", r.Other)
	case ReasonZeroEntriesOrphans:
		return fmt.Sprintf("zero in a grain table not shown intact (%s) while %d grain slots hold data no table entry names: the entry may be one the table lost", r.Detail, r.Other)
	case ReasonTablesDisagree:
		return fmt.Sprintf("primary table says sector %d, redundant says %d", r.Offset, r.Other)
	case ReasonSectorShared:
		return fmt.Sprintf("sector %d is also claimed by grain %d", r.Offset, r.Other)
	case ReasonLastGrainUnreadable:
		return "reading the last grain again: " + r.Detail
	case ReasonMetadataLost:
		return "grain directories lost: header, descriptor and tables lost"
	case ReasonRecordsDisagree:
		return "two different grain records carry this LBA"
	case ReasonRecordUnallocated:
		return "a record carries this LBA but the grain table says the grain is unallocated"
	case ReasonRecordNotAtTable:
		return fmt.Sprintf("grain table names sector %d but no valid record of this LBA is there", r.Offset)
	case ReasonRecordElsewhere:
		return fmt.Sprintf("grain table names file sector %d; the record was found elsewhere (fragmented file)", r.Offset)
	case ReasonRecordZeros:
		return "record decodes to zeros"
	case ReasonRecordViaHostMap:
		return "record read through the host file's map (it straddles fragments)"
	case ReasonOrphanRun:
		return fmt.Sprintf("record in a run of %d outside the header's fragment, attached by LBA order", r.Other)
	case ReasonStreamSkippedZero:
		return "no record in an unbroken chain of records from the first grain area to the stream's closing metadata: a zero grain the writer skipped"
	case ReasonStreamZeroUnproven:
		return r.Detail
	case ReasonNoRecordNoTable:
		return "no record found for this grain, and no table to say it is zero"
	case ReasonSplitExtentMissing:
		return fmt.Sprintf("extent %q of the split disk was not found", r.Detail)
	case ReasonContiguityBroken:
		return "contiguous mapping broken here: " + r.Detail
	case ReasonPastContiguous:
		return fmt.Sprintf("file offset %d lies past where the file stops being contiguous (%s); no fragment map links it", r.Offset, r.Detail)
	case ReasonAnchoredMapWrong:
		return "the anchored fragment map puts bytes here that contradict the guest: " + r.Detail
	case ReasonFragmentedNoMap:
		return "the file is fragmented (" + r.Detail + ") and no host filesystem map says where its pieces lie: the contiguous assumption places nothing"
	case ReasonStraddlesBreak:
		return "last grain before the contiguous mapping breaks: it may straddle the fragment's end"
	case ReasonSelfProven:
		return "the file is fragmented, but this grain's own guest structures put it here: " + r.Detail
	case ReasonCopyContradicts:
		return fmt.Sprintf("the contiguous assumption is wrong: at file offset %d the file reads other bytes than a copy of the disk whose grain is proven, and no host map or anchor says where its pieces lie", r.Offset)
	case ReasonFlatNotLocated:
		return "the flat extent's data was not located"
	case ReasonFlatFragmentedNoMap:
		return fmt.Sprintf("the flat extent is not contiguous where assumed (%s) and no host map says where its pieces lie: the contiguous assumption places nothing", r.Detail)
	case ReasonFlatZeros:
		return "the flat extent holds zeros here"
	case ReasonStructureDestroyed:
		return fmt.Sprintf("file offset %d reads random where %s lies", r.Offset, r.Detail)
	case ReasonEncryptionLattice:
		return fmt.Sprintf("file offset %d lies on the encryption lattice %s", r.Offset, r.Detail)
	case ReasonDestroyedSpan:
		return fmt.Sprintf("file offset %d reads random inside a stretch of the file its own predictions prove destroyed: %s", r.Offset, r.Detail)
	case ReasonSelfLocated:
		s := "its own guest structures say where it lies: " + r.Detail
		if r.Other > 0 {
			s += fmt.Sprintf(" (%d identical slots claim it)", r.Other)
		}
		return s
	case ReasonWriteOrder:
		return r.Detail
	case ReasonWriteOrderZero:
		return "its slot in write order holds zeros: " + r.Detail
	case ReasonWriteOrderUnwritten:
		return "no slot in write order holds it (the guest never wrote it): " + r.Detail
	case ReasonCopiesDisagree:
		return "copies hold different data for this grain"
	case ReasonNoEvidence:
		return "no evidence for this grain in any copy"
	}
	return string(r.Code) // a code this build does not word: keep what it is
}
