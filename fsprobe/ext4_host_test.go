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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vmdkcarve/fsprobe"
	"vmdkcarve/signatures"
)

func ext4NeedTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install e2fsprogs): skipping the ext4 host probe check on a real filesystem", tool)
		}
	}
}

func ext4Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

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
