package corpus

import (
	"bytes"
	"cmp"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/vmdk"
)

func TestPieceLengths(t *testing.T) {
	for _, tc := range []struct {
		length int64
		n      int
		ok     bool
	}{
		{1<<20 + 4096, 2, true},
		{1 << 20, 2, false},             // nothing left for the second piece
		{1<<20 + 1, 2, true},            // the last piece a byte
		{1<<20 + 4097, 2, true},         // the last piece ends mid-cluster
		{1<<20 + 38*4096 + 1, 40, true}, // every piece but the first one cluster, the last a byte
		{1<<20 + 38*4096, 40, false},
		{3 << 20, 5, true},
		{160 << 20, 19, true},
		{64<<30 + 512, 40, true},
		{1 << 20, 1, false}, // one piece is no split
	} {
		for seed := range uint64(20) {
			got, err := pieceLengths(rand.New(rand.NewPCG(seed, 1)), tc.length, tc.n)
			if (err == nil) != tc.ok {
				t.Fatalf("%d bytes in %d pieces: err %v, want ok %v", tc.length, tc.n, err, tc.ok)
			}
			if err != nil {
				continue
			}
			var sum int64
			for i, n := range got {
				sum += n
				if n <= 0 || (i < len(got)-1 && n%fileAlign != 0) {
					t.Fatalf("%d bytes in %d pieces: piece %d is %d bytes (%v)", tc.length, tc.n, i, n, got)
				}
			}
			if len(got) != tc.n || sum != tc.length || got[0] < firstPiece {
				t.Fatalf("%d bytes in %d pieces: %v (sum %d)", tc.length, tc.n, got, sum)
			}
			// A file with room for twice 1 MiB per piece has no piece
			// shorter than 1 MiB but perhaps the last.
			if tc.length >= int64(2*tc.n)*firstPiece && slices.Min(got[:tc.n-1]) < firstPiece {
				t.Errorf("%d bytes in %d pieces: %v, one under 1 MiB", tc.length, tc.n, got)
			}
		}
	}
}

// piecesSpec uses only our own writers and synthetic disks (disk 2's
// random MiBs make its stream file long enough for pieces): pieced files
// beside contiguous copies of the same made files, an in-order file, a
// two-piece file (which place must break out of order itself half the
// time), a flat extent in pieces with its descriptor, an encrypted pieced
// file, and a decoy alone on its disk.
func piecesSpec(seed uint64) Spec {
	return Spec{
		Seed: seed, ImageSize: 96 << 20,
		Disks: []DiskSpec{{ID: 1, Capacity: 8 << 20}, {ID: 2, Capacity: 8<<20 + 1536, ZeroFraction: -1, RandomMiBs: 3}, {ID: 3, Capacity: 6 << 20}},
		Files: []FileSpec{
			{Disk: 1, Variant: OursSparse, Pieces: 5},
			{Disk: 1, Variant: OursSparse},
			{Disk: 2, Variant: VMwareStream, Pieces: 2},
			{Disk: 2, Variant: VMwareStream},
			{Disk: 1, Variant: OursSparse, Pieces: 6, InOrder: true},
			{Disk: 2, Variant: VMFSFlat, Pieces: 4},
			{Disk: 3, Variant: OursSparseGuestOrder, Decoy: &DecoyPiece{At: 1 << 20, Length: 1<<20 + 8192}},
			{Disk: 1, Variant: OursSparse, Pieces: 4, Damage: []Damage{{Kind: EncryptChunks, Stride: 2 << 20, At: 1 << 20}}},
		},
	}
}

