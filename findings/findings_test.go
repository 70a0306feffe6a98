package findings

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

var kebab = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// TestRegistry: every code is kebab-case, unique, has a severity and
// both sentences, each one sentence ending in a full stop.
func TestRegistry(t *testing.T) {
	seen := map[Code]bool{}
	for _, e := range Registry() {
		if !kebab.MatchString(string(e.Code)) {
			t.Errorf("code %q is not kebab-case", e.Code)
		}
		if seen[e.Code] {
			t.Errorf("code %q twice in the registry", e.Code)
		}
		seen[e.Code] = true
		if e.Severity != Info && e.Severity != Warning && e.Severity != Error {
			t.Errorf("%s: severity %q", e.Code, e.Severity)
		}
		for _, s := range []string{e.Meaning, e.Action} {
			if s == "" || !strings.HasSuffix(s, ".") || strings.Contains(s, "|") || strings.Contains(s, "\n") {
				t.Errorf("%s: %q is not one sentence a table cell can hold", e.Code, s)
			}
		}
	}
	if len(seen) < 20 {
		t.Errorf("%d codes: the registry lost entries", len(seen))
	}
}

// TestConstructors: every constructor's finding has a registered code,
// its registry severity, and two sentences with the figures given.
func TestConstructors(t *testing.T) {
	for _, tc := range []struct {
		f    Finding
		code Code
		want string // in the message
	}{
		{UnreadableArea(4096, 1<<20), CodeUnreadableArea, "1 MiB of the evidence at image offset 4096"},
		{UnreadableAreas(7, 3<<20+512, 1<<30), CodeUnreadableArea, "7 more areas of the evidence, 3.0 MiB"},
		{UnreadableAreaBy("ewf-error2", 512, 1024), CodeUnreadableArea, "1 KiB of the evidence at image offset 512 could not be read (its acquisition could not read it, by the E01 set's error2 section)."},
		{UnreadableAreasBy("", 2, 1024, 0), CodeUnreadableArea, "(recorded as unreadable in case.json)"},
		{EvidenceChunkDamaged(149, 2, 1217, 149*32768, 32768, "ewf: checksum mismatch: the chunk's Adler-32 is 0x01, 0x02 stored"), CodeEvidenceChunkDamaged,
			"Chunk 149 of the E01 set (segment 2, file offset 1217), 32 KiB of media at image offset 4882432, does not read: ewf: checksum mismatch"},
		{EvidenceChunksDamaged(3, 96<<10, 1<<20), CodeEvidenceChunkDamaged, "3 more chunks of the E01 set, 96 KiB of media"},
		{EvidenceHashMismatch("disk.E01", "md5", "aa", "bb"), CodeEvidenceHashMismatch, "disk.E01 stores MD5 aa, but the bytes the carve read hash to bb"},
		{EvidenceNotHashed(), CodeEvidenceNotHashed, "No digest"},
		{HeaderLost(1024, "footer"), CodeHeaderLost, "image offset 1024"},
		{HeaderDamaged(1024, "directories", "capacity 0."), CodeHeaderDamaged, "(image offset 1024) is damaged: capacity 0."},
		{MetadataLost(65536, 12), CodeMetadataLost, "image offset 65536"},
		{StreamAdopted(512, 9), CodeStreamAdopted, "9 grain records"},
		{CapacityBounded(2048, "upper"), CodeCapacityBounded, "at most 2048 sectors (1 MiB)"},
		{CapacityBounded(2048, "lower"), CodeCapacityBounded, "at least 2048 sectors"},
		{PrimaryTablesLost(5, 5, "entry 0 = 0"), CodePrimaryTablesLost, "primary grain directory is unusable (entry 0 = 0)"},
		{PrimaryTablesLost(2, 5, ""), CodePrimaryTablesLost, "2 of the file's 5 grain tables"},
		{PrimaryTablesLost(1, 1, ""), CodePrimaryTablesLost, "1 of the file's 1 grain table is"},
		{TablesLost(3, 3, 10, 20, 5), CodeTablesLost, "3 of the file's 3 grain tables"},
		{TablesWiped(30, 1, 2, 3), CodeTablesLost, "30 grain slots"},
		{TableCopiesDisagree(4, 100), CodeTableCopiesDisagree, "4 grains, from grain 100"},
		{StreamFooterLost(8192), CodeStreamFooterLost, "image offset 8192"},
		{StreamTableUntrusted(1, 5), CodeStreamTableUntrusted, "5 entries"},
		{UnplacedSlots(3, 1), CodeUnplacedSlots, "3 non-zero grain slots of the file, and 1 past"},
		{FragmentBreak(1<<20, 5<<20, "a VMDK header lies here."), CodeFragmentBreak, "file offset 1048576 (image offset 5242880): a VMDK header lies here."},
		{FragmentsFollowed(4, 30), CodeFragmentsFollowed, "4 pieces"},
		{HostMapUsed(3, "MFT record 40"), CodeHostMapUsed, "mapped by MFT record 40"},
		{SplitExtentLost("d-s002.vmdk", 64), CodeSplitExtentLost, `"d-s002.vmdk"`},
		{SplitExtentUnproven(3), CodeSplitExtentLost, "instance 3"},
		{EncryptionLattice("1 MiB every 8 MiB", "statistics", 40), CodeEncryptionLattice, "proven on the file: 1 MiB every 8 MiB"},
		{StructureDestroyed(1, "primary grain table 0"), CodeStructureDestroyed, "1 grain read random"},
		{DestroyedSpan(40, 1, "file offsets 1048576 to 2097152"), CodeDestroyedSpan, "A stretch of the file is destroyed: file offsets 1048576"},
		{DestroyedSpan(40, 2, "file offsets 1048576 to 2097152"), CodeDestroyedSpan, "2 stretches of the file are destroyed, the first file offsets"},
		{CopiesMerged(2, 100), CodeCopiesMerged, "2 copies"},
		{VersionsFound(1, 0, 2, "descriptor CID chain"), CodeVersionsFound, "version 1 of 2"},
		{VersionsFound(1, 0, 2, "unknown"), CodeVersionsFound, "order not known"},
		{CopiesDisagree(16, 32), CodeCopiesDisagree, "16 grains, from grain 32"},
		{GrainConflict(3, map[string]uint64{"sector-shared": 2, "records-disagree": 1}), CodeGrainConflict, "(2 sector-shared, 1 records-disagree)"},
		{GrainsMissing(10, 640, map[string]uint64{"a": 1, "b": 1, "c": 5, "d": 1, "e": 2}), CodeGrainsMissing, "(5 c, 2 e, 1 a, 1 b, 1 others)"},
		{GrainsUnreadable(2, 7), CodeGrainsUnreadable, "from grain 7"},
		{NothingPlaced(640, 2), CodeNothingPlaced, "640 grains"},
		{NothingPlaced(640, 1), CodeNothingPlaced, "640 grains"},
		{UnplacedSlots(0, 4), CodeUnplacedSlots, "4 non-zero grain slots of the file lie past"},
		{UnplacedSlots(3, 0), CodeUnplacedSlots, "3 non-zero grain slots of the file hold"},
		{GrainVerifyFailed(1, 2), CodeGrainVerifyFailed, "1 grain read back"},
		{GuestCheckUnclean("ntfs", 1<<20, false, 2, 8, 10), CodeGuestCheckUnclean, "could not be walked whole, 2 problems were found, 2 of its 10 files are not whole"},
		{DiskNotEmitted("too large"), CodeDiskNotEmitted, "too large"},
		{VersionNotEmitted(2, "guest ext write time"), CodeVersionNotEmitted, "group 2"},
	} {
		e, ok := Lookup(tc.code)
		if !ok || tc.f.Code != tc.code {
			t.Errorf("%q: code %q, want %q (registered: %v)", tc.f.Message, tc.f.Code, tc.code, ok)
			continue
		}
		if tc.f.Severity != e.Severity {
			t.Errorf("%s: severity %s, registry says %s", tc.code, tc.f.Severity, e.Severity)
		}
		if !strings.Contains(tc.f.Message, tc.want) {
			t.Errorf("%s: message %q lacks %q", tc.code, tc.f.Message, tc.want)
		}
		for _, s := range []string{tc.f.Message, tc.f.Action} {
			if s == "" || !strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
				t.Errorf("%s: sentence %q", tc.code, s)
			}
		}
		if _, err := json.Marshal(tc.f); err != nil {
			t.Errorf("%s: %v", tc.code, err)
		}
	}
}

