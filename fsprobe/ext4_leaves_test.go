package fsprobe_test

// Table tests of the leaf solver (Ext4LeafMaps) over hand-built records:
// an ext4 volume at 1 MiB with 4 KiB blocks whose VMDK files lost their
// inodes, their extent-tree leaves and the VMDK's own structures found at
// the image offsets the true layout gives them.

import (
	"slices"
	"strings"
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
	"vmdkcarve/vmdk"
)

const (
	lvF      = 1 << 20 // the volume's start in the image
	lvB      = 4096
	lvBlocks = 1 << 15
	lvLeafAt = 9000 // physical block of the first leaf; more follow
)

// lrun is one extent: logical block, physical block, blocks.
type lrun struct{ l, p, n uint32 }

// leafScene is one file on the volume and what the carve found.
type leafScene struct {
	hdr     *vmdk.SparseHeader
	runs    []lrun // the file's true extents, in logical order
	split   []int  // run indexes where a new leaf starts
	drop    []int  // leaves lost (by index)
	index   bool   // an index block (depth 1) names the leaves
	extra   []fsprobe.LocatedExt4
	noSuper bool
	facts   fsprobe.VMDKFacts
	known   []fsprobe.FileMap
}

func img(p uint32) int64 { return lvF + int64(p)*lvB }

// sparseHeader is a monolithicSparse header with one grain table in each
// directory: rGD at 21 (its GT at 22), GD at 26 (its GT at 27), grains
// from sector 128.
func sparseHeader() *vmdk.SparseHeader {
	return &vmdk.SparseHeader{Version: 1, Flags: vmdk.FlagRedundantGD | vmdk.FlagValidNewlines, Capacity: 65536, GrainSize: 128,
		DescriptorOffset: 1, DescriptorSize: 20, NumGTEsPerGT: 512, RGDOffset: 21, GDOffset: 26, OverHead: 128}
}

func streamHeader() *vmdk.SparseHeader {
	return &vmdk.SparseHeader{Version: 3, Flags: vmdk.FlagCompressed | vmdk.FlagMarkers | vmdk.FlagValidNewlines, Capacity: 65536, GrainSize: 128,
		DescriptorOffset: 1, DescriptorSize: 20, NumGTEsPerGT: 512, GDOffset: vmdk.GDAtEnd, OverHead: 128, CompressAlgorithm: vmdk.CompressDeflate}
}

// sparseScene: the header block alone, the metadata (blocks 1..15) in a
// run of its own, 7 grains (blocks 16..127) in four runs.
func sparseScene() *leafScene {
	s := &leafScene{hdr: sparseHeader(), runs: []lrun{{0, 1000, 1}, {1, 2000, 15}, {16, 3000, 40}, {56, 5000, 24}, {80, 7000, 16}, {96, 7100, 32}}}
	s.facts.Starts = []fsprobe.VMDKHeaderAt{{Offset: s.image(0), Header: s.hdr}}
	for _, gt := range []int64{22 * 512, 27 * 512} {
		s.facts.Tables = append(s.facts.Tables, fsprobe.GTAt{Offset: s.image(gt), First: 128, Last: 128 + 6*128})
	}
	return s
}

// streamScene: a stream of 16 grain records of 4 KiB from file offset
// 64 KiB, then the footer marker, footer and EOS in the last block.
func streamScene() *leafScene {
	s := &leafScene{hdr: streamHeader(), runs: []lrun{{0, 1000, 1}, {1, 2000, 15}, {16, 3000, 10}, {26, 5000, 6}, {32, 7000, 1}}}
	s.facts.Starts = []fsprobe.VMDKHeaderAt{{Offset: s.image(0), Header: s.hdr}}
	for k := range 16 {
		s.facts.Markers = append(s.facts.Markers, fsprobe.MarkerAt{Offset: s.image(65536 + int64(k)*4096), LBA: uint64(k) * 128})
	}
	footer := *s.hdr
	footer.GDOffset = 300
	s.facts.Footers = []fsprobe.VMDKHeaderAt{{Offset: s.image(32*lvB + 512), Header: &footer}}
	return s
}

