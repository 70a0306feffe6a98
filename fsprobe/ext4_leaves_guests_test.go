package fsprobe_test

// Table tests of the leaf solver's two rules about what lies inside a
// VMDK: a superblock stored in a VMDK's grains is a guest's and never the
// host's geometry (ext4_leaves_guests.go), and predicted grain tables no
// hit found are read where confirmed extents put them
// (ext4_leaves_vmdk.go, readTables). The scenes are those of
// ext4_leaves_test.go: a wiped host volume at 1 MiB with 4 KiB blocks.

import (
	"encoding/binary"
	"io"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
	"vmdkcarve/vmdk"
)

// superAt is an ext4 superblock record: the copy of group g of a volume
// of 4 KiB blocks at image offset off.
func superAt(off int64, group uint16, blocks uint64, uuid string) fsprobe.LocatedExt4 {
	return fsprobe.LocatedExt4{Offset: off, Record: &ext4.Record{Type: ext4.TypeSuperblock,
		Super: &ext4.Superblock{BlockSize: lvB, BlocksPerGroup: 32768, InodesPerGroup: 8192, InodeSize: 256,
			Blocks: blocks, Inodes: 8192, Group: group, UUID: uuid}}}
}

// grain0 is the file offset of the scenes' first grain (overHead 128).
const grain0 = 128 * 512

func TestExt4LeafMapsGuestVolumes(t *testing.T) {
	// The guest's volume starts at the file's first grain (a guest disk
	// without partition table), where the true runs put it.
	guestF := func(s *leafScene) int64 { return s.image(grain0) }
	for _, tc := range []struct {
		name     string
		scene    func() *leafScene
		mapped   bool
		evidence string
	}{
		{"a guest superblock in the file's grains holds the leaf", func() *leafScene {
			s := sparseScene()
			s.noSuper = true
			s.extra = []fsprobe.LocatedExt4{superAt(guestF(s)+1024, 0, 1<<16, "guest")}
			return s
		}, true, "is a guest's, not the host's"},
		{"a superblock outside the file holds the leaf", func() *leafScene {
			s := sparseScene()
			s.noSuper = true
			s.extra = []fsprobe.LocatedExt4{superAt(img(2500)+1024, 0, 1<<16, "other")}
			return s
		}, false, ""},
		{"one copy of the guest's superblock outside the file", func() *leafScene {
			s := sparseScene()
			s.noSuper = true
			s.extra = []fsprobe.LocatedExt4{superAt(guestF(s)+1024, 0, 1<<16, "guest"), superAt(guestF(s)+32768*lvB, 1, 1<<16, "guest")}
			return s
		}, false, ""},
		{"a host superblock before the headers holds the leaf but does not start it", func() *leafScene {
			// A volume one block further on: the leaf's block 0 misses
			// the header under it, and no geometry but its own is tried.
			s := sparseScene()
			s.noSuper = true
			s.extra = []fsprobe.LocatedExt4{superAt(lvF+lvB+1024, 0, 1<<16, "host")}
			return s
		}, false, ""},
		{"the host's own superblock still wins", func() *leafScene {
			s := sparseScene()
			s.extra = []fsprobe.LocatedExt4{superAt(guestF(s)+1024, 0, 1<<16, "guest")}
			return s
		}, true, "primary superblock at image offset"},
		{"a superblock volume whose copy lies in the file it maps", func() *leafScene {
			s := sparseScene()
			// The host's backup of group 1 (block 32768) inside the last run.
			s.runs[5] = lrun{96, 32760, 32}
			s.extra = []fsprobe.LocatedExt4{superAt(img(32768), 1, 1<<16, "new")}
			return s
		}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.scene()
			recs := s.records()
			for _, r := range recs {
				if sb := r.Record.Super; sb != nil && sb.UUID == "new" {
					sb.Blocks = 1 << 16 // room for group 1
				}
			}
			maps := fsprobe.Ext4LeafMaps(recs, s.facts, nil)
			if !tc.mapped {
				if len(maps) != 0 {
					t.Fatalf("got %d maps, want none: %+v", len(maps), maps)
				}
				return
			}
			if len(maps) != 1 {
				t.Fatalf("got %d maps, want 1", len(maps))
			}
			m := maps[0]
			t.Log(m.Evidence)
			if !m.Complete || !slices.Equal(m.Extents, s.want(m.Size)) || !strings.Contains(m.Evidence, tc.evidence) {
				t.Errorf("complete %v extents %+v evidence %q: want the truth %+v and %q", m.Complete, m.Extents, m.Evidence, s.want(m.Size), tc.evidence)
			}
		})
	}
}

