package signatures

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/vmdk"
)

func find(name string) *Recognizer {
	for i := range registry {
		if registry[i].Name == name {
			return &registry[i]
		}
	}
	panic(name)
}

func window(r *Recognizer, b []byte) (Hit, bool) {
	return Run(r, b[:min(len(b), r.Window)], make([]byte, r.ScratchBytes))
}

func sparseHeader() []byte {
	l, _ := vmdk.NewSparseLayout(131072, 128, true)
	b, _ := l.Header.MarshalBinary()
	return b
}

func TestRecognizers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	grainData := make([]byte, 65536)
	for i := range grainData {
		grainData[i] = byte('a' + rng.IntN(26))
	}
	grain, _ := vmdk.EncodeGrain(nil, 128, grainData, 6)
	descText := []byte("# Disk DescriptorFile\nversion=1\nCID=2b7de084\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\nRW 131072 SPARSE \"ms.vmdk\"\n\x00\x00")
	damagedHeader := sparseHeader()
	damagedHeader[100] = 1
	badVersion := sparseHeader()
	binary.LittleEndian.PutUint32(badVersion[44:], 1<<31)
	gt := make([]uint32, 512)
	gt[3], gt[4] = 128, 256
	cowd := make([]byte, 2048)
	copy(cowd, "COWD")
	for i, v := range []uint32{1, 3, 16384, 1, 4, 4, 5} {
		binary.LittleEndian.PutUint32(cowd[4+4*i:], v)
	}
	for _, tc := range []struct {
		recognizer string
		in         []byte
		match      bool
		verdict    Verdict
	}{
		{"sparse-header", sparseHeader(), true, Valid},
		{"sparse-header", damagedHeader, true, Damaged},
		{"sparse-header", badVersion, true, Damaged},
		{"sparse-header", []byte("KDMV\x01\x00\x00\x00 in a binary, not aligned, not a header"), false, ""},
		{"descriptor", descText, true, Valid},
		{"descriptor", []byte("# Disk DescriptorFile\n%s\n"), false, ""},
		{"grain-marker", grain, true, Valid},
		{"grain-marker", grain[:300], true, Damaged},
		{"meta-marker", vmdk.MarshalMetaMarker(4, vmdk.MarkerGT), true, Valid},
		{"meta-marker", make([]byte, 512), false, ""},
		{"grain-directory", vmdk.EncodeEntries([]uint32{31, 35}), true, Valid},
		{"grain-table", vmdk.EncodeEntries(gt), true, Valid},
		{"grain-table", make([]byte, 2048), false, ""},
		{"cowd-header", cowd, true, Valid},
	} {
		h, ok := window(find(tc.recognizer), tc.in)
		if ok != tc.match || (ok && h.Verdict != tc.verdict) {
			t.Errorf("%s on %.24q: match=%v verdict=%q reason=%q; want %v %q", tc.recognizer, tc.in, ok, h.Verdict, h.Reason, tc.match, tc.verdict)
		}
	}
}

// TestNoiseHasNoHits runs every recognizer over random bytes at every
// sector: the validity rules must reject all of it.
func TestNoiseHasNoHits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 8<<20)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	for _, r := range All() {
		scratch := make([]byte, r.ScratchBytes)
		for off := 0; off < len(noise); off += r.Align {
			if h, ok := Run(&r, noise[off:min(len(noise), off+r.Window)], scratch); ok {
				t.Fatalf("%s matched noise at %d: %+v", r.Name, off, h)
			}
		}
	}
}

func TestSelect(t *testing.T) {
	rs, err := Select(nil, []string{"grain-table"})
	if err != nil || len(rs) != len(registry)-1 {
		t.Fatalf("%d %v", len(rs), err)
	}
	if _, err := Select([]string{"nope"}, nil); err == nil {
		t.Fatal("unknown name accepted")
	}
}

func FuzzRecognizers(f *testing.F) {
	f.Add(sparseHeader())
	grain, _ := vmdk.EncodeGrain(nil, 0, bytes.Repeat([]byte{1, 2, 3}, 100), 6)
	f.Add(grain)
	f.Add(vmdk.EncodeEntries([]uint32{21, 25, 29}))
	rs := All()
	scratch := make([][]byte, len(rs))
	for i := range rs {
		scratch[i] = make([]byte, rs[i].ScratchBytes)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range rs {
			w := b[:min(len(b), rs[i].Window)]
			h, ok := rs[i].Recognize(w, scratch[i])
			if ok && h.Kind == "" {
				t.Fatalf("%s: hit without kind", rs[i].Name)
			}
			if ok && !rs[i].MayAccept(w) {
				t.Fatalf("%s: accepts a window none of its magics holds for: %x", rs[i].Name, w[:min(len(w), 64)])
			}
			if ok {
				checkStored(t, rs[i].Name, h)
			}
		}
	})
}

