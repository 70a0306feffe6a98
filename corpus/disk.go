package corpus

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
)

// disk generates the content of one guest disk grain by grain. Every
// non-zero sector outside the random grains reads
//
//	vmdkcarve disk=0001 lba=000000001234 vmdkcarve disk=0001 ...  #<14 hex>\n
//
// so a misplaced grain names the disk and sector it came from; the last 16
// bytes vary with the seed so two corpora never share a sector.
type disk struct {
	id        int
	seed      uint64
	capacity  int64 // bytes
	grains    uint64
	zero      []bool   // per grain: all zero
	random    []uint64 // sorted
	randMiBs  []int64  // sorted virtual offsets of DiskSpec.RandomMiBs
	nonZero   uint64
	signature uint32 // MBR disk signature
	// src, when set, holds the disk's bytes (a guest with a real
	// filesystem, see guestfs.go); the synthetic content is not used.
	src io.ReaderAt
}

// defaultZeroFraction is the share of all-zero grains when a DiskSpec
// leaves it 0: enough for writers to leave gaps, like a part-filled disk.
const defaultZeroFraction = 0.3

// zeroRunGrains is the mean length of a run of zero grains. Runs, not
// independent grains, so that whole grain tables can come out empty on
// larger disks, as on real ones.
const zeroRunGrains = 8

func newDisk(seed uint64, s DiskSpec) *disk {
	d := &disk{id: s.ID, seed: seed, capacity: s.Capacity}
	d.grains = uint64((s.Capacity + grainBytes - 1) / grainBytes)
	rng := rand.New(rand.NewPCG(seed, mix(uint64(s.ID))))
	d.signature = rng.Uint32()

	f := s.ZeroFraction
	switch {
	case f == 0:
		f = defaultZeroFraction
	case f < 0:
		f = 0
	case f > 0.95:
		f = 0.95 // grain 0 and the random grains are never zero anyway
	}
	// A two-state Markov chain: leaving a zero run with probability b gives
	// runs of mean 1/b; entering one with a = f·b/(1-f) makes the zero
	// share f in the long run.
	b := 1.0 / zeroRunGrains
	a := f * b / (1 - f)
	d.zero = make([]bool, d.grains)
	inZero := false
	for g := uint64(1); g < d.grains; g++ {
		if inZero {
			inZero = rng.Float64() >= b
		} else {
			inZero = rng.Float64() < a
		}
		d.zero[g] = inZero
	}

	// One or two incompressible grains, never grain 0 (the MBR) nor the
	// last grain (which may be short).
	if d.grains > 2 {
		want := 1 + rng.IntN(2)
		for try := 0; len(d.random) < want && try < 64; try++ {
			g := 1 + rng.Uint64N(d.grains-2)
			if !slices.Contains(d.random, g) {
				d.zero[g] = false
				d.random = append(d.random, g)
			}
		}
		slices.Sort(d.random)
	}
	d.addRandomMiBs(seed, s)
	for _, z := range d.zero {
		if !z {
			d.nonZero++
		}
	}
	return d
}

// addRandomMiBs draws the disk's random MiBs: distinct whole MiBs of
// the capacity past MiB 0, from their own seeded source so that a disk
// without them is what it always was. Their grains join d.random.
func (d *disk) addRandomMiBs(seed uint64, s DiskSpec) {
	if s.RandomMiBs <= 0 {
		return
	}
	rng := rand.New(rand.NewPCG(seed, mix(uint64(s.ID)^0x72616e646d6962))) // "randmib"
	mibs := s.Capacity>>20 - 1                                             // candidates 1..mibs
	for _, m := range rng.Perm(int(mibs))[:s.RandomMiBs] {
		d.randMiBs = append(d.randMiBs, int64(m+1)<<20)
	}
	slices.Sort(d.randMiBs)
	const per = (1 << 20) / grainBytes
	for _, off := range d.randMiBs {
		g0 := uint64(off / grainBytes)
		for g := g0; g < g0+per; g++ {
			d.zero[g] = false
			d.random = append(d.random, g)
		}
	}
	slices.Sort(d.random)
	d.random = slices.Compact(d.random)
}

