package findings

// The codes. Their values appear in every report and are looked up in
// the README's table: they never change. Each has its entry in registry.
const (
	// The evidence.
	CodeUnreadableArea       Code = "unreadable-area"
	CodeEvidenceChunkDamaged Code = "evidence-chunk-damaged"
	CodeEvidenceHashMismatch Code = "evidence-hash-mismatch"
	CodeEvidenceNotHashed    Code = "evidence-not-hashed"

	// How a file was found.
	CodeHeaderLost      Code = "header-lost"
	CodeHeaderDamaged   Code = "header-damaged"
	CodeMetadataLost    Code = "metadata-lost"
	CodeStreamAdopted   Code = "stream-adopted"
	CodeCapacityBounded Code = "capacity-bounded"
	CodeNoGrainHeaders  Code = "no-grain-headers"

	// Grain directories and tables.
	CodePrimaryTablesLost     Code = "primary-tables-lost"
	CodeTablesLost            Code = "tables-lost"
	CodeTableCopiesDisagree   Code = "table-copies-disagree"
	CodeZeroEntriesDistrusted Code = "zero-entries-distrusted"
	CodeStreamFooterLost      Code = "stream-footer-lost"
	CodeStreamTableUntrusted  Code = "stream-table-untrusted"
	CodeUnplacedSlots         Code = "unplaced-slots"

	// Where the file lies.
	CodeFragmentBreak     Code = "fragment-break"
	CodeFragmentsFollowed Code = "fragments-followed"
	CodeHostMapUsed       Code = "host-map-used"
	CodeHostProbeLimited  Code = "host-probe-limited"
	CodeSplitExtentLost   Code = "split-extent-lost"

	// Damage.
	CodeEncryptionLattice  Code = "encryption-lattice"
	CodeStructureDestroyed Code = "structure-destroyed"
	CodeDestroyedSpan      Code = "destroyed-span"

	// The disk as merged from its copies.
	CodeCopiesMerged     Code = "copies-merged"
	CodeVersionsFound    Code = "versions-found"
	CodeCopiesDisagree   Code = "copies-disagree"
	CodeGrainConflict    Code = "grain-conflict"
	CodeGrainsMissing    Code = "grains-missing"
	CodeGrainsUnreadable Code = "grains-unreadable"
	CodeNothingPlaced    Code = "nothing-placed"

	// Writing and checking the disk.
	CodeGrainVerifyFailed Code = "grain-verify-failed"
	CodeGuestCheckUnclean Code = "guest-check-unclean"
	CodeDiskNotEmitted    Code = "disk-not-emitted"
	CodeVersionNotEmitted Code = "version-not-emitted"
)

// Entry is one code of the registry: its severity and, in general terms,
// what a finding of it means and what was done.
type Entry struct {
	Code     Code
	Severity Severity
	Meaning  string
	Action   string
}