// checkStored fails t unless hit h, stored in hits.jsonl and read back,
// passes Validate: the checks on load must accept whatever a recognizer
// writes.
func checkStored(t *testing.T, name string, h Hit) {
	t.Helper()
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var back Hit
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := back.Validate(0); err != nil {
		t.Fatalf("%s: the hit it makes fails Validate: %v\n%s", name, err, b)
	}
}

// TestMagicsNecessary runs every recognizer at every sector of the
// testdata files and of a stream, a sparse header and tables, and checks
// that wherever one accepts, one of its magics holds: the carver skips it
// elsewhere, so a magic that is not necessary would lose hits.
func TestMagicsNecessary(t *testing.T) {
	images := [][]byte{ntfsTestdata(t, "ntfs-record-guest.bin"), ntfsTestdata(t, "ntfs-boot.bin")}
	grain, _ := vmdk.EncodeGrain(nil, 128, bytes.Repeat([]byte{1, 2, 3}, 100), 6)
	images = append(images, append(sparseHeader(), grain...), vmdk.EncodeEntries([]uint32{21, 25, 29}))
	// Real writers' structures: ext4 and NTFS volumes on MBR disks, and
	// qemu-img's sparse and stream VMDKs of them.
	ext := tooltest.MBRDisk(tooltest.MakeFS(t, 8<<20, "mkfs.ext4", "-q", "-F", "-O", "metadata_csum,64bit"), 0x83)
	ntfsDisk := tooltest.MBRDisk(tooltest.MakeFS(t, 8<<20, "mkntfs", "-F", "-q", "-Q"), 0x07)
	images = append(images, ext, ntfsDisk)
	tooltest.Need(t, "qemu-img")
	dir := t.TempDir()
	for i, disk := range [][]byte{ext, ntfsDisk} {
		raw := filepath.Join(dir, fmt.Sprintf("d%d.raw", i))
		if err := os.WriteFile(raw, disk, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
			out := filepath.Join(dir, fmt.Sprintf("d%d-%s.vmdk", i, sub))
			tooltest.Run(t, "qemu-img", "convert", "-O", "vmdk", "-o", "subformat="+sub, raw, out)
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			images = append(images, b)
		}
	}
	accepted := map[string]int{}
	for _, img := range images {
		for _, r := range All() {
			scratch := make([]byte, r.ScratchBytes)
			for off := 0; off < len(img); off += r.Align {
				w := img[off:min(len(img), off+r.Window)]
				if h, ok := r.Recognize(w, scratch); ok {
					accepted[r.Name]++
					checkStored(t, r.Name, h)
					if !r.MayAccept(w) {
						t.Errorf("%s accepts at %d, but none of its magics holds", r.Name, off)
					}
				}
			}
		}
	}
	if len(accepted) < 10 {
		t.Errorf("only %v accepted anything: the test proves little", accepted)
	}
	t.Logf("accepted: %v", accepted)
}

// TestGDMagics: a grain directory whose first entry has any residue
// modulo 8, or whose second entry wraps past 2^32, is accepted and passes
// the magic test; a zero sector and entries stepping by other than 4 fail
// the magic test, so recognizeGD is not called on them.
func TestGDMagics(t *testing.T) {
	var gd Recognizer
	for _, r := range All() {
		if r.Name == "grain-directory" {
			gd = r
		}
	}
	sector := func(entries ...uint32) []byte {
		w := make([]byte, vmdk.SectorSize)
		copy(w, vmdk.EncodeEntries(entries))
		return w
	}
	for _, first := range []uint32{2, 3, 4, 5, 6, 7, 8, 9, 21, 1 << 20, 0xFFFFFFF0, 0xFFFFFFFE} {
		w := sector(first, first+4, first+8)
		if first+8 < first {
			w = sector(first, first+4) // the second entry wraps (or is the last before 2^32)
		}
		if _, ok := gd.Recognize(w, nil); !ok {
			t.Errorf("first entry %#x: not recognized", first)
		}
		if !gd.MayAccept(w) {
			t.Errorf("first entry %#x: recognized, but no magic holds", first)
		}
	}
	for _, w := range [][]byte{sector(), sector(21, 22), sector(21, 29), sector(21, 21)} {
		if gd.MayAccept(w) {
			t.Errorf("entries %v pass the magic test", vmdk.DecodeEntries(w[:8]))
		}
	}
}