// inRandomMiB reports whether grain g lies in one of the random MiBs.
func (d *disk) inRandomMiB(g uint64) bool {
	if len(d.randMiBs) == 0 {
		return false
	}
	_, ok := slices.BinarySearch(d.randMiBs, int64(g)*grainBytes/(1<<20)<<20)
	return ok
}

// grainLen is the number of bytes of grain g (the last may be short).
func (d *disk) grainLen(g uint64) int {
	return int(min(int64(grainBytes), d.capacity-int64(g)*grainBytes))
}

// read is fill for the writers' callbacks: it also reads grains of a
// disk backed by a raw file.
func (d *disk) read(g uint64, buf []byte) (bool, error) {
	if d.src == nil {
		return d.fill(g, buf), nil
	}
	b := buf[:d.grainLen(g)]
	if d.zero[g] {
		clear(b)
		return false, nil
	}
	if _, err := d.src.ReadAt(b, int64(g)*grainBytes); err != nil && err != io.EOF {
		return false, err
	}
	return true, nil
}

// fill writes grain g into buf (len(buf) >= grainLen(g)) and reports
// whether it has data; an all-zero grain leaves buf zeroed.
func (d *disk) fill(g uint64, buf []byte) bool {
	buf = buf[:d.grainLen(g)]
	if d.zero[g] {
		clear(buf)
		return false
	}
	if d.inRandomMiB(g) {
		fillRandom(d.seed^uint64(d.id)<<32, streamMiB, int64(g)*grainBytes, buf)
		return true
	}
	if _, ok := slices.BinarySearch(d.random, g); ok {
		fillNoise(d.seed^uint64(d.id)<<32, streamGrain, int64(g)*grainBytes, buf)
		return true
	}
	lba := g * GrainSectors
	for off := 0; off < len(buf); off += 512 {
		d.sector(lba+uint64(off/512), buf[off:off+512])
	}
	if g == 0 {
		d.mbr(buf[:512])
	}
	return true
}

const hexDigits = "0123456789abcdef"

// sector writes the identity text of one sector.
func (d *disk) sector(lba uint64, s []byte) {
	// "vmdkcarve disk=0001 lba=000000001234 " is 37 bytes.
	var line [37]byte
	copy(line[:], "vmdkcarve disk=0000 lba=000000000000 ")
	putDec(line[15:19], uint64(d.id))
	putDec(line[24:36], lba)
	for i := 0; i < 512; i += len(line) {
		copy(s[i:], line[:])
	}
	v := mix(d.seed ^ uint64(d.id)<<48 ^ lba)
	tail := s[512-16:]
	tail[0] = '#'
	for i := 1; i < 15; i++ {
		tail[i] = hexDigits[v&0xf]
		v >>= 4
	}
	tail[15] = '\n'
}

func putDec(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// mbr overlays a plausible MBR on sector 0: the identity text stays in the
// boot-code area; one partition from sector 2048 to the end, typed
// non-filesystem data (0xDA), which is what the synthetic sectors are.
func (d *disk) mbr(s []byte) {
	clear(s[440:])
	binary.LittleEndian.PutUint32(s[440:], d.signature)
	p := s[446:462]
	sectors := uint64(d.capacity / 512)
	start := uint64(2048)
	if sectors <= 2*start {
		start = 1 // a tiny test disk still gets a valid entry
	}
	p[0] = 0x00                            // not bootable
	copy(p[1:4], []byte{0xfe, 0xff, 0xff}) // CHS: use the LBA fields
	p[4] = 0xda                            // "non-FS data": the sectors hold no filesystem
	copy(p[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(p[8:], uint32(start))
	binary.LittleEndian.PutUint32(p[12:], uint32(min(sectors-start, 0xffffffff)))
	s[510], s[511] = 0x55, 0xaa
}

// writeRaw writes the disk as a sparse raw file: zero grains are holes.
func (d *disk) writeRaw(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, grainBytes)
	for g := range d.grains {
		if !d.fill(g, buf) {
			continue
		}
		if _, err := f.WriteAt(buf[:d.grainLen(g)], int64(g)*grainBytes); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Truncate(d.capacity); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("corpus: writing %s: %w", path, err)
	}
	return nil
}
