package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/holes"
	"vmdkcarve/internal/tooltest"
)

// TestCarveSameWithoutHoles: a sparse image carved with its holes skipped
// (SEEK_DATA/SEEK_HOLE) and carved reading every byte, as on a platform
// without them (holes.None, ReadHoles), gives the same hits, fingerprints
// and hashes.
func TestCarveSameWithoutHoles(t *testing.T) {
	_, data, _ := writeImage(t, 3<<20, 5)
	const size = 48 << 20
	path := filepath.Join(t.TempDir(), "sparse.dd")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Data at 8 MiB and, cut in two, at 30 MiB and just before the end.
	for _, piece := range []struct {
		at int64
		b  []byte
	}{{8 << 20, data}, {30 << 20, data[:1<<20]}, {size - 2<<20, data[1<<20 : 3<<20]}} {
		if _, err := f.WriteAt(piece.b, piece.at); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if zs, _ := holes.None(tooltest.Open(t, path), size); zs != nil {
		t.Fatalf("holes.None found holes: %v", zs)
	}
	if zs, _ := holes.Zeros(tooltest.Open(t, path), size); len(zs) == 0 {
		if holes.Supported {
			tooltest.Missing(t, "the filesystem of the temporary directory keeps no holes")
		}
		t.Skip("this platform reports no holes: both carves read everything")
	}
	skipped, read := filepath.Join(t.TempDir(), "skipped"), filepath.Join(t.TempDir(), "read")
	opts := CarveOptions{Hash: "md5,sha256", Workers: 2}
	a := carve(t, skipped, path, opts)
	opts.ReadHoles = true
	b := carve(t, read, path, opts)
	if !a.Complete || !b.Complete {
		t.Fatalf("carves incomplete: %q, %q", a.Reason, b.Reason)
	}
	sameOutputs(t, "holes skipped vs read", skipped, read)
	if a.Hits != b.Hits || a.Hits == 0 {
		t.Errorf("hits %d with holes skipped, %d read", a.Hits, b.Hits)
	}
	ca, _ := OpenCase(skipped)
	cb, _ := OpenCase(read)
	ea, eb := ca.Manifest.Evidence, cb.Manifest.Evidence
	if ea.SHA256 == "" || ea.SHA256 != eb.SHA256 || ea.MD5 != eb.MD5 {
		t.Errorf("hashes differ: %s %s with holes skipped, %s %s read", ea.MD5, ea.SHA256, eb.MD5, eb.SHA256)
	}
}
