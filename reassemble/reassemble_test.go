package reassemble

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"vmdkcarve/fingerprint"
	"vmdkcarve/internal/entropy"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/reassemble/damage"
	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

const testGrain = 65536

// guest returns a disk whose grains spell their number; every third grain
// is zero.
func guest(grains int) []byte {
	b := make([]byte, grains*testGrain)
	for g := 0; g < grains; g++ {
		if g%3 == 2 {
			continue
		}
		copy(b[g*testGrain:(g+1)*testGrain], bytes.Repeat([]byte(fmt.Sprintf("grain %06d ", g)), testGrain/13+1))
	}
	return b
}

// testDescriptor gives every test file the same CID: copies of one version.
var testDescriptor = &vmdk.Descriptor{CID: 0x1234abcd, ParentCID: 0xffffffff}

func sparseFile(t testing.TB, disk []byte) []byte {
	var w tooltest.MemFile
	_, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: uint64(len(disk) / 512), FileName: "t.vmdk", Descriptor: testDescriptor},
		func(g uint64, buf []byte) (bool, error) { copy(buf, disk[g*testGrain:]); return true, nil })
	if err != nil {
		t.Fatal(err)
	}
	return w.Bytes
}

func streamFile(t testing.TB, disk []byte, layout vmdk.StreamLayout) []byte {
	var w bytes.Buffer
	_, err := vmdk.WriteStreamOptimized(&w, vmdk.StreamWriterOptions{Capacity: uint64(len(disk) / 512), FileName: "t.vmdk", Layout: layout, Descriptor: testDescriptor},
		func(g uint64, buf []byte) (bool, error) { copy(buf, disk[g*testGrain:]); return true, nil })
	if err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// noise returns n bytes of seeded noise.
func noise(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

// carve runs every recognizer at every sector, as the carver does.
func carve(img []byte) []signatures.Hit {
	var hits []signatures.Hit
	for _, r := range signatures.All() {
		scratch := make([]byte, r.ScratchBytes)
		for off := 0; off < len(img); off += r.Align {
			if h, ok := signatures.Run(&r, img[off:min(len(img), off+r.Window)], scratch); ok {
				h.Offset = int64(off)
				hits = append(hits, h)
			}
		}
	}
	return hits
}

func plan(t testing.TB, img []byte) []*Disk {
	disks := Plan(bytes.NewReader(img), int64(len(img)), carve(img), Options{})
	return disks
}

// check asserts that every grain is either right or not placed, and
// returns the counts.
func check(t *testing.T, d *Disk, img, disk []byte) Counts {
	t.Helper()
	for g := 0; g < int(d.Grains()); g++ {
		want := disk[g*testGrain : (g+1)*testGrain]
		run, ok := d.RunOf(uint64(g))
		if !ok {
			t.Fatalf("grain %d is in no run", g)
		}
		switch run.Status {
		case Placed:
			gr := d.Placed(uint64(g))
			got := make([]byte, testGrain)
			if gr.Source.Compressed {
				if _, _, err := vmdk.DecodeGrain(img[gr.Source.ImageOffset:], got); err != nil {
					t.Fatal(err)
				}
			} else {
				copy(got, img[gr.Source.ImageOffset:])
			}
			if !bytes.Equal(got, want) {
				t.Errorf("grain %d placed from %d is wrong", g, gr.Source.ImageOffset)
			}
		case Zero:
			if !entropy.Zero(want) {
				t.Errorf("grain %d declared zero (%s) but is not", g, run.Reason)
			}
		}
	}
	return d.Counts
}

func TestPlanSparse(t *testing.T) {
	disk := guest(600) // two grain tables
	file := sparseFile(t, disk)
	h, _ := vmdk.ParseSparseHeader(file)
	zeroPrimaryGTs := func(f []byte) {
		gd := vmdk.DecodeEntries(f[h.GDOffset*512 : h.GDOffset*512+8])
		for _, s := range gd {
			clear(f[int(s)*512 : int(s)*512+2048])
		}
	}
	for _, tc := range []struct {
		name                            string
		damage                          func(f []byte)
		placed, zero, missing, conflict uint64
	}{
		{"intact", func([]byte) {}, 400, 200, 0, 0},
		{"primary GD zeroed", func(f []byte) { clear(f[h.GDOffset*512 : h.GDOffset*512+512]) }, 400, 200, 0, 0},
		{"primary GTs zeroed", zeroPrimaryGTs, 400, 200, 0, 0},
		{"primary GD points into grains", func(f []byte) {
			binary.LittleEndian.PutUint32(f[h.GDOffset*512:], uint32(h.OverHead+128))
		}, 400, 200, 0, 0},
		{"one GTE differs between copies", func(f []byte) {
			gd := vmdk.DecodeEntries(f[h.GDOffset*512:])
			binary.LittleEndian.PutUint32(f[int(gd[0])*512:], uint32(h.OverHead+128*5))
		}, 399, 200, 0, 1}, // grain 0: the copies disagree
		{"both copies of every table zeroed", func(f []byte) {
			clear(f[h.RGDOffset*512 : h.OverHead*512])
		}, 0, 0, 600, 0},
		{"file cut in the grain area", nil, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := append([]byte(nil), file...)
			if tc.damage == nil {
				cut := int(h.OverHead*512) + 100*testGrain + 512
				img := append(noise(1<<20, 1), f[:cut]...)
				d := plan(t, img)[0]
				c := check(t, d, img, disk)
				// 100 whole grains survive in file order = virtual order of
				// the non-zero grains; the rest are missing.
				if c.Placed != 100 || c.Missing != 300 || c.Placed+c.Zero+c.Missing != 600 {
					t.Fatalf("counts %+v", c)
				}
				return
			}
			tc.damage(f)
			img := append(append(noise(1<<20, 2), f...), noise(1<<20, 3)...)
			disks := plan(t, img)
			if len(disks) != 1 {
				t.Fatalf("%d disks", len(disks))
			}
			c := check(t, disks[0], img, disk)
			if c.Placed != tc.placed || c.Zero != tc.zero || c.Missing != tc.missing || c.Conflict != tc.conflict {
				t.Fatalf("counts %+v, want placed %d zero %d missing %d conflict %d; notes %v", c, tc.placed, tc.zero, tc.missing, tc.conflict, disks[0].Instances[0].Notes)
			}
		})
	}
}

// TestOrphanSlots: a table lost in both copies while other tables survive
// leaves grain slots that no table references; the zeroed table's grains
// are then missing, not zero.
func TestOrphanSlots(t *testing.T) {
	disk := guest(600)
	f := sparseFile(t, disk)
	h, _ := vmdk.ParseSparseHeader(f)
	for _, gdOff := range []uint64{h.GDOffset, h.RGDOffset} {
		gd := vmdk.DecodeEntries(f[gdOff*512 : gdOff*512+8])
		clear(f[int(gd[0])*512 : int(gd[0])*512+2048])
	}
	d := plan(t, f)[0]
	c := check(t, d, f, disk)
	if c.Missing != 512 || c.Zero != 88/3+(88%3+1)/3 && c.Zero == 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestPlanStream(t *testing.T) {
	disk := guest(600)
	for _, tc := range []struct {
		name    string
		layout  vmdk.StreamLayout
		cut     int
		missing bool
	}{
		{"gd-front whole", vmdk.StreamGDFront, 0, false},
		{"gd-at-end whole", vmdk.StreamGDAtEnd, 0, false},
		{"gd-at-end cut", vmdk.StreamGDAtEnd, 200 << 10, true},
		{"gd-front cut", vmdk.StreamGDFront, 200 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := streamFile(t, disk, tc.layout)
			if tc.cut > 0 {
				copy(f[len(f)-tc.cut:], noise(tc.cut, 4))
			}
			img := append(append(noise(1<<20, 5), f...), noise(1<<20, 6)...)
			disks := plan(t, img)
			if len(disks) != 1 {
				t.Fatalf("%d disks", len(disks))
			}
			c := check(t, disks[0], img, disk)
			if (c.Missing > 0) != tc.missing || c.Placed == 0 {
				t.Fatalf("counts %+v; notes %v", c, disks[0].Instances[0].Notes)
			}
			if !tc.missing && (c.Placed != 400 || c.Zero != 200) {
				t.Fatalf("counts %+v", c)
			}
		})
	}
}

func TestCopiesMerge(t *testing.T) {
	disk := guest(300)
	f := sparseFile(t, disk)
	s := streamFile(t, disk, vmdk.StreamGDAtEnd)
	img := append(append(append(noise(1<<20, 7), f...), noise(1<<20, 8)...), s...)
	disks := plan(t, img)
	if len(disks) != 1 || len(disks[0].Instances) != 2 {
		t.Fatalf("%d disks", len(disks))
	}
	c := check(t, disks[0], img, disk)
	if c.Placed != 200 || c.ByEvidence[EvCopy] != 200 {
		t.Fatalf("counts %+v", c)
	}
	// A different disk of the same size stays apart.
	other := guest(300)
	copy(other, "another disk")
	v2 := sparseFile(t, other)
	// A new version gets a new CID on its first write.
	i := bytes.Index(v2, []byte("CID=1234abcd"))
	copy(v2[i:], "CID=9999abcd")
	img = append(img, v2...)
	if disks := plan(t, img); len(disks) != 2 {
		t.Fatalf("%d disks, want the two versions apart", len(disks))
	}
}

func TestRuns(t *testing.T) {
	grains := []Grain{
		{Status: Placed, Evidence: []string{EvTable}, Source: &Source{Instance: 1, ImageOffset: 1000}},
		{Status: Placed, Evidence: []string{EvTable}, Source: &Source{Instance: 1, ImageOffset: 1000 + testGrain}},
		{Status: Placed, Evidence: []string{EvTable}, Source: &Source{Instance: 1, ImageOffset: 1000 + 2*testGrain}},
		{Status: Placed, Evidence: []string{EvTable}, Source: &Source{Instance: 1, ImageOffset: 99}},
		{Status: Zero, Evidence: []string{EvTable}},
		{Status: Zero, Evidence: []string{EvTable}},
		{Status: Missing, Reason: Reason{Code: ReasonNoEvidence}},
	}
	b := runBuilder{stride: testGrain}
	for g := range grains {
		b.add(uint64(g), 1, &grains[g])
	}
	runs := b.runs
	if len(runs) != 4 || runs[0].Count != 3 || sourceOf(runs[0], 2) != 1000+2*testGrain || runs[2].Count != 2 {
		t.Fatalf("%+v", runs)
	}
}

// FuzzPlan gives the planner crafted bytes under hits that promise VMDK
// structures: one image holding a sparse file and two streams is carved
// once, then each input overwrites a stretch of it (tables, headers,
// records) before planning. Whatever the bytes say, Plan must not panic,
// allocate without bound, or place a grain outside the image.
func FuzzPlan(f *testing.F) {
	// 16-sector grains keep the image small: the fuzzer crawls on large
	// inputs, so the image is fixed and only the patch is fuzzed.
	disk := bytes.Repeat([]byte("fuzz grain data "), 6*8192/16)
	clear(disk[8192*2 : 8192*3])
	read := func(g uint64, buf []byte) (bool, error) { copy(buf, disk[g*8192:]); return true, nil }
	var w tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: 96, GrainSize: 16, FileName: "f.vmdk"}, read); err != nil {
		f.Fatal(err)
	}
	img := append(noise(4096, 1), w.Bytes...)
	for _, layout := range []vmdk.StreamLayout{vmdk.StreamGDAtEnd, vmdk.StreamGDFront} {
		var b bytes.Buffer
		if _, err := vmdk.WriteStreamOptimized(&b, vmdk.StreamWriterOptions{Capacity: 96, GrainSize: 16, FileName: "f.vmdk", Layout: layout}, read); err != nil {
			f.Fatal(err)
		}
		img = append(img, b.Bytes()...)
	}
	hits := carve(img)
	le := binary.LittleEndian
	capacityAt := make([]byte, 8)
	le.PutUint64(capacityAt, 1<<40)
	f.Add(uint32(4096+12), capacityAt)                     // sparse capacity
	f.Add(uint32(4096+56), []byte{0xff, 0xff, 0xff, 0x0f}) // sparse gdOffset
	f.Add(uint32(4096+21*512), bytes.Repeat([]byte{0xff}, 64))
	f.Add(uint32(len(img)-2048), bytes.Repeat([]byte{7}, 1024))
	f.Fuzz(func(t *testing.T, at uint32, patch []byte) {
		b := append([]byte(nil), img...)
		if int(at) < len(b) {
			copy(b[at:], patch)
		}
		disks := Plan(bytes.NewReader(b), int64(len(b)), hits, Options{})
		for _, d := range disks {
			for _, g := range d.placed {
				if g.Source == nil || g.Source.ImageOffset < 0 || g.Source.ImageOffset >= int64(len(b)) {
					t.Fatalf("grain placed outside the image: %+v", g.Source)
				}
			}
		}
	})
}

