package fsprobe

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
	"vmdkcarve/internal/tooltest"
)

const testGrain = 64 << 10

// guestDisk puts a real volume made by tool into an MBR disk at 1 MiB.
func guestDisk(t testing.TB, tool string, typ byte, args ...string) []byte {
	return tooltest.MBRDisk(mkfs(t, 24<<20, tool, args...), typ)
}

// gptDisk puts a real volume into a GPT disk at LBA 2048.
func gptDisk(t testing.TB, tool string, args ...string) []byte {
	return tooltest.GPTDisk(mkfs(t, 24<<20, tool, args...))
}

// locateAll runs a Locator over the disk's non-zero grains in a shuffled
// order (the Locator must not depend on seeing grains in disk order) and
// returns, for each grain, its candidates when it had claims.
func locateAll(disk []byte, seed uint64) (map[int64][]int64, *Locator) {
	l := NewLocator(testGrain, int64(len(disk)))
	var grains []int64
	zero := make([]byte, testGrain)
	for g := int64(0); g < int64(len(disk))/testGrain; g++ {
		if !bytes.Equal(disk[g*testGrain:(g+1)*testGrain], zero) {
			grains = append(grains, g)
		}
	}
	rand.New(rand.NewPCG(seed, 1)).Shuffle(len(grains), func(i, j int) { grains[i], grains[j] = grains[j], grains[i] })
	for _, g := range grains {
		l.Learn(disk[g*testGrain : (g+1)*testGrain])
	}
	l.Prepare()
	claims := map[int64][]Claim{}
	for _, g := range grains {
		if c := l.Locate(disk[g*testGrain : (g+1)*testGrain]); len(c) > 0 {
			claims[g] = c
		}
	}
	out := map[int64][]int64{}
	for g, c := range claims {
		out[g] = l.Candidates(c)
	}
	return out, l
}

// TestLocatorRealGuests: on fresh mkntfs and mkfs.ext4 volumes every
// grain whose structures locate it is located exactly where it lies, the
// expected grains are among them, and a grain moved elsewhere is not
// believed (its structures contradict the place it would have).
func TestLocatorRealGuests(t *testing.T) {
	for _, tc := range []struct {
		name string
		tool string
		typ  byte // MBR partition type; 0xEE: a GPT disk
		args []string
		want []int64 // grains that must be located
	}{
		{"ext4 on GPT", "mkfs.ext4", 0xEE, []string{"-q", "-F", "-b", "4096", "-I", "256", "-O", "metadata_csum,64bit", "-E", "lazy_itable_init=0,lazy_journal_init=0"}, []int64{0, 16}},
		{"ntfs", "mkntfs", 0x07, []string{"-q", "-F", "-f", "-s", "512", "-c", "4096", "-p", "2048", "-H", "16", "-S", "63"}, []int64{0, 16}},
		{"ext4", "mkfs.ext4", 0x83, []string{"-q", "-F", "-b", "4096", "-I", "256", "-O", "metadata_csum,64bit", "-E", "lazy_itable_init=0,lazy_journal_init=0"}, []int64{0, 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := guestDisk(t, tc.tool, tc.typ, tc.args...)
			if tc.typ == 0xEE {
				disk = gptDisk(t, tc.tool, tc.args...)
			}
			located, l := locateAll(disk, 1)
			n := 0
			for g, c := range located {
				if len(c) != 1 || c[0] != g {
					t.Errorf("grain %d located at %v", g, c)
				}
				n++
			}
			for _, g := range tc.want {
				if c := located[g]; len(c) != 1 {
					t.Errorf("grain %d not located (%v); notes %v", g, c, l.Notes())
				}
			}
			if len(l.MetadataGrains()) == 0 {
				t.Error("no metadata grains predicted")
			}
			t.Logf("%d grains located; notes %v", n, l.Notes())

			// The grain holding the partition start, copied one grain
			// further: its structures cannot all hold there.
			moved := append([]byte(nil), disk...)
			copy(moved[17*testGrain:18*testGrain], disk[16*testGrain:17*testGrain])
			located, _ = locateAll(moved, 2)
			if c := located[17]; len(c) == 1 && c[0] == 17 {
				t.Errorf("a grain moved to 17 is believed there")
			}
		})
	}
}