func TestPieces(t *testing.T) {
	spec := piecesSpec(21)
	truth, dir := generate(t, spec)
	checkGrains(t, truth)
	checkPieces(t, spec, truth)

	img, err := os.Open(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	whole := func(i int) []byte {
		f := truth.Files[i]
		b := make([]byte, f.Length)
		if err := f.ReadFile(img, 0, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Every byte of an undamaged pieced file reads back through its
	// fragments as the contiguous copy of the same made file holds it.
	for _, c := range [][2]int{{0, 1}, {4, 1}, {2, 3}} {
		if !bytes.Equal(whole(c[0]), whole(c[1])) {
			t.Errorf("file %d read through its %d fragments differs from file %d laid in one run", c[0], len(truth.Files[c[0]].Fragments), c[1])
		}
	}
	if h, err := vmdk.ParseSparseHeader(whole(0)[:512]); err != nil || h.Capacity != 8<<20/512 {
		t.Errorf("file 0's header through its fragments: %+v, %v", h, err)
	}
	if d, err := truth.Files[5].ReadDescriptor(img); err != nil || !bytes.Contains(d, []byte(`VMFS "disk-02-vmfs-flat-flat.vmdk"`)) {
		t.Errorf("file 5's descriptor: %q, %v", d, err)
	}
	// The decoy is alone on disk 3: its grains inside the piece are all
	// that survive of the disk.
	if s, f := truth.Surviving(3), truth.Files[6]; len(s) != f.IntactGrains || f.IntactGrains == 0 {
		t.Errorf("disk 3: %d surviving grains, the decoy %d intact of %d", len(s), f.IntactGrains, len(f.Grains))
	}

	// The same spec gives the same image and truth.
	_, again := generate(t, spec)
	for _, name := range []string{ImageName, TruthName} {
		if hashFile(t, filepath.Join(dir, name)) != hashFile(t, filepath.Join(again, name)) {
			t.Errorf("%s differs between two runs of the same spec", name)
		}
	}
}

// TestPiecesTwoOutOfOrder lays many two-piece files: place must break
// the order of every one that came out in order.
func TestPiecesTwoOutOfOrder(t *testing.T) {
	spec := Spec{Seed: 4, ImageSize: 64 << 20, Disks: []DiskSpec{{ID: 1, Capacity: 2 << 20, ZeroFraction: -1}}}
	for range 12 {
		spec.Files = append(spec.Files, FileSpec{Disk: 1, Variant: OursSparse, Pieces: 2})
	}
	truth, _ := generate(t, spec)
	checkPieces(t, spec, truth)
}

// checkPieces checks the files of spec laid in pieces or as decoys:
// their fragments cover the file (a decoy's its piece) once, at aligned
// places, in the order asked; no two laid runs of the image overlap; a
// decoy's intact grains are those wholly inside its piece; damage went
// through the fragments.
func checkPieces(t *testing.T, spec Spec, truth *Truth) {
	t.Helper()
	type run struct {
		start, end int64
		what       int
	}
	var runs []run
	for i, fs := range spec.Files {
		f := truth.Files[i]
		fr := f.Fragments
		switch {
		case fs.Decoy != nil:
			d := fs.Decoy
			if f.Decoy == nil || *f.Decoy != *d || len(fr) != 1 || fr[0].FileOffset != d.At || fr[0].Length != d.Length || f.ImageOffset != fr[0].ImageOffset || f.Descriptor.Laid() {
				t.Fatalf("file %d: decoy %+v laid as %+v at %d (descriptor %+v)", i, d, fr, f.ImageOffset, f.Descriptor)
			}
			if fr[0].ImageOffset%fileAlign != 0 {
				t.Errorf("file %d: decoy at unaligned image offset %d", i, fr[0].ImageOffset)
			}
		case fs.Pieces > 1:
			if len(fr) != fs.Pieces || f.ImageOffset != fr[0].ImageOffset || fr[0].Length < min(firstPiece, f.Length) {
				t.Fatalf("file %d: %d pieces asked, fragments %+v, image offset %d", i, fs.Pieces, fr, f.ImageOffset)
			}
			var off int64
			for k, p := range fr {
				if p.FileOffset != off || p.Length <= 0 || p.ImageOffset%fileAlign != 0 || (k < len(fr)-1 && p.Length%fileAlign != 0) {
					t.Fatalf("file %d: piece %d is %+v, want file offset %d, aligned", i, k, p, off)
				}
				off += p.Length
			}
			if off != f.Length {
				t.Fatalf("file %d: pieces cover %d of %d bytes", i, off, f.Length)
			}
			inOrder := slices.IsSortedFunc(fr, func(a, b Fragment) int { return cmp.Compare(a.ImageOffset, b.ImageOffset) })
			if inOrder != fs.InOrder {
				t.Errorf("file %d: pieces in image order %v, asked %v: %+v", i, inOrder, fs.InOrder, fr)
			}
			for k := 1; k < len(fr) && fs.InOrder; k++ {
				if fr[k].ImageOffset <= fr[k-1].ImageOffset+fr[k-1].Length {
					t.Errorf("file %d: in-order pieces %d and %d touch: no gap between them", i, k-1, k)
				}
			}
		default:
			if fr != nil {
				t.Fatalf("file %d laid in one run has fragments %+v", i, fr)
			}
			fr = []Fragment{{0, f.ImageOffset, f.Length}}
		}
		for _, p := range fr {
			runs = append(runs, run{p.ImageOffset, p.ImageOffset + p.Length, i})
		}
		if d := f.Descriptor; d.Laid() {
			runs = append(runs, run{d.ImageOffset, d.ImageOffset + d.Length, i})
		}
		checkPieceGrains(t, f)
		checkPieceDamage(t, f)
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.start, b.start) })
	for k := 1; k < len(runs); k++ {
		if runs[k].start < runs[k-1].end {
			t.Errorf("file %d's run at %d overlaps file %d's [%d, %d)", runs[k].what, runs[k].start, runs[k-1].what, runs[k-1].start, runs[k-1].end)
		}
	}
	if n := len(runs); n > 0 && runs[n-1].end > truth.ImageSize {
		t.Errorf("file %d's run ends at %d, past the image", runs[n-1].what, runs[n-1].end)
	}
}

// checkPieceGrains checks a file's grains against its fragments: every
// grain of a pieced file is laid, at its mapped place; a decoy's grain is
// intact exactly when it lies wholly in the piece and nothing damaged it,
// and one wholly outside is not laid.
func checkPieceGrains(t *testing.T, f FileTruth) {
	t.Helper()
	if f.Fragments == nil {
		return
	}
	damaged := 0
	for _, d := range f.Damage {
		damaged += len(d.Ranges)
	}
	intact := 0
	for _, g := range f.Grains {
		laid := int64(0)
		for _, p := range mapRange(f.Fragments, g.FileOffset, g.Length) {
			laid += p.Length
		}
		inside := laid == g.Length
		switch {
		case f.Decoy == nil && !inside:
			t.Fatalf("file %d grain %d at file offset %d: %d of %d bytes laid", f.Index, g.Grain, g.FileOffset, laid, g.Length)
		case !inside && g.Intact, damaged == 0 && inside != g.Intact:
			t.Errorf("file %d grain %d at file offset %d: intact %v, %d of %d bytes laid", f.Index, g.Grain, g.FileOffset, g.Intact, laid, g.Length)
		case laid == 0 && (g.ImageOffset != -1 || g.Pieces != nil):
			t.Errorf("file %d grain %d, not laid: image offset %d, pieces %v", f.Index, g.Grain, g.ImageOffset, g.Pieces)
		}
		if g.Intact {
			intact++
		}
	}
	if intact != f.IntactGrains {
		t.Errorf("file %d: %d intact grains listed, %d counted", f.Index, intact, f.IntactGrains)
	}
	if f.Decoy != nil && (f.IntactGrains == 0 || f.IntactGrains == len(f.Grains)) {
		t.Errorf("file %d: decoy with %d of %d grains intact", f.Index, f.IntactGrains, len(f.Grains))
	}
}

// checkPieceDamage checks that an encrypted pieced file's ranges are its
// chunks mapped through its fragments, and its grains intact exactly
// where no chunk touches them.
func checkPieceDamage(t *testing.T, f FileTruth) {
	t.Helper()
	if f.Fragments == nil || f.Decoy != nil {
		return
	}
	for _, d := range f.Damage {
		if d.Kind != EncryptChunks {
			continue
		}
		chunks := d.Chunks(f.Length)
		var want []Range
		for _, c := range chunks {
			for _, p := range mapRange(f.Fragments, c[0], c[1]-c[0]) {
				want = append(want, Range{ImageOffset: p.ImageOffset, Length: p.Length, Fill: "noise"})
			}
		}
		if !slices.Equal(d.Ranges, want) {
			t.Errorf("file %d: ranges %v, want %v", f.Index, d.Ranges, want)
		}
		broken := 0
		for _, g := range f.Grains {
			hit := false
			for _, c := range chunks {
				hit = hit || (g.FileOffset < c[1] && c[0] < g.FileOffset+g.Length)
			}
			if hit == g.Intact {
				t.Errorf("file %d grain %d at %d: intact %v, chunk overlap %v", f.Index, g.Grain, g.FileOffset, g.Intact, hit)
			}
			if hit {
				broken++
			}
		}
		if broken == 0 {
			t.Errorf("file %d: the encryption broke no grain", f.Index)
		}
	}
}

func TestPieceSpecErrors(t *testing.T) {
	base := func() Spec {
		return Spec{Seed: 1, ImageSize: 16 << 20, Disks: []DiskSpec{{ID: 1, Capacity: 4 << 20}}, Files: []FileSpec{{Disk: 1, Variant: OursSparse}}}
	}
	decoy := func(at, n int64) func(*Spec) {
		return func(s *Spec) { s.Files[0].Decoy = &DecoyPiece{At: at, Length: n} }
	}
	host := &HostSpec{FS: FSExt4, Offset: 1 << 20, Size: 8 << 20}
	cases := map[string]func(*Spec){
		"pieces negative":      func(s *Spec) { s.Files[0].Pieces = -1 },
		"pieces too many":      func(s *Spec) { s.Files[0].Pieces = MaxFragments + 1 },
		"pieces on a host":     func(s *Spec) { s.Files[0].Pieces, s.Host = 4, host },
		"decoy on a host":      func(s *Spec) { decoy(4096, 4096)(s); s.Host = host },
		"in order, no pieces":  func(s *Spec) { s.Files[0].InOrder = true },
		"in order, one piece":  func(s *Spec) { s.Files[0].Pieces, s.Files[0].InOrder = 1, true },
		"pieces at an offset":  func(s *Spec) { s.Files[0].Pieces, s.Files[0].Offset = 3, 1<<20 },
		"decoy in pieces":      func(s *Spec) { decoy(4096, 4096)(s); s.Files[0].Pieces = 2 },
		"decoy at 0":           decoy(0, 4096),
		"decoy negative":       decoy(-4096, 4096),
		"decoy unaligned":      decoy(512, 4096),
		"decoy empty":          decoy(4096, 0),
		"decoy short cluster":  decoy(4096, 1000),
		"decoy huge":           decoy(4096, 1<<62),
		"decoy past the file":  decoy(2<<20, 4<<20),
		"too short for pieces": func(s *Spec) { s.Disks[0].Capacity, s.Files[0].Pieces = 1<<20, 40 },
	}
	wantSpecErrors(t, base, cases)
}

// TestFragmentedScenarios generates fragmented and fragmented-encrypted
// at the CI size: every file in the pieces asked, the decoy headerless,
// and each undamaged file read through its fragments is its disk to
// qemu-img.
func TestFragmentedScenarios(t *testing.T) {
	if !HaveTools(FSExt4) || !HaveTools(FSNTFS) {
		tooltest.Missing(t, "the guests need mkfs.ext4, debugfs, mkntfs and ntfscp")
	}
	for _, name := range []string{"fragmented", "fragmented-encrypted"} {
		t.Run(name, func(t *testing.T) {
			spec, err := Scenario(name, 1, 256<<20, HaveQemu())
			if err != nil {
				t.Fatal(err)
			}
			truth, _ := generateHost(t, spec)
			checkGrains(t, truth)
			checkPieces(t, spec, truth)
			img, err := os.Open(truth.Image)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			decoys := 0
			for i, fs := range spec.Files {
				f := truth.Files[i]
				t.Logf("file %d: disk %d %s, %d bytes in %d fragments, %d of %d grains intact", i, f.Disk, f.Variant, f.Length, len(f.Fragments), f.IntactGrains, len(f.Grains))
				if fs.Decoy != nil {
					decoys++
					var magic [4]byte
					if _, err := img.ReadAt(magic[:], f.ImageOffset); err != nil || string(magic[:]) == "KDMV" || f.Damage != nil {
						t.Errorf("file %d: decoy starts %q (%v), damage %+v", i, magic, err, f.Damage)
					}
					continue
				}
				if fs.Pieces < 2 || (len(f.Damage) == 0) == (name == "fragmented-encrypted") {
					t.Errorf("file %d: %d pieces, damage %+v", i, fs.Pieces, f.Damage)
				}
				if len(f.Damage) != 0 || !haveTool(t, "qemu-img") {
					continue
				}
				b := make([]byte, f.Length)
				if err := f.ReadFile(img, 0, b); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), f.Name)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				tooltest.Compare(t, path, truth.Disk(f.Disk).Raw)
			}
			if decoys != 1 {
				t.Errorf("%d decoys, want 1", decoys)
			}
		})
	}
}