// fakeFingerprints gives the image's blocks the carve's classes (zero,
// random-looking) with one hash for every non-zero block, so that no block
// is found again elsewhere.
type fakeFingerprints []byte

func (f fakeFingerprints) At(off int64) (uint64, bool) {
	if off < 0 || off >= int64(len(f)) {
		return 0, false
	}
	b := f[off:min(off+fingerprint.BlockSize, int64(len(f)))]
	if entropy.Zero(b) {
		return 0, true
	}
	v := uint64(1)
	if entropy.RandomLooking(b) {
		v |= fingerprint.RandomBit
	}
	return v, true
}

// TestFragmentedWithoutMap cuts a sparse file in two and lays the second
// piece elsewhere, with zeros (which qemu-img and our writer never store
// as a grain) where the contiguous assumption expects it. The break is
// seen, and since nothing says where the first piece really ended, no
// grain rests on the contiguous assumption: none is placed, none is wrong,
// and the tables' zeros (read from the metadata at the header) stand. (A
// gap of random bytes in a guest with no structure of its own is not a
// structural fact: how random bytes look never ends the assumption.)
func TestFragmentedWithoutMap(t *testing.T) {
	disk := guest(300)
	file := sparseFile(t, disk)
	h, _ := vmdk.ParseSparseHeader(file)
	cut := int(h.OverHead*512) + 60*testGrain + 12*4096 // mid-grain, at a host cluster boundary
	for _, tc := range []struct {
		name string
		gap  []byte
	}{
		{"zero gap", make([]byte, 3<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := append(append(append(noise(1<<20, 10), file[:cut]...), tc.gap...), file[cut:]...)
			disks := Plan(bytes.NewReader(img), int64(len(img)), carve(img), Options{Fingerprints: fakeFingerprints(img)})
			if len(disks) != 1 {
				t.Fatalf("%d disks", len(disks))
			}
			c := check(t, disks[0], img, disk)
			t.Logf("counts %+v; notes %v", c, disks[0].Instances[0].Notes)
			if c.Placed != 0 || c.Zero != 100 {
				t.Errorf("placed %d grains and %d zero, want none placed and the 100 unallocated ones zero", c.Placed, c.Zero)
			}
		})
	}
}

