package fsprobe_test

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vmdkcarve/fsprobe"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/signatures"
)

const (
	volOffset   = 1 << 20 // the volume starts after 1 MiB of noise and an MBR
	volSize     = 4 << 20
	clusterSize = 4096
)

// ntfsVolume builds a 4 MiB NTFS volume with mkntfs and ntfscp holding
// guest.vmdk, fragmented: two filler files are copied, a third fills the
// volume, the second is truncated to 0, and guest.vmdk then needs both the
// tail free space and the hole. It returns the volume and guest.vmdk.
func ntfsVolume(t *testing.T) (vol, guest []byte) {
	t.Helper()
	tooltest.Need(t, "mkntfs", "ntfscp", "ntfstruncate")
	dir := t.TempDir()
	img := filepath.Join(dir, "vol.img")
	run := func(name string, args ...string) { t.Helper(); tooltest.Run(t, name, args...) }
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, volSize); err != nil {
		t.Fatal(err)
	}
	run("mkntfs", "-F", "-q", "-f", "-s", "512", "-c", "4096", "-L", "host", img)
	rng := rand.New(rand.NewSource(7))
	file := func(name string, n int, prefix string) []byte {
		b := make([]byte, n)
		rng.Read(b)
		copy(b, prefix)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	file("a", 200000, "")
	file("b", 200000, "")
	file("d", 2000000, "")
	guest = file("guest.vmdk", 400004, "KDMV")
	for _, f := range []string{"a", "b", "d"} {
		run("ntfscp", "-f", img, filepath.Join(dir, f), f)
	}
	run("ntfstruncate", "-f", img, "65", "0x80", "0") // b is record 65
	run("ntfscp", "-f", img, filepath.Join(dir, "guest.vmdk"), "guest.vmdk")
	vol, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return vol, guest
}

// hostImage lays vol at volOffset after noise and an MBR, with 64 KiB of
// noise after it.
func hostImage(vol []byte) []byte {
	img := make([]byte, volOffset+len(vol)+64<<10)
	rand.New(rand.NewSource(1)).Read(img)
	copy(img[volOffset:], vol)
	mbr := img[:512]
	clear(mbr[446:])
	e := mbr[446:462]
	e[4] = 0x07
	binary.LittleEndian.PutUint32(e[8:], volOffset/512)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(vol)/512))
	mbr[510], mbr[511] = 0x55, 0xAA
	return img
}

