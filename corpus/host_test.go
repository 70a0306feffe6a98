package corpus

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
)

// generateHost is generate, also skipping when a filesystem tool is absent.
func generateHost(t *testing.T, spec Spec) (*Truth, string) {
	t.Helper()
	dir := t.TempDir()
	truth, err := Generate(spec, dir)
	switch {
	case errors.Is(err, ErrNoQemu):
		tooltest.Missing(t, "qemu-img not installed: skipping the qemu variants")
	case errors.Is(err, ErrNoTool):
		tooltest.Missing(t, "%v", err)
	case err != nil:
		t.Fatal(err)
	}
	return truth, dir
}

// hostSpec is a small host volume with every variant on it.
func hostSpec(fs string, seed uint64, frags int, damage ...HostDamage) Spec {
	bs := 4096
	if fs == FSExt4 {
		bs = 1024
	}
	s := Spec{
		Seed: seed, ImageSize: 48 << 20,
		Disks: []DiskSpec{{ID: 1, Capacity: 3 << 20}, {ID: 2, Capacity: 2<<20 + 1536, ZeroFraction: 0.5}},
		Files: []FileSpec{
			{Disk: 1, Variant: OursSparse},
			{Disk: 2, Variant: VMwareStream},
			{Disk: 2, Variant: OursStreamFront},
			{Disk: 1, Variant: OursSparse, Damage: []Damage{{Kind: Overwrite, At: 100 << 10, Bytes: 64 << 10}}},
		},
		Host: &HostSpec{FS: fs, BlockSize: bs, Offset: 1 << 20, Size: 32 << 20, Fragments: frags, OutOfOrder: true, Damage: damage},
	}
	if fs == FSNTFS {
		s.Host.Size = 24 << 20 // ntfscp stores holes in full; keep it small anyway
	}
	if HaveQemu() {
		s.Files = append(s.Files, FileSpec{Disk: 1, Variant: QemuSparse}, FileSpec{Disk: 2, Variant: QemuStream})
	}
	return s
}