// TestIntermittentEncryption replaces every 4th MiB of a sparse file with
// random bytes, from MiB 1: the damage policy finds that lattice, the
// grains on it are damaged, every other grain is placed and none is wrong.
func TestIntermittentEncryption(t *testing.T) {
	disk := guest(300)
	file := sparseFile(t, disk)
	for k := 1; k*damage.ChunkSize < len(file); k += 4 {
		copy(file[k*damage.ChunkSize:min((k+1)*damage.ChunkSize, len(file))], noise(damage.ChunkSize, uint64(k)))
	}
	img := append(append(noise(1<<20, 12), file...), noise(1<<20, 13)...)
	disks := Plan(bytes.NewReader(img), int64(len(img)), carve(img), Options{Fingerprints: fakeFingerprints(img)})
	if len(disks) != 1 {
		t.Fatalf("%d disks", len(disks))
	}
	c := check(t, disks[0], img, disk)
	dm := disks[0].Instances[0].Damage
	t.Logf("counts %+v; damage %+v", c, dm)
	// 3 encrypted MiBs of 16 grains each; the 200 data grains less those.
	if c.Damaged != 48 || c.Placed != 200-48 || c.Missing != 0 {
		t.Errorf("counts %+v, want 48 damaged and the other 152 data grains placed", c)
	}
	if dm == nil || len(dm.Lattices) != 1 {
		t.Fatalf("damage report %+v, want one lattice", dm)
	}
	if l := dm.Lattices[0]; l.Chunk != 1<<20 || l.Stride != 4<<20 || l.Phase != 1<<20 || l.Head != 0 {
		t.Errorf("lattice %+v, want 1 MiB every 4 MiB from 1 MiB", l)
	}
}

