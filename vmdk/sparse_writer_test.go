package vmdk

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/entropy"
	"vmdkcarve/internal/tooltest"
)

// testImage returns a raw image with zero grains, text grains and one
// random grain, and a capacity that is not a multiple of the grain size.
func testImage(sectors int) []byte {
	img := make([]byte, sectors*SectorSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for g := 0; g*65536 < len(img); g++ {
		chunk := img[g*65536 : min((g+1)*65536, len(img))]
		switch g % 5 {
		case 0, 3:
			for i := range chunk {
				chunk[i] = byte('a' + (g+i)%26)
			}
		case 1:
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
		}
	}
	return img
}

func readFrom(img []byte) func(uint64, []byte) (bool, error) {
	return func(g uint64, buf []byte) (bool, error) {
		copy(buf, img[g*65536:])
		return true, nil
	}
}

func TestWriteMonolithicSparseInterop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sectors   int
		redundant bool
	}{
		{"small-redundant", 131069, true},
		{"small-plain", 4096, false},
		{"two-tables", 65536*2 + 128*3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := testImage(tc.sectors)
			raw := filepath.Join(dir, "src.raw")
			if err := os.WriteFile(raw, img, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.vmdk")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			size, err := WriteMonolithicSparse(f, SparseWriterOptions{Capacity: uint64(tc.sectors), FileName: "out.vmdk", NoRedundant: !tc.redundant}, readFrom(img))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(out)
			if int64(len(data)) != size {
				t.Fatalf("file is %d bytes, writer said %d", len(data), size)
			}
			h, gtes, err := GrainMap(bytes.NewReader(data), size)
			if err != nil {
				t.Fatal(err)
			}
			if h.Capacity != uint64(tc.sectors) || h.HasRedundantGD() != tc.redundant {
				t.Fatalf("header %+v", h)
			}
			for g, s := range gtes {
				want := img[g*65536 : min((g+1)*65536, len(img))]
				if s == 0 {
					if !entropy.Zero(want) {
						t.Fatalf("grain %d unallocated but not zero", g)
					}
					continue
				}
				if got := data[int(s)*512:][:len(want)]; !bytes.Equal(got, want) {
					t.Fatalf("grain %d differs", g)
				}
			}
			tooltest.Compare(t, out, raw)
			tooltest.VMDKInfo(t, out)
		})
	}
}