func (s *leafScene) anchor() int64 { return img(s.runs[0].p) }

// image maps a file offset through the true runs.
func (s *leafScene) image(fo int64) int64 {
	for _, r := range s.runs {
		if lo := int64(r.l) * lvB; fo >= lo && fo < lo+int64(r.n)*lvB {
			return img(r.p) + fo - lo
		}
	}
	panic("file offset not stored")
}

// leaves splits the runs into leaf nodes.
func (s *leafScene) leaves() [][]ext4.Entry {
	var out [][]ext4.Entry
	cut := append(append([]int{0}, s.split...), len(s.runs))
	for i := 0; i+1 < len(cut); i++ {
		var es []ext4.Entry
		for _, r := range s.runs[cut[i]:cut[i+1]] {
			es = append(es, ext4.Entry{Logical: r.l, Start: uint64(r.p), Len: uint16(r.n)})
		}
		out = append(out, es)
	}
	return out
}

func leafRecord(p uint32, depth uint16, es []ext4.Entry) fsprobe.LocatedExt4 {
	return fsprobe.LocatedExt4{Offset: img(p), Record: &ext4.Record{Type: ext4.TypeExtentBlock,
		Node: &ext4.Node{Depth: depth, Max: (lvB - 12) / 12, Entries: es}}}
}

func (s *leafScene) records() []fsprobe.LocatedExt4 {
	var out []fsprobe.LocatedExt4
	if !s.noSuper {
		out = append(out, fsprobe.LocatedExt4{Offset: lvF + 1024, Record: &ext4.Record{Type: ext4.TypeSuperblock,
			Super: &ext4.Superblock{BlockSize: lvB, BlocksPerGroup: 32768, InodesPerGroup: 8192, InodeSize: 256, Blocks: lvBlocks, Inodes: 8192, UUID: "new"}}})
	}
	var idx []ext4.Entry
	for i, es := range s.leaves() {
		p := uint32(lvLeafAt + i)
		idx = append(idx, ext4.Entry{Logical: es[0].Logical, Start: uint64(p)})
		if !slices.Contains(s.drop, i) {
			out = append(out, leafRecord(p, 0, es))
		}
	}
	if s.index {
		out = append(out, leafRecord(lvLeafAt+100, 1, idx))
	}
	return append(out, s.extra...)
}

// want is the map of the file's runs, merged, clipped to size.
func (s *leafScene) want(size int64) []fsprobe.MappedExtent {
	var out []fsprobe.MappedExtent
	for _, r := range s.runs {
		fo, io, n := int64(r.l)*lvB, img(r.p), min(int64(r.n)*lvB, size-int64(r.l)*lvB)
		if n <= 0 {
			break
		}
		if k := len(out) - 1; k >= 0 && out[k].FileOffset+out[k].Length == fo && out[k].ImageOffset+out[k].Length == io {
			out[k].Length += n
			continue
		}
		out = append(out, fsprobe.MappedExtent{FileOffset: fo, ImageOffset: io, Length: n})
	}
	return out
}

