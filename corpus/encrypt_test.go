package corpus

import (
	"fmt"
	"slices"
	"testing"
)

const mib = 1 << 20

// mibs is a list of [start, end) ranges written in MiB.
func mibs(r ...float64) [][2]int64 {
	var out [][2]int64
	for i := 0; i+1 < len(r); i += 2 {
		out = append(out, [2]int64{int64(r[i] * mib), int64(r[i+1] * mib)})
	}
	return out
}

func TestChunks(t *testing.T) {
	enc := func(stride, at, head int64) Damage {
		return Damage{Kind: EncryptChunks, Stride: stride, At: at, Head: head}
	}
	for _, c := range []struct {
		name   string
		d      Damage
		length int64
		stride int64 // EffectiveStride
		want   [][2]int64
	}{
		{"2MiB", enc(2*mib, 0, 0), 8 * mib, 2 * mib, mibs(0, 1, 2, 3, 4, 5, 6, 7)},
		{"2MiB-phase1", enc(2*mib, mib, 0), 8*mib + 512, 2 * mib, mibs(1, 2, 3, 4, 5, 6, 7, 8)},
		{"4MiB-phase1-clipped", enc(4*mib, mib, 0), 9*mib + mib/2, 4 * mib, mibs(1, 2, 5, 6, 9, 9.5)},
		{"8MiB-phase3-head", enc(8*mib, 3*mib, 64<<10), 20 * mib, 8 * mib, mibs(0, 0.0625, 3, 4, 11, 12, 19, 20)},
		{"16MiB-head-merged", enc(16*mib, 0, 2*mib), 40 * mib, 16 * mib, mibs(0, 2, 16, 17, 32, 33)},
		{"16MiB-phase5-until", Damage{Kind: EncryptChunks, Stride: 16 * mib, At: 5 * mib, Until: 30 * mib}, 64 * mib, 16 * mib, mibs(5, 6, 21, 22)},
		{"until-mid-chunk", Damage{Kind: EncryptChunks, Stride: 2 * mib, Until: 4*mib + mib/2}, 10 * mib, 2 * mib, mibs(0, 1, 2, 3, 4, 4.5)},
		{"small-chunks", Damage{Kind: EncryptChunks, Chunk: 64 << 10, Stride: mib, At: 128 << 10}, 3 * mib, mib, mibs(0.125, 0.1875, 1.125, 1.1875, 2.125, 2.1875)},
		{"head-only", enc(4*mib, 8*mib, 100), 2 * mib, 4 * mib, [][2]int64{{0, 100}}},
		{"head-past-end", enc(4*mib, 0, 10*mib), 3 * mib, 4 * mib, mibs(0, 3)},
		{"nothing", enc(4*mib, 8*mib, 0), 2 * mib, 4 * mib, nil},
		{"empty-file", enc(4*mib, 0, 0), 0, 4 * mib, nil},
		// ESXiArgs: (1 + size/16 MiB) MiB, at least 2 MiB.
		{"size-step-10MiB", Damage{Kind: EncryptChunks, SizeStep: true}, 10 * mib, 2 * mib, mibs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"size-step-16MiB", Damage{Kind: EncryptChunks, SizeStep: true}, 16 * mib, 2 * mib, mibs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)},
		{"size-step-40MiB", Damage{Kind: EncryptChunks, SizeStep: true, At: mib, Head: 4096}, 40 * mib, 3 * mib,
			append([][2]int64{{0, 4096}}, mibs(1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22, 23, 25, 26, 28, 29, 31, 32, 34, 35, 37, 38)...)},
		{"size-step-100MiB", Damage{Kind: EncryptChunks, SizeStep: true}, 100 * mib, 7 * mib, mibs(0, 1, 7, 8, 14, 15, 21, 22, 28, 29, 35, 36, 42, 43, 49, 50, 56, 57, 63, 64, 70, 71, 77, 78, 84, 85, 91, 92, 98, 99)},
		// The host damage's MiBs: a 1 MiB period encrypts MiB after MiB,
		// and touching ranges are not merged.
		{"host-every-MiB", HostDamage{Kind: EncryptEveryNthMiB, N: 1}.fileDamage(), 2*mib + 100, mib, mibs(0, 1, 1, 2, 2, 2+100.0/mib)},
		{"host-3-phase1-head", HostDamage{Kind: EncryptEveryNthMiB, N: 3, Offset: mib, Head: 512}.fileDamage(), 8 * mib, 3 * mib, append([][2]int64{{0, 512}}, mibs(1, 2, 4, 5, 7, 8)...)},
		{"host-size-step", HostDamage{Kind: EncryptEveryNthMiB, N: 9, SizeStep: true}.fileDamage(), 33 * mib, 3 * mib, mibs(0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 21, 22, 24, 25, 27, 28, 30, 31)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := EffectiveStride(c.d, c.length); got != c.stride {
				t.Errorf("stride %d, want %d", got, c.stride)
			}
			if got := c.d.Chunks(c.length); !slices.Equal(got, c.want) {
				t.Errorf("chunks\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

// checkLattice checks every EncryptChunks damage of the contiguous files
// of truth: its ranges are Chunks' lattice at the file's offset, all noise,
// the size-step stride is recorded, and exactly the grains a chunk touches
// are not intact (for files with no other damage).
func checkLattice(t *testing.T, truth *Truth) {
	t.Helper()
	for _, f := range truth.Files {
		var chunks [][2]int64
		for _, d := range f.Damage {
			if d.Kind != EncryptChunks {
				continue
			}
			c := d.Chunks(f.Length)
			chunks = append(chunks, c...)
			var want []Range
			for _, r := range c {
				want = append(want, Range{ImageOffset: f.ImageOffset + r[0], Length: r[1] - r[0], Fill: "noise"})
			}
			if !slices.Equal(d.Ranges, want) {
				t.Errorf("file %d: ranges %v, want %v", f.Index, d.Ranges, want)
			}
			if d.SizeStep && d.Stride != EffectiveStride(d.Damage, f.Length) {
				t.Errorf("file %d: size-step stride %d recorded, want %d", f.Index, d.Stride, EffectiveStride(d.Damage, f.Length))
			}
		}
		if len(chunks) == 0 || len(f.Damage) != 1 {
			continue
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
		t.Logf("file %d (%s, %d bytes): %d chunks, %d of %d grains broken", f.Index, f.Variant, f.Length, len(chunks), broken, len(f.Grains))
		if broken == 0 {
			t.Errorf("file %d: the encryption broke no grain", f.Index)
		}
	}
}

// TestEncryptChunks lays sparse, stream and flat files with clean copies
// and encrypted ones of strides 2, 4, 8 and 16 MiB with phases, a head, an
// end and a size-step: the bytes differ from the clean copy exactly in the
// lattice, and the truth marks exactly the touched grains.
func TestEncryptChunks(t *testing.T) {
	enc := func(d Damage) []Damage { d.Kind = EncryptChunks; return []Damage{d} }
	spec := Spec{
		Seed: 53, ImageSize: 192 << 20,
		Disks: []DiskSpec{{ID: 1, Capacity: 34 << 20}, {ID: 2, Capacity: 20<<20 + 4096, ZeroFraction: 0.5}},
		Files: []FileSpec{
			{Disk: 1, Variant: OursSparse},
			{Disk: 1, Variant: OursSparse, Damage: enc(Damage{Stride: 2 * mib, At: mib})},
			{Disk: 1, Variant: OursSparse, Damage: enc(Damage{Stride: 16 * mib, Head: 64 << 10, Until: 20 * mib})},
			{Disk: 2, Variant: VMFSFlat},
			{Disk: 2, Variant: VMFSFlat, Damage: enc(Damage{Stride: 8 * mib, At: 3 * mib})},
			{Disk: 2, Variant: VMFSFlat, Damage: enc(Damage{SizeStep: true, Head: 4096})},
			{Disk: 2, Variant: OursStreamFront},
			{Disk: 2, Variant: OursStreamFront, Damage: enc(Damage{Chunk: 16 << 10, Stride: 128 << 10, At: 64 << 10})},
		},
	}
	truth, _ := generate(t, spec)
	checkDamage(t, truth)
	checkLattice(t, truth)
	for _, f := range truth.Files {
		if len(f.Damage) > 0 && len(f.Damage[0].Ranges) < 2 {
			t.Errorf("file %d: %d chunks", f.Index, len(f.Damage[0].Ranges))
		}
	}
	if d := truth.Files[5].Damage[0]; d.Stride != 2*mib || !d.SizeStep {
		t.Errorf("size-step damage recorded as %+v", d.Damage)
	}
}

// TestHostEncryptLattice checks the host encryption's per-file truth: the
// ranges are exactly each listed file's lattice mapped through its
// fragments.
func TestHostEncryptLattice(t *testing.T) {
	for _, c := range []struct {
		fs  string
		dmg HostDamage
	}{
		{FSExt4, HostDamage{Kind: EncryptEveryNthMiB, SizeStep: true, Head: 64 << 10}},
		{FSNTFS, HostDamage{Kind: EncryptEveryNthMiB, N: 2, Offset: 1 << 20, Head: 4096}},
	} {
		t.Run(fmt.Sprintf("%s-%+v", c.fs, c.dmg), func(t *testing.T) {
			truth, _ := generateHost(t, hostSpec(c.fs, 4, 6, c.dmg))
			checkGrains(t, truth)
			hd := truth.Host.Damage[0]
			if len(hd.Files) != len(truth.Files) {
				t.Fatalf("%d files listed, %d laid", len(hd.Files), len(truth.Files))
			}
			var want []Range
			for i, ef := range hd.Files {
				f := truth.Files[ef.FileIndex]
				if ef.FileIndex != i || ef.Descriptor || ef.HostPath != f.HostPath || ef.Size != f.Length || ef.Phase != c.dmg.Offset || ef.Head != c.dmg.Head {
					t.Errorf("file entry %+v for %s (%d bytes)", ef, f.HostPath, f.Length)
				}
				stride := int64(c.dmg.N) << 20
				if c.dmg.SizeStep {
					stride = max((1+f.Length/(16<<20))<<20, 2<<20)
				}
				if ef.Stride != stride {
					t.Errorf("%s: stride %d, want %d", f.HostPath, ef.Stride, stride)
				}
				d := Damage{Kind: EncryptChunks, Chunk: 1 << 20, Stride: ef.Stride, At: ef.Phase, Head: ef.Head}
				for _, ch := range d.Chunks(ef.Size) {
					for _, p := range mapRange(f.Fragments, ch[0], ch[1]-ch[0]) {
						want = append(want, Range{ImageOffset: p.ImageOffset, Length: p.Length, Fill: "noise"})
					}
				}
			}
			if !slices.Equal(hd.Ranges, want) {
				t.Errorf("%d ranges, the listed lattices give %d", len(hd.Ranges), len(want))
			}
		})
	}
}

// TestLatticeScenario generates encrypted-lattice at a small size: every
// file is encrypted on its own lattice, with no clean copy.
func TestLatticeScenario(t *testing.T) {
	spec, err := Scenario("encrypted-lattice", 1, 128<<20, HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	truth, _ := generate(t, spec)
	checkGrains(t, truth)
	checkLattice(t, truth)
	strides := map[int64]bool{}
	for _, f := range truth.Files {
		if len(f.Damage) != 1 || f.Damage[0].Kind != EncryptChunks || f.Fragments != nil {
			t.Fatalf("file %d: damage %+v, fragments %v", f.Index, f.Damage, f.Fragments)
		}
		strides[f.Damage[0].Stride] = true
	}
	if len(strides) < 4 {
		t.Errorf("strides %v: want the files' lattices to differ", strides)
	}
}