// TestPlaceOutOfOrder places two-piece groups in images with little room
// to spare, so that both ways of breaking their order (the last piece
// before the first, the first after the last) are needed: every group
// comes out of order, or the image is a spec error.
func TestPlaceOutOfOrder(t *testing.T) {
	placed, failed := 0, 0
	for seed := range uint64(200) {
		size := int64(3<<20 + int64(seed%5)*(512<<10))
		items := []placeItem{
			{what: "a", length: 1 << 20, group: 1, seq: 0},
			{what: "b", length: 1<<20 + 8192, group: 1, seq: 1},
			{what: "c", length: 64 << 10},
		}
		at, err := place(seed, size, items)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("seed %d: %v", seed, err)
			}
			failed++
			continue
		}
		placed++
		if at[0] <= at[1] {
			t.Errorf("seed %d: pieces at %d and %d, in file order", seed, at[0], at[1])
		}
		for i, it := range items {
			if at[i]%fileAlign != 0 || at[i]+it.length > size {
				t.Errorf("seed %d: %s at %d", seed, it.what, at[i])
			}
			for j := range i {
				if at[i] < at[j]+items[j].length && at[j] < at[i]+it.length {
					t.Errorf("seed %d: %s and %s overlap", seed, it.what, items[j].what)
				}
			}
		}
	}
	t.Logf("%d placed out of order, %d with no room to", placed, failed)
	if placed == 0 {
		t.Error("no group placed")
	}
}
