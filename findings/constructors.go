package findings

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The constructors: one per code, taking the finding's figures and
// wording its two sentences. Disk and instance are set by the caller
// (Finding.On); the sentences do not repeat them.

// UnreadableArea: length bytes at image offset start were not rescued
// (by a ddrescue mapfile).
func UnreadableArea(start, length int64) Finding {
	return UnreadableAreaBy("mapfile", start, length)
}

// UnreadableAreaBy: length bytes at image offset start could not be read,
// as source says: "mapfile" (a ddrescue mapfile's area not rescued),
// "ewf-error2" (an E01 set's error2 section), "" (a case that did not
// record it).
func UnreadableAreaBy(source string, start, length int64) Finding {
	f := New(CodeUnreadableArea,
		fmt.Sprintf("%s of the evidence at image offset %d could not be read (%s).", bytes(length), start, sourceWords(source)),
		"")
	f.Length = length
	f.Detail = map[string]any{"bytes": length, "source": source}
	return f.At(start)
}

// UnreadableAreas folds the areas past those listed one by one: areas
// more areas of bytes in all, the first at image offset first (not
// rescued, by a ddrescue mapfile).
func UnreadableAreas(areas int, total, first int64) Finding {
	return UnreadableAreasBy("mapfile", areas, total, first)
}

// UnreadableAreasBy folds the areas of one source past those listed one
// by one, as UnreadableAreas does.
func UnreadableAreasBy(source string, areas int, total, first int64) Finding {
	f := New(CodeUnreadableArea,
		fmt.Sprintf("%d more areas of the evidence, %s in all from image offset %d on, could not be read (%s).", areas, bytes(total), first, sourceWords(source)),
		"Their bytes were treated as unknown, never as zeros; case.json lists every area (evidence.unreadable_areas).")
	f.Detail = map[string]any{"areas": areas, "bytes": total, "source": source}
	return f.At(first)
}

// sourceWords says what an unreadable area's source is.
func sourceWords(source string) string {
	switch source {
	case "mapfile":
		return "not rescued, by the ddrescue mapfile"
	case "ewf-error2":
		return "its acquisition could not read it, by the E01 set's error2 section"
	}
	return "recorded as unreadable in case.json"
}

// EvidenceChunkDamaged: chunk (from 0) of an E01 set, stored in segment
// at file offset fileOffset, holding length media bytes from image
// offset start, does not read, for why.
func EvidenceChunkDamaged(chunk int64, segment int, fileOffset, start, length int64, why string) Finding {
	f := New(CodeEvidenceChunkDamaged,
		fmt.Sprintf("Chunk %d of the E01 set (segment %d, file offset %d), %s of media at image offset %d, does not read: %s.", chunk, segment, fileOffset, bytes(length), start, strings.TrimSuffix(why, ".")),
		"")
	f.Length = length
	f.Detail = map[string]any{"chunk": chunk, "segment": segment, "file_offset": fileOffset, "bytes": length, "why": why}
	return f.At(start)
}

// EvidenceChunksDamaged folds the damaged chunks past those listed one by
// one: chunks more of them, bytes of media in all, the first at image
// offset first.
func EvidenceChunksDamaged(chunks int, total, first int64) Finding {
	f := New(CodeEvidenceChunkDamaged,
		fmt.Sprintf("%d more chunks of the E01 set, %s of media in all from image offset %d on, do not read.", chunks, bytes(total), first),
		"Their bytes were treated as unknown, never as zeros; case.json lists every chunk (evidence.unreadable_areas).")
	f.Detail = map[string]any{"chunks": chunks, "bytes": total}
	return f.At(first)
}

// EvidenceHashMismatch: the container image stores digest stored of
// algorithm (md5, sha1), the carve computed computed.
func EvidenceHashMismatch(image, algorithm, stored, computed string) Finding {
	f := New(CodeEvidenceHashMismatch,
		fmt.Sprintf("%s stores %s %s, but the bytes the carve read hash to %s.", image, strings.ToUpper(algorithm), stored, computed),
		"")
	f.Detail = map[string]any{"image": image, "algorithm": algorithm, "stored": stored, "computed": computed}
	return f
}

