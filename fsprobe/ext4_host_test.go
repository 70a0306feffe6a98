package fsprobe_test

// End-to-end checks of the ext4 host probe against filesystems made by the
// real tools (mkfs.ext4, debugfs): the recognizers run at every 512-byte
// offset of an image holding the filesystem inside noise, and Ext4Maps must
// give maps that read back the VMDK-like files byte for byte, or no map.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"vmdkcarve/fs/ext4"
	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/signatures"
)

func ext4NeedTools(t testing.TB) { tooltest.Need(t, "mkfs.ext4", "debugfs") }

func ext4Run(t testing.TB, name string, args ...string) string { return tooltest.Run(t, name, args...) }

func ext4Noise(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// ext4Case is a filesystem image with two VMDK-like files: a large one
// fragmented into more than 4 extents (an extent tree of depth 1 with a
// leaf block) and a small contiguous one (extents in the inode).
type ext4Case struct {
	fs        []byte
	blockSize int64
	files     map[string][]byte // name → content
	block0    map[string]int64  // name → physical block of logical block 0
}

func makeExt4(t *testing.T, blockSize int64, mkfsArgs ...string) *ext4Case {
	ext4NeedTools(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	rng := rand.New(rand.NewPCG(uint64(blockSize), 1))
	args := append([]string{"-q", "-F", "-b", strconv.FormatInt(blockSize, 10), "-O", "metadata_csum,extent", "-E", "nodiscard"}, mkfsArgs...)
	ext4Run(t, "mkfs.ext4", append(args, img, "64M")...)
	// Fillers, every other one removed, leave holes the VMDK must fill.
	var cmds strings.Builder
	filler := 32 * blockSize
	for i := range 24 {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, ext4Noise(rng, int(filler)), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cmds, "write %s /filler%d\n", p, i)
	}
	for i := 0; i < 24; i += 2 {
		fmt.Fprintf(&cmds, "rm /filler%d\n", i)
	}
	c := &ext4Case{blockSize: blockSize, files: map[string][]byte{}, block0: map[string]int64{}}
	for name, size := range map[string]int{"guest.vmdk": 3<<20 + 1234, "small.vmdk": 40000} {
		data := append([]byte("KDMV"), ext4Noise(rng, size-4)...)
		c.files[name] = data
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(&cmds, "write %s /guest.vmdk\n", filepath.Join(dir, "guest.vmdk"))
	fmt.Fprintf(&cmds, "write %s /small.vmdk\n", filepath.Join(dir, "small.vmdk"))
	cf := filepath.Join(dir, "cmds")
	if err := os.WriteFile(cf, []byte(cmds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ext4Run(t, "debugfs", "-w", "-f", cf, img)
	for name := range c.files {
		out := ext4Run(t, "debugfs", "-R", "bmap /"+name+" 0", img)
		lines := strings.Fields(out)
		p, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if err != nil || p == 0 {
			t.Fatalf("debugfs bmap /%s 0: %q", name, out)
		}
		c.block0[name] = p
	}
	if ex := ext4Run(t, "debugfs", "-R", "ex /guest.vmdk", img); !strings.Contains(ex, " 1/ 1 ") {
		t.Fatalf("guest.vmdk is not fragmented into a depth-1 tree:\n%s", ex)
	}
	var err error
	if c.fs, err = os.ReadFile(img); err != nil {
		t.Fatal(err)
	}
	return c
}

// place lays the filesystem at fsStart inside noise.
func (c *ext4Case) place(fsStart int64) []byte {
	rng := rand.New(rand.NewPCG(7, 8))
	img := ext4Noise(rng, int(fsStart)+len(c.fs)+1<<20)
	copy(img[fsStart:], c.fs)
	return img
}

// scanExt4 runs every ext4 recognizer at every aligned offset of img.
func ext4Scan(img []byte) []fsprobe.LocatedExt4 {
	var out []fsprobe.LocatedExt4
	for _, r := range signatures.All() {
		if r.Kind != signatures.KindExt4 {
			continue
		}
		for off := 0; off < len(img); off += r.Align {
			if h, ok := signatures.Run(&r, img[off:min(len(img), off+r.Window)], nil); ok && h.Ext4 != nil {
				out = append(out, fsprobe.LocatedExt4{Offset: int64(off), Record: h.Ext4})
			}
		}
	}
	return out
}

// readMap reads a file through its map; holes read as zeros.
func ext4ReadMap(t *testing.T, img []byte, m fsprobe.FileMap) []byte {
	t.Helper()
	out := make([]byte, m.Size)
	last := int64(-1)
	for _, e := range m.Extents {
		if e.FileOffset <= last || e.Length <= 0 || e.FileOffset+e.Length > m.Size || e.ImageOffset+e.Length > int64(len(img)) {
			t.Fatalf("bad extent %+v in map %+v", e, m)
		}
		last = e.FileOffset
		copy(out[e.FileOffset:], img[e.ImageOffset:e.ImageOffset+e.Length])
	}
	return out
}

func TestExt4MapsRealFilesystem(t *testing.T) {
	const fsStart = 1 << 20 // after an MBR gap, like a first partition
	for _, tc := range []struct {
		name      string
		blockSize int64
		mkfs      []string
	}{
		// -g 8192: 32 MiB groups, so 64 MiB has a backup superblock in group 1.
		{"4k", 4096, []string{"-g", "8192"}},
		{"1k", 1024, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := makeExt4(t, tc.blockSize, tc.mkfs...)
			img := c.place(fsStart)
			recs := ext4Scan(img)
			anchors := []int64{}
			for _, p := range c.block0 {
				anchors = append(anchors, fsStart+p*c.blockSize)
			}
			var supers []int64
			for _, r := range recs {
				if r.Record.Super != nil && r.Offset >= fsStart && r.Offset < fsStart+int64(len(c.fs)) {
					if !r.Record.Super.CsumOK {
						t.Errorf("superblock at %d: checksum does not verify", r.Offset)
					}
					supers = append(supers, r.Offset)
				}
			}
			if len(supers) < 2 || supers[0] != fsStart+1024 {
				t.Fatalf("superblocks found at %v, want the primary at %d and backups", supers, fsStart+1024)
			}

			check := func(t *testing.T, img []byte, recs []fsprobe.LocatedExt4, wantEvidence, wantRecord string) {
				t.Helper()
				maps := fsprobe.Ext4Maps(recs, anchors)
				if len(maps) != len(c.files) {
					t.Fatalf("got %d maps, want %d: %+v", len(maps), len(c.files), maps)
				}
				for _, m := range maps {
					got := ext4ReadMap(t, img, m)
					var name string
					for n, data := range c.files {
						if bytes.Equal(got, data) {
							name = n
						}
					}
					if name == "" {
						t.Fatalf("map %+v reads back no file", m)
					}
					if !m.Complete {
						t.Errorf("%s: map not complete: %s", name, m.Evidence)
					}
					if !strings.Contains(m.Evidence, wantEvidence) || !strings.Contains(m.Record, wantRecord) {
						t.Errorf("%s: record %q evidence %q, want %q and %q", name, m.Record, m.Evidence, wantRecord, wantEvidence)
					}
					t.Logf("%s: %d extents; %s; %s", name, len(m.Extents), m.Record, m.Evidence)
				}
			}

			t.Run("intact", func(t *testing.T) {
				check(t, img, recs, "primary superblock", "inode 1")
			})
			t.Run("primary-zeroed", func(t *testing.T) {
				img := bytes.Clone(img)
				clear(img[fsStart+1024 : fsStart+2048])
				check(t, img, ext4Scan(img), "superblock backup of group 1", "inode 1")
			})
			t.Run("all-superblocks-zeroed", func(t *testing.T) {
				img := bytes.Clone(img)
				for _, off := range supers {
					clear(img[off : off+1024])
				}
				recs := ext4Scan(img)
				for _, r := range recs {
					if r.Record.Super != nil && r.Offset >= fsStart && r.Offset < fsStart+int64(len(c.fs)) {
						t.Fatalf("superblock still found at %d", r.Offset)
					}
				}
				check(t, img, recs, "no superblock", "inode at image offset")
			})
			t.Run("no-second-fact", func(t *testing.T) {
				// Without superblocks and without the big file's leaf, the
				// small file's anchor is one fact: no map, never a guess.
				img := bytes.Clone(img)
				for _, off := range supers {
					clear(img[off : off+1024])
				}
				var keep []fsprobe.LocatedExt4
				for _, r := range ext4Scan(img) {
					if r.Record.Node == nil {
						keep = append(keep, r)
					}
				}
				if maps := fsprobe.Ext4Maps(keep, anchors); len(maps) != 0 {
					t.Fatalf("maps from one fact: %+v", maps)
				}
			})
			t.Run("quick-formatted", func(t *testing.T) {
				// A new filesystem with another block size made over the
				// old one without discarding or zeroing: its superblocks
				// are valid but do not describe the old inodes, which must
				// be mapped under the anchor geometry, or not at all.
				other := "1024"
				if c.blockSize == 1024 {
					other = "4096"
				}
				p := filepath.Join(t.TempDir(), "fs.img")
				if err := os.WriteFile(p, c.fs, 0o644); err != nil {
					t.Fatal(err)
				}
				ext4Run(t, "mkfs.ext4", "-q", "-F", "-b", other, "-O", "^resize_inode", "-E", "nodiscard,lazy_itable_init=1", p)
				fs, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				img := bytes.Clone(img)
				copy(img[fsStart:], fs)
				// The new metadata (journal, inode tables) overwrites some
				// of the old files' data, so maps are checked against the
				// true maps from the intact image rather than by content.
				truth := map[string]bool{}
				for _, m := range fsprobe.Ext4Maps(recs, anchors) {
					truth[fmt.Sprint(m.Size, m.Extents)] = true
				}
				maps := fsprobe.Ext4Maps(ext4Scan(img), anchors)
				found := 0
				for _, m := range maps {
					if !truth[fmt.Sprint(m.Size, m.Extents)] {
						t.Fatalf("wrong map after a quick format: %+v", m)
					}
					found++
					t.Logf("%s; %s", m.Record, m.Evidence)
				}
				if found == 0 {
					t.Log("the new filesystem's metadata overwrote the old inodes: nothing mapped (allowed)")
				}
			})
			t.Run("wrong-anchors", func(t *testing.T) {
				// Anchors one block off: every map must be refused (the
				// superblock geometry puts block 0 elsewhere) rather than bent.
				bad := []int64{anchors[0] + c.blockSize, anchors[1] + 512}
				if maps := fsprobe.Ext4Maps(recs, bad); len(maps) != 0 {
					t.Fatalf("maps for wrong anchors: %+v", maps)
				}
			})
		})
	}
}

// ext4EmbedAt is where makeExt4Fragmented embeds bytes in a file: past a
// sparse VMDK's header and tables, on a block boundary.
const ext4EmbedAt = 64 << 10

// ext4Fragmented is a scaled-down host like the corpus's ext4-host
// scenario: VMDK-like files of a few MiB, each poured by the allocator into
// the holes left between small "keeper" files, so the inode table holds
// many small files (each one's block 0 a free choice of fs start against
// every anchor) beside the fragmented ones (depth-1 trees, and one with
// its extents in the inode). truth is debugfs's own map of every file.
type ext4Fragmented struct {
	fs    []byte
	files map[string][]byte
	truth map[string][]fsprobe.MappedExtent // file offset → fs offset (image offset minus the fs start)
}

// makeExt4Fragmented builds it; embed puts bytes into a file's data at
// file offset ext4EmbedAt (a guest filesystem inside a VMDK's grains).
func makeExt4Fragmented(t *testing.T, embed map[string][]byte) *ext4Fragmented {
	ext4NeedTools(t)
	const bs = 4096
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	rng := rand.New(rand.NewPCG(3, 0x65787434))
	ext4Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum,extent", "-E", "nodiscard", img, "40M")
	c := &ext4Fragmented{files: map[string][]byte{}, truth: map[string][]fsprobe.MappedExtent{}}
	nfill := 0
	filler := func(blocks int64) string {
		nfill++
		p := filepath.Join(dir, fmt.Sprintf("fill%03d", nfill))
		if err := os.WriteFile(p, ext4Noise(rng, int(blocks*bs)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	specs := []struct {
		name  string
		size  int
		frags int
	}{
		{"a.vmdk", 2<<20 + 777, 14},
		{"b.vmdk", 1<<20 + 4096*3, 7},
		{"c.vmdk", 600 << 10, 3}, // at most 4 extents: the tree is the inode's root
		{"d.vmdk", 3 << 20, 18},
		{"e.vmdk", 256<<10 + 1024, 9},
	}
	for _, f := range specs {
		data := append([]byte("KDMV"), ext4Noise(rng, f.size-4)...)
		if e := embed[f.name]; e != nil {
			if ext4EmbedAt+len(e) > len(data) {
				t.Fatalf("%s: %d bytes do not fit at %d", f.name, len(e), ext4EmbedAt)
			}
			copy(data[ext4EmbedAt:], e)
		}
		c.files[f.name] = data
		src := filepath.Join(dir, f.name)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var cmds strings.Builder
		var holes []string
		blocks := int64(f.size+bs-1)/bs + 2 // slack for the leaf block
		for i := range f.frags {
			n := blocks / int64(f.frags)
			if i == 0 {
				n += blocks % int64(f.frags)
			}
			fmt.Fprintf(&cmds, "write %s /%s\n", filler(1+rng.Int64N(8)), fmt.Sprintf("keep%03d", nfill))
			h := filler(n)
			fmt.Fprintf(&cmds, "write %s /%s\n", h, filepath.Base(h))
			holes = append(holes, filepath.Base(h))
		}
		fmt.Fprintf(&cmds, "write %s /%s\n", filler(1+rng.Int64N(8)), fmt.Sprintf("keep%03d", nfill))
		for _, h := range holes {
			fmt.Fprintf(&cmds, "rm /%s\n", h)
		}
		fmt.Fprintf(&cmds, "write %s /%s\n", src, f.name)
		cf := filepath.Join(dir, "cmds")
		if err := os.WriteFile(cf, []byte(cmds.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		ext4Run(t, "debugfs", "-w", "-f", cf, img)
	}
	depth1 := 0
	for _, f := range specs {
		// debugfs "ex": the leaf lines ("L/ L  i/ n  lo - hi  p - q  len")
		// give every block's place (noise has no zero block, so only
		// embedded bytes make holes; no extent is unwritten).
		blocks := make([]int64, 0, (f.size+bs-1)/bs)
		for _, line := range strings.Split(ext4Run(t, "debugfs", "-R", "ex /"+f.name, img), "\n") {
			w := strings.Fields(strings.ReplaceAll(strings.ReplaceAll(line, "/", " / "), "-", " - "))
			// w: L / D i / n lo - hi p - q len [flags]
			if len(w) < 13 || w[0] != w[2] || w[10] != "-" {
				continue
			}
			lo, err1 := strconv.ParseInt(w[6], 10, 64)
			p, err2 := strconv.ParseInt(w[9], 10, 64)
			n, err3 := strconv.ParseInt(w[12], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || lo < int64(len(blocks)) {
				t.Fatalf("debugfs ex /%s: cannot read %q", f.name, line)
			}
			for int64(len(blocks)) < lo {
				blocks = append(blocks, -1) // a hole: debugfs leaves zero blocks unallocated
			}
			for k := range n {
				blocks = append(blocks, p+k)
			}
		}
		var m []fsprobe.MappedExtent
		for i, p := range blocks {
			if p < 0 {
				continue
			}
			fo, n := int64(i)*bs, min(bs, int64(f.size)-int64(i)*bs)
			if k := len(m) - 1; k >= 0 && m[k].FileOffset+m[k].Length == fo && m[k].ImageOffset+m[k].Length == p*bs {
				m[k].Length += n
				continue
			}
			m = append(m, fsprobe.MappedExtent{FileOffset: fo, ImageOffset: p * bs, Length: n})
		}
		c.truth[f.name] = m
		if strings.Contains(ext4Run(t, "debugfs", "-R", "ex /"+f.name, img), " 1/ 1 ") {
			depth1++
		}
		t.Logf("%s: %d fragments", f.name, len(m))
	}
	if depth1 < 3 {
		t.Fatalf("only %d files have a depth-1 extent tree", depth1)
	}
	var err error
	if c.fs, err = os.ReadFile(img); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestExt4MapsFragmentedHost is the corpus's ext4-host failure scaled
// down: with an intact superblock, many small files' inodes once made
// "no superblock" geometries from chance agreements (inode X's block 0 on
// header A and inode Y's on header B under one made-up fs start), whose
// maps for the real files' headers came first and were wrong. Every map
// returned must be debugfs's truth, and every file of a volume with an
// intact superblock must be mapped.
func TestExt4MapsFragmentedHost(t *testing.T) {
	const fsStart = 1 << 20
	c := makeExt4Fragmented(t, nil)
	img, anchors := layExt4Fragmented(c, fsStart, 11)

	check := func(t *testing.T, img []byte, recs []fsprobe.LocatedExt4, wantAll bool) {
		t.Helper()
		maps := fsprobe.Ext4Maps(recs, anchors)
		mapped := map[string]bool{}
		for _, m := range maps {
			name := ""
			for n, tr := range c.truth {
				if m.Extents[0].FileOffset == 0 && m.Extents[0].ImageOffset == fsStart+tr[0].ImageOffset {
					name = n
				}
			}
			var want []fsprobe.MappedExtent
			if name != "" {
				for _, e := range c.truth[name] {
					e.ImageOffset += fsStart
					want = append(want, e)
				}
			}
			if name == "" || m.Size != int64(len(c.files[name])) || !slices.Equal(m.Extents, want) {
				t.Errorf("wrong map (for %q): %s; %s: %d extents %v\nwant %v", name, m.Record, m.Evidence, len(m.Extents), m.Extents, want)
				continue
			}
			if got := ext4ReadMap(t, img, m); !bytes.Equal(got, c.files[name]) {
				t.Errorf("%s: map equals the truth but does not read the file back", name)
			}
			mapped[name] = true
		}
		if wantAll {
			for n := range c.files {
				if !mapped[n] {
					t.Errorf("%s: not mapped", n)
				}
			}
		}
		t.Logf("%d maps for %d files", len(maps), len(c.files))
	}
	recs := ext4Scan(img)
	t.Run("intact", func(t *testing.T) { check(t, img, recs, true) })
	t.Run("no-superblock", func(t *testing.T) {
		// Every superblock zeroed: maps from anchors alone may be fewer,
		// never wrong.
		img := bytes.Clone(img)
		for _, r := range recs {
			if r.Record.Super != nil {
				clear(img[r.Offset : r.Offset+1024])
			}
		}
		check(t, img, ext4Scan(img), false)
	})
}

// TestExt4MapsFactsIndependence: without a superblock, facts that hinge
// on one anchor are one fact, however many records repeat them: an inode
// and its own leaf, or two copies of one inode (the journal keeps some).
func TestExt4MapsFactsIndependence(t *testing.T) {
	const F, B = 1 << 20, 4096
	leaf := &ext4.Node{Depth: 0, Max: 340, Entries: []ext4.Entry{{Logical: 0, Start: 500, Len: 8}, {Logical: 8, Start: 900, Len: 8}}}
	root := ext4.Node{Depth: 1, Max: 4, Entries: []ext4.Entry{{Logical: 0, Start: 300}}}
	inode := func(at int64) fsprobe.LocatedExt4 {
		return fsprobe.LocatedExt4{Offset: at, Record: &ext4.Record{Type: ext4.TypeInodes,
			Inodes: []ext4.Inode{{Links: 1, Size: 16 * B, Root: root}}}}
	}
	recs := []fsprobe.LocatedExt4{
		inode(F + 40*B),
		{Offset: F + 300*B, Record: &ext4.Record{Type: ext4.TypeExtentBlock, Node: leaf}},
	}
	anchors := []int64{F + 500*B}
	if maps := fsprobe.Ext4Maps(recs, anchors); len(maps) != 0 {
		t.Fatalf("an inode and its own leaf made a geometry: %+v", maps)
	}
	// A copy of the same inode elsewhere (a journal block) lands on the
	// same anchor: still one fact.
	recs = append(recs, inode(F+20*B))
	if maps := fsprobe.Ext4Maps(recs, anchors); len(maps) != 0 {
		t.Fatalf("two copies of one inode made a geometry: %+v", maps)
	}
	// A second file on a second header is a second fact.
	small := fsprobe.LocatedExt4{Offset: F + 41*B, Record: &ext4.Record{Type: ext4.TypeInodes,
		Inodes: []ext4.Inode{{Links: 1, Size: 2 * B, Root: ext4.Node{Max: 4, Entries: []ext4.Entry{{Logical: 0, Start: 700, Len: 2}}}}}}}
	maps := fsprobe.Ext4Maps(append(recs, small), append(anchors, F+700*B))
	if len(maps) != 2 || maps[0].Extents[0].ImageOffset != F+500*B || maps[1].Extents[0].ImageOffset != F+700*B {
		t.Fatalf("two files on two headers: got %+v", maps)
	}
	if want := []fsprobe.MappedExtent{{0, F + 500*B, 8 * B}, {8 * B, F + 900*B, 8 * B}}; !slices.Equal(maps[0].Extents, want) {
		t.Fatalf("big file: %v, want %v", maps[0].Extents, want)
	}
}

// TestExt4MapsNestedGuest: a guest ext4 volume inside a VMDK file's data
// (an uncompressed sparse or flat VMDK holds the guest's superblock, group
// descriptors and inode table verbatim) is carved like any other. Its
// superblock describes a region far larger than the bytes of it the file
// holds, a region that covers the host's VMDK headers and extent blocks.
// With every host superblock zeroed, the host geometry must still be
// solved from the anchors and every file mapped exactly as debugfs says:
// the guest volume lies in a file of the host and does not own the image
// region its superblock names.
func TestExt4MapsNestedGuest(t *testing.T) {
	ext4NeedTools(t)
	const fsStart = 1 << 20
	// The guest: 24 MiB of 4096-byte blocks (one group, no backups), a
	// file in it; the first MiB (superblock, group descriptors, bitmaps,
	// inode table) goes into a.vmdk's data, like a sparse VMDK's first
	// grains.
	dir := t.TempDir()
	gimg := filepath.Join(dir, "guest.img")
	ext4Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum,extent", "-E", "nodiscard", gimg, "24M")
	gfile := filepath.Join(dir, "hello")
	if err := os.WriteFile(gfile, bytes.Repeat([]byte("guest data "), 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	ext4Run(t, "debugfs", "-w", "-R", "write "+gfile+" /hello", gimg)
	guest, err := os.ReadFile(gimg)
	if err != nil {
		t.Fatal(err)
	}
	gsb, err := ext4.ParseSuperblock(guest[1024:2048])
	if err != nil {
		t.Fatal(err)
	}
	c := makeExt4Fragmented(t, map[string][]byte{"a.vmdk": guest[:1<<20]})

	img, anchors := layExt4Fragmented(c, fsStart, 13)
	a := c.truth["a.vmdk"]
	var guestAt int64 = -1 // the guest's primary superblock in the image
	for _, e := range a {
		if fo := int64(ext4EmbedAt + 1024); fo >= e.FileOffset && fo < e.FileOffset+e.Length {
			guestAt = fsStart + e.ImageOffset + fo - e.FileOffset
		}
	}
	guestEnd := guestAt - 1024 + int64(gsb.Blocks)*int64(gsb.BlockSize)
	covered := 0
	for n, m := range c.truth {
		if n != "a.vmdk" && fsStart+m[0].ImageOffset > guestAt && fsStart+m[0].ImageOffset < guestEnd {
			covered++
		}
	}
	if covered < 2 {
		t.Fatalf("the guest's region [%d, %d) covers %d host VMDK headers, want at least 2", guestAt-1024, guestEnd, covered)
	}

	check := func(t *testing.T, img []byte) {
		t.Helper()
		recs := ext4Scan(img)
		foundGuest := false
		for _, r := range recs {
			if s := r.Record.Super; s != nil && s.UUID == gsb.UUID {
				foundGuest = foundGuest || r.Offset == guestAt
			}
		}
		if !foundGuest {
			t.Fatalf("the guest's superblock was not carved at %d", guestAt)
		}
		maps := fsprobe.Ext4Maps(recs, anchors)
		mapped := map[string]bool{}
		for _, m := range maps {
			name := ""
			for n, tr := range c.truth {
				if m.Extents[0].ImageOffset == fsStart+tr[0].ImageOffset {
					name = n
				}
			}
			var want []fsprobe.MappedExtent
			for _, e := range c.truth[name] {
				e.ImageOffset += fsStart
				want = append(want, e)
			}
			if name == "" || m.Size != int64(len(c.files[name])) || !slices.Equal(m.Extents, want) {
				t.Errorf("wrong map (for %q): %s; %s: %v\nwant %v", name, m.Record, m.Evidence, m.Extents, want)
				continue
			}
			if !bytes.Equal(ext4ReadMap(t, img, m), c.files[name]) {
				t.Errorf("%s: map does not read the file back", name)
			}
			mapped[name] = true
			t.Logf("%s: %d extents; %s", name, len(m.Extents), m.Evidence)
		}
		for n := range c.files {
			if !mapped[n] {
				t.Errorf("%s: not mapped", n)
			}
		}
	}
	t.Run("host-superblocks-zeroed", func(t *testing.T) {
		img := bytes.Clone(img)
		for _, r := range ext4Scan(img) {
			if s := r.Record.Super; s != nil && s.UUID != gsb.UUID {
				clear(img[r.Offset : r.Offset+1024])
			}
		}
		for _, r := range ext4Scan(img) {
			if s := r.Record.Super; s != nil && s.UUID != gsb.UUID {
				t.Fatalf("host superblock still found at %d", r.Offset)
			}
		}
		check(t, img)
	})
	t.Run("intact", func(t *testing.T) {
		// The host's superblock explains the headers and owns its
		// region; the guest inside it maps nothing.
		check(t, img)
	})
}

// layExt4Fragmented lays a fragmented host volume at fsStart in seeded
// noise and returns the image and the anchors: every file's header, plus a
// decoy header inside d.vmdk (a stream's footer copy, a stale header) where
// no file starts, so any map for it is wrong.
func layExt4Fragmented(c *ext4Fragmented, fsStart int, seed uint64) ([]byte, []int64) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	img := ext4Noise(rng, fsStart+len(c.fs)+1<<20)
	copy(img[fsStart:], c.fs)
	var anchors []int64
	for _, m := range c.truth {
		anchors = append(anchors, int64(fsStart)+m[0].ImageOffset)
	}
	d := c.truth["d.vmdk"]
	return img, append(anchors, int64(fsStart)+d[len(d)-1].ImageOffset)
}

// TestExt4ResolverCrafted: trees that point at themselves or run deep end
// as incomplete maps or none, without loops or panics.
func TestExt4ResolverCrafted(t *testing.T) {
	const F, B = 1 << 20, 4096
	sb := &ext4.Superblock{BlockSize: B, BlocksPerGroup: 32768, InodesPerGroup: 8192, InodeSize: 256, Blocks: 1 << 16, Inodes: 1 << 14}
	// An index block at block 10 that points at itself, and an inode
	// whose depth-1 root points at it: the child's depth is not one less,
	// so the walk stops there.
	self := &ext4.Node{Depth: 1, Max: 340, Entries: []ext4.Entry{{Logical: 0, Start: 10}}}
	in := ext4.Inode{Size: 1 << 20, Links: 1, Root: ext4.Node{Depth: 2, Max: 4, Entries: []ext4.Entry{{Logical: 0, Start: 10}}}}
	flat := ext4.Inode{At: 256, Size: 5000, Links: 1, Root: ext4.Node{Max: 4, Entries: []ext4.Entry{
		{Logical: 0, Start: 100, Len: 1}, {Logical: 1, Start: 101, Len: 1}, {Logical: 5, Start: 300, Len: 2, Uninit: true}}}}
	recs := []fsprobe.LocatedExt4{
		{Offset: F + 1024, Record: &ext4.Record{Type: ext4.TypeSuperblock, Super: sb}},
		{Offset: F + 10*B, Record: &ext4.Record{Type: ext4.TypeExtentBlock, Node: self}},
		{Offset: F + 20*B, Record: &ext4.Record{Type: ext4.TypeInodes, Inodes: []ext4.Inode{in, flat}}},
	}
	maps := fsprobe.Ext4Maps(recs, []int64{F + 100*B})
	if len(maps) != 1 || !maps[0].Complete || len(maps[0].Extents) != 1 ||
		maps[0].Extents[0] != (fsprobe.MappedExtent{FileOffset: 0, ImageOffset: F + 100*B, Length: 5000}) {
		t.Fatalf("flat file: %+v", maps)
	}
	if maps := fsprobe.Ext4Maps(recs, []int64{F + 10*B}); len(maps) != 0 {
		t.Fatalf("self-pointing tree mapped: %+v", maps)
	}
}
