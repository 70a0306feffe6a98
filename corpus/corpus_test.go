package corpus

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/vmdk"
)

// oursSpec uses only our own writers, so it runs without qemu-img.
func oursSpec(seed uint64) Spec {
	return Spec{
		Seed: seed, ImageSize: 24 << 20,
		Disks: []DiskSpec{{ID: 1, Capacity: 3 << 20}, {ID: 2, Capacity: 2<<20 + 1536, ZeroFraction: 0.5}},
		Files: []FileSpec{
			{Disk: 1, Variant: OursSparse},
			{Disk: 1, Variant: OursSparse, Damage: []Damage{{Kind: ZeroPrimaryTables}, {Kind: ZeroHeader}}},
			{Disk: 1, Variant: OursSparse, Damage: []Damage{{Kind: ZeroRedundantTables}}},
			{Disk: 2, Variant: VMwareStream},
			{Disk: 2, Variant: VMwareStream, Damage: []Damage{{Kind: CutTail, Bytes: 96 << 10}}},
			{Disk: 2, Variant: OursStreamFront},
			{Disk: 2, Variant: OursStreamFront, Damage: []Damage{{Kind: Overwrite, At: 20 << 10, Bytes: 40 << 10}, {Kind: ZeroPrimaryTables}}},
			{Disk: 1, Variant: VMwareStream, Offset: 4096, Damage: []Damage{{Kind: ZeroPrimaryTables}}},
		},
	}
}

// needTools calls skipOrFail unless every named tool is on PATH.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			tooltest.Missing(t, "%s not installed", n)
		}
	}
}

// haveTool reports whether a tool for an optional check is on PATH; when
// it is not, the check is skipped with a log line, or the test fails with
// CI=true.
func haveTool(t testing.TB, name string) bool {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return true
	}
	if tooltest.CI() {
		t.Fatalf("CI=true and %s is not installed", name)
	}
	t.Logf("%s not installed: its check is skipped", name)
	return false
}