func TestExt4LeafMaps(t *testing.T) {
	type want struct {
		mapped   bool
		complete bool
		leaves   int    // leaves joined
		size     int64  // 0: not checked
		evidence string // a phrase the evidence must hold
	}
	shift := func(es []ext4.Entry, by uint64) []ext4.Entry {
		out := slices.Clone(es)
		for i := range out {
			out[i].Start += by
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		scene func() *leafScene
		want  want
	}{
		{"one leaf", sparseScene, want{mapped: true, complete: true, leaves: 1, size: 128 * lvB, evidence: "2 grain tables"}},
		{"two leaves tile the file", func() *leafScene {
			s := sparseScene()
			s.split = []int{4} // leaf 2 from logical 80, holding the last grain the tables name
			return s
		}, want{mapped: true, complete: true, leaves: 2, size: 128 * lvB, evidence: "continues logical block 80"}},
		{"second leaf lost", func() *leafScene {
			s := sparseScene()
			s.split, s.drop = []int{4}, []int{1}
			return s
		}, want{mapped: true, leaves: 1, evidence: "past the last leaf's end"}},
		{"two leaves could continue the file", func() *leafScene {
			s := sparseScene()
			s.split = []int{4}
			s.extra = []fsprobe.LocatedExt4{leafRecord(lvLeafAt+50, 0, shift(s.leaves()[1], 10))}
			return s
		}, want{mapped: true, leaves: 1, evidence: "ambiguous, neither joined"}},
		{"a copy of the second leaf is one leaf", func() *leafScene {
			s := sparseScene()
			s.split = []int{4}
			s.extra = []fsprobe.LocatedExt4{leafRecord(lvLeafAt+50, 0, s.leaves()[1])}
			return s
		}, want{mapped: true, complete: true, leaves: 2}},
		{"a continuing leaf nothing confirms", func() *leafScene {
			s := sparseScene()
			s.split = []int{5} // leaf 2 from logical 96: no grain sample there
			for i := range s.facts.Tables {
				s.facts.Tables[i].Last = 128 + 4*128
			}
			return s
		}, want{mapped: true, leaves: 1, evidence: "no VMDK structure confirms it"}},
		{"index block joins across a hole", func() *leafScene {
			s := sparseScene()
			s.runs[4], s.runs[5] = lrun{84, 7000, 12}, lrun{96, 7100, 32} // blocks 80..83: a hole
			s.split, s.index = []int{4}, true
			return s
		}, want{mapped: true, complete: true, leaves: 2, evidence: "named next by the index block"}},
		{"index block names a lost leaf", func() *leafScene {
			s := sparseScene()
			s.split, s.drop, s.index = []int{4}, []int{1}, true
			return s
		}, want{mapped: true, leaves: 1, evidence: "not found as a leaf that fits"}},
		{"no grain table where the layout puts one", func() *leafScene {
			s := sparseScene()
			s.facts.Tables = nil
			return s
		}, want{}},
		{"a table-shaped block where the layout has none", func() *leafScene {
			s := sparseScene()
			s.facts.Tables = append(s.facts.Tables, fsprobe.GTAt{Offset: s.image(5 * lvB), First: 128, Last: 256})
			return s
		}, want{}},
		{"another VMDK header inside the map", func() *leafScene {
			s := sparseScene()
			s.facts.Starts = append(s.facts.Starts, fsprobe.VMDKHeaderAt{Offset: s.image(20 * lvB), Header: sparseHeader()})
			return s
		}, want{}},
		{"two leaves start one header", func() *leafScene {
			s := sparseScene()
			other := []ext4.Entry{{Logical: 0, Start: 1000, Len: 1}, {Logical: 1, Start: 12000, Len: 15}, {Logical: 16, Start: 13000, Len: 112}}
			s.extra = []fsprobe.LocatedExt4{leafRecord(lvLeafAt+60, 0, other)}
			for _, gt := range []int64{22 * 512, 27 * 512} {
				s.facts.Tables = append(s.facts.Tables, fsprobe.GTAt{Offset: img(12000) + gt - lvB, First: 128, Last: 896})
			}
			return s
		}, want{}},
		{"a map the inode gave is kept", func() *leafScene {
			s := sparseScene()
			s.known = []fsprobe.FileMap{{Extents: []fsprobe.MappedExtent{{FileOffset: 0, ImageOffset: s.anchor(), Length: lvB}}}}
			return s
		}, want{}},
		{"no superblock: start solved from the header", func() *leafScene {
			s := sparseScene()
			s.noSuper = true
			return s
		}, want{mapped: true, complete: true, leaves: 1, evidence: "no superblock holds the leaf"}},
		{"stream with its footer", streamScene, want{mapped: true, complete: true, leaves: 1, size: 32*lvB + 512 + 1024, evidence: "16 grain markers"}},
		{"stream without its footer", func() *leafScene {
			s := streamScene()
			s.facts.Footers = nil
			return s
		}, want{mapped: true, leaves: 1, evidence: "no stream footer"}},
		{"stream markers out of order", func() *leafScene {
			s := streamScene()
			s.facts.Markers[10].LBA = 128
			return s
		}, want{}},
		{"stream without superblock needs two markers", func() *leafScene {
			s := streamScene()
			s.noSuper = true
			s.facts.Markers = s.facts.Markers[:1]
			return s
		}, want{}},
		{"crafted leaves are ignored", func() *leafScene {
			s := sparseScene()
			s.facts.Tables = nil
			s.extra = []fsprobe.LocatedExt4{
				leafRecord(lvLeafAt+70, 0, []ext4.Entry{{Logical: 0, Start: 1000, Len: 1}, {Logical: 0, Start: 2000, Len: 4}}),
				leafRecord(lvLeafAt+71, 0, []ext4.Entry{{Logical: 0, Start: 1000, Len: 0}}),
				leafRecord(lvLeafAt+72, 0, []ext4.Entry{{Logical: 0, Start: 1000, Len: 1}, {Logical: 1, Start: 1 << 47, Len: 32768}}),
				leafRecord(lvLeafAt+73, 0, []ext4.Entry{{Logical: 0, Start: 1000, Len: 1}, {Logical: 4294967295, Start: 5, Len: 2}}),
				{Offset: img(lvLeafAt + 74), Record: &ext4.Record{Type: ext4.TypeExtentBlock, Node: &ext4.Node{Max: 3, Entries: make([]ext4.Entry, 5)}}},
				{Offset: img(lvLeafAt + 75), Record: nil},
			}
			return s
		}, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.scene()
			maps := fsprobe.Ext4LeafMaps(s.records(), s.facts, s.known)
			if !tc.want.mapped {
				if len(maps) != 0 {
					t.Fatalf("got %d maps, want none: %+v", len(maps), maps)
				}
				return
			}
			if len(maps) != 1 {
				t.Fatalf("got %d maps, want 1: %+v", len(maps), maps)
			}
			m := maps[0]
			t.Logf("%s: %s", m.Record, m.Evidence)
			if m.Complete != tc.want.complete || m.OwnGeometry == s.noSuper {
				t.Errorf("complete %v own geometry %v, want %v %v", m.Complete, m.OwnGeometry, tc.want.complete, !s.noSuper)
			}
			if n := strings.Count(m.Record, ",") + 1; n != tc.want.leaves {
				t.Errorf("record %q: %d leaves, want %d", m.Record, n, tc.want.leaves)
			}
			if !strings.Contains(m.Record, "inode lost") || !strings.Contains(m.Evidence, tc.want.evidence) {
				t.Errorf("record %q evidence %q: want %q", m.Record, m.Evidence, tc.want.evidence)
			}
			if tc.want.size != 0 && m.Size != tc.want.size {
				t.Errorf("size %d, want %d", m.Size, tc.want.size)
			}
			// Whatever is mapped is right: a prefix of the truth (all
			// of it when complete).
			want := s.want(m.Size)
			if m.Complete && !slices.Equal(m.Extents, want) {
				t.Errorf("extents %+v, want %+v", m.Extents, want)
			}
			for i, e := range m.Extents {
				if i >= len(want) || (e != want[i] && i != len(m.Extents)-1) {
					t.Fatalf("extent %d %+v is not the truth's %+v", i, e, want)
				}
			}
		})
	}
}