// NoGrainHeaders: n VMDK instances, in runs runs of alike headers, the
// first at image offset first, own no grain.
func NoGrainHeaders(n, runs int, first int64) Finding {
	f := New(CodeNoGrainHeaders,
		fmt.Sprintf("%s own no grain (nothing placed, no room for one in their files); the first is at image offset %d.", count(n, "VMDK header found", "VMDK headers found"), first),
		fmt.Sprintf("They were not made disks: disks/no-grain.json lists them in %s.", count(runs, "run", "runs")))
	f.Detail = map[string]any{"instances": n, "runs": runs}
	return f.At(first)
}

// HostProbeLimited: a host filesystem probe's work limit was reached;
// note is the probe's own words.
func HostProbeLimited(note string) Finding {
	f := New(CodeHostProbeLimited, capital(note)+".", "")
	f.Detail = map[string]any{"note": note}
	return f
}

// EvidenceNotHashed: no digest of the evidence was recorded.
func EvidenceNotHashed() Finding { return New(CodeEvidenceNotHashed, "", "") }

// HeaderLost: the file that begins at image offset start has no header;
// from is what it was inferred from ("footer", "descriptor",
// "directories").
func HeaderLost(start int64, from string) Finding {
	f := New(CodeHeaderLost,
		fmt.Sprintf("No valid VMDK header was found where the file begins (image offset %d): its header sector is overwritten or its magic damaged.", start),
		fmt.Sprintf("The header was inferred from %s.", inferredFrom(from)))
	f.Detail = map[string]any{"from": from}
	return f.At(start)
}

// HeaderDamaged: the header at image offset start has the magic but was
// not trusted, for why; from as HeaderLost.
func HeaderDamaged(start int64, from, why string) Finding {
	f := New(CodeHeaderDamaged,
		fmt.Sprintf("The VMDK header where the file begins (image offset %d) is damaged: %s.", start, strings.TrimSuffix(why, ".")),
		fmt.Sprintf("It was not trusted; the header was inferred from %s.", inferredFrom(from)))
	f.Detail = map[string]any{"from": from, "why": why}
	return f.At(start)
}

// inferredFrom words what a lost header was inferred from.
func inferredFrom(from string) string {
	if what := map[string]string{
		"footer":      "its stream footer (a copy of the header at the stream's end)",
		"descriptor":  "its surviving descriptor and first grain record",
		"directories": "its grain directories, which name their own place in the file",
	}[from]; what != "" {
		return what
	}
	return "what survives of the file (the instance's notes say what)"
}

// MetadataLost: a file with no header, descriptor or tables was found
// from a guest structure; its slots are counted from image offset start.
func MetadataLost(start int64, placed uint64) Finding {
	f := New(CodeMetadataLost,
		fmt.Sprintf("The file's header, descriptor and grain tables are all gone; a guest volume structure says a sparse file's grain slots start at image offset %d.", start),
		fmt.Sprintf("Its slots were placed only on proof: %s placed by their own guest structures or by write order.", grains(placed)))
	f.Grains = placed
	return f.At(start)
}

// StreamAdopted: a stream found from its grain records alone, the first
// at image offset first.
func StreamAdopted(first int64, records uint64) Finding {
	f := New(CodeStreamAdopted,
		fmt.Sprintf("%d grain records no file claims, from image offset %d on, are one stream's whose header, descriptor, tables and footer are gone.", records, first),
		"")
	f.Grains = records
	return f.At(first)
}