// TestFragmentedStream splits streams in three pieces, laid out of order
// with noise between them and no host map. The records that follow each
// other from the header are placed; the pieces elsewhere are attached
// only where the stream's own grain table vouches for them (GD at the
// front), never on LBA alone (GD at the end, its footer out of reach).
// Nothing is wrong either way.
func TestFragmentedStream(t *testing.T) {
	disk := make([]byte, 400*testGrain)
	for g := 0; g < 400; g++ {
		if g%3 != 2 { // incompressible enough that records fill the file
			copy(disk[g*testGrain:], noise(testGrain/2, uint64(g)))
		}
	}
	for _, tc := range []struct {
		layout      vmdk.StreamLayout
		wantAtLeast uint64
		wantAtMost  uint64
	}{
		{vmdk.StreamGDFront, 260, 267},
		{vmdk.StreamGDAtEnd, 80, 100}, // the first piece only
	} {
		t.Run(tc.layout.String(), func(t *testing.T) {
			f := streamFile(t, disk, tc.layout)
			a, b := len(f)/3/4096*4096, 2*len(f)/3/4096*4096
			// Each piece starts on the host's 4 KiB cluster grid, as a
			// host filesystem lays them.
			pad := (4096 - (len(f)-b)%4096) % 4096
			img := append(append(append(append(append(noise(1<<20, 20), f[:a]...), noise(1<<20, 21)...), f[b:]...), noise(1<<20+pad, 22)...), f[a:b]...)
			disks := plan(t, img)
			if len(disks) != 1 {
				t.Fatalf("%d disks", len(disks))
			}
			c := check(t, disks[0], img, disk)
			t.Logf("counts %+v; notes %v", c, disks[0].Instances[0].Notes)
			if c.Placed < tc.wantAtLeast || c.Placed > tc.wantAtMost {
				t.Errorf("placed %d, want %d..%d", c.Placed, tc.wantAtLeast, tc.wantAtMost)
			}
		})
	}
}

