package reassemble

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"vmdkcarve/reassemble/damage"
	"vmdkcarve/vmdk"
)

// mixedImage lays out files of every kind placement treats apart, grains
// of the given number each (300 at least for the encrypted one): an intact sparse file and a stream copy of
// it, a second version (another CID), a sparse file encrypted on a
// lattice, one cut in two with zeros between its pieces, and a stream cut
// in three out of order. It returns the image and its hits.
func mixedImage(t testing.TB, grains int) ([]byte, fakeFingerprints) {
	disk := guest(grains)
	img := noise(1<<20, 21)
	// Each file starts at a MiB boundary of the image, so that its blocks
	// are the fingerprints' blocks.
	add := func(b []byte, seed uint64) {
		img = append(append(img, b...), noise(1<<20, seed)...)
		img = append(img, noise(-len(img)&(1<<20-1), seed)...)
	}
	add(sparseFile(t, disk), 22)
	add(streamFile(t, disk, vmdk.StreamGDAtEnd), 23)

	other := guest(grains)
	copy(other, "another version")
	v2 := sparseFile(t, other)
	i := bytes.Index(v2, []byte("CID=1234abcd"))
	copy(v2[i:], "CID=9999abcd")
	add(v2, 24)

	// The lattice needs a few chunks of the file to be proven.
	third := guest(max(grains, 300))
	copy(third[testGrain:], "a third disk")
	enc := sparseFile(t, third)
	i = bytes.Index(enc, []byte("CID=1234abcd"))
	copy(enc[i:], "CID=5555abcd")
	for k := 1; k*damage.ChunkSize < len(enc); k += 4 {
		copy(enc[k*damage.ChunkSize:min((k+1)*damage.ChunkSize, len(enc))], noise(damage.ChunkSize, uint64(100+k)))
	}
	add(enc, 25)

	cutFile := sparseFile(t, disk)
	h, _ := vmdk.ParseSparseHeader(cutFile)
	cut := int(h.OverHead*512) + grains/5*testGrain + 12*4096
	add(append(append(append([]byte(nil), cutFile[:cut]...), make([]byte, 3<<20)...), cutFile[cut:]...), 26)

	s := streamFile(t, guest(grains), vmdk.StreamGDFront)
	third1, third2 := len(s)/3/4096*4096, 2*len(s)/3/4096*4096
	add(s[:third1], 27)
	add(s[third2:], 28)
	add(s[third1:third2], 29)
	return img, fakeFingerprints(img)
}

// planJSON plans img with the given workers and returns the result as
// the reports would show it.
func planJSON(t testing.TB, img []byte, fp fakeFingerprints, workers int, progress func(done, total int)) []byte {
	res := PlanCase(bytes.NewReader(img), int64(len(img)), carve(img), Options{Fingerprints: fp, Workers: workers, Progress: progress})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlanParallelDeterministic: the plans of instances placed several
// at a time equal those placed one by one, run after run, and Progress
// is told of each instance in turn, never two at once.
func TestPlanParallelDeterministic(t *testing.T) {
	img, fp := mixedImage(t, 120)
	want := planJSON(t, img, fp, 1, nil)
	var res Result
	if err := json.Unmarshal(want, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Disks) < 4 {
		t.Fatalf("%d disks, want at least 4 (the test needs several instances)", len(res.Disks))
	}
	for run := range 4 {
		var inside atomic.Int32
		var calls []int
		total := -1
		got := planJSON(t, img, fp, 4, func(done, n int) {
			if inside.Add(1) != 1 {
				t.Errorf("run %d: Progress called concurrently", run)
			}
			calls = append(calls, done)
			total = n
			inside.Add(-1)
		})
		if !bytes.Equal(got, want) {
			t.Fatalf("run %d: the plan with 4 workers differs from the plan with 1", run)
		}
		for i, d := range calls {
			if d != i+1 {
				t.Fatalf("run %d: Progress calls %v, want 1, 2, ... %d", run, calls, total)
			}
		}
		if len(calls) != total || total < 4 {
			t.Fatalf("run %d: %d Progress calls of a total of %d", run, len(calls), total)
		}
	}
}

// BenchmarkPlanCase plans the mixed image (6 files of 32 MiB disks)
// with one worker and with the default workers.
func BenchmarkPlanCase(b *testing.B) {
	img, fp := mixedImage(b, 512)
	hits := carve(img)
	for _, workers := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(len(img)))
			for b.Loop() {
				PlanCase(bytes.NewReader(img), int64(len(img)), hits, Options{Fingerprints: fp, Workers: workers})
			}
		})
	}
}
