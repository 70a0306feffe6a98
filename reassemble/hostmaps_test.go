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
	for _, tc := range []struct {
		name string
		m    fsprobe.FileMap
		keep bool
		with []fsprobe.FileMap // other maps of the same volume
	}{
		{"host volume", hostNTFS(a1), true, nil},
		{"host volume, boot sectors zeroed: its $MFT before every file", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, mib), Volume: host, Structures: []int64{host + 16<<10}}, true, nil},
		{"guest NTFS in a1's grains puts a text file on a2", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 4096), Volume: a1 + 128<<10, VolumeSize: 8 * mib,
			Structures: []int64{a1 + 128<<10, a1 + 144<<10}}, false, nil},
		{"guest NTFS solved with a wrong cluster size from its $MFT alone", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 8192), Volume: a1 + 16<<10,
			Structures: []int64{a1 + 144<<10}}, false, nil},
		{"the host's holes pull the guest's $MFT up into what contiguity calls a1's metadata", fsprobe.FileMap{FS: "ntfs", Extents: at(a2, 8192), Volume: a1 - 4<<10,
			Structures: []int64{a1 + 28<<10}}, false, nil},
		{"issue 9: the guest's $Boot at its own header (volume start = header)", fsprobe.FileMap{FS: "ntfs", Record: "$Boot", Extents: at(a1, 8192), Volume: a1,
			Structures: []int64{a1 + 144<<10}}, false, nil},
		{"volume starting after the header it maps", fsprobe.FileMap{FS: "ntfs", Extents: at(a1, mib), Volume: a1 + 128<<10, VolumeSize: 8 * mib}, false, nil},
		{"header past the volume's end", fsprobe.FileMap{FS: "ext4", Extents: at(a1, mib), Volume: host, VolumeSize: 4 * mib, Structures: []int64{host + 1024}}, false, nil},
		{"guest ext4 superblock in a1's grains", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + meta, VolumeSize: cap12 - mib,
			Structures: []int64{a1 + meta + 1024}}, false, nil},
		{"guest ext4 from a backup superblock in a1's grains: starts before a1", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 - 4*mib, VolumeSize: 11 * mib,
			Structures: []int64{a1 + 2*mib}}, false, nil},
		{"a volume bigger than a1's disk is not its guest", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + meta, VolumeSize: 32 * mib,
			Structures: []int64{a1 + meta + 1024}}, true, nil},
		{"superblock past a1's largest grain: not in its grains", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + 4*mib, VolumeSize: 4 * mib,
			Structures: []int64{a1 + 4*mib + 1024}}, true, nil},
		{"one structure outside every grain area: a host", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: host, VolumeSize: 64 * mib,
			Structures: []int64{host + 1024, a1 + 2*mib}}, true, nil},
		{"geometry from anchors alone: rule 1 only", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 + 128<<10}, true, nil},
		{"structures in a stream's range: deflated grains hold none verbatim", fsprobe.FileMap{FS: "ntfs", Extents: at(a5, mib), Volume: stream + mib, VolumeSize: 12 * mib,
			Structures: []int64{stream + mib}}, true, nil},
		{"guest in a fragmented file's far piece, by its host map", fsprobe.FileMap{FS: "ntfs", Extents: at(a6, 4096), Volume: 40*mib + 128<<10, VolumeSize: 8 * mib,
			Structures: []int64{40*mib + 128<<10}}, false, nil},
		{"a guest inode, by an anchor geometry: its own inode in a1's grains", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: a1 - 2*mib,
			Structures: []int64{a1 + mib}}, false, nil},
		{"a host inode in a1's contiguous range, a1 mapped by the same volume elsewhere", fsprobe.FileMap{FS: "ext4", Extents: at(a2, mib), Volume: host,
			Structures: []int64{a1 + mib}}, true, []fsprobe.FileMap{anchored}},
		{"no extents", fsprobe.FileMap{FS: "ntfs", Volume: host}, false, nil},
		{"a file at image offset 0 has no host", fsprobe.FileMap{FS: "ext4", Extents: at(0, mib)}, false, nil},
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
			if len(got) != 2+len(tc.with)+map[bool]int{true: 1}[kept] {
				t.Errorf("%d maps kept, want the host's and the subject's alone", len(got))
			}
		})
	}
}