// BenchmarkPlanFragments plans one stream cut into n pieces laid out of
// order (no host map: its table and the orphan-run rule reassemble it).
// The cost per op must grow no worse than n log n with the pieces: compare
// the ns/op of pieces=4, 40 and 400.
func BenchmarkPlanFragments(b *testing.B) {
	disk := make([]byte, 8000*8192)
	for g := 0; g < 8000; g++ {
		copy(disk[g*8192:], noise(4096, uint64(g)))
	}
	read := func(g uint64, buf []byte) (bool, error) { copy(buf, disk[g*8192:]); return true, nil }
	var w bytes.Buffer
	if _, err := vmdk.WriteStreamOptimized(&w, vmdk.StreamWriterOptions{Capacity: 8000 * 16, GrainSize: 16, FileName: "b.vmdk", Layout: vmdk.StreamGDFront}, read); err != nil {
		b.Fatal(err)
	}
	f := w.Bytes()
	for _, n := range []int{4, 40, 400} {
		b.Run(fmt.Sprintf("pieces=%d", n), func(b *testing.B) {
			size := len(f) / n / 4096 * 4096
			var pieces [][]byte
			for i := 0; i < n; i++ {
				end := (i + 1) * size
				if i == n-1 {
					end = len(f)
				}
				pieces = append(pieces, f[i*size:end])
			}
			img := append([]byte(nil), pieces[0]...)
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			for _, i := range rng.Perm(n - 1) {
				img = append(img, noise(4096, uint64(i))...)
				img = append(img, pieces[i+1]...)
			}
			hits := carve(img)
			b.ResetTimer()
			var placed uint64
			for i := 0; i < b.N; i++ {
				disks := Plan(bytes.NewReader(img), int64(len(img)), hits, Options{})
				if len(disks) != 1 {
					b.Fatalf("%d disks", len(disks))
				}
				placed = disks[0].Counts.Placed
			}
			b.ReportMetric(float64(len(hits)), "hits")
			b.ReportMetric(float64(placed), "placed")
		})
	}
}