// CapacityBounded: the capacity taken, sectors, is only an upper or a
// lower bound (bound "upper" or "lower"); from says where it came from.
func CapacityBounded(sectors uint64, bound string) Finding {
	how := "at most"
	action := "The disk was rebuilt with this capacity: past the guest's data it may hold sectors the real disk did not have."
	if bound == "lower" {
		how = "at least"
		action = "The disk was rebuilt with this capacity: the real disk may have been larger, and anything past it is not rebuilt."
	}
	f := New(CodeCapacityBounded,
		fmt.Sprintf("The disk's capacity is known only as %s %d sectors (%s): the header and descriptor that state it are lost.", how, sectors, bytes(int64(sectors)*512)),
		action)
	f.Detail = map[string]any{"capacity_sectors": sectors, "bound": bound}
	return f
}

// PrimaryTablesLost: of tables grain tables, redundant were read from
// the redundant copy; directory, when set, is why the primary directory
// is unusable.
func PrimaryTablesLost(redundant, tables int, directory string) Finding {
	msg := fmt.Sprintf("The primary copy of %d of the file's %s is unusable.", redundant, count(tables, "grain table", "grain tables"))
	if directory != "" {
		msg = fmt.Sprintf("The primary grain directory is unusable (%s).", directory)
	}
	was := count(redundant, "grain table was", "grain tables were")
	f := New(CodePrimaryTablesLost, msg, fmt.Sprintf("%s read from the redundant copy instead.", capital(was)))
	f.Detail = map[string]any{"redundant_tables": redundant, "tables": tables}
	return f
}

// TablesLost: lost of tables grain tables (tables 0: the directories) are
// lost in both copies; fsprobe and order grains were placed by last
// resort, missing are still missing for it.
func TablesLost(lost, tables int, fsprobe, order, missing uint64) Finding {
	msg := fmt.Sprintf("Both copies of %d of the file's %s are lost.", lost, count(tables, "grain table", "grain tables"))
	if tables == 0 {
		msg = "Both grain directories of the file are unusable: every grain table is lost."
	}
	f := New(CodeTablesLost, msg,
		fmt.Sprintf("Their grains were placed only on proof: %s by their own guest structures, %s by write order; %s stay missing.", grains(fsprobe), grains(order), grains(missing)))
	f.Grains = missing
	f.Detail = map[string]any{"lost_tables": lost, "tables": tables, "fsprobe": fsprobe, "order": order, "missing": missing}
	return f
}

// ZeroEntriesDistrusted: grains zero entries of tables not shown intact
// left missing, while orphans grain slots hold data no entry names; why
// says why the tables are not trusted.
func ZeroEntriesDistrusted(n uint64, orphans int64, why string) Finding {
	f := New(CodeZeroEntriesDistrusted,
		fmt.Sprintf("%s hold data no grain table entry names, while tables not shown intact (%s) have zero entries.", count(int(orphans), "grain slot of the file", "grain slots of the file"), why),
		fmt.Sprintf("The zero entries were not taken as proof: their %s are placed only on other proof, else missing.", grains(n)))
	f.Grains = n
	f.Detail = map[string]any{"grains": n, "orphans": orphans, "why": why}
	return f
}

// TablesWiped: the file's grain tables read all zero while orphans
// grain slots are referenced by none; figures as TablesLost.
func TablesWiped(orphans int64, fsprobe, order, missing uint64) Finding {
	f := New(CodeTablesLost,
		fmt.Sprintf("The file's grain tables read all zero while %d grain slots hold data no table references: the tables were wiped.", orphans),
		fmt.Sprintf("The all-zero tables were taken as lost, not empty, and their grains placed only on proof: %s by their own guest structures, %s by write order; %s stay missing.", grains(fsprobe), grains(order), grains(missing)))
	f.Grains = missing
	f.Detail = map[string]any{"orphan_slots": orphans, "fsprobe": fsprobe, "order": order, "missing": missing}
	return f
}

// TableCopiesDisagree: the copies of the tables disagree on n grains,
// the first grain first.
func TableCopiesDisagree(n, first uint64) Finding {
	return fromGrain(CodeTableCopiesDisagree, n, first,
		fmt.Sprintf("The primary and redundant grain tables name different sectors for %s, from grain %d on.", grains(n), first))
}

