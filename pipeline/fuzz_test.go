package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCaseFiles feeds crafted hits.jsonl and fingerprints.bin files to
// their readers: a damaged case must give an error, never a panic or an
// allocation the file size does not justify.
func FuzzCaseFiles(f *testing.F) {
	f.Add([]byte(`{"offset":512,"kind":"sparse-header","verdict":"valid","sparse":{"version":1,"capacity":131072}}` + "\n"))
	f.Add(append(fpHeader(0, 2), make([]byte, 16)...))
	f.Add(fpHeader(4096, 1<<40))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		hits := filepath.Join(dir, HitsName)
		fps := filepath.Join(dir, FingerprintsName)
		if err := os.WriteFile(hits, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fps, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ReadHits(hits)
		if fp, err := OpenFingerprints(fps); err == nil {
			fp.At(0)
			fp.At(1 << 40)
			fp.Close()
		}
	})
}