// TestHeaderLostLargeDisk: a 4.5 GiB disk's grain directory spans two
// sectors. With the header lost the file is found from the directory's
// first sector (never from its second, which would name a wrong start);
// with the header present, the directory's later sectors invent nothing.
func TestHeaderLostLargeDisk(t *testing.T) {
	const sectors = 9 << 29 / 512
	grainAt := func(g uint64) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("big disk grain %08d ", g)), testGrain/24+1)[:testGrain]
	}
	var w tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: sectors, FileName: "big.vmdk", Descriptor: testDescriptor},
		func(g uint64, b []byte) (bool, error) {
			if g%997 >= 3 { // runs of three: every table holds a few grains
				return false, nil
			}
			copy(b, grainAt(g))
			return true, nil
		}); err != nil {
		t.Fatal(err)
	}
	for _, lost := range []bool{true, false} {
		f := append([]byte(nil), w.Bytes...)
		if lost {
			clear(f[:512])
		}
		img := append(append(noise(1<<20, 40), f...), noise(1<<20, 41)...)
		disks := plan(t, img)
		if len(disks) != 1 {
			t.Fatalf("lost=%v: %d disks, want 1", lost, len(disks))
		}
		d := disks[0]
		if d.Instances[0].HeaderOffset != 1<<20 || d.Capacity != sectors || d.Instances[0].HeaderLost != lost {
			t.Fatalf("lost=%v: instance at %d, %d sectors, header lost %v", lost, d.Instances[0].HeaderOffset, d.Capacity, d.Instances[0].HeaderLost)
		}
		want := 0
		for g := 0; g < sectors/128; g++ {
			if g%997 < 3 {
				want++
			}
		}
		if d.Counts.Placed != uint64(want) || d.Counts.Missing != 0 {
			t.Fatalf("lost=%v: counts %+v, want %d placed", lost, d.Counts, want)
		}
		for g, gr := range d.placed {
			if got := img[gr.Source.ImageOffset : gr.Source.ImageOffset+testGrain]; !bytes.Equal(got, grainAt(g)) {
				t.Fatalf("grain %d wrong", g)
			}
		}
	}
}