func generate(t *testing.T, spec Spec) (*Truth, string) {
	t.Helper()
	dir := t.TempDir()
	truth, err := Generate(spec, dir)
	if errors.Is(err, ErrNoQemu) {
		tooltest.Missing(t, "qemu-img not installed: skipping the qemu variants")
	}
	if err != nil {
		t.Fatal(err)
	}
	return truth, dir
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func TestDeterministic(t *testing.T) {
	_, a := generate(t, oursSpec(7))
	_, b := generate(t, oursSpec(7))
	_, c := generate(t, oursSpec(8))
	for _, name := range []string{ImageName, TruthName, RawName(1), RawName(2)} {
		if hashFile(t, filepath.Join(a, name)) != hashFile(t, filepath.Join(b, name)) {
			t.Errorf("%s differs between two runs of the same spec", name)
		}
	}
	if hashFile(t, filepath.Join(a, ImageName)) == hashFile(t, filepath.Join(c, ImageName)) {
		t.Error("different seeds gave the same image")
	}
	// Nothing but the outputs is left behind.
	ents, _ := os.ReadDir(a)
	if len(ents) != 4 {
		t.Errorf("output dir holds %d entries, want image, truth and 2 raws", len(ents))
	}
	// LoadTruth gives back what Generate returned.
	loaded, err := LoadTruth(filepath.Join(a, TruthName))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Image != filepath.Join(a, ImageName) || loaded.Disks[0].Raw != filepath.Join(a, RawName(1)) || len(loaded.Files) != 8 {
		t.Fatalf("loaded truth: image %s, raw %s, %d files", loaded.Image, loaded.Disks[0].Raw, len(loaded.Files))
	}
}

func readAt(t *testing.T, f *os.File, off, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

// TestDamage checks every damaged copy against an undamaged copy of the
// same file in the same image: bytes differ exactly inside the ranges the
// truth names, zero ranges read zero, and Intact flags match the ranges.
func TestDamage(t *testing.T) {
	truth, _ := generate(t, oursSpec(3))
	checkDamage(t, truth)
	// Damage kinds that must have cost grains did, and the survivors of
	// disk 2 are exactly its non-zero grains (clean copies exist).
	for _, f := range truth.Files {
		cut := len(f.Damage) > 0 && (f.Damage[0].Kind == CutTail || f.Damage[0].Kind == Overwrite)
		if cut && f.IntactGrains == len(f.Grains) {
			t.Errorf("file %d: %s left every grain intact", f.Index, f.Damage[0].Kind)
		}
		if !cut && f.IntactGrains != len(f.Grains) {
			t.Errorf("file %d: table/header damage marked grains damaged", f.Index)
		}
	}
	if s := truth.Surviving(2); uint64(len(s)) != truth.Disk(2).NonZeroGrains {
		t.Errorf("disk 2: %d surviving grains, %d non-zero", len(s), truth.Disk(2).NonZeroGrains)
	}
	if truth.Files[7].ImageOffset != 4096 {
		t.Errorf("fixed offset not honoured: %d", truth.Files[7].ImageOffset)
	}
}

// checkDamage checks every damaged copy of a file laid without a host
// against an undamaged copy of the same file in the same image: bytes
// differ exactly inside the ranges the truth names, zero ranges read zero,
// and Intact flags match the ranges.
func checkDamage(t *testing.T, truth *Truth) {
	t.Helper()
	img, err := os.Open(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if st, _ := img.Stat(); st.Size() != truth.ImageSize {
		t.Fatalf("image is %d bytes, truth says %d", st.Size(), truth.ImageSize)
	}
	clean := map[string]FileTruth{}
	for _, f := range truth.Files {
		if len(f.Damage) == 0 {
			clean[f.Name] = f
		}
	}
	for _, f := range truth.Files {
		if len(f.Damage) == 0 {
			continue
		}
		ref, ok := clean[f.Name]
		if !ok {
			// Disk 1's VMwareStream has no clean copy: check zero ranges only.
			for _, d := range f.Damage {
				for _, r := range d.Ranges {
					if r.Fill == "zero" && !bytes.Equal(readAt(t, img, r.ImageOffset, r.Length), make([]byte, r.Length)) {
						t.Errorf("file %d: %s range at %d is not zero", f.Index, d.Kind, r.ImageOffset)
					}
				}
			}
			continue
		}
		got := readAt(t, img, f.ImageOffset, f.Length)
		want := readAt(t, img, ref.ImageOffset, ref.Length)
		damaged := make([]bool, f.Length)
		for _, d := range f.Damage {
			if len(d.Ranges) == 0 {
				t.Errorf("file %d: %s has no ranges", f.Index, d.Kind)
			}
			for _, r := range d.Ranges {
				lo, hi := r.ImageOffset-f.ImageOffset, r.End()-f.ImageOffset
				if lo < 0 || hi > f.Length {
					t.Fatalf("file %d: range %+v outside the file", f.Index, r)
				}
				for i := lo; i < hi; i++ {
					damaged[i] = true
				}
				switch r.Fill {
				case "zero":
					if !bytes.Equal(got[lo:hi], make([]byte, hi-lo)) {
						t.Errorf("file %d: %s range at %d is not zero", f.Index, d.Kind, lo)
					}
				case "noise":
					if bytes.Equal(got[lo:hi], want[lo:hi]) {
						t.Errorf("file %d: %s range at %d was not overwritten", f.Index, d.Kind, lo)
					}
				}
			}
		}
		for i := range got {
			if !damaged[i] && got[i] != want[i] {
				t.Fatalf("file %d: byte %d differs outside every damage range", f.Index, i)
			}
		}
		for _, g := range f.Grains {
			hit := false
			for i := g.ImageOffset - f.ImageOffset; i < g.ImageOffset-f.ImageOffset+g.Length; i++ {
				hit = hit || damaged[i]
			}
			if hit == g.Intact {
				t.Errorf("file %d grain %d: intact=%v but damage overlap=%v", f.Index, g.Grain, g.Intact, hit)
			}
		}
	}
}

// checkGrains reads every intact grain of every file from the image at the
// offset the truth gives and compares it with the raw disk.
func checkGrains(t *testing.T, truth *Truth) {
	t.Helper()
	img, err := os.Open(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	raws := map[int][]byte{}
	for _, d := range truth.Disks {
		b, err := os.ReadFile(d.Raw)
		if err != nil {
			t.Fatal(err)
		}
		raws[d.ID] = b
	}
	buf := make([]byte, grainBytes)
	for _, f := range truth.Files {
		raw := raws[f.Disk]
		if uint64(len(f.Grains)) != truth.Disk(f.Disk).NonZeroGrains {
			t.Errorf("file %d (%s): %d grains allocated, disk has %d non-zero", f.Index, f.Variant, len(f.Grains), truth.Disk(f.Disk).NonZeroGrains)
		}
		for _, g := range f.Grains {
			if !g.Intact {
				continue
			}
			off := int64(g.Grain) * grainBytes
			want := raw[off:min(off+grainBytes, int64(len(raw)))]
			rec, err := f.ReadGrain(img, g)
			if err != nil {
				t.Fatal(err)
			}
			var data []byte
			if f.Variant.Stream() {
				m, n, err := vmdk.DecodeGrain(rec, buf)
				if err != nil || m.LBA != g.Grain*GrainSectors {
					t.Fatalf("file %d grain %d: marker %+v: %v", f.Index, g.Grain, m, err)
				}
				data = buf[:n]
			} else {
				data = rec
			}
			if !bytes.Equal(data[:len(want)], want) || !bytes.Equal(data[len(want):], make([]byte, len(data)-len(want))) {
				t.Fatalf("file %d (%s) grain %d at image offset %d (%d pieces) differs from the raw disk", f.Index, f.Variant, g.Grain, g.ImageOffset, len(g.Pieces))
			}
		}
	}
}

func TestGrainsMatchRaw(t *testing.T) {
	truth, _ := generate(t, oursSpec(11))
	checkGrains(t, truth)
}

// TestQemuVariants proves the qemu-made files are laid as qemu wrote them:
// the truth's grain map agrees with the raw disk, and an undamaged copy cut
// out of the image still compares equal to the raw disk in qemu-img.
func TestQemuVariants(t *testing.T) {
	spec := Spec{
		Seed: 5, ImageSize: 24 << 20,
		Disks: []DiskSpec{{ID: 1, Capacity: 4<<20 + 3072}, {ID: 2, Capacity: 3 << 20}},
		Files: []FileSpec{
			{Disk: 1, Variant: QemuSparse},
			{Disk: 1, Variant: QemuSparse, Damage: []Damage{{Kind: ZeroPrimaryTables}}},
			{Disk: 2, Variant: QemuStream},
			{Disk: 2, Variant: QemuStream, Damage: []Damage{{Kind: ZeroRedundantTables}}},
		},
	}
	truth, dir := generate(t, spec)
	checkGrains(t, truth)
	// qemu-img draws a random CID; Generate must still be reproducible.
	_, again := generate(t, spec)
	if hashFile(t, truth.Image) != hashFile(t, filepath.Join(again, ImageName)) {
		t.Error("two runs with qemu variants gave different images")
	}
	if h := truth.Files[0].Header; h.Version != 1 || !h.HasRedundantGD() || h.OverHead%128 != 0 {
		t.Errorf("qemu sparse header %+v", h)
	}
	if h := truth.Files[2].Header; h.Version != 3 || !h.Compressed() {
		t.Errorf("qemu stream header %+v", h)
	}
	img, err := os.Open(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, i := range []int{0, 2} {
		f := truth.Files[i]
		cut := filepath.Join(dir, f.Name)
		if err := os.WriteFile(cut, readAt(t, img, f.ImageOffset, f.Length), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("qemu-img", "compare", "-f", "vmdk", "-F", "raw", cut, truth.Disk(f.Disk).Raw).CombinedOutput()
		if err != nil {
			t.Errorf("%s cut from the image: qemu-img compare: %v\n%s", f.Variant, err, out)
		}
	}
}

func TestDiskContent(t *testing.T) {
	d := newDisk(9, DiskSpec{ID: 42, Capacity: 8 << 20})
	buf := make([]byte, grainBytes)
	if !d.fill(0, buf) || buf[510] != 0x55 || buf[511] != 0xaa || buf[446+4] != 0xda {
		t.Fatal("sector 0 has no MBR")
	}
	if !strings.HasPrefix(string(buf), "vmdkcarve disk=0042 lba=000000000000 ") {
		t.Fatalf("sector 0 starts %q", buf[:40])
	}
	text := 0
	for g := uint64(1); g < d.grains; g++ {
		if !d.fill(g, buf) {
			continue
		}
		if len(d.random) > 0 && g == d.random[0] {
			if bytes.Contains(buf, []byte("vmdkcarve")) {
				t.Fatal("random grain holds sector text")
			}
			continue
		}
		text++
		s := buf[5*512 : 6*512]
		want := "vmdkcarve disk=0042 lba=" + strings.Repeat("0", 12-len(itoa(g*128+5))) + itoa(g*128+5) + " "
		if !strings.HasPrefix(string(s), want) || s[511] != '\n' {
			t.Fatalf("grain %d sector 5 reads %q", g, s[:40])
		}
	}
	zeroShare := float64(d.grains-d.nonZero) / float64(d.grains)
	if text == 0 || zeroShare < 0.1 || zeroShare > 0.5 || len(d.random) == 0 {
		t.Fatalf("%d text grains, zero share %.2f, %d random grains", text, zeroShare, len(d.random))
	}
}

func itoa(v uint64) string {
	b := make([]byte, 20)
	putDec(b, v)
	return strings.TrimLeft(string(b[:19]), "0") + string(b[19])
}

func TestSpecErrors(t *testing.T) {
	base := func() Spec {
		return Spec{Seed: 1, ImageSize: 4 << 20, Disks: []DiskSpec{{ID: 1, Capacity: 1 << 20}}, Files: []FileSpec{{Disk: 1, Variant: OursSparse}}}
	}
	cases := map[string]func(*Spec){
		"too small": func(s *Spec) { s.ImageSize = 64 << 10 },
		"no disk":   func(s *Spec) { s.Files[0].Disk = 2 },
		"variant":   func(s *Spec) { s.Files[0].Variant = "vhd" },
		"no rgd": func(s *Spec) {
			s.Files[0].Variant = VMwareStream
			s.Files[0].Damage = []Damage{{Kind: ZeroRedundantTables}}
		},
		"long cut": func(s *Spec) { s.Files[0].Damage = []Damage{{Kind: CutTail, Bytes: 1 << 30}} },
		"overlap": func(s *Spec) {
			s.Files = append(s.Files, s.Files[0])
			s.Files[0].Offset = 1 << 20
			s.Files[1].Offset = 1<<20 + 4096
		},
		"bad offset":  func(s *Spec) { s.Files[0].Offset = 100 },
		"capacity":    func(s *Spec) { s.Disks[0].Capacity = 1000 },
		"image size":  func(s *Spec) { s.ImageSize = 1000 },
		"twice":       func(s *Spec) { s.Disks = append(s.Disks, s.Disks[0]) },
		"damage kind": func(s *Spec) { s.Files[0].Damage = []Damage{{Kind: "burn"}} },
		"flat tables": func(s *Spec) {
			s.Files[0].Variant = VMFSFlat
			s.Files[0].Damage = []Damage{{Kind: ZeroGrainTables}}
		},
		"no descriptor": func(s *Spec) { s.Files[0].NoDescriptor = true },
		// Guest content.
		"random share high":      func(s *Spec) { guest(s).RandomShare = 1.5 },
		"random share low":       func(s *Spec) { guest(s).RandomShare = -0.1 },
		"random share NaN":       func(s *Spec) { guest(s).RandomShare = math.NaN() },
		"random share synthetic": func(s *Spec) { s.Disks[0].RandomShare = 0.5 },
		"file bytes negative":    func(s *Spec) { guest(s).FileBytes = -1 },
		"file bytes too many":    func(s *Spec) { guest(s).FileBytes = 14 << 20 },
		"file bytes synthetic":   func(s *Spec) { s.Disks[0].FileBytes = 1 << 20 },
		"no table with GPT":      func(s *Spec) { d := guest(s); d.NoPartitionTable, d.GPT = true, true },
		"no table synthetic":     func(s *Spec) { s.Disks[0].NoPartitionTable = true },
		"cipher synthetic":       func(s *Spec) { s.Disks[0].Cipher = true },
		"random MiBs on a guest": func(s *Spec) { guest(s).RandomMiBs = 1 },
		"random MiBs negative":   func(s *Spec) { s.Disks[0].RandomMiBs = -1 },
		"random MiBs too many":   func(s *Spec) { s.Disks[0].Capacity, s.Disks[0].RandomMiBs = 4<<20, 4 },
		"random MiBs tiny disk":  func(s *Spec) { s.Disks[0].RandomMiBs = 1 },
		// Intermittent encryption.
		"chunks stride <= chunk": func(s *Spec) { chunks(s, Damage{Stride: 1 << 20}) },
		"chunks no stride":       func(s *Spec) { chunks(s, Damage{}) },
		"chunks small stride":    func(s *Spec) { chunks(s, Damage{Chunk: 64 << 10, Stride: 32 << 10}) },
		"chunks phase":           func(s *Spec) { chunks(s, Damage{Stride: 2 << 20, At: 4096}) },
		"chunks negative head":   func(s *Spec) { chunks(s, Damage{Stride: 2 << 20, Head: -1}) },
		"chunks negative chunk":  func(s *Spec) { chunks(s, Damage{Chunk: -4096, Stride: 2 << 20}) },
		"chunks negative until":  func(s *Spec) { chunks(s, Damage{Stride: 2 << 20, Until: -1}) },
		"chunks until before at": func(s *Spec) { chunks(s, Damage{Stride: 2 << 20, At: 1 << 20, Until: 1 << 20}) },
		"chunks huge":            func(s *Spec) { chunks(s, Damage{Stride: 1 << 62}) },
		"chunks size-step stride": func(s *Spec) {
			chunks(s, Damage{Stride: 2 << 20, SizeStep: true})
		},
		"chunks past the file": func(s *Spec) { chunks(s, Damage{Stride: 2 << 20, At: 64 << 20}) },
		"chunks too many": func(s *Spec) {
			chunks(s, Damage{Chunk: 512, Stride: 1024})
			s.ImageSize, s.Disks[0].Capacity, s.Disks[0].ZeroFraction = 80<<20, 72<<20, -1 // 73728 chunks
		},
	}
	wantSpecErrors(t, base, cases)
}

// wantSpecErrors generates base changed by each case and wants ErrSpec (a
// case that needs a tool not installed is passed over, except under
// CI=true, where .ci/run installs every tool).
func wantSpecErrors(t *testing.T, base func() Spec, cases map[string]func(*Spec)) {
	t.Helper()
	for name, mut := range cases {
		s := base()
		mut(&s)
		_, err := Generate(s, t.TempDir())
		switch {
		case errors.Is(err, ErrNoTool) && !tooltest.CI():
		case !errors.Is(err, ErrSpec):
			t.Errorf("%s: got %v, want ErrSpec", name, err)
		case testing.Verbose():
			t.Logf("%s: %v", name, err)
		}
	}
}

// guest makes the spec's disk an ext4 guest of 16 MiB and returns it.
func guest(s *Spec) *DiskSpec {
	d := &s.Disks[0]
	d.FS, d.Capacity = FSExt4, 16<<20
	return d
}

// chunks gives the spec's file an EncryptChunks damage and a disk of
// 4 MiB, its sparse file some 3 MiB.
func chunks(s *Spec, d Damage) {
	d.Kind = EncryptChunks
	s.Disks[0].Capacity = 4 << 20
	s.Files[0].Damage = []Damage{d}
}

func TestScenarios(t *testing.T) {
	for _, name := range Scenarios() {
		if ScenarioHelp(name) == "" {
			t.Errorf("scenario %s has no help", name)
		}
	}
	spec, err := Scenario("variants", 1, 0, HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	truth, _ := generate(t, spec)
	checkGrains(t, truth)
	for _, name := range []string{"demo", "bench", "flat", "random-guests", "encrypted-lattice"} {
		s, err := Scenario(name, 1, 0, false)
		if err != nil || s.NeedsQemu() {
			t.Fatalf("%s without qemu: %v, needs qemu %v", name, err, s.NeedsQemu())
		}
	}
	if _, err := Scenario("nope", 1, 0, false); !errors.Is(err, ErrSpec) {
		t.Fatal("unknown scenario accepted")
	}
}

func TestNoiseSeekable(t *testing.T) {
	whole := make([]byte, 3*noiseBlock)
	fillNoise(1, streamImage, 0, whole)
	part := make([]byte, noiseBlock+1000)
	fillNoise(1, streamImage, noiseBlock-500, part)
	if !bytes.Equal(part, whole[noiseBlock-500:2*noiseBlock+500]) {
		t.Fatal("an unaligned noise range differs from the same range of the whole stream")
	}
	other := make([]byte, len(whole))
	fillNoise(1, streamDamage, 0, other)
	if bytes.Equal(other, whole) {
		t.Fatal("noise streams are not independent")
	}
}

// BenchmarkGenerateDemo times the demo scenario (256 MiB image, our own
// writers only so the number does not depend on qemu-img).
func BenchmarkGenerateDemo(b *testing.B) {
	spec, err := Scenario("demo", 1, 0, false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(spec.ImageSize)
	for b.Loop() {
		if _, err := Generate(spec, b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestZeroFill(t *testing.T) {
	spec := oursSpec(2)
	spec.NoiseFill = Zero
	truth, _ := generate(t, spec)
	img, err := os.ReadFile(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	inFile := make([]bool, len(img))
	for _, f := range truth.Files {
		for i := f.ImageOffset; i < f.ImageOffset+f.Length; i++ {
			if inFile[i] {
				t.Fatalf("file %d overlaps another at %d", f.Index, i)
			}
			inFile[i] = true
		}
		if f.ImageOffset != 4096 && f.ImageOffset%fileAlign != 0 {
			t.Errorf("file %d at %d is not 4096-aligned", f.Index, f.ImageOffset)
		}
	}
	for i, c := range img {
		if c != 0 && !inFile[i] {
			t.Fatalf("byte %d outside every file is %#x in a zero-filled image", i, c)
		}
	}
	if truth.Fill != "zero" {
		t.Errorf("truth fill %q", truth.Fill)
	}
}

// flatFiles is what TestFlatVariants lays of variant v: a real ext4 guest,
// a synthetic disk, the synthetic disk again without its descriptor and
// the guest again with its sector 0 zeroed.
func flatFiles(v Variant) []FileSpec {
	return []FileSpec{
		{Disk: 1, Variant: v},
		{Disk: 2, Variant: v},
		{Disk: 2, Variant: v, NoDescriptor: true},
		{Disk: 1, Variant: v, Damage: []Damage{{Kind: ZeroHeader}}},
	}
}

// checkFlat checks every flat file of a generated image: the extent's
// bytes are the raw disk's (but for zero-header damage), and the
// descriptor laid for it reads back, parses, and names the extent with the
// disk's size; FileSpec.NoDescriptor left it out.
func checkFlat(t *testing.T, spec Spec, truth *Truth) {
	t.Helper()
	img, err := os.Open(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, f := range truth.Files {
		if !f.Variant.Flat() {
			continue
		}
		d := truth.Disk(f.Disk)
		raw, err := os.ReadFile(d.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if f.Header != nil || f.Length != d.Capacity || f.Name != fmt.Sprintf("disk-%02d-%s-flat.vmdk", f.Disk, f.Variant) {
			t.Errorf("file %d: header %v, %d bytes, name %s", f.Index, f.Header, f.Length, f.Name)
		}
		got := make([]byte, f.Length)
		if err := f.ReadFile(img, 0, got); err != nil {
			t.Fatal(err)
		}
		if len(f.Damage) == 0 && !bytes.Equal(got, raw) {
			t.Errorf("file %d (%s): the laid extent differs from %s", f.Index, f.Variant, RawName(f.Disk))
		}
		if len(f.Damage) > 0 && (!bytes.Equal(got[512:], raw[512:]) || !bytes.Equal(got[:512], make([]byte, 512))) {
			t.Errorf("file %d: zero-header did something else than zero sector 0", f.Index)
		}
		for _, g := range f.Grains {
			if g.FileOffset != int64(g.Grain)*grainBytes || g.Intact == (len(f.Damage) > 0 && g.Grain == 0) {
				t.Errorf("file %d grain %d at %d, intact %v", f.Index, g.Grain, g.FileOffset, g.Intact)
			}
		}

		desc := f.Descriptor
		if desc == nil || desc.Name != fmt.Sprintf("disk-%02d-%s.vmdk", f.Disk, f.Variant) || desc.Parsed == nil {
			t.Fatalf("file %d: descriptor %+v", f.Index, desc)
		}
		want := map[Variant][2]string{QemuFlat: {"monolithicFlat", "FLAT"}, VMFSFlat: {"vmfs", "VMFS"}}[f.Variant]
		noDesc := spec.Files[f.Index].NoDescriptor
		if desc.Laid() == noDesc {
			t.Errorf("file %d: descriptor laid %v (at %d), want %v", f.Index, desc.Laid(), desc.ImageOffset, !noDesc)
		}
		if !desc.Laid() {
			if desc.ImageOffset != -1 {
				t.Errorf("file %d: descriptor not laid at %d", f.Index, desc.ImageOffset)
			}
			continue
		}
		text, err := f.ReadDescriptor(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.Fixups) > 0 {
			// Resident on NTFS, two bytes of the text read as the update
			// sequence number (TestFlatOnHost checks the rest).
			if !bytes.HasPrefix(text, []byte(vmdk.DescriptorMagic)) {
				t.Errorf("file %d: no descriptor at %d", f.Index, desc.ImageOffset)
			}
			continue
		}
		p, err := vmdk.ParseDescriptor(text)
		if err != nil {
			t.Fatalf("file %d: descriptor at %d: %v", f.Index, desc.ImageOffset, err)
		}
		e := vmdk.Extent{Access: "RW", Sectors: uint64(d.Capacity / 512), Type: want[1], FileName: f.Name}
		if p.CreateType != want[0] || len(p.Extents) != 1 || p.Extents[0] != e || !p.HasCID || p.ParentCID != 0xffffffff {
			t.Errorf("file %d: descriptor says %s %+v, want %s %+v", f.Index, p.CreateType, p.Extents, want[0], e)
		}
		if p.CID != desc.Parsed.CID || p.CreateType != desc.Parsed.CreateType || !desc.Intact {
			t.Errorf("file %d: descriptor CID %08x, truth %08x, intact %v", f.Index, p.CID, desc.Parsed.CID, desc.Intact)
		}
		if f.Variant == VMFSFlat && (p.DDB["ddb.adapterType"] != "lsilogic" || p.DDB["ddb.virtualHWVersion"] != "14" || len(p.UUID()) != 47) {
			t.Errorf("file %d: ddb %v", f.Index, p.DDB)
		}
	}
}

func TestFlatVariants(t *testing.T) {
	for _, v := range []Variant{VMFSFlat, QemuFlat} {
		t.Run(string(v), func(t *testing.T) {
			if v.NeedsQemu() && !HaveQemu() {
				tooltest.Missing(t, "qemu-img not installed")
			}
			if !HaveTools(FSExt4) {
				tooltest.Missing(t, "the ext4 guest needs mkfs.ext4 and debugfs")
			}
			spec := Spec{
				Seed: 13, ImageSize: 64 << 20,
				Disks: []DiskSpec{{ID: 1, Capacity: 24 << 20, FS: FSExt4}, {ID: 2, Capacity: 3<<20 + 1536}},
				Files: flatFiles(v),
			}
			truth, dir := generate(t, spec)
			checkGrains(t, truth)
			checkFlat(t, spec, truth)
			// Each laid descriptor, and nothing else, is descriptor text:
			// apart from the others, apart from every extent.
			img, err := os.ReadFile(truth.Image)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(img, []byte(vmdk.DescriptorMagic)); n != 3 {
				t.Errorf("%d descriptors in the image, want 3", n)
			}
			for _, f := range truth.Files {
				d := f.Descriptor
				if !d.Laid() {
					continue
				}
				if d.ImageOffset%fileAlign != 0 || d.Fragments != nil || d.Resident {
					t.Errorf("file %d: descriptor at %d, fragments %v", f.Index, d.ImageOffset, d.Fragments)
				}
				for _, o := range truth.Files {
					if d.ImageOffset < o.ImageOffset+o.Length && o.ImageOffset < d.ImageOffset+d.Length {
						t.Errorf("file %d's descriptor overlaps file %d", f.Index, o.Index)
					}
				}
			}
			if s := truth.Surviving(2); uint64(len(s)) != truth.Disk(2).NonZeroGrains {
				t.Errorf("disk 2: %d surviving grains, %d non-zero", len(s), truth.Disk(2).NonZeroGrains)
			}
			// The seeded CID makes qemu's descriptor reproducible.
			if v == QemuFlat {
				_, again := generate(t, spec)
				if hashFile(t, truth.Image) != hashFile(t, filepath.Join(again, ImageName)) {
					t.Error("two runs gave different images")
				}
				// Cut out and paired again, the two files read as the disk.
				f := truth.Files[1]
				text, err := f.ReadDescriptor(bytes.NewReader(img))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f.Descriptor.Name), text, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f.Name), img[f.ImageOffset:f.ImageOffset+f.Length], 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("qemu-img", "compare", "-f", "vmdk", "-F", "raw", filepath.Join(dir, f.Descriptor.Name), truth.Disk(f.Disk).Raw).CombinedOutput(); err != nil {
					t.Errorf("qemu-img compare of the cut pair: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestFlatOnHost puts flat pairs on ext4 (fragmented) and NTFS host
// volumes: each descriptor is a host file beside its extent, read back
// by the host's own tools.
func TestFlatOnHost(t *testing.T) {
	for _, fs := range []string{FSExt4, FSNTFS} {
		t.Run(fs, func(t *testing.T) {
			spec := Spec{
				Seed: 17, ImageSize: 48 << 20,
				Disks: []DiskSpec{{ID: 1, Capacity: 3 << 20}, {ID: 2, Capacity: 2<<20 + 1536, ZeroFraction: 0.5}},
				Files: []FileSpec{
					{Disk: 1, Variant: VMFSFlat},
					{Disk: 2, Variant: VMFSFlat},
					{Disk: 2, Variant: VMFSFlat, NoDescriptor: true},
					{Disk: 1, Variant: VMFSFlat, Damage: []Damage{{Kind: ZeroHeader}}},
				},
				Host: &HostSpec{FS: fs, BlockSize: 1024, Offset: 1 << 20, Size: 40 << 20, Fragments: 4},
			}
			if HaveQemu() {
				for i := range spec.Files {
					spec.Files[i].Variant = QemuFlat
				}
				spec.Files[1].Variant = VMFSFlat
			}
			if !HaveTools(fs) {
				tooltest.Missing(t, "%s tools missing", fs)
			}
			truth, _ := generateHost(t, spec)
			checkGrains(t, truth)
			checkFlat(t, spec, truth)
			vol := cutVolume(t, truth)
			img, err := os.Open(truth.Image)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			for _, f := range truth.Files {
				d := f.Descriptor
				if fs == FSExt4 && len(f.Fragments) < 2 {
					t.Errorf("file %d: %d fragments, asked for 4", f.Index, len(f.Fragments))
				}
				if !d.Laid() {
					if d.HostPath != "" {
						t.Errorf("file %d: a descriptor not laid has host path %s", f.Index, d.HostPath)
					}
					continue
				}
				if filepath.Dir(d.HostPath) != filepath.Dir(f.HostPath) || filepath.Base(d.HostPath) != strings.Replace(filepath.Base(f.HostPath), "-flat.vmdk", ".vmdk", 1) {
					t.Errorf("file %d: extent %s, descriptor %s", f.Index, f.HostPath, d.HostPath)
				}
				var cat *exec.Cmd
				if fs == FSExt4 {
					cat = exec.Command("debugfs", "-R", "cat "+d.HostPath, vol)
				} else {
					cat = exec.Command("ntfscat", vol, d.HostPath)
				}
				want, err := cat.Output()
				if err != nil || int64(len(want)) != d.Length {
					t.Fatalf("file %d: %s of the descriptor: %d bytes, %v", f.Index, cat.Args[0], len(want), err)
				}
				got, err := f.ReadDescriptor(img)
				if err != nil {
					t.Fatal(err)
				}
				// A resident descriptor holds the update sequence number
				// in the fixup slots; everywhere else the image is the text.
				for _, x := range d.Fixups {
					for i := x; i < x+2; i++ {
						if o := i - d.ImageOffset; o >= 0 && o < d.Length {
							got[o] = want[o]
						}
					}
				}
				if !bytes.Equal(got, want) {
					t.Errorf("file %d: the descriptor in the image differs from the host's %s", f.Index, d.HostPath)
				}
				if d.Resident != (fs == FSNTFS) {
					t.Errorf("file %d: resident %v on %s", f.Index, d.Resident, fs)
				}
				t.Logf("file %d: %s at %#x (%d bytes, resident %v, fixups %v); extent %s in %d fragments", f.Index, d.HostPath, d.ImageOffset, d.Length, d.Resident, d.Fixups, f.HostPath, len(f.Fragments))
			}
		})
	}
}

func TestFlatScenario(t *testing.T) {
	if !HaveTools(FSExt4) || !HaveTools(FSNTFS) {
		tooltest.Missing(t, "the guests need mkfs.ext4, debugfs, mkntfs and ntfscp")
	}
	spec, err := Scenario("flat", 1, 160<<20, HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	truth, _ := generate(t, spec)
	checkGrains(t, truth)
	checkFlat(t, spec, truth)
}
