package corpus

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/internal/entropy"
)

// readGuestFile reads a file back from a guest volume with the
// filesystem's own tools.
func readGuestFile(t *testing.T, fs, vol, path string) []byte {
	t.Helper()
	cmd := exec.Command("ntfscat", vol, path)
	if fs == FSExt4 {
		cmd = exec.Command("debugfs", "-R", "cat "+path, vol)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out
}

// guestVolume writes the partition of a guest's raw disk to a file of its
// own and returns its path (the raw disk itself when the volume is the
// whole disk).
func guestVolume(t *testing.T, d DiskTruth) string {
	t.Helper()
	g := d.FS
	if g.PartitionOffset == 0 && g.PartitionSize == d.Capacity {
		return d.Raw
	}
	raw, err := os.Open(d.Raw)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	p := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(p, readAt(t, raw, g.PartitionOffset, g.PartitionSize), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fsck runs e2fsck -fn or ntfsfix -n over a guest volume.
func fsck(t *testing.T, fs, vol string) {
	t.Helper()
	check := []string{"e2fsck", "-fn", vol}
	if fs == FSNTFS {
		check = []string{"ntfsfix", "-n", vol}
	}
	if !haveTool(t, check[0]) {
		return
	}
	if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
		t.Errorf("%v: %v\n%s", check, err, out)
	}
}

// randomBlocks counts the whole 4 KiB blocks of b that look random.
func randomBlocks(b []byte) (random, blocks int) {
	for o := 0; o+4096 <= len(b); o += 4096 {
		blocks++
		if entropy.RandomLooking(b[o : o+4096]) {
			random++
		}
	}
	return random, blocks
}

// TestGuestRandomShare builds 48 MiB guests with binary files and checks,
// reading every file back through the filesystem's tools, that binary
// files start with their format's magic and look random in every block,
// text files in none, the random share of the file bytes is what was
// asked, and the volumes (one of them the whole disk) check clean.
func TestGuestRandomShare(t *testing.T) {
	needTools(t, "debugfs", "ntfscat")
	cases := []struct {
		name    string
		ds      DiskSpec
		wantTop bool // the volume starts at LBA 0
	}{
		{"ext4-half", DiskSpec{FS: FSExt4, RandomShare: 0.5}, false},
		{"ntfs-30pct-16MiB", DiskSpec{FS: FSNTFS, RandomShare: 0.3, FileBytes: 16 << 20}, false},
		{"ext4-no-table-90pct-24MiB", DiskSpec{FS: FSExt4, RandomShare: 0.9, FileBytes: 24 << 20, NoPartitionTable: true}, true},
		{"ntfs-no-table-all", DiskSpec{FS: FSNTFS, RandomShare: 1, NoPartitionTable: true}, true},
	}
	spec := Spec{Seed: 41, ImageSize: 1 << 20}
	for i, c := range cases {
		c.ds.ID, c.ds.Capacity = i+1, 48<<20
		spec.Disks = append(spec.Disks, c.ds)
	}
	truth, _ := generateHost(t, spec)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, d := spec.Disks[i], truth.Disks[i]
			g := d.FS
			wantOff, wantSize := int64(GuestPartitionOffset), ds.Capacity-GuestPartitionOffset
			if c.wantTop {
				wantOff, wantSize = 0, ds.Capacity
			}
			if g.PartitionOffset != wantOff || g.PartitionSize != wantSize || g.Cipher {
				t.Fatalf("partition %d+%d cipher %v, want %d+%d", g.PartitionOffset, g.PartitionSize, g.Cipher, wantOff, wantSize)
			}
			vol := guestVolume(t, d)
			raw, err := os.ReadFile(d.Raw)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.wantTop && ds.FS == FSExt4 && binary.LittleEndian.Uint16(raw[1024+56:]) != 0xef53:
				t.Error("no ext4 superblock at disk offset 1024")
			case c.wantTop && ds.FS == FSNTFS && string(raw[3:11]) != "NTFS    ":
				t.Error("no NTFS boot sector at LBA 0")
			case !c.wantTop && (raw[510] != 0x55 || raw[511] != 0xaa):
				t.Error("no MBR")
			}
			fsck(t, ds.FS, vol)

			var total, binBytes, randomBytes int64
			for _, f := range g.Files {
				total += f.Size
				got := readGuestFile(t, ds.FS, vol, f.Path)
				if int64(len(got)) != f.Size {
					t.Fatalf("%s: %d bytes read, truth says %d", f.Path, len(got), f.Size)
				}
				want := make([]byte, f.Size)
				if f.Binary() {
					guestBinary(spec.Seed, ds.ID, f, 0, want)
				} else {
					guestText(ds.ID, f.Path, 0, want)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: the volume holds other bytes than the file's", f.Path)
				}
				rnd, blocks := randomBlocks(got)
				randomBytes += int64(rnd) * 4096
				if !f.Binary() {
					if rnd > 0 {
						t.Errorf("text file %s: %d random-looking blocks", f.Path, rnd)
					}
					continue
				}
				binBytes += f.Size
				if rnd != blocks || f.Size%(1<<20) != 0 || f.Size < 1<<20 || f.Size > 8<<20 {
					t.Errorf("binary file %s (%d bytes): %d of %d blocks random-looking", f.Path, f.Size, rnd, blocks)
				}
				magic := map[string]string{"jpeg": "\xff\xd8\xff\xe0\x00\x10JFIF\x00", "zip": "PK\x03\x04", "gzip": "\x1f\x8b\x08", "bin": ""}[f.Format]
				ext := map[string]string{"jpeg": ".jpg", "zip": ".zip", "gzip": ".gz", "bin": ".bin"}[f.Format]
				if !bytes.HasPrefix(got, []byte(magic)) || filepath.Ext(f.Path) != ext {
					t.Errorf("%s file %s starts % x", f.Format, f.Path, got[:16])
				}
			}
			want := ds.FileBytes
			if want == 0 {
				want = min((wantSize)/10, 8<<20)
			}
			share := float64(randomBytes) / float64(total)
			t.Logf("%d files, %d bytes (want %d), %d binary: measured random share %.2f, asked %.2f", len(g.Files), total, want, binBytes, share, ds.RandomShare)
			if math.Abs(share-ds.RandomShare) > 0.15 {
				t.Errorf("random share %.2f, asked %.2f", share, ds.RandomShare)
			}
			if ds.RandomShare == 1 && binBytes != total {
				t.Errorf("random share 1 left %d text bytes", total-binBytes)
			}
			if ds.FileBytes != 0 && total != ds.FileBytes {
				t.Errorf("files hold %d bytes, asked %d", total, ds.FileBytes)
			}
		})
	}
}