// FuzzExt4LeafMaps mutates the table tests' scenes the way an edited
// hits.jsonl could: entries with any logical block, physical block and
// length, extra leaves, grain tables, markers and headers anywhere, header
// fields out of range. The solver must not panic, and every map it gives
// must start at a header and map each file byte at most once.
func FuzzExt4LeafMaps(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{1})
	f.Add([]byte{0, 0, 0, 5, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0x10, 0, 0})
	f.Add([]byte{1, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 1, 0x28, 0x23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 2, 0, 0, 0, 22, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 4096 {
			return
		}
		s := sparseScene()
		if data[0]&1 == 1 {
			s = streamScene()
		}
		s.split = []int{1 + int(data[0]>>1)%(len(s.runs)-1)}
		s.index = data[0]&0x80 != 0
		recs := s.records()
		var leaves []*ext4.Node
		for _, r := range recs {
			if r.Record.Node != nil {
				leaves = append(leaves, r.Record.Node)
			}
		}
		a := s.anchor()
		u32 := func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 }
		for op := data[1:]; len(op) >= 16; op = op[16:] {
			switch op[0] % 6 {
			case 0: // rewrite an entry
				n := leaves[int(op[1])%len(leaves)]
				e := &n.Entries[int(op[2])%len(n.Entries)]
				e.Logical, e.Start, e.Len, e.Uninit = u32(op[3:]), uint64(u32(op[7:]))|uint64(op[11])<<32, uint16(op[12])|uint16(op[13])<<8, op[14]&1 == 1
			case 1: // a leaf of its own
				es := []ext4.Entry{{Logical: uint32(op[2]) * 16, Start: uint64(u32(op[3:])), Len: uint16(op[7]) + 1},
					{Logical: u32(op[8:]), Start: uint64(op[12]) + 1000, Len: uint16(op[13])}}
				recs = append(recs, leafRecord(lvLeafAt+200+uint32(op[1]), uint16(op[14]%3), es))
			case 2:
				s.facts.Tables = append(s.facts.Tables, fsprobe.GTAt{Offset: a + int64(u32(op[1:]))*512, First: uint32(op[5]) * 128, Last: uint32(op[6]) * 128})
			case 3:
				s.facts.Markers = append(s.facts.Markers, fsprobe.MarkerAt{Offset: a + int64(u32(op[1:]))*512, LBA: uint64(u32(op[5:])) * 128})
			case 4:
				s.facts.Starts = append(s.facts.Starts, fsprobe.VMDKHeaderAt{Offset: a + int64(int32(u32(op[1:])))*512, Header: s.hdr})
			case 5:
				h := *s.hdr
				h.GDOffset, h.OverHead, h.Capacity = uint64(u32(op[1:])), uint64(u32(op[5:]))<<(op[13]%40), uint64(u32(op[9:]))<<(op[14]%40)
				s.facts.Starts[0].Header = &h
			}
		}
		// The image the solver reads predicted tables from: the fuzz
		// bytes wherever the file's metadata lies, zeros elsewhere.
		if data[0]&0x40 != 0 {
			s.facts.Image = zeroImage{s.image(vmdk.SectorSize): data, s.image(22 * 512): data, s.image(27 * 512): data}
		}
		starts := map[int64]bool{}
		for _, h := range s.facts.Starts {
			starts[h.Offset] = true
		}
		for _, m := range fsprobe.Ext4LeafMaps(recs, s.facts, nil) {
			if len(m.Extents) == 0 || m.Extents[0].FileOffset != 0 || !starts[m.Extents[0].ImageOffset] {
				t.Fatalf("map does not start at a header: %+v", m)
			}
			next := int64(0)
			for _, e := range m.Extents {
				if e.Length <= 0 || e.FileOffset < next {
					t.Fatalf("extent %+v overlaps or is empty: %+v", e, m)
				}
				next = e.FileOffset + e.Length
			}
			if m.Complete && m.Size < next {
				t.Fatalf("complete map of %d bytes maps %d: %+v", m.Size, next, m)
			}
		}
	})
}