// cutVolume writes the host volume out of the image into its own file.
func cutVolume(t *testing.T, truth *Truth) string {
	t.Helper()
	img, err := os.Open(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	p := filepath.Join(t.TempDir(), "vol.img")
	if err := os.WriteFile(p, readAt(t, img, truth.Host.ImageOffset, truth.Host.Size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkFragments checks each file's fragment map: sorted, inside the
// volume, not overlapping, counts within reach of the target.
func checkFragments(t *testing.T, truth *Truth, target int) {
	t.Helper()
	h := truth.Host
	for _, f := range truth.Files {
		if len(f.Fragments) == 0 || f.Fragments[0].FileOffset != 0 || f.Fragments[0].ImageOffset != f.ImageOffset {
			t.Fatalf("file %d: fragments %v do not start at the header %d", f.Index, f.Fragments, f.ImageOffset)
		}
		var stored int64
		// Fragments in image order, to count disk pieces.
		for i, fr := range f.Fragments {
			if fr.ImageOffset < h.ImageOffset || fr.ImageOffset+fr.Length > h.ImageOffset+h.Size || fr.FileOffset+fr.Length > f.Length {
				t.Fatalf("file %d fragment %+v outside the volume or file", f.Index, fr)
			}
			if i > 0 && fr.FileOffset < f.Fragments[i-1].FileOffset+f.Fragments[i-1].Length {
				t.Fatalf("file %d: fragments overlap or unsorted", f.Index)
			}
			stored += fr.Length
		}
		t.Logf("file %d %s %s: %d bytes, %d stored, %d fragments", f.Index, f.Variant, f.HostPath, f.Length, stored, len(f.Fragments))
		if target > 1 && len(f.Fragments) < 2 {
			t.Errorf("file %d: %d fragments, asked for %d", f.Index, len(f.Fragments), target)
		}
		if target > 1 && pieces(f.Fragments) > 3*target+8 {
			t.Errorf("file %d: %d disk pieces, asked for %d", f.Index, pieces(f.Fragments), target)
		}
	}
}

// pieces counts runs of the fragment map that are not physically
// contiguous with the previous one (a host hole between two stored runs
// that sit next to each other on disk is not a new piece).
func pieces(fs []Fragment) int {
	n := 0
	for i, f := range fs {
		if i == 0 || fs[i-1].ImageOffset+fs[i-1].Length != f.ImageOffset {
			n++
		}
	}
	return n
}

func TestExt4Host(t *testing.T) {
	spec := hostSpec(FSExt4, 21, 12)
	truth, dir := generateHost(t, spec)
	checkFragments(t, truth, 12)
	checkGrains(t, truth)
	if len(truth.Host.Structures) == 0 || truth.Host.Structures[0].Name != "superblock" || truth.Host.Structures[0].ImageOffset != 1<<20+1024 {
		t.Errorf("structures start %+v", truth.Host.Structures[:1])
	}
	// The volume checks clean with e2fsck, as the tools wrote it.
	if haveTool(t, "e2fsck") {
		vol := cutVolume(t, truth)
		if out, err := exec.Command("e2fsck", "-fn", vol).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, out)
		}
	}
	// Same spec, same bytes.
	_, again := generateHost(t, spec)
	for _, name := range []string{ImageName, TruthName} {
		if hashFile(t, filepath.Join(dir, name)) != hashFile(t, filepath.Join(again, name)) {
			t.Errorf("%s differs between two runs of the same ext4 spec", name)
		}
	}
}

// TestHostDamage builds a volume with and without each damage (the same
// seed gives the same volume) and checks the image differs exactly inside
// the recorded ranges, zero ranges read zero, and grains are marked.
func TestHostDamage(t *testing.T) {
	for _, tc := range []struct {
		fs  string
		dmg HostDamage
	}{
		{FSExt4, HostDamage{Kind: ZeroSuperblocks}},
		{FSExt4, HostDamage{Kind: QuickFormat}},
		{FSExt4, HostDamage{Kind: WipeHostMetadata}},
		{FSExt4, HostDamage{Kind: EncryptEveryNthMiB, N: 2}},
		{FSNTFS, HostDamage{Kind: ZeroMFT}},
		{FSNTFS, HostDamage{Kind: ZeroBootSector}},
		{FSNTFS, HostDamage{Kind: QuickFormat}},
		{FSNTFS, HostDamage{Kind: WipeHostMetadata}},
		{FSNTFS, HostDamage{Kind: EncryptEveryNthMiB, N: 3, Offset: 1 << 20}},
	} {
		t.Run(tc.fs+"-"+string(tc.dmg.Kind), func(t *testing.T) {
			clean, _ := generateHost(t, hostSpec(tc.fs, 4, 6))
			hurt, _ := generateHost(t, hostSpec(tc.fs, 4, 6, tc.dmg))
			a, err := os.ReadFile(clean.Image)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(hurt.Image)
			if err != nil {
				t.Fatal(err)
			}
			ranges := hurt.Host.Damage[0].Ranges
			in := make([]bool, len(a))
			for _, r := range ranges {
				for i := r.ImageOffset; i < r.End(); i++ {
					in[i] = true
				}
				switch r.Fill {
				case "zero":
					if !bytes.Equal(b[r.ImageOffset:r.End()], make([]byte, r.Length)) {
						t.Errorf("zero range %+v is not zero", r)
					}
				case "noise", "mkfs":
					if bytes.Equal(b[r.ImageOffset:r.End()], a[r.ImageOffset:r.End()]) && r.Fill == "noise" {
						t.Errorf("noise range %+v unchanged", r)
					}
				}
			}
			for i := range a {
				if !in[i] && a[i] != b[i] {
					t.Fatalf("byte %#x changed outside every recorded range", i)
				}
			}
			countBroken := func(tr *Truth) int {
				n := 0
				for _, f := range tr.Files {
					for _, g := range f.Grains {
						if !g.Intact {
							n++
						}
					}
				}
				return n
			}
			base, broken := countBroken(clean), countBroken(hurt)
			t.Logf("%d ranges, %d grains broken (%d by the file damage)", len(ranges), broken, base)
			switch tc.dmg.Kind {
			case EncryptEveryNthMiB:
				if broken <= base {
					t.Errorf("encryption broke no grain")
				}
			case QuickFormat:
				// mkfs may write over file data; the ranges say where.
			default:
				if broken != base {
					t.Errorf("%s broke %d grains: metadata damage must not touch file data", tc.dmg.Kind, broken-base)
				}
			}
			checkGrains(t, hurt)
		})
	}
}

func TestNTFSHost(t *testing.T) {
	spec := hostSpec(FSNTFS, 22, 9)
	truth, dir := generateHost(t, spec)
	checkFragments(t, truth, 9)
	checkGrains(t, truth)
	outOfOrder := 0
	for _, f := range truth.Files {
		if pieces(f.Fragments) > 9 {
			t.Errorf("file %d: %d pieces, asked for 9", f.Index, pieces(f.Fragments))
		}
		for i := 1; i < len(f.Fragments); i++ {
			if f.Fragments[i].ImageOffset < f.Fragments[i-1].ImageOffset {
				outOfOrder++
				break
			}
		}
	}
	if outOfOrder == 0 {
		t.Error("OutOfOrder gave no file whose pieces go backwards on disk")
	}
	if haveTool(t, "ntfsfix") {
		vol := cutVolume(t, truth)
		if out, err := exec.Command("ntfsfix", "-n", vol).CombinedOutput(); err != nil {
			t.Errorf("ntfsfix -n: %v\n%s", err, out)
		}
	}
	_, again := generateHost(t, spec)
	for _, name := range []string{ImageName, TruthName} {
		if hashFile(t, filepath.Join(dir, name)) != hashFile(t, filepath.Join(again, name)) {
			t.Errorf("%s differs between two runs of the same ntfs spec", name)
		}
	}
}

// TestGuestFS builds ext4 and NTFS guests, lays them as VMDKs (also on an
// ext4 host), and checks the guest filesystems are clean and the grains
// read back through the truth.
func TestGuestFS(t *testing.T) {
	spec := Spec{
		Seed: 31, ImageSize: 64 << 20,
		Disks: []DiskSpec{{ID: 1, Capacity: 16 << 20, FS: FSExt4}, {ID: 2, Capacity: 12 << 20, FS: FSNTFS}},
		Files: []FileSpec{
			{Disk: 1, Variant: OursSparse}, {Disk: 2, Variant: VMwareStream},
			{Disk: 1, Variant: OursStreamFront}, {Disk: 2, Variant: OursSparse},
		},
	}
	truth, dir := generateHost(t, spec)
	checkGrains(t, truth)
	for _, d := range truth.Disks {
		g := d.FS
		if g == nil || len(g.Files) == 0 || d.NonZeroGrains == 0 || d.NonZeroGrains == d.Grains {
			t.Fatalf("disk %d: fs %+v, %d of %d grains non-zero", d.ID, g, d.NonZeroGrains, d.Grains)
		}
		raw, err := os.Open(d.Raw)
		if err != nil {
			t.Fatal(err)
		}
		part := filepath.Join(t.TempDir(), "part.img")
		if err := os.WriteFile(part, readAt(t, raw, g.PartitionOffset, g.PartitionSize), 0o644); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		check := []string{"e2fsck", "-fn", part}
		if g.FS == FSNTFS {
			check = []string{"ntfsfix", "-n", part}
		}
		if !haveTool(t, check[0]) {
			continue
		}
		if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
			t.Errorf("disk %d: %v: %v\n%s", d.ID, check, err, out)
		}
		t.Logf("disk %d %s: %d files, %d of %d grains non-zero", d.ID, g.FS, len(g.Files), d.NonZeroGrains, d.Grains)
	}
	_, again := generateHost(t, spec)
	for _, name := range []string{ImageName, TruthName, RawName(1), RawName(2)} {
		if hashFile(t, filepath.Join(dir, name)) != hashFile(t, filepath.Join(again, name)) {
			t.Errorf("%s differs between two runs of a guest-filesystem spec", name)
		}
	}
}

// TestHostScenarios generates every host scenario at a small size: the
// truth must read back grain by grain.
func TestHostScenarios(t *testing.T) {
	for _, name := range []string{"ext4-host-wiped", "ntfs-host-encrypted"} {
		t.Run(name, func(t *testing.T) {
			spec, err := Scenario(name, 3, 96<<20, HaveQemu())
			if err != nil {
				t.Fatal(err)
			}
			truth, _ := generateHost(t, spec)
			checkGrains(t, truth)
			if len(truth.Host.Damage) != 1 || len(truth.Host.Damage[0].Ranges) == 0 {
				t.Errorf("damage %+v", truth.Host.Damage)
			}
		})
	}
}

func TestHostSpecErrors(t *testing.T) {
	base := func() Spec {
		return Spec{Seed: 1, ImageSize: 64 << 20, Disks: []DiskSpec{{ID: 1, Capacity: 1 << 20}}, Files: []FileSpec{{Disk: 1, Variant: OursSparse}},
			Host: &HostSpec{FS: FSExt4, Offset: 1 << 20, Size: 32 << 20}}
	}
	cases := map[string]func(*Spec){
		"fs":          func(s *Spec) { s.Host.FS = "fat" },
		"block":       func(s *Spec) { s.Host.BlockSize = 2048 },
		"cluster":     func(s *Spec) { s.Host.FS, s.Host.BlockSize = FSNTFS, 3000 },
		"offset":      func(s *Spec) { s.Host.Offset = 512 },
		"past end":    func(s *Spec) { s.Host.Offset = 40 << 20 },
		"tiny":        func(s *Spec) { s.Host.Size = 1 << 20 },
		"fragments":   func(s *Spec) { s.Host.Fragments = 41 },
		"file frags":  func(s *Spec) { s.Files[0].Fragments = -1 },
		"fixed file":  func(s *Spec) { s.Files[0].Offset = 4096 },
		"ntfs damage": func(s *Spec) { s.Host.Damage = []HostDamage{{Kind: ZeroMFT}} },
		"ext4 damage": func(s *Spec) { s.Host.FS, s.Host.Damage = FSNTFS, []HostDamage{{Kind: ZeroSuperblocks}} },
		"encrypt":     func(s *Spec) { s.Host.Damage = []HostDamage{{Kind: EncryptEveryNthMiB}} },
		"encrypt head": func(s *Spec) {
			s.Host.Damage = []HostDamage{{Kind: EncryptEveryNthMiB, N: 2, Head: -1}}
		},
		"encrypt negative n": func(s *Spec) {
			s.Host.Damage = []HostDamage{{Kind: EncryptEveryNthMiB, N: -1, SizeStep: true}}
		},
		"encrypt offset": func(s *Spec) {
			s.Host.Damage = []HostDamage{{Kind: EncryptEveryNthMiB, SizeStep: true, Offset: 4096}}
		},
		"unknown":     func(s *Spec) { s.Host.Damage = []HostDamage{{Kind: "burn"}} },
		"guest fs":    func(s *Spec) { s.Disks[0].FS = "zfs" },
		"guest small": func(s *Spec) { s.Disks[0].FS = FSExt4 },
		"too full": func(s *Spec) {
			s.Host.Size = 8 << 20
			s.Disks[0].Capacity = 32 << 20
			s.Disks[0].ZeroFraction = -1
		},
		"ntfs too full": func(s *Spec) {
			s.Host.FS, s.Host.Size = FSNTFS, 8<<20
			s.Disks[0].Capacity = 32 << 20
			s.Disks[0].ZeroFraction = -1
		},
	}
	wantSpecErrors(t, base, cases)
}