// TestRandomGuestDataContiguous: a real ext4 guest holding 512 KiB of
// random-looking data, its VMDK laid contiguously: the random grains are
// the guest's own (the guest filesystem is recognised), so nothing ends
// the contiguous assumption and every grain is placed. The same bytes on
// a disk with no recognisable filesystem end it (a fragment running into
// noise shows no other way): nothing wrong either way.
func TestRandomGuestDataContiguous(t *testing.T) {
	tooltest.Need(t, "mkfs.ext4")
	vol := filepath.Join(t.TempDir(), "vol.img")
	if err := os.WriteFile(vol, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(vol, 12<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-O", "metadata_csum", vol).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	fs, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	for _, recognised := range []bool{true, false} {
		disk := make([]byte, 16<<20)
		e := disk[446:]
		e[4] = 0x83
		binary.LittleEndian.PutUint32(e[8:], 2048)
		binary.LittleEndian.PutUint32(e[12:], uint32(len(fs)/512))
		binary.LittleEndian.PutUint16(disk[510:], 0xAA55)
		if recognised {
			copy(disk[1<<20:], fs)
		} else {
			copy(disk[1<<20:], bytes.Repeat([]byte("no filesystem here "), len(fs)/19))
		}
		copy(disk[8<<20:], noise(512<<10, 77))
		img := append(append(noise(1<<20, 78), sparseFile(t, disk)...), noise(1<<20, 79)...)
		disks := plan(t, img)
		if len(disks) != 1 {
			t.Fatalf("%d disks", len(disks))
		}
		c := check(t, disks[0], img, disk)
		nonZero := uint64(0)
		for g := 0; g < len(disk)/testGrain; g++ {
			if !entropy.Zero(disk[g*testGrain : (g+1)*testGrain]) {
				nonZero++
			}
		}
		if recognised && c.Placed != nonZero {
			t.Errorf("recognised guest: placed %d of %d grains; notes %v", c.Placed, nonZero, disks[0].Instances[0].Notes)
		}
		if !recognised && c.Placed != 0 {
			t.Errorf("unknown content: placed %d grains, want none once random runs end the assumption", c.Placed)
		}
	}
}

// TestCraftedHits: hits.jsonl is read back from disk; a line claiming a
// valid header with a 2^40-sector grain, or a grain record of 2^40 bytes,
// is dropped before anything is sized by it.
func TestCraftedHits(t *testing.T) {
	img := noise(1<<20, 90)
	hits := []signatures.Hit{
		{Offset: 4096, Kind: signatures.KindSparseHeader, Verdict: signatures.Valid, Sparse: &vmdk.SparseHeader{
			Version: 1, Flags: 1, Capacity: 1 << 50, GrainSize: 1 << 40, NumGTEsPerGT: 512, GDOffset: 1, OverHead: 2}},
		{Offset: 8192, Kind: signatures.KindGrainMarker, Verdict: signatures.Valid, Length: 1 << 40,
			Grain: &signatures.GrainInfo{LBA: 0, Size: 100, DataBytes: 65536, Hash: 1}},
	}
	if disks := Plan(bytes.NewReader(img), int64(len(img)), hits, Options{}); len(disks) != 0 {
		t.Fatalf("%d disks: want the crafted hits dropped", len(disks))
	}
}

// sourceOf expands a run back to the source image offset of grain g.
func sourceOf(r Run, g uint64) int64 {
	return r.ImageOffset + int64(g-r.FirstGrain)*r.Stride
}

// TestPartlyZeroedTables: grain tables only partly zeroed. A zero entry is
// proof of an unallocated grain only where the table is shown intact:
// where slots hold data no entry names, the zero entries of tables whose
// copies disagree, or that have one readable copy, are missing, and so
// are those of agreeing copies when the orphans are more than a writer's
// strays. A file whose copies agree keeps its zeros despite a few stray
// slots; copies damaged at different ranges combine into every entry.
func TestPartlyZeroedTables(t *testing.T) {
	disk := guest(600) // two grain tables
	file := sparseFile(t, disk)
	h, _ := vmdk.ParseSparseHeader(file)
	gts := func(f []byte, gdOff uint64) []uint32 { return vmdk.DecodeEntries(f[gdOff*512 : gdOff*512+8]) }
	// cut zeroes bytes [from, to) of every table of one copy.
	cut := func(gdOff uint64, from, to int) func([]byte) {
		return func(f []byte) {
			for _, s := range gts(f, gdOff) {
				clear(f[int(s)*512+from : int(s)*512+to])
			}
		}
	}
	losePrimary := func(f []byte) {
		cut(h.GDOffset, 0, 2048)(f)
		clear(f[h.GDOffset*512 : h.GDOffset*512+512])
	}
	// unname zeroes grain g's entry in both copies: its slot is a stray.
	unname := func(grains ...int) func([]byte) {
		return func(f []byte) {
			for _, gdOff := range []uint64{h.GDOffset, h.RGDOffset} {
				gd := gts(f, gdOff)
				for _, g := range grains {
					if s := gd[g/512]; s != 0 {
						clear(f[int(s)*512+g%512*4 : int(s)*512+g%512*4+4])
					}
				}
			}
		}
	}
	without := func(grains ...int) []byte {
		d := append([]byte(nil), disk...)
		for _, g := range grains {
			clear(d[g*testGrain : (g+1)*testGrain])
		}
		return d
	}
	// The grains the first 16 entries of each table name.
	named := 0
	for g := range 600 {
		if g%512 < 16 && g%3 != 2 {
			named++
		}
	}
	strays := []int{30, 100, 201}
	many := []int{30, 31, 33, 34, 36, 37, 100, 103, 106} // maxStrayOrphans+1, none a zero grain
	if len(many) != maxStrayOrphans+1 {
		t.Fatalf("%d strays, want maxStrayOrphans+1", len(many))
	}
	for _, tc := range []struct {
		name                   string
		damage                 []func([]byte)
		truth                  []byte
		placed, zero, orphaned uint64 // orphaned: grains decided zero-entries-orphans
	}{
		{"intact", nil, disk, 400, 200, 0},
		{"primary lost, redundant zeroed from entry 16", []func([]byte){losePrimary, cut(h.RGDOffset, 64, 2048)}, disk, uint64(named), 0, 600 - uint64(named)},
		{"redundant zeroed from entry 16, primary intact", []func([]byte){cut(h.RGDOffset, 64, 2048)}, disk, 400, 200, 0},
		{"copies zeroed at different ranges", []func([]byte){cut(h.GDOffset, 64, 1024), cut(h.RGDOffset, 1024, 2048)}, disk, 400, 200, 0},
		{"copies zeroed at the same range", []func([]byte){cut(h.GDOffset, 64, 2048), cut(h.RGDOffset, 64, 2048)}, disk, uint64(named), 0, 600 - uint64(named)},
		{"copies agree, a few stray slots", []func([]byte){unname(strays...)}, without(strays...), 397, 203, 0},
		{"copies agree, more stray slots than a writer leaves", []func([]byte){unname(many...)}, without(many...), 391, 0, 209},
		{"one copy, one stray slot", []func([]byte){losePrimary, unname(30)}, without(30), 399, 0, 201},
		{"one copy, no stray slot", []func([]byte){losePrimary}, disk, 400, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := append([]byte(nil), file...)
			for _, d := range tc.damage {
				d(f)
			}
			img := append(append(noise(1<<20, 2), f...), noise(1<<20, 3)...)
			disks := plan(t, img)
			if len(disks) != 1 {
				t.Fatalf("%d disks", len(disks))
			}
			d := disks[0]
			c := check(t, d, img, tc.truth)
			var orphaned uint64
			for _, r := range d.Runs {
				if r.Code == ReasonZeroEntriesOrphans {
					orphaned += r.Count
				}
			}
			if c.Placed != tc.placed || c.Zero != tc.zero || orphaned != tc.orphaned || c.Placed+c.Zero+c.Missing != 600 {
				t.Fatalf("counts %+v, %d grains zero-entries-orphans; want placed %d zero %d orphaned %d; notes %v", c, orphaned, tc.placed, tc.zero, tc.orphaned, d.Instances[0].Notes)
			}
		})
	}
}