// TestCandidates: claims intersect; an address not grain-aligned at the
// claim's offset allows nothing.
func TestCandidates(t *testing.T) {
	l := NewLocator(testGrain, 1<<30)
	for _, tc := range []struct {
		name   string
		claims []Claim
		want   []int64
	}{
		{"one", []Claim{{At: 512, addrs: []int64{3*testGrain + 512}}}, []int64{3}},
		{"two agree", []Claim{{At: 0, addrs: []int64{0, 5 * testGrain}}, {At: 1024, addrs: []int64{5*testGrain + 1024}}}, []int64{5}},
		{"two disagree", []Claim{{At: 0, addrs: []int64{0}}, {At: 1024, addrs: []int64{5*testGrain + 1024}}}, nil},
		{"misaligned", []Claim{{At: 512, addrs: []int64{3 * testGrain}}}, nil},
		{"ambiguous", []Claim{{At: 0, addrs: []int64{testGrain, 2 * testGrain}}}, []int64{1, 2}},
		{"past the disk", []Claim{{At: 0, addrs: []int64{1 << 40}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := l.Candidates(tc.claims)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// FuzzLocator: grains of any bytes go through both passes, the bitmap
// feed and the predictions without panicking or growing without bound.
func FuzzLocator(f *testing.F) {
	seed := make([]byte, 2*4096)
	binary.LittleEndian.PutUint16(seed[510:], 0xAA55)
	seed[446+4], seed[446+8], seed[446+12] = 0x83, 8, 100
	binary.LittleEndian.PutUint16(seed[1024+56:], 0xEF53)
	f.Add(seed)
	ntfs := append([]byte(nil), seed...)
	copy(ntfs[512+3:], "NTFS    ")
	binary.LittleEndian.PutUint16(ntfs[512+510:], 0xAA55)
	copy(ntfs[4096:], "FILE0")
	f.Add(ntfs)
	f.Fuzz(func(t *testing.T, b []byte) {
		const grain = 4096
		l := NewLocator(grain, 1<<20)
		for off := 0; off+grain <= len(b); off += grain {
			l.Learn(b[off : off+grain])
		}
		l.Prepare()
		var claims []Claim
		for off := 0; off+grain <= len(b); off += grain {
			if c := l.Locate(b[off : off+grain]); len(c) > 0 {
				claims = append(claims, c...)
				for _, g := range l.Candidates(c) {
					l.Anchored(g, b[off:off+grain])
				}
			}
		}
		for _, c := range claims {
			l.Addresses(c)
		}
		for _, tl := range l.Tails() {
			if tl.Used <= 0 || tl.Used >= tl.Block || tl.Addr < 0 || tl.Addr+int64(tl.Block) > 1<<20 {
				t.Fatalf("tail %+v outside the disk or its block", tl)
			}
			tl.TailMatch(b)
		}
		l.Allocation()
		l.MetadataGrains()
		GPTPartitions(b)
	})
}

// BenchmarkLocate: both passes over every grain of a 25 MiB disk holding a
// fresh mkfs.ext4 volume (inode tables are the costly part: every 256-byte
// slot that looks like an inode gets its number solved).
func BenchmarkLocate(b *testing.B) {
	disk := guestDisk(b, "mkfs.ext4", 0x83, "-q", "-F", "-b", "4096", "-I", "256", "-O", "metadata_csum,64bit", "-E", "lazy_itable_init=0,lazy_journal_init=0")
	b.SetBytes(int64(len(disk)))
	for b.Loop() {
		locateAll(disk, 1)
	}
}

// TestGPTPartitionsBounds: a GPT header whose checksum is right but whose
// entries' LBA is huge (it would wrap when multiplied) yields nothing.
func TestGPTPartitionsBounds(t *testing.T) {
	disk := make([]byte, 64<<10)
	h := disk[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint64(h[72:], 1<<55) // ×512 wraps to 0
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	if p := GPTPartitions(disk); p != nil {
		t.Errorf("partitions %v from a wrapping entries LBA", p)
	}
}

// TestLearnAtPlaces: with the grains' virtual offsets known, a volume is
// located only from geometry read where it can lie; read elsewhere it is
// not located, and said misplaced where its place is impossible.
func TestLearnAtPlaces(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tool      string
		typ       byte
		args      []string
		from      int64 // the grain holding the volume's start is read at this grain
		mbr       bool  // grain 0 (the partition table) is learned too
		located   bool
		misplaced bool
	}{
		{"ext4 in place", "mkfs.ext4", 0x83, ext4Args, 16, true, true, false},
		{"ext4 moved", "mkfs.ext4", 0x83, ext4Args, 17, true, false, true},
		// Without the table nothing says where the volume starts: the
		// place is neither believed nor called wrong...
		{"ext4 in place, table lost", "mkfs.ext4", 0x83, ext4Args, 16, false, false, false},
		// ...unless the volume cannot fit in the disk from there.
		{"ext4 near the end, table lost", "mkfs.ext4", 0x83, ext4Args, 300, false, false, true},
		{"ntfs in place", "mkntfs", 0x07, ntfsArgs, 16, true, true, false},
		{"ntfs moved", "mkntfs", 0x07, ntfsArgs, 17, true, false, true},
		{"ntfs moved, table lost", "mkntfs", 0x07, ntfsArgs, 20, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := guestDisk(t, tc.tool, tc.typ, tc.args...)
			l := NewLocator(testGrain, int64(len(disk)))
			if tc.mbr {
				l.LearnAt(disk[:testGrain], 0)
			}
			l.LearnAt(disk[16*testGrain:17*testGrain], tc.from*testGrain)
			l.Prepare()
			if got := l.Volumes() == 1; got != tc.located {
				t.Errorf("located %v, want %v; notes %v", got, tc.located, l.Notes())
			}
			if got := len(l.Misplaced()) > 0; got != tc.misplaced {
				t.Errorf("misplaced %v (%v), want %v", got, l.Misplaced(), tc.misplaced)
			}
		})
	}
}

var (
	ext4Args = []string{"-q", "-F", "-b", "4096", "-I", "256", "-O", "metadata_csum,64bit", "-E", "lazy_itable_init=0,lazy_journal_init=0"}
	ntfsArgs = []string{"-q", "-F", "-f", "-s", "512", "-c", "4096", "-p", "2048", "-H", "16", "-S", "63"}
)