// TestCipherGuest builds guests twice, in the clear and as cipher text,
// and checks the cipher partition block by block against the clear one:
// zero blocks (free space) stay zero, every other block but the boot
// sector's looks random, the first sector is a BitLocker-like boot
// sector, and nothing outside the partition changed.
func TestCipherGuest(t *testing.T) {
	for name, ds := range map[string]DiskSpec{
		"ntfs":          {ID: 1, Capacity: 24 << 20, FS: FSNTFS, RandomShare: 0.3, FileBytes: 6 << 20},
		"ext4-no-table": {ID: 2, Capacity: 20 << 20, FS: FSExt4, FileBytes: 4 << 20, NoPartitionTable: true},
		"ext4-gpt":      {ID: 3, Capacity: 20 << 20, FS: FSExt4, GPT: true},
	} {
		t.Run(name, func(t *testing.T) {
			inClear := Spec{Seed: 43, ImageSize: 32 << 20, Disks: []DiskSpec{ds}}
			enc := inClear
			enc.Disks = []DiskSpec{ds}
			enc.Disks[0].Cipher = true
			enc.Files = []FileSpec{{Disk: ds.ID, Variant: OursSparse}}
			plain, _ := generateHost(t, inClear)
			truth, _ := generateHost(t, enc)
			checkGrains(t, truth)
			pg, g := plain.Disks[0].FS, truth.Disks[0].FS
			if !g.Cipher || g.FS != ds.FS || !slices.Equal(g.Files, pg.Files) || g.PartitionOffset != pg.PartitionOffset || g.PartitionSize != pg.PartitionSize {
				t.Fatalf("cipher truth %+v, clear %+v", g, pg)
			}
			a, err := os.ReadFile(plain.Disks[0].Raw)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(truth.Disks[0].Raw)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := g.PartitionOffset, g.PartitionOffset+g.PartitionSize
			if !bytes.Equal(a[:lo], b[:lo]) || !bytes.Equal(a[hi:], b[hi:]) {
				t.Error("bytes outside the partition changed")
			}
			if !ds.NoPartitionTable && !ds.GPT {
				if want := map[string]byte{FSNTFS: 0x07, FSExt4: 0x83}[ds.FS]; b[446+4] != want {
					t.Errorf("MBR type %#x, want %#x", b[446+4], want)
				}
			}
			boot := b[lo : lo+512]
			if !bytes.HasPrefix(boot, []byte("\xeb\x58\x90-FVE-FS-")) || binary.LittleEndian.Uint16(boot[11:]) != 512 || boot[510] != 0x55 || boot[511] != 0xaa {
				t.Errorf("boot sector starts % x", boot[:16])
			}
			data := 0
			for o := lo; o < hi; o += 4096 {
				pb, cb := a[o:o+4096], b[o:o+4096]
				switch {
				case o == lo: // the boot sector's block
				case entropy.Zero(pb) != entropy.Zero(cb):
					t.Fatalf("partition block at %d: zero %v in the clear, %v as cipher text", o-lo, entropy.Zero(pb), entropy.Zero(cb))
				case entropy.Zero(cb):
				case !entropy.RandomLooking(cb) || bytes.Equal(pb, cb):
					t.Fatalf("partition block at %d is not cipher text", o-lo)
				default:
					data++
				}
			}
			t.Logf("%d cipher blocks of %d", data, (hi-lo)/4096)
			if data == 0 {
				t.Error("no cipher block")
			}
		})
	}
}