// StreamFooterLost: the GD-at-end stream at image offset start has no
// footer.
func StreamFooterLost(start int64) Finding {
	f := New(CodeStreamFooterLost,
		fmt.Sprintf("The stream beginning at image offset %d keeps its grain directory at its end, and its footer, which says where, is lost.", start),
		"")
	return f.At(start)
}

// StreamTableUntrusted: agree entries of the stream's table agree with
// its records, disagree do not.
func StreamTableUntrusted(agree, disagree int) Finding {
	f := New(CodeStreamTableUntrusted,
		fmt.Sprintf("%d entries of the stream's grain table disagree with the grain records found, %d agree.", disagree, agree),
		"")
	f.Detail = map[string]any{"agree": agree, "disagree": disagree}
	return f
}

// UnplacedSlots: slots non-zero grain slots up to the last proven one,
// and trailing past it, were not placed.
func UnplacedSlots(slots, trailing int64) Finding {
	msg := fmt.Sprintf("%d non-zero grain slots of the file hold data no evidence placed in the disk.", slots)
	switch {
	case slots == 0:
		msg = fmt.Sprintf("%d non-zero grain slots of the file lie past its last proven one: no evidence placed them in the disk, and their bytes may be another file's.", trailing)
	case trailing > 0:
		msg = fmt.Sprintf("%d non-zero grain slots of the file, and %d past its last proven one, hold data no evidence placed in the disk.", slots, trailing)
	}
	f := New(CodeUnplacedSlots, msg, "")
	f.Detail = map[string]any{"slots": slots, "trailing_slots": trailing}
	return f
}

// FragmentBreak: the contiguous mapping broke at fileOffset (image
// offset imageOffset) for why.
func FragmentBreak(fileOffset, imageOffset int64, why string) Finding {
	f := New(CodeFragmentBreak,
		fmt.Sprintf("The file is not contiguous at file offset %d (image offset %d): %s.", fileOffset, imageOffset, strings.TrimSuffix(why, ".")),
		"")
	f.Detail = map[string]any{"file_offset": fileOffset, "why": why}
	return f.At(imageOffset)
}

// FragmentsFollowed: the file was followed in pieces, backed by anchors
// in all.
func FragmentsFollowed(pieces, anchors int) Finding {
	f := New(CodeFragmentsFollowed,
		fmt.Sprintf("The file lies in %d pieces no host filesystem map gives: %d self-locating structures agree on where they lie.", pieces, anchors),
		"")
	f.Detail = map[string]any{"pieces": pieces, "anchors": anchors}
	return f
}

// HostMapUsed: the host filesystem maps the file in pieces; record names
// the host structure (an MFT record, an inode).
func HostMapUsed(pieces int, record string) Finding {
	msg := fmt.Sprintf("The file lies in %d pieces on its host volume.", pieces)
	if record != "" {
		msg = fmt.Sprintf("The file lies in %d pieces on its host volume, mapped by %s.", pieces, record)
	}
	f := New(CodeHostMapUsed, msg, "")
	f.Detail = map[string]any{"pieces": pieces}
	return f
}

// SplitExtentLost: extent name of a split disk (its n grains) was not
// found.
func SplitExtentLost(name string, n uint64) Finding {
	f := New(CodeSplitExtentLost,
		fmt.Sprintf("Extent %q of the split disk was not found.", name),
		fmt.Sprintf("Its %s are missing.", grains(n)))
	f.Grains = n
	f.Detail = map[string]any{"extent": name}
	return f
}

// SplitExtentUnproven: this instance is an extent of split disk instance
// composite whose place among the extents is not proven.
func SplitExtentUnproven(composite int) Finding {
	f := New(CodeSplitExtentLost,
		fmt.Sprintf("This file is an extent of the split disk of instance %d, but which of its extents of this size is not proven.", composite),
		"Its grains were not used: the disk's range it may hold is missing unless another extent is proven there.")
	f.Detail = map[string]any{"split_instance": composite}
	return f
}