// TestExt4LeafMapsGuestProvenByLaterFile: file A's leaf lies in the
// region of a guest volume whose superblock is stored in file B's grains,
// and A's header comes first. A waits for B's map to prove the volume a
// guest, and is mapped in the next round. A's second grain tables (empty,
// no hit) are read from the image once, not once per round.
func TestExt4LeafMapsGuestProvenByLaterFile(t *testing.T) {
	type file struct {
		runs []lrun
		leaf uint32
		gts  []int64 // found grain tables (file offsets)
	}
	// A: two tables per directory, as in TestExt4LeafMapsReadTables.
	twoGTs := sparseHeader()
	twoGTs.Capacity, twoGTs.GDOffset = 2*65536, 40
	files := []file{
		{[]lrun{{0, 1000, 1}, {1, 2000, 4}, {5, 2100, 3}, {8, 2200, 8}, {16, 3000, 40}, {56, 5000, 24}, {80, 7000, 48}}, 30000, []int64{22 * 512, 41 * 512}},
		{[]lrun{{0, 20000, 1}, {1, 24000, 15}, {16, 26000, 112}}, 21500, []int64{22 * 512, 27 * 512}},
	}
	var recs []fsprobe.LocatedExt4
	image := &countingImage{reads: map[int64]int{}}
	facts := fsprobe.VMDKFacts{Image: image}
	var want [][]fsprobe.MappedExtent
	for i, f := range files {
		s := &leafScene{hdr: sparseHeader(), runs: f.runs}
		if i == 0 {
			s.hdr = twoGTs
		}
		recs = append(recs, leafRecord(f.leaf, 0, s.leaves()[0]))
		facts.Starts = append(facts.Starts, fsprobe.VMDKHeaderAt{Offset: s.anchor(), Header: s.hdr})
		for _, gt := range f.gts {
			facts.Tables = append(facts.Tables, fsprobe.GTAt{Offset: s.image(gt), First: 128, Last: 128 + 6*128})
		}
		want = append(want, s.want(128*lvB))
	}
	// The guest volume starts at B's first grain, block 26000, and
	// reaches past A's leaf at block 30000.
	recs = append(recs, superAt(img(26000)+1024, 0, 1<<16, "guest"))
	maps := fsprobe.Ext4LeafMaps(recs, facts, nil)
	if len(maps) != 2 {
		t.Fatalf("got %d maps, want 2: %+v", len(maps), maps)
	}
	for _, m := range maps {
		i := slices.IndexFunc(want, func(w []fsprobe.MappedExtent) bool { return w[0].ImageOffset == m.Extents[0].ImageOffset })
		if i < 0 || !m.Complete || !slices.Equal(m.Extents, want[i]) {
			t.Errorf("map %+v (complete %v): want one of %+v", m.Extents, m.Complete, want)
		}
	}
	if a := maps[slices.IndexFunc(maps, func(m fsprobe.FileMap) bool { return m.Extents[0].ImageOffset == img(1000) })]; !strings.Contains(a.Evidence, "is a guest's") {
		t.Errorf("A's evidence %q does not name the guest volume", a.Evidence)
	} else if !strings.Contains(a.Evidence, "2 predicted grain tables no hit found read") {
		t.Errorf("A's evidence %q: want its 2 empty tables read", a.Evidence)
	}
	if len(image.reads) == 0 {
		t.Error("no predicted table was read")
	}
	for off, n := range image.reads {
		if n > 1 {
			t.Errorf("image offset %d read %d times: want once over the rounds", off, n)
		}
	}
}

// countingImage reads as zeros and counts the reads at each offset.
type countingImage struct{ reads map[int64]int }

func (c *countingImage) ReadAt(p []byte, off int64) (int, error) {
	c.reads[off]++
	clear(p)
	return len(p), nil
}

// zeroImage reads as zeros but where bytes were set.
type zeroImage map[int64][]byte

