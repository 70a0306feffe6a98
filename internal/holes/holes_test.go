package holes

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"vmdkcarve/internal/tooltest"
)

// TestZeros writes a sparse file with data at known places and checks the
// holes found cover no data and, on a filesystem that keeps holes, are the
// ones made. (Filesystems may round holes to their block size; 1 MiB
// pieces keep every one aligned.)
func TestZeros(t *testing.T) {
	const mib = 1 << 20
	path := filepath.Join(t.TempDir(), "sparse.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := []Extent{{2 * mib, 3 * mib}, {5 * mib, 7 * mib}}
	for _, d := range data {
		b := make([]byte, d.End-d.Start)
		for i := range b {
			b[i] = byte(i%251 + 1)
		}
		if _, err := f.WriteAt(b, d.Start); err != nil {
			t.Fatal(err)
		}
	}
	const size = 10 * mib
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	got, err := Zeros(f, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range got {
		for _, d := range data {
			if h.Start < d.End && d.Start < h.End {
				t.Fatalf("hole %v covers data %v", h, d)
			}
		}
	}
	want := []Extent{{0, 2 * mib}, {3 * mib, 5 * mib}, {7 * mib, size}}
	if !Supported {
		// The fallback: no holes, everything is read.
		want = nil
	} else if got == nil {
		// Correct (nothing is skipped), but the filesystems CI runs on
		// keep holes: there the holes must be found.
		tooltest.Missing(t, "the filesystem of the temporary directory keeps no holes")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("holes %v, want %v", got, want)
	}
	t.Logf("holes: %v", got)
	// A file without holes has none.
	dense := filepath.Join(t.TempDir(), "dense.img")
	if err := os.WriteFile(dense, make([]byte, 3*mib), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if hs, err := Zeros(g, 3*mib); err != nil || len(hs) != 0 {
		t.Errorf("dense file: holes %v, %v", hs, err)
	}
}