// TestRandomMiBs checks a synthetic disk's random MiBs: distinct,
// MiB-aligned past MiB 0 and inside the capacity, random-looking in every
// block, listed as random grains; the other grains are exactly those of
// the same disk without them.
func TestRandomMiBs(t *testing.T) {
	base := DiskSpec{ID: 7, Capacity: 16<<20 + 1536, ZeroFraction: 0.9}
	with := base
	with.RandomMiBs = 6
	plain, d := newDisk(5, base), newDisk(5, with)
	if len(d.randMiBs) != 6 || !slices.IsSorted(d.randMiBs) || len(slices.Compact(slices.Clone(d.randMiBs))) != 6 {
		t.Fatalf("random MiBs %v", d.randMiBs)
	}
	a, b := make([]byte, grainBytes), make([]byte, grainBytes)
	for g := range d.grains {
		inMiB := d.inRandomMiB(g)
		pa, pb := plain.fill(g, a), d.fill(g, b)
		_, listed := slices.BinarySearch(d.random, g)
		switch {
		case inMiB && (!pb || !listed):
			t.Fatalf("grain %d of a random MiB: data %v, listed %v", g, pb, listed)
		case inMiB:
			if rnd, blocks := randomBlocks(b); rnd != blocks || bytes.Contains(b, []byte("vmdkcarve")) {
				t.Fatalf("grain %d of a random MiB: %d of %d blocks random-looking", g, rnd, blocks)
			}
		case pa != pb || !bytes.Equal(a[:d.grainLen(g)], b[:d.grainLen(g)]):
			t.Fatalf("grain %d outside the random MiBs differs from the disk without them", g)
		}
	}
	for _, off := range d.randMiBs {
		if off == 0 || off%(1<<20) != 0 || off+1<<20 > with.Capacity {
			t.Errorf("random MiB at %d", off)
		}
	}
	// Every MiB but MiB 0 can be random.
	all := DiskSpec{ID: 8, Capacity: 16 << 20, RandomMiBs: 15}
	if d := newDisk(5, all); len(d.randMiBs) != 15 || d.randMiBs[0] != 1<<20 || d.nonZero < 15*16 {
		t.Errorf("15 of 15 random MiBs: %v, %d non-zero grains", d.randMiBs, d.nonZero)
	}

	// Laid as files, the truth lists them and the grains read back.
	spec := Spec{Seed: 5, ImageSize: 48 << 20, Disks: []DiskSpec{with},
		Files: []FileSpec{{Disk: 7, Variant: OursSparse}, {Disk: 7, Variant: VMFSFlat}, {Disk: 7, Variant: VMwareStream}}}
	truth, _ := generate(t, spec)
	checkGrains(t, truth)
	dt := truth.Disk(7)
	if !slices.Equal(dt.RandomMiBs, d.randMiBs) || !slices.Equal(dt.RandomGrains, d.random) || dt.NonZeroGrains != d.nonZero {
		t.Errorf("truth random MiBs %v grains %d, want %v %d", dt.RandomMiBs, len(dt.RandomGrains), d.randMiBs, len(d.random))
	}
	raw, err := os.ReadFile(dt.Raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range dt.RandomMiBs {
		if rnd, blocks := randomBlocks(raw[off : off+1<<20]); rnd != blocks {
			t.Errorf("raw MiB at %d: %d of %d blocks random-looking", off, rnd, blocks)
		}
	}
}

// TestRandomDeterministic generates a spec using every new content
// feature twice: the same bytes and truth.
func TestRandomDeterministic(t *testing.T) {
	spec := Spec{
		Seed: 47, ImageSize: 96 << 20,
		Disks: []DiskSpec{
			{ID: 1, Capacity: 16 << 20, FS: FSExt4, RandomShare: 0.6, FileBytes: 6 << 20},
			{ID: 2, Capacity: 12 << 20, FS: FSNTFS, NoPartitionTable: true, Cipher: true, RandomShare: 0.4},
			{ID: 3, Capacity: 20 << 20, RandomMiBs: 4},
		},
		Files: []FileSpec{
			{Disk: 1, Variant: OursSparse},
			{Disk: 2, Variant: VMwareStream},
			{Disk: 3, Variant: OursSparse, Damage: []Damage{{Kind: EncryptChunks, Stride: 4 << 20, At: 1 << 20, Head: 4096}}},
			{Disk: 3, Variant: VMFSFlat, Damage: []Damage{{Kind: EncryptChunks, SizeStep: true, Chunk: 256 << 10, At: 512 << 10}}},
		},
	}
	truth, a := generateHost(t, spec)
	checkGrains(t, truth)
	_, b := generateHost(t, spec)
	for _, name := range []string{ImageName, TruthName, RawName(1), RawName(2), RawName(3)} {
		if hashFile(t, filepath.Join(a, name)) != hashFile(t, filepath.Join(b, name)) {
			t.Errorf("%s differs between two runs of the same spec", name)
		}
	}
	if g := truth.Disk(2).FS; !g.Cipher || g.PartitionOffset != 0 {
		t.Errorf("disk 2: %+v", g)
	}
	if !strings.Contains(string(must(os.ReadFile(filepath.Join(a, TruthName)))), `"random_mibs"`) {
		t.Error("truth.json lists no random MiBs")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRandomGuestsScenario generates random-guests at a small size and
// checks each disk is what the scenario promises.
func TestRandomGuestsScenario(t *testing.T) {
	spec, err := Scenario("random-guests", 1, 64<<20, HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	truth, _ := generateHost(t, spec)
	checkGrains(t, truth)
	var cipher, noTable, randomMiBs int
	for _, d := range truth.Disks {
		if d.FS == nil {
			randomMiBs += len(d.RandomMiBs)
			continue
		}
		binary := 0
		for _, f := range d.FS.Files {
			if f.Binary() {
				binary++
			}
		}
		if d.FS.Cipher {
			cipher++
		} else {
			fsck(t, d.FS.FS, guestVolume(t, d))
		}
		if d.FS.PartitionOffset == 0 {
			noTable++
		}
		if binary == 0 {
			t.Errorf("disk %d: no binary file", d.ID)
		}
	}
	for _, f := range truth.Files {
		if len(f.Damage) != 0 || f.IntactGrains != len(f.Grains) {
			t.Errorf("file %d: damaged", f.Index)
		}
	}
	if cipher != 1 || noTable != 1 || randomMiBs == 0 {
		t.Errorf("%d cipher guests, %d without a partition table, %d random MiBs", cipher, noTable, randomMiBs)
	}
}