func (z zeroImage) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for at, b := range z {
		lo, hi := max(at, off), min(at+int64(len(b)), off+int64(len(p)))
		if lo < hi {
			copy(p[lo-off:hi-off], b[lo-at:hi-at])
		}
	}
	return len(p), nil
}

// eofImage reads as zeros, every read ending with io.EOF as an
// io.ReaderAt may at the end of its input.
type eofImage struct{}

func (eofImage) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	return len(p), io.EOF
}

// table is a 512-entry grain table naming the given grain sectors.
func table(sectors ...uint32) []byte {
	b := make([]byte, vmdk.GTEsPerGT*4)
	for i, s := range sectors {
		binary.LittleEndian.PutUint32(b[4*i:], s)
	}
	return b
}

func TestExt4LeafMapsReadTables(t *testing.T) {
	// Two grain tables per directory: the redundant one at sector 21
	// (GT 0 at 22, GT 1 at 26), the primary at 40 (GT 0 at 41, GT 1 at
	// 45). Table 0 of each is found; table 1, whose grains the carve's
	// recognizer cannot see, is what the image holds there.
	hdr := sparseHeader()
	hdr.Capacity, hdr.GDOffset = 2*65536, 40
	gt1 := []int64{26 * 512, 45 * 512}
	scene := func() *leafScene {
		s := &leafScene{hdr: hdr, runs: []lrun{{0, 1000, 1}, {1, 2000, 4}, {5, 2100, 3}, {8, 2200, 8}, {16, 3000, 40}, {56, 5000, 24}, {80, 7000, 16}, {96, 7100, 32}}}
		s.facts.Starts = []fsprobe.VMDKHeaderAt{{Offset: s.image(0), Header: s.hdr}}
		for _, gt := range []int64{22 * 512, 41 * 512} {
			s.facts.Tables = append(s.facts.Tables, fsprobe.GTAt{Offset: s.image(gt), First: 128, Last: 768})
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		image    func(s *leafScene) fsprobe.VMDKFacts
		complete bool
		evidence string
	}{
		{"empty tables read as zeros", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Image = zeroImage{}
			return s.facts
		}, true, "2 predicted grain tables no hit found read where confirmed extents put them (2 of them empty)"},
		{"a full read that ends in io.EOF (the image's end)", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Image = eofImage{}
			return s.facts
		}, true, "(2 of them empty)"},
		{"no image: the tables stay unknown", func(s *leafScene) fsprobe.VMDKFacts {
			return s.facts
		}, false, "grain table 1 is neither found"},
		{"a table of one grain", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Image = zeroImage{s.image(gt1[0]): table(896), s.image(gt1[1]): table(896)}
			return s.facts
		}, true, "(0 of them empty)"},
		{"a table of one grain past the map's end", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Image = zeroImage{s.image(gt1[0]): table(1024), s.image(gt1[1]): table(1024)}
			return s.facts
		}, false, "past the last leaf's end"},
		{"foreign bytes where a table should be", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Image = zeroImage{s.image(gt1[1]): table(896, 7)}
			return s.facts
		}, false, "grain table 1 is neither found"},
		{"a table naming the metadata", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Image = zeroImage{s.image(gt1[0]): table(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64)}
			return s.facts
		}, false, "grain table 1 is neither found"},
		{"zeros in an extent no found table confirms", func(s *leafScene) fsprobe.VMDKFacts {
			s.facts.Tables = s.facts.Tables[:1] // the primary's run (blocks 5..7) holds no found table
			s.facts.Image = zeroImage{}
			return s.facts
		}, false, "grain table 1 is neither found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scene()
			facts := tc.image(s)
			maps := fsprobe.Ext4LeafMaps(s.records(), facts, nil)
			if len(maps) != 1 {
				t.Fatalf("got %d maps, want 1", len(maps))
			}
			m := maps[0]
			t.Log(m.Evidence)
			if m.Complete != tc.complete || !strings.Contains(m.Evidence, tc.evidence) {
				t.Errorf("complete %v evidence %q: want %v and %q", m.Complete, m.Evidence, tc.complete, tc.evidence)
			}
			if m.Complete && !slices.Equal(m.Extents, s.want(m.Size)) {
				t.Errorf("extents %+v, want %+v", m.Extents, s.want(m.Size))
			}
		})
	}
}