// EncryptionLattice: lattice (its words) accepted on proof, damaged
// grains damaged on it.
func EncryptionLattice(lattice, proof string, damaged uint64) Finding {
	f := New(CodeEncryptionLattice,
		fmt.Sprintf("Intermittent encryption was proven on the file: %s.", lattice),
		fmt.Sprintf("%s on the lattice are damaged and written as holes; the instance's damage report gives the proof.", capital(grains(damaged))))
	f.Grains = damaged
	f.Detail = map[string]any{"lattice": lattice, "proof": proof}
	return f
}

// StructureDestroyed: n grains read random where a structure is
// predicted, the first of them what.
func StructureDestroyed(n uint64, first string) Finding {
	f := New(CodeStructureDestroyed,
		fmt.Sprintf("%s read random where the VMDK or the guest predicts a structure (%s).", capital(grains(n)), first),
		"")
	f.Grains = n
	return f
}

// DestroyedSpan: n grains damaged in the spans stretches of the file its
// own predictions prove destroyed, the first of them first (its words).
func DestroyedSpan(n uint64, spans int, first string) Finding {
	what := fmt.Sprintf("A stretch of the file is destroyed: %s.", first)
	if spans > 1 {
		what = fmt.Sprintf("%d stretches of the file are destroyed, the first %s.", spans, first)
	}
	f := New(CodeDestroyedSpan, what,
		fmt.Sprintf("%s in them read random and are damaged and written as holes; the instance's damage report lists the stretches.", capital(grains(n))))
	f.Grains = n
	f.Detail = map[string]any{"stretches": spans, "first": first}
	return f
}

// CopiesMerged: copies copies of one disk version were merged.
func CopiesMerged(copies int, corroborated uint64) Finding {
	f := New(CodeCopiesMerged,
		fmt.Sprintf("%d copies of this disk (one version) were found.", copies),
		fmt.Sprintf("They were merged into one disk; %s are corroborated by an identical copy.", grains(corroborated)))
	f.Detail = map[string]any{"copies": copies, "corroborated": corroborated}
	return f
}

// VersionsFound: this disk is version position+1 of total in group,
// ordered by order ("unknown" when not known).
func VersionsFound(group, position, total int, order string) Finding {
	msg := fmt.Sprintf("This disk is version %d of %d of one virtual disk (group %d), ordered by %s.", position+1, total, group, order)
	if order == "unknown" {
		msg = fmt.Sprintf("This disk is one of %d versions of one virtual disk (group %d), in an order not known.", total, group)
	}
	f := New(CodeVersionsFound, msg, "")
	f.Detail = map[string]any{"group": group, "position": position, "versions": total, "order": order}
	return f
}

// CopiesDisagree: copies hold different bytes for n grains from first.
func CopiesDisagree(n, first uint64) Finding {
	return fromGrain(CodeCopiesDisagree, n, first,
		fmt.Sprintf("Copies of this disk hold different bytes for %s, from grain %d on.", grains(n), first))
}

// GrainConflict: n grains in conflict within a copy, by reason code.
func GrainConflict(n uint64, byReason map[string]uint64) Finding {
	f := New(CodeGrainConflict,
		fmt.Sprintf("The evidence for %s contradicts itself (%s).", grains(n), reasons(byReason)),
		"")
	f.Grains = n
	f.Detail = detail(byReason)
	return f
}

// GrainsMissing: n of total grains missing, by reason code.
func GrainsMissing(n, total uint64, byReason map[string]uint64) Finding {
	f := New(CodeGrainsMissing,
		fmt.Sprintf("%s of the disk's %d have no evidence naming their bytes (%s).", capital(grains(n)), total, reasons(byReason)),
		"")
	f.Grains = n
	f.Detail = detail(byReason)
	return f
}

// GrainsUnreadable: n grains missing because bytes they (or their
// tables) need could not be read, from grain first.
func GrainsUnreadable(n, first uint64) Finding {
	return fromGrain(CodeGrainsUnreadable, n, first,
		fmt.Sprintf("%s of the disk, from grain %d on, need bytes of the image that could not be read.", capital(grains(n)), first))
}