// TestSort: the evidence's findings first, then by disk, instance,
// severity (errors first), code and offset, whatever the input order.
func TestSort(t *testing.T) {
	want := []Finding{
		UnreadableArea(0, 512),
		UnreadableArea(4096, 512),
		GrainsMissing(1, 2, nil).On(1, 0),
		CopiesMerged(2, 0).On(1, 0),
		HeaderLost(0, "footer").On(1, 1),
		TablesLost(1, 1, 0, 0, 1).On(2, 0),
	}
	got := []Finding{want[5], want[3], want[1], want[4], want[0], want[2]}
	Sort(got)
	for i := range want {
		if got[i].Code != want[i].Code || got[i].Disk != want[i].Disk || offset(got[i]) != offset(want[i]) {
			t.Errorf("position %d: %s disk %d, want %s disk %d", i, got[i].Code, got[i].Disk, want[i].Code, want[i].Disk)
		}
	}
	if e, w, i := Count(want); e != 2 || w != 3 || i != 1 {
		t.Errorf("Count = %d, %d, %d", e, w, i)
	}
}

const (
	readmePath = "../README.md"
	tableBegin = "<!-- finding codes: generated from findings/registry.go; UPDATE_README=1 go test ./findings rewrites it -->\n"
	tableEnd   = "<!-- end of finding codes -->\n"
)

// markdownTable is the README's table of codes, from the registry.
func markdownTable() string {
	var b strings.Builder
	b.WriteString("| code | severity | what it means | what was done |\n| --- | --- | --- | --- |\n")
	for _, e := range Registry() {
		b.WriteString("| `" + string(e.Code) + "` | " + string(e.Severity) + " | " + e.Meaning + " | " + e.Action + " |\n")
	}
	return b.String()
}

// TestReadmeTable: the README's table of finding codes is the registry's.
// UPDATE_README=1 rewrites it in place.
func TestReadmeTable(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, tableBegin), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no table of finding codes between %q and %q", tableBegin, tableEnd)
	}
	got, want := s[i+len(tableBegin):j], markdownTable()
	if got == want {
		return
	}
	if os.Getenv("UPDATE_README") == "1" {
		if err := os.WriteFile(readmePath, []byte(s[:i+len(tableBegin)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md's table of finding codes rewritten from the registry")
		return
	}
	t.Errorf("README.md's table of finding codes differs from the registry; run UPDATE_README=1 go test ./findings, or paste:\n%s", want)
}