// registry is the table of codes, in the order the README lists them.
var registry = []Entry{
	{CodeUnreadableArea, Warning,
		"An area of the evidence image could not be read: a ddrescue mapfile says it was not rescued, or an E01 set's error2 section that its acquisition could not read it.",
		"Its bytes were treated as unknown, never as zeros: no structure was taken from them, and a grain or table there is missing unless another copy proves it."},
	{CodeEvidenceChunkDamaged, Error,
		"A chunk of the E01 set does not read (its Adler-32 or zlib stream does not check, or its table entry is out of bounds): the media bytes it holds are unknown, and the set's stored MD5 and SHA-1 cannot be verified.",
		"The carve went on: the chunk's media range was treated as unknown, never as zeros, like an area not rescued; the stored digests were not compared, and the carve's are of the media with its damaged chunks read as zeros."},
	{CodeEvidenceHashMismatch, Error,
		"A digest stored with the evidence (an E01's MD5 or SHA-1) differs from the digest of the bytes the carve read: the evidence is corrupt or not the image acquired.",
		"The carve went on with the bytes as read and both digests are recorded: the rebuilt disks are only as trustworthy as those bytes."},
	{CodeEvidenceNotHashed, Info,
		"No digest of the evidence was recorded (a sharded carve, or --hash none).",
		"The reports identify the evidence by its path and size only."},

	{CodeHeaderLost, Warning,
		"The file's header sector is gone: no valid VMDK header (magic, version, geometry) was found where the file begins.",
		"The header was inferred from what survives of the file (its stream footer, its descriptor or its grain directories), as the instance's notes say."},
	{CodeHeaderDamaged, Warning,
		"The header where the file begins has the VMDK magic but fails a rule (a field out of range, bytes that must be zero): it is not trusted.",
		"The header was inferred from what survives of the file (its stream footer, its descriptor or its grain directories), as for a lost header."},
	{CodeMetadataLost, Warning,
		"The file's header, descriptor and grain tables are all gone: it was found from a guest volume structure in its grain slots.",
		"Its slots were counted from that structure and placed only where the guest's own structures or write order prove them."},
	{CodeStreamAdopted, Warning,
		"A stream whose header, descriptor, tables and footer are all gone was found from grain records no other file owns.",
		"Its grains were placed by their records' LBA; a grain without a record is missing."},
	{CodeNoGrainHeaders, Warning,
		"VMDK headers were found whose files own no grain: nothing placed, and no room in the file for one past its metadata (a header alone, or its tables lost or zero).",
		"They were not made disks: disks/no-grain.json lists them, as runs of alike headers, with their image offsets."},
	{CodeCapacityBounded, Warning,
		"The disk's capacity is not known exactly, only bounded: the header and descriptor that state it are lost.",
		"The disk was rebuilt with the bound as its capacity: a lower bound may cut the disk short, an upper bound may add sectors past its end."},

	{CodePrimaryTablesLost, Warning,
		"The primary copy of the grain directory or of some grain tables is unusable (zeroed, or naming bytes that are not a table).",
		"Those grains were placed from the redundant copy of the tables."},
	{CodeTablesLost, Error,
		"Both copies of some grain tables are lost: nothing in the file says where those grains lie.",
		"Their grains were placed only on proof (their own guest structures, or write order between proven grains); the rest are missing."},
	{CodeZeroEntriesDistrusted, Warning,
		"Grain tables not shown intact (one copy readable, or copies that differ or were wiped alike) have zero entries while grain slots of the file hold data no entry names: those zeros are no proof the grains were never written.",
		"Their grains were not taken as zero: they are placed only on other proof, else missing."},
	{CodeTableCopiesDisagree, Error,
		"The primary and redundant grain tables name different sectors for the same grains.",
		"Neither was chosen: those grains are conflicting and written as holes."},
	{CodeStreamFooterLost, Warning,
		"The footer of a stream that keeps its grain directory at its end is lost: the stream has no grain table.",
		"Grains were placed by their records' LBA; a grain without a record is zero only where an unbroken chain of records proves it, else missing."},
	{CodeStreamTableUntrusted, Warning,
		"The stream's surviving grain table names other places than its grain records for more grains than it agrees on.",
		"The table was not trusted: grains were placed by their records' LBA, and zeros only where an unbroken chain of records proves them."},
	{CodeUnplacedSlots, Warning,
		"Grain slots of a file whose tables are lost hold data no evidence could place in the disk.",
		"They were not written into the disk; the report lists them with their file and image offsets."},

	{CodeFragmentBreak, Warning,
		"The file is not contiguous: at this offset its bytes contradict the layout assumed from its header.",
		"Nothing past the break was placed on contiguity alone: only through a map (host filesystem, anchors) or the grains' own proof."},
	{CodeFragmentsFollowed, Warning,
		"The file lies in pieces and no host filesystem map says where: its pieces were found from anchors, self-locating structures that agree on a shift.",
		"Grains were placed through the anchored fragment map; file offsets between pieces of different shifts stay missing."},
	{CodeHostProbeLimited, Warning,
		"A host filesystem probe reached its work limit (crafted or overlapping structures: many superblocks or inodes weighed against many VMDK headers): files it could have mapped may not be.",
		"Nothing was mapped from a partial solve: files it did not map are placed only from other evidence, else missing; the message names the limit."},
	{CodeHostMapUsed, Info,
		"The file is fragmented on its host volume, whose filesystem (NTFS MFT runs, ext4 extents) maps its pieces.",
		"Its grains were read through the host filesystem's map."},
	{CodeSplitExtentLost, Error,
		"An extent of a split disk was not found, or its place among the extents is not proven.",
		"Its range of the disk is missing; an extent whose place is not proven is listed among the disk's parts and not used."},

	{CodeEncryptionLattice, Error,
		"Intermittent encryption (ransomware) was proven on the file: chunks at a fixed stride read random where the file's data lay.",
		"Grains on the lattice are damaged and written as holes; the damage report gives the lattice and its proof."},
	{CodeStructureDestroyed, Error,
		"Structures the VMDK or the guest predicts in some grains read random there: their bytes are destroyed.",
		"Those grains are damaged and written as holes."},
	{CodeDestroyedSpan, Error,
		"Several structures the guest predicts in a stretch of the file read random there, with none found intact between them: the stretch is destroyed (a copy cut short and followed by other bytes, an area overwritten).",
		"The grains of the stretch holding random-looking bytes are damaged and written as holes; grains that do not read random are placed only where nothing else contradicts them."},

	{CodeCopiesMerged, Info,
		"Several copies of this disk (one version) were found.",
		"They were merged into one disk: grains they agree on are corroborated, a grain one copy lacks is taken from another."},
	{CodeVersionsFound, Info,
		"Other versions of this virtual disk were found (an older copy, a clone: different CIDs or content).",
		"Each version was rebuilt as a disk of its own and linked in the reports; versions are never mixed."},
	{CodeCopiesDisagree, Error,
		"Copies of this disk hold different bytes for the same grains.",
		"Neither was chosen: those grains are conflicting and written as holes."},
	{CodeGrainConflict, Error,
		"The evidence for some grains contradicts itself (a sector claimed by two grains, two records of one LBA, a record the table says is unallocated).",
		"Those grains are conflicting and written as holes."},
	{CodeGrainsMissing, Error,
		"Grains of the disk have no evidence naming their bytes.",
		"They were written as holes (they read as zeros) and the report's runs give the reason for each."},
	{CodeGrainsUnreadable, Error,
		"Grains or tables of the disk lie in bytes of the image that could not be read.",
		"Those grains are missing: nothing was decided from unreadable bytes."},
	{CodeNothingPlaced, Warning,
		"No grain of this copy of the disk was placed.",
		"The disk took nothing from it: its grains come from other copies where they exist, else are written as holes."},

	{CodeGrainVerifyFailed, Error,
		"Grains planned from the image did not read back as planned when the disk was written (hash or decompression check).",
		"They were written as holes."},
	{CodeGuestCheckUnclean, Warning,
		"The rebuilt disk's guest filesystem does not walk clean, or some of its files are not whole.",
		"Nothing was changed; the report's guest_filesystems gives the problems and how many files are whole."},
	{CodeDiskNotEmitted, Error,
		"A planned disk could not be written.",
		"The other disks were written; the rebuild stage is left incomplete."},
	{CodeVersionNotEmitted, Info,
		"An older version of a disk was not written (--versions newest).",
		"It was planned and is listed; rebuild --force --versions all writes it."},
}

// Registry returns the table of codes, in a fixed order.
func Registry() []Entry { return append([]Entry(nil), registry...) }

// Lookup returns the registry's entry for c.
func Lookup(c Code) (Entry, bool) {
	for _, e := range registry {
		if e.Code == c {
			return e, true
		}
	}
	return Entry{}, false
}

// New returns a finding of code c with its registry severity and the
// two sentences given, or the registry's own where one is empty.
func New(c Code, message, action string) Finding {
	e, ok := Lookup(c)
	if !ok {
		// A code not in the registry is a programming error the
		// registry test catches; the finding still says what it is.
		e = Entry{Code: c, Severity: Error}
	}
	if message == "" {
		message = e.Meaning
	}
	if action == "" {
		action = e.Action
	}
	return Finding{Code: c, Severity: e.Severity, Message: message, Action: action}
}
