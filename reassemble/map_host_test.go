package reassemble

import (
	"slices"
	"testing"

	"vmdkcarve/fsprobe"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// TestHostVolumesOnly: a volume found inside a VMDK's grains is the
// guest's, never the host's (issue 9), and a host volume holds the files
// it maps. The image: a host volume at 1 MiB; uncompressed sparse VMDKs
// (12 MiB disks, 64 KiB of metadata, 50 grains stored) at 6, 12, 30 and
// 44 MiB, the one at 30 MiB fragmented by its host; a stream at 20 MiB.
func TestHostVolumesOnly(t *testing.T) {
	const (
		mib    = int64(1 << 20)
		host   = 1 * mib
		a1     = 6 * mib  // its guest volume starts in its grains at a1+128 KiB
		a2     = 12 * mib // 6 MiB on: inside a1's guest volume extrapolated
		stream = 20 * mib
		a5     = 30 * mib // fragmented: file MiB 1.. at 40 MiB
		a6     = 44 * mib
		meta   = 64 << 10 // overHead 128 sectors
		cap12  = 12 * mib
	)
	sparse := func(at int64) []signatures.Hit {
		h := &vmdk.SparseHeader{Version: 1, Flags: 3, Capacity: uint64(cap12 / 512), GrainSize: 128, DescriptorOffset: 1, DescriptorSize: 20,
			NumGTEsPerGT: 512, RGDOffset: 21, GDOffset: 26, OverHead: 128}
		if err := h.Validate(); err != nil {
			t.Fatal(err)
		}
		// One grain table in the metadata: grains up to sector 128 + 49 × 128.
		return []signatures.Hit{
			{Offset: at, Kind: signatures.KindSparseHeader, Verdict: signatures.Valid, Sparse: h},
			{Offset: at + 30*512, Kind: signatures.KindGT, Verdict: signatures.Valid, Table: &signatures.TableInfo{Entries: 50, First: 128, Last: 128 + 49*128}},
		}
	}
	streamHdr := &vmdk.SparseHeader{Version: 3, Flags: 0x30001, Capacity: uint64(cap12 / 512), GrainSize: 128, DescriptorOffset: 1, DescriptorSize: 20,
		NumGTEsPerGT: 512, GDOffset: vmdk.GDAtEnd, OverHead: 128, CompressAlgorithm: vmdk.CompressDeflate}
	if err := streamHdr.Validate(); err != nil {
		t.Fatal(err)
	}
	var hits []signatures.Hit
	for _, at := range []int64{a1, a2, a5, a6} {
		hits = append(hits, sparse(at)...)
	}
	hits = append(hits, signatures.Hit{Offset: stream, Kind: signatures.KindSparseHeader, Verdict: signatures.Valid, Sparse: streamHdr})

	at := func(h int64, n int64) []fsprobe.MappedExtent {
		return []fsprobe.MappedExtent{{FileOffset: 0, ImageOffset: h, Length: n}}
	}
	hostNTFS := func(h int64) fsprobe.FileMap {
		return fsprobe.FileMap{FS: "ntfs", Record: "host file", Extents: at(h, 3*mib), Volume: host, VolumeSize: 64 * mib,
			Structures: []int64{host, host + 16<<10, host + 64*mib}}
	}
	// a5's host map: file bytes [0, 1 MiB) at 30 MiB, the rest at 40 MiB.
	fragmented := hostNTFS(a5)
	fragmented.Extents = []fsprobe.MappedExtent{{FileOffset: 0, ImageOffset: a5, Length: mib}, {FileOffset: mib, ImageOffset: 40 * mib, Length: 2 * mib}}
	// The maps of a host volume solved from anchors alone: its file at a1
	// is fragmented around its inode table at a1 + 1 MiB.
	anchored := fsprobe.FileMap{FS: "ext4", Volume: host, Structures: []int64{a1 + mib + 512},
		Extents: []fsprobe.MappedExtent{{FileOffset: 0, ImageOffset: a1, Length: mib}, {FileOffset: mib, ImageOffset: a1 + 2*mib, Length: mib}}}
	// Two files an ext4 geometry solved from anchors alone puts on a2 and
	// a6: its two facts.
	twoFacts := func(size int64) (fsprobe.FileMap, []fsprobe.FileMap) {
		m := fsprobe.FileMap{FS: "ext4", Extents: at(a2, 3*mib), Complete: true, Size: 3 * mib, Volume: 2 * mib, Structures: []int64{2*mib + 64<<10}}
		o := fsprobe.FileMap{FS: "ext4", Extents: at(a6, size), Complete: true, Size: size, Volume: 2 * mib, Structures: []int64{2*mib + 68<<10}}
		return m, []fsprobe.FileMap{o}
	}
	factsKept, factsWith := twoFacts(2 * mib)
	factGone, goneWith := twoFacts(363646)
	for _, tc := range []struct {
		name     string
		m        fsprobe.FileMap
		keep     bool
		with     []fsprobe.FileMap // other maps of the same volume
		dropWith bool              // the other maps are dropped too
	}{
		{"host volume", hostNTFS(a1), true, nil, false},
		{"host volume, boot sectors zeroed: its $MFT before every file", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, mib), Volume: host, Structures: []int64{host + 16<<10}}, true, nil, false},
		{"guest NTFS in a1's grains puts a text file on a2", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 4096), Volume: a1 + 128<<10, VolumeSize: 8 * mib,
			Structures: []int64{a1 + 128<<10, a1 + 144<<10}}, false, nil, false},
		{"guest NTFS solved with a wrong cluster size from its $MFT alone", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 8192), Volume: a1 + 16<<10,
			Structures: []int64{a1 + 144<<10}}, false, nil, false},
		{"the host's holes pull the guest's $MFT up into what contiguity calls a1's metadata", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 8192), Volume: a1 - 4<<10,
			Structures: []int64{a1 + 28<<10}}, false, nil, false},
		{"issue 9: the guest's $Boot at its own header (volume start = header)", fsprobe.FileMap{FS: "ntfs", Record: "$Boot", Extents: at(a1, 8192), Volume: a1,
			Structures: []int64{a1 + 144<<10}}, false, nil, false},
		{"volume starting after the header it maps", fsprobe.FileMap{FS: "ntfs", Extents: at(a1, mib), Volume: a1 + 128<<10, VolumeSize: 8 * mib}, false, nil, false},
		{"header past the volume's end", fsprobe.FileMap{FS: "ext4", Extents: at(a1, mib), Volume: host, VolumeSize: 4 * mib, Structures: []int64{host + 1024}}, false, nil, false},
		{"guest ext4 superblock in a1's grains", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + meta, VolumeSize: cap12 - mib,
			Structures: []int64{a1 + meta + 1024}}, false, nil, false},
		{"guest ext4 from a backup superblock in a1's grains: starts before a1", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 - 4*mib, VolumeSize: 11 * mib,
			Structures: []int64{a1 + 2*mib}}, false, nil, false},
		{"a volume bigger than a1's disk is not its guest", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + meta, VolumeSize: 32 * mib,
			Structures: []int64{a1 + meta + 1024}}, true, nil, false},
		{"superblock past a1's largest grain: not in its grains", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + 4*mib, VolumeSize: 4 * mib,
			Structures: []int64{a1 + 4*mib + 1024}}, true, nil, false},
		{"one structure outside every grain area: a host", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: host, VolumeSize: 64 * mib,
			Structures: []int64{host + 1024, a1 + 2*mib}}, true, nil, false},
		{"geometry from anchors alone: rule 1 only", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + 128<<10}, true, nil, false},
		{"structures in a stream's range: deflated grains hold none verbatim", fsprobe.FileMap{FS: "ntfs", Extents: at(a5, mib), Volume: stream + mib, VolumeSize: 12 * mib,
			Structures: []int64{stream + mib}}, true, nil, false},
		{"guest in a fragmented file's far piece, by its host map", fsprobe.FileMap{FS: "ntfs", Extents: at(a6, 4096), Volume: 40*mib + 128<<10, VolumeSize: 8 * mib,
			Structures: []int64{40*mib + 128<<10}}, false, nil, false},
		{"a guest inode, by an anchor geometry: its own inode in a1's grains", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 - 2*mib,
			Structures: []int64{a1 + mib}}, false, nil, false},
		{"a host inode in a1's contiguous range, a1 mapped by the same volume elsewhere", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: host,
			Structures: []int64{a1 + mib}}, true, []fsprobe.FileMap{anchored}, false},
		{"a complete map of a whole VMDK file", fsprobe.FileMap{FS: "ext4", Extents: at(a2, 3*mib), Complete: true, Size: 3 * mib, Volume: host,
			Structures: []int64{host + 1024}}, true, nil, false},
		{"a complete map whose size is not whole sectors: no VMDK file", fsprobe.FileMap{FS: "ext4", Extents: at(a2, 462767), Complete: true, Size: 462767, Volume: host,
			Structures: []int64{host + 1024}}, false, nil, false},
		{"a complete map shorter than its VMDK's metadata", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 8192), Complete: true, Size: 8192, Volume: host,
			Structures: []int64{host}}, false, nil, false},
		{"an incomplete map's size is not judged", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 8192), Size: 8191, Volume: host,
			Structures: []int64{host}}, true, nil, false},
		{"an anchor geometry keeps its two facts", factsKept, true, factsWith, false},
		{"an anchor geometry that lost one of its two facts", factGone, false, goneWith, true},
		{"in a5's contiguous range, past the shorter piece its host map gives", fsprobe.FileMap{FS: "ext4", Extents: at(a6, mib), Volume: 33*mib - 1024, VolumeSize: 12 * mib,
			Structures: []int64{33 * mib}}, false, nil, false},
		{"no extents", fsprobe.FileMap{FS: "ntfs", Volume: host}, false, nil, false},
		{"a file at image offset 0 has no host", fsprobe.FileMap{FS: "ext4", Extents: at(0, mib)}, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Record = "subject"
			maps := append([]fsprobe.FileMap{hostNTFS(a2), fragmented, tc.m}, tc.with...)
			got := hostVolumesOnly(maps, hits)
			if len(got) < 2 || got[0].Record != "host file" || got[1].Extents[0].ImageOffset != a5 {
				t.Fatalf("the host's own maps were dropped: %+v", got)
			}
			kept := slices.ContainsFunc(got, func(m fsprobe.FileMap) bool { return m.Record == "subject" })
			if kept != tc.keep {
				t.Errorf("kept %v, want %v", kept, tc.keep)
			}
			want := 2 + map[bool]int{true: 1}[kept]
			if !tc.dropWith {
				want += len(tc.with)
			}
			if len(got) != want {
				t.Errorf("%d maps kept, want the host's and the subject's alone", len(got))
			}
		})
	}
}