// fromGrain is the finding of n grains from grain first on, which the
// constructors above word each their own way.
func fromGrain(code Code, n, first uint64, msg string) Finding {
	f := New(code, msg, "")
	f.Grains = n
	f.Detail = map[string]any{"first_grain": first}
	return f
}

// NothingPlaced: no grain of this copy (of its n) was placed; copies
// is how many copies the disk has.
func NothingPlaced(n uint64, copies int) Finding {
	action := ""
	if copies == 1 {
		action = "The disk has no other copy: every grain not proven zero is written as a hole."
	}
	return New(CodeNothingPlaced, fmt.Sprintf("None of the %d grains of this copy of the disk was placed.", n), action)
}

// GrainVerifyFailed: grains whose hash or decoding failed on emit.
func GrainVerifyFailed(hashMismatch, decodeFailure uint64) Finding {
	f := New(CodeGrainVerifyFailed,
		fmt.Sprintf("%s read back with another hash than planned and %d failed to decompress when the disk was written.", capital(grains(hashMismatch)), decodeFailure),
		"")
	f.Grains = hashMismatch + decodeFailure
	f.Detail = map[string]any{"hash_mismatch": hashMismatch, "decode_failure": decodeFailure}
	return f
}

// GuestCheckUnclean: the guest filesystem kind at disk offset offset
// walked (or not) with problems; whole of files read back whole.
func GuestCheckUnclean(kind string, offset int64, walked bool, problems, whole, files int) Finding {
	var what []string
	if !walked {
		what = append(what, "its directory tree could not be walked whole")
	}
	if problems > 0 {
		what = append(what, fmt.Sprintf("%d problems were found", problems))
	}
	if files > whole {
		what = append(what, fmt.Sprintf("%d of its %d files are not whole", files-whole, files))
	}
	f := New(CodeGuestCheckUnclean,
		fmt.Sprintf("The %s filesystem at disk offset %d does not check clean: %s.", kind, offset, strings.Join(what, ", ")),
		"")
	f.Detail = map[string]any{"kind": kind, "offset": offset, "walked": walked, "problems": problems, "files": files, "files_whole": whole}
	return f
}

// DiskNotEmitted: writing the disk failed with err.
func DiskNotEmitted(err string) Finding {
	f := New(CodeDiskNotEmitted, fmt.Sprintf("The disk could not be written: %s.", strings.TrimSuffix(err, ".")), "")
	f.Detail = map[string]any{"error": err}
	return f
}

// VersionNotEmitted: an older version of group (ordered by order) was
// left out by --versions newest.
func VersionNotEmitted(group int, order string) Finding {
	f := New(CodeVersionNotEmitted,
		fmt.Sprintf("This disk is an older version in group %d (ordered by %s) and was not written (--versions newest).", group, order),
		"")
	f.Detail = map[string]any{"group": group, "order": order}
	return f
}

// grains words a grain count.
func grains(n uint64) string { return count(int(min(n, 1<<62)), "grain", "grains") }

// count words n things, one or many.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// bytes words a byte count: exact bytes below 1 KiB, else the largest
// binary unit it is a whole number of, else one decimal.
func bytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

// reasons words grain counts by reason code, largest first (ties by
// code), at most four and "others".
func reasons(by map[string]uint64) string {
	codes := slices.Sorted(maps.Keys(by))
	slices.SortStableFunc(codes, func(a, b string) int {
		switch {
		case by[a] > by[b]:
			return -1
		case by[a] < by[b]:
			return 1
		}
		return 0
	})
	var parts []string
	var rest uint64
	for i, c := range codes {
		if i < 4 {
			parts = append(parts, fmt.Sprintf("%d %s", by[c], c))
		} else {
			rest += by[c]
		}
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("%d others", rest))
	}
	return strings.Join(parts, ", ")
}

func detail(by map[string]uint64) map[string]any {
	return map[string]any{"by_reason": maps.Clone(by)}
}