// carveNTFS runs the NTFS recognizers at every aligned offset, as the
// carver does, and finds the "KDMV" anchors.
func carveNTFS(t *testing.T, img []byte) ([]fsprobe.LocatedNTFS, []int64) {
	t.Helper()
	rs, err := signatures.Select([]string{"ntfs-mft-record", "ntfs-boot-sector"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []fsprobe.LocatedNTFS
	for _, r := range rs {
		for off := 0; off < len(img); off += r.Align {
			if h, ok := signatures.Run(&r, img[off:min(len(img), off+r.Window)], nil); ok {
				if h.Kind == signatures.KindError {
					t.Fatalf("%s at %d: %s", r.Name, off, h.Reason)
				}
				recs = append(recs, fsprobe.LocatedNTFS{Offset: int64(off), Record: h.NTFS})
			}
		}
	}
	var anchors []int64
	for off := 0; off+4 <= len(img); off += 512 {
		if string(img[off:off+4]) == "KDMV" {
			anchors = append(anchors, int64(off))
		}
	}
	return recs, anchors
}

// readMap reads a file's bytes through its map (holes as zeros).
func readMap(img []byte, m fsprobe.FileMap) []byte {
	out := make([]byte, m.Size)
	for _, e := range m.Extents {
		copy(out[e.FileOffset:min(m.Size, e.FileOffset+e.Length)], img[e.ImageOffset:e.ImageOffset+e.Length])
	}
	return out
}

func TestNTFSMapsFromMkntfs(t *testing.T) {
	vol, guest := ntfsVolume(t)
	zero := func(img []byte, off, n int) { clear(img[off : off+n]) }
	backup := volOffset + len(vol) - 512
	cases := []struct {
		name   string
		damage func(img []byte)
		// evidence a map must cite; "" = a map is optional but must be right
		evidence string
	}{
		{"intact", func([]byte) {}, "boot sector at image offset 1048576"},
		{"primary boot sector zeroed", func(img []byte) { zero(img, volOffset, 512) }, "backup boot sector"},
		{"both boot sectors zeroed", func(img []byte) {
			zero(img, volOffset, 512)
			zero(img, backup, 512)
		}, "has its first run at anchor"},
		{"guest.vmdk deleted", func(img []byte) {
			rec := volOffset + 4*clusterSize + 67*1024 // record 67 in $MFT's first run
			img[rec+0x16] = 0                          // flags: not in use
		}, "; deleted"},
		{"boot sectors and the first MFT run zeroed", func(img []byte) {
			zero(img, volOffset, 512)
			zero(img, backup, 512)
			zero(img, volOffset+4*clusterSize, 19*clusterSize) // $MFT: LCN 4, 19 clusters
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := hostImage(vol)
			tc.damage(img)
			recs, anchors := carveNTFS(t, img)
			if len(anchors) != 1 {
				t.Fatalf("anchors %v", anchors)
			}
			maps := fsprobe.NTFSMaps(recs, anchors)
			for _, m := range maps {
				t.Logf("%s: %s, %d extents, complete=%v\n  %s", m.Name, m.Record, len(m.Extents), m.Complete, m.Evidence)
				if m.Name != "guest.vmdk" || m.Size != int64(len(guest)) || !bytes.Equal(readMap(img, m), guest) {
					t.Fatalf("wrong map: %+v", m)
				}
				if !m.Complete || len(m.Extents) < 2 {
					t.Errorf("want a complete map of the two fragments: %+v", m.Extents)
				}
				if m.Extents[0].ImageOffset != anchors[0] {
					t.Errorf("first extent at %d, anchor at %d", m.Extents[0].ImageOffset, anchors[0])
				}
			}
			if tc.evidence != "" {
				if len(maps) != 1 {
					t.Fatalf("got %d maps, want 1", len(maps))
				}
				if !strings.Contains(maps[0].Evidence, tc.evidence) {
					t.Errorf("evidence %q does not cite %q", maps[0].Evidence, tc.evidence)
				}
			}
		})
	}
}

// TestNTFSMapsWeakEvidence: one fact alone (a .vmdk record's run on an
// anchor, with no $MFT and no boot sector) gives no map.
func TestNTFSMapsWeakEvidence(t *testing.T) {
	vol, _ := ntfsVolume(t)
	img := hostImage(vol)
	recs, anchors := carveNTFS(t, img)
	var only []fsprobe.LocatedNTFS
	for _, r := range recs {
		if r.Record.MFT != nil && len(r.Record.MFT.Names) > 0 && r.Record.MFT.Names[0].Name == "guest.vmdk" {
			only = append(only, r)
		}
	}
	if len(only) != 1 {
		t.Fatalf("guest.vmdk record found %d times", len(only))
	}
	if maps := fsprobe.NTFSMaps(only, anchors); len(maps) != 0 {
		t.Fatalf("a map from one fact: %+v", maps)
	}
	// Without the anchor, the boot sector and $MFT still place the file
	// (a flat extent has no header to anchor on).
	maps := fsprobe.NTFSMaps(recs, nil)
	if len(maps) != 1 || maps[0].Extents[0].ImageOffset != anchors[0] {
		t.Fatalf("without anchors: %+v", maps)
	}
}

// TestNTFSMapsTwoVolumes: the same volume laid twice in one image (two
// partitions) gives two maps, each tied to its own volume's geometry.
func TestNTFSMapsTwoVolumes(t *testing.T) {
	vol, guest := ntfsVolume(t)
	one := hostImage(vol)
	second := len(one)
	img := append(one, vol...)
	recs, anchors := carveNTFS(t, img)
	if len(anchors) != 2 {
		t.Fatalf("anchors %v", anchors)
	}
	maps := fsprobe.NTFSMaps(recs, anchors)
	if len(maps) != 2 {
		t.Fatalf("got %d maps, want 2: %+v", len(maps), maps)
	}
	for i, m := range maps {
		if !bytes.Equal(readMap(img, m), guest) || m.Extents[0].ImageOffset != anchors[i] {
			t.Errorf("map %d wrong: %+v", i, m)
		}
	}
	if !strings.Contains(maps[1].Evidence, "boot sector at image offset "+strconv.Itoa(second)) {
		t.Errorf("second map's evidence: %s", maps[1].Evidence)
	}
}