// TestZeroedGrainStrays: qemu, asked to write zeros over allocated grains
// of a file made with zeroed_grain=on, sets their entries to 1 (the zero
// grain) and leaves their old slots, data and all, named by no entry; its
// own check finds no error. Those orphans are explained by the zero-grain
// entries: the intact tables keep every zero, and nothing is missing.
func TestZeroedGrainStrays(t *testing.T) {
	tooltest.Need(t, "qemu-img", "qemu-io")
	path := filepath.Join(t.TempDir(), "z.vmdk")
	tooltest.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", path, "64M")
	tooltest.Run(t, "qemu-io", "-f", "vmdk", "-c", "write -P 0x55 0 4M", "-c", "write -z 1M 2M", path)
	tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", path)
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	disk := make([]byte, 64<<20)
	for i := range 4 << 20 {
		if i < 1<<20 || i >= 3<<20 {
			disk[i] = 0x55
		}
	}
	img := append(append(noise(1<<20, 2), f...), noise(1<<20, 3)...)
	disks := plan(t, img)
	if len(disks) != 1 {
		t.Fatalf("%d disks", len(disks))
	}
	d := disks[0]
	c := check(t, d, img, disk)
	// 32 grains (1 MiB before the zeros, 1 MiB after) hold 0x55.
	if c.Placed != 32 || c.Missing != 0 || c.Zero != 1024-32 {
		t.Fatalf("counts %+v; notes %v", c, d.Instances[0].Notes)
	}
	t.Logf("notes %v", d.Instances[0].Notes)
}
