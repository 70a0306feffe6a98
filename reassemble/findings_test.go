package reassemble

import (
	"slices"
	"testing"

	"vmdkcarve/findings"
	"vmdkcarve/fsprobe"
	"vmdkcarve/vmdk"
)

// testFile is a hosted sparse file of n grains, every grain placed from
// its table (grain g's bytes hash to g+1), read wholly from its primary
// tables, in one contiguous fragment at image offset 1 MiB × id.
func testFile(id int, n uint64) *Instance {
	h := &vmdk.SparseHeader{Version: 1, Capacity: n * 128, GrainSize: 128, NumGTEsPerGT: vmdk.GTEsPerGT, GDOffset: 1, OverHead: 128}
	inst := &Instance{ID: id, Variant: "monolithicSparse", HeaderOffset: int64(id) << 20, Header: h, grains: newDecisions(),
		Fragments:   []Fragment{{FileOffset: 0, ImageOffset: int64(id) << 20, Length: int64(n+1) * h.GrainBytes(), Link: LinkContiguous}},
		TableCopies: &TableCopies{Tables: 1, Primary: 1}}
	for g := range n {
		inst.grains.set(g, &Grain{Status: Placed, Evidence: []string{EvTable}, Hash: g + 1, Copies: 1,
			Source: &Source{Instance: id, ImageOffset: inst.HeaderOffset + int64(g+1)*h.GrainBytes(), FileOffset: int64(g+1) * h.GrainBytes()}})
	}
	return inst
}

// decide sets the decision of grains [lo, hi) of f.
func decide(f *Instance, lo, hi uint64, gr *Grain) {
	for g := lo; g < hi; g++ {
		f.grains.set(g, gr)
	}
}

// testDisk merges the files into one disk, as Plan does.
func testDisk(files ...*Instance) *Disk {
	for _, f := range files {
		f.Counts = countInstance(f)
	}
	return mergeGroup(1, files)
}

