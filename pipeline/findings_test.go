package pipeline

import (
	"slices"
	"testing"

	"vmdkcarve/findings"
	"vmdkcarve/pipeline/guestcheck"
	"vmdkcarve/reassemble"
)

func TestEvidenceFindings(t *testing.T) {
	many := make([]Range, maxAreaFindings+5)
	for i := range many {
		many[i] = Range{int64(i) << 20, int64(i)<<20 + 512}
	}
	hashed := Evidence{SHA256: "ab"}
	for _, tc := range []struct {
		name string
		ev   Evidence
		want []findings.Code
		// last, if set, checks the last finding.
		last func(t *testing.T, f findings.Finding)
	}{
		{"hashed, all read", hashed, nil, nil},
		{"not hashed", Evidence{}, []findings.Code{findings.CodeEvidenceNotHashed}, nil},
		{"two areas", Evidence{MD5: "x", Unreadable: []Range{{0, 512}, {4096, 8192}}}, []findings.Code{findings.CodeUnreadableArea, findings.CodeUnreadableArea}, func(t *testing.T, f findings.Finding) {
			if *f.ImageOffset != 4096 || f.Length != 4096 {
				t.Errorf("last area at %d, %d bytes", *f.ImageOffset, f.Length)
			}
		}},
		{"one more than listed: listed too", Evidence{SHA1: "x", Unreadable: many[:maxAreaFindings+1]}, slices.Repeat([]findings.Code{findings.CodeUnreadableArea}, maxAreaFindings+1), nil},
		{"many areas, the rest folded", Evidence{SHA1: "x", Unreadable: many}, slices.Repeat([]findings.Code{findings.CodeUnreadableArea}, maxAreaFindings+1), func(t *testing.T, f findings.Finding) {
			if f.Detail["areas"] != 5 || f.Detail["bytes"] != int64(5*512) || *f.ImageOffset != int64(maxAreaFindings)<<20 {
				t.Errorf("folded finding %+v", f)
			}
		}},
		{"an E01's stored MD5 differs, its SHA-1 matches", Evidence{Path: "/ev/a.E01", MD5: "c", SHA1: "s", StoredHashes: map[string]*StoredHash{
			"md5": {Stored: "aa", Computed: "c", Match: new(false)}, "sha1": {Stored: "s", Computed: "s", Match: new(true)}, "sha256": nil}},
			[]findings.Code{findings.CodeEvidenceHashMismatch}, func(t *testing.T, f findings.Finding) {
				if f.Detail["algorithm"] != "md5" || f.Detail["stored"] != "aa" || f.Detail["computed"] != "c" {
					t.Errorf("mismatch finding %+v", f)
				}
			}},
		{"stored but not computed: not checked", Evidence{SHA256: "x", StoredHashes: map[string]*StoredHash{"md5": {Stored: "aa"}}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := evidenceFindings(tc.ev)
			var got []findings.Code
			for _, f := range fs {
				got = append(got, f.Code)
				if f.Disk != 0 {
					t.Errorf("%s on disk %d: the evidence's findings are on none", f.Code, f.Disk)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("codes %v, want %v", got, tc.want)
			}
			if tc.last != nil {
				tc.last(t, fs[len(fs)-1])
			}
		})
	}
}

func TestEmitFindings(t *testing.T) {
	clean := &guestcheck.CheckResult{Walked: true, Entries: 10, Files: 4, FilesRecovered: 4}
	for _, tc := range []struct {
		name string
		rep  DiskReport
		want []findings.Code
	}{
		{"clean", DiskReport{Guest: []guestcheck.Finding{{Kind: "mbr"}, {Kind: "ext", Offset: 1 << 20, Check: clean}}}, nil},
		{"grains failed their check", DiskReport{Verified: VerifySummary{GrainsRead: 10, HashMismatch: 1}}, []findings.Code{findings.CodeGrainVerifyFailed}},
		{"files not whole", DiskReport{Guest: []guestcheck.Finding{{Kind: "ntfs", Check: &guestcheck.CheckResult{Walked: true, Files: 4, FilesRecovered: 3}}}}, []findings.Code{findings.CodeGuestCheckUnclean}},
		{"walk failed", DiskReport{Guest: []guestcheck.Finding{{Kind: "ext", Check: &guestcheck.CheckResult{Problems: []string{"bad inode"}}}}}, []findings.Code{findings.CodeGuestCheckUnclean}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rep.Disk = &reassemble.Disk{ID: 7}
			var got []findings.Code
			for _, f := range emitFindings(&tc.rep) {
				got = append(got, f.Code)
				if f.Disk != 7 || f.Instance != 0 {
					t.Errorf("%s on disk %d instance %d, want disk 7", f.Code, f.Disk, f.Instance)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("codes %v, want %v", got, tc.want)
			}
		})
	}
}