func TestDiskFindings(t *testing.T) {
	lattice := Lattice{Chunk: 1 << 20, Stride: 8 << 20, Phase: 0, End: 64 << 20, Chunks: 8, Proof: "statistics"}
	for _, tc := range []struct {
		name string
		disk func() *Disk
		want []findings.Code // the codes found, in Sort's order
		// check, if set, looks further at the findings.
		check func(t *testing.T, fs []findings.Finding)
	}{
		{"intact", func() *Disk { return testDisk(testFile(1, 16)) }, nil, nil},
		{"intact and empty", func() *Disk {
			f := testFile(1, 16)
			decide(f, 0, 16, &Grain{Status: Zero, Evidence: []string{EvTable}, Reason: Reason{Code: ReasonUnallocated}})
			return testDisk(f)
		}, nil, nil},
		{"two intact copies", func() *Disk { return testDisk(testFile(1, 16), testFile(2, 16)) }, []findings.Code{findings.CodeCopiesMerged}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Detail["corroborated"] != uint64(16) {
				t.Errorf("corroborated %v, want 16", fs[0].Detail["corroborated"])
			}
		}},
		{"header lost, found from its footer", func() *Disk {
			f := testFile(1, 16)
			f.HeaderLost, f.HeaderFrom = true, HeaderFromFooter
			return testDisk(f)
		}, []findings.Code{findings.CodeHeaderLost}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].ImageOffset == nil || *fs[0].ImageOffset != 1<<20 || fs[0].Instance != 1 || fs[0].Disk != 1 {
				t.Errorf("finding %+v: want instance 1 of disk 1 at image offset 1 MiB", fs[0])
			}
		}},
		{"header damaged, found from its footer", func() *Disk {
			f := testFile(1, 16)
			f.HeaderLost, f.HeaderFrom, f.HeaderDamaged = true, HeaderFromFooter, "grain size 3 is not a power of 2"
			return testDisk(f)
		}, []findings.Code{findings.CodeHeaderDamaged}, nil},
		{"header lost, capacity from the directory", func() *Disk {
			f := testFile(1, 16)
			f.HeaderLost, f.HeaderFrom, f.CapacityBound = true, HeaderFromDirectories, BoundUpper
			return testDisk(f)
		}, []findings.Code{findings.CodeCapacityBounded, findings.CodeHeaderLost}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Detail["bound"] != BoundUpper || fs[0].Detail["capacity_sectors"] != uint64(16*128) {
				t.Errorf("detail %v", fs[0].Detail)
			}
		}},
		{"found from its guest", func() *Disk {
			f := testFile(1, 16)
			f.HeaderLost, f.HeaderFrom, f.CapacityBound, f.TableCopies = true, HeaderFromGuest, BoundLower, nil
			return testDisk(f)
		}, []findings.Code{findings.CodeCapacityBounded, findings.CodeMetadataLost}, nil},
		{"stream adopted from its records", func() *Disk {
			f := testFile(1, 16)
			f.Header.CompressAlgorithm = vmdk.CompressDeflate
			f.Header.GDOffset = vmdk.GDAtEnd
			f.HeaderLost, f.HeaderFrom, f.CapacityBound, f.TableCopies = true, HeaderFromRecords, BoundLower, nil
			return testDisk(f)
		}, []findings.Code{findings.CodeCapacityBounded, findings.CodeStreamAdopted}, nil},
		{"stream footer lost", func() *Disk {
			f := testFile(1, 16)
			f.Header.CompressAlgorithm = vmdk.CompressDeflate
			f.Header.GDOffset = vmdk.GDAtEnd
			f.TableCopies = nil
			return testDisk(f)
		}, []findings.Code{findings.CodeStreamFooterLost}, nil},
		{"stream with its footer", func() *Disk {
			f := testFile(1, 16)
			f.Header.CompressAlgorithm = vmdk.CompressDeflate
			f.FooterOffset, f.TableCopies = 1<<30, nil
			return testDisk(f)
		}, nil, nil},
		{"stream table contradicts the records", func() *Disk {
			f := testFile(1, 16)
			f.Header.CompressAlgorithm = vmdk.CompressDeflate
			f.TableCopies, f.StreamTable = nil, &StreamTableCheck{Agree: 1, Disagree: 5}
			return testDisk(f)
		}, []findings.Code{findings.CodeStreamTableUntrusted}, nil},
		{"stream table agrees", func() *Disk {
			f := testFile(1, 16)
			f.Header.CompressAlgorithm = vmdk.CompressDeflate
			f.TableCopies, f.StreamTable = nil, &StreamTableCheck{Agree: 16, Trusted: true}
			return testDisk(f)
		}, nil, nil},
		{"primary tables zeroed, redundant used", func() *Disk {
			f := testFile(1, 16)
			f.TableCopies = &TableCopies{Tables: 1, Redundant: 1, PrimaryDirectory: "entry 0 is zero"}
			return testDisk(f)
		}, []findings.Code{findings.CodePrimaryTablesLost}, nil},
		{"both copies of a table lost", func() *Disk {
			f := testFile(1, 16)
			f.TableCopies = &TableCopies{Tables: 2, Primary: 1, Lost: 1}
			decide(f, 8, 16, &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonTableLost, Detail: "zero", Redundant: "zero"}})
			f.grains.set(9, &Grain{Status: Placed, Evidence: []string{EvFSProbe}, Hash: 10, Reason: Reason{Code: ReasonSelfLocated}})
			return testDisk(f)
		}, []findings.Code{findings.CodeGrainsMissing, findings.CodeTablesLost}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Grains != 7 || fs[1].Grains != 7 || fs[1].Detail["fsprobe"] != uint64(1) {
				t.Errorf("missing %d (disk), %d (tables), fsprobe %v: want 7, 7, 1", fs[0].Grains, fs[1].Grains, fs[1].Detail["fsprobe"])
			}
		}},
		{"tables wiped", func() *Disk {
			f := testFile(1, 16)
			f.TableCopies = &TableCopies{Tables: 1, Primary: 1, Wiped: 12}
			decide(f, 0, 16, &Grain{Status: Missing, tableLost: true, Reason: Reason{Code: ReasonZeroTableOrphans, Other: 12}})
			return testDisk(f)
		}, []findings.Code{findings.CodeGrainsMissing, findings.CodeTablesLost, findings.CodeNothingPlaced}, nil},
		{"encryption lattice", func() *Disk {
			f := testFile(1, 16)
			decide(f, 4, 6, damagedGrain(&lattice, 4<<16))
			f.Damage = &DamageReport{DataChunks: 16, RandomChunks: 2, Lattices: []Lattice{lattice}, DamagedGrains: 2}
			return testDisk(f)
		}, []findings.Code{findings.CodeEncryptionLattice}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Grains != 2 || fs[0].Detail["proof"] != "statistics" {
				t.Errorf("%+v", fs[0])
			}
		}},
		{"structure destroyed", func() *Disk {
			f := testFile(1, 16)
			f.grains.set(3, &Grain{Status: Damaged, Reason: Reason{Code: ReasonStructureDestroyed, Offset: 3 << 16, Detail: "primary grain table 0"}})
			return testDisk(f)
		}, []findings.Code{findings.CodeStructureDestroyed}, nil},
		{"contiguity broken, nothing followed", func() *Disk {
			f := testFile(1, 16)
			f.addBreak(9<<16, 1<<20+9<<16, "a VMDK header lies here")
			f.addBreak(9<<16, 1<<20+9<<16, "a VMDK header lies here") // once per offset
			decide(f, 8, 16, &Grain{Status: Missing, Reason: Reason{Code: ReasonContiguityBroken, Detail: "a VMDK header lies here"}})
			return testDisk(f)
		}, []findings.Code{findings.CodeGrainsMissing, findings.CodeFragmentBreak}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Detail["by_reason"].(map[string]uint64)[string(ReasonContiguityBroken)] != 8 {
				t.Errorf("missing by reason %v", fs[0].Detail)
			}
			if *fs[1].ImageOffset != 1<<20+9<<16 {
				t.Errorf("break at %d", *fs[1].ImageOffset)
			}
		}},
		{"followed by anchors", func() *Disk {
			f := testFile(1, 16)
			f.Fragments = []Fragment{{FileOffset: 0, ImageOffset: 1 << 20, Length: 8 << 16, Link: LinkAnchored, Anchors: 5},
				{FileOffset: 8 << 16, ImageOffset: 9 << 20, Length: 9 << 16, Link: LinkAnchored, Anchors: 3}}
			return testDisk(f)
		}, []findings.Code{findings.CodeFragmentsFollowed}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Detail["pieces"] != 2 || fs[0].Detail["anchors"] != 8 {
				t.Errorf("detail %v", fs[0].Detail)
			}
		}},
		{"host map", func() *Disk {
			f := testFile(1, 16)
			f.HostMap = &fsprobe.FileMap{FS: "ntfs", Record: "MFT record 41"}
			f.Fragments = []Fragment{{FileOffset: 0, ImageOffset: 1 << 20, Length: 8 << 16, Link: LinkHost},
				{FileOffset: 8 << 16, ImageOffset: 9 << 20, Length: 9 << 16, Link: LinkHost}}
			return testDisk(f)
		}, []findings.Code{findings.CodeHostMapUsed}, nil},
		{"unplaced slots", func() *Disk {
			f := testFile(1, 16)
			f.UnplacedGrains, f.TrailingSlots = 3, 2
			return testDisk(f)
		}, []findings.Code{findings.CodeUnplacedSlots}, nil},
		{"copies disagree, tables disagree, a sector shared", func() *Disk {
			a, b := testFile(1, 16), testFile(2, 16)
			b.grains.set(2, &Grain{Status: Placed, Evidence: []string{EvTable}, Hash: 99, Source: &Source{Instance: 2}})
			decide(a, 10, 12, &Grain{Status: Conflict, Reason: Reason{Code: ReasonTablesDisagree, Offset: 1, Other: 2}})
			decide(b, 10, 12, &Grain{Status: Conflict, Reason: Reason{Code: ReasonTablesDisagree, Offset: 1, Other: 2}})
			a.grains.set(14, &Grain{Status: Conflict, Reason: Reason{Code: ReasonSectorShared, Offset: 1, Other: 2}})
			b.grains.set(14, &Grain{Status: Missing, Reason: Reason{Code: ReasonNoEvidence}})
			return testDisk(a, b)
		}, []findings.Code{findings.CodeCopiesDisagree, findings.CodeGrainConflict, findings.CodeTableCopiesDisagree, findings.CodeCopiesMerged}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Grains != 1 || fs[1].Grains != 1 || fs[2].Grains != 2 {
				t.Errorf("grains %d, %d, %d: want 1, 1, 2", fs[0].Grains, fs[1].Grains, fs[2].Grains)
			}
		}},
		{"unreadable grains", func() *Disk {
			f := testFile(1, 16)
			decide(f, 5, 7, &Grain{Status: Missing, Reason: Reason{Code: ReasonSectorUnreadable, Offset: 100, Detail: "not rescued"}})
			return testDisk(f)
		}, []findings.Code{findings.CodeGrainsMissing, findings.CodeGrainsUnreadable}, func(t *testing.T, fs []findings.Finding) {
			if fs[1].Grains != 2 || fs[1].Detail["first_grain"] != uint64(5) {
				t.Errorf("%+v", fs[1])
			}
		}},
		{"split extent not found", func() *Disk {
			f := testFile(1, 16)
			f.TableCopies = nil
			decide(f, 8, 16, &Grain{Status: Missing, Reason: Reason{Code: ReasonSplitExtentMissing, Detail: "d-s002.vmdk"}})
			return testDisk(f)
		}, []findings.Code{findings.CodeGrainsMissing, findings.CodeSplitExtentLost}, nil},
		{"an extent whose place is not proven", func() *Disk {
			d := testDisk(testFile(1, 16))
			p := testFile(3, 8)
			p.UnprovenExtentOf = 1
			p.Counts = countInstance(p)
			d.Parts = append(d.Parts, p)
			return d
		}, []findings.Code{findings.CodeSplitExtentLost}, func(t *testing.T, fs []findings.Finding) {
			if fs[0].Instance != 3 {
				t.Errorf("on instance %d, want the part's, 3", fs[0].Instance)
			}
		}},
		{"versions", func() *Disk {
			d := testDisk(testFile(1, 16))
			d.Versions = &Versions{Group: 1, Disks: []int{1, 2}, Position: 0, Order: "descriptor CID chain"}
			return d
		}, []findings.Code{findings.CodeVersionsFound}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := tc.disk().Findings()
			var got []findings.Code
			for _, f := range fs {
				got = append(got, f.Code)
				if e, ok := findings.Lookup(f.Code); !ok || e.Severity != f.Severity || f.Message == "" || f.Action == "" || f.Disk != 1 {
					t.Errorf("finding %+v: not as registered, or not on disk 1", f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("codes %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}
