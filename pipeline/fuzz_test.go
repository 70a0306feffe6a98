package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// fuzzCase carves and rebuilds a small image holding a sparse VMDK and a
// stream in noise, and returns the image and the case's files (hits,
// shard.json, a disk report) to seed the case-file fuzz target with.
func fuzzCase(f *testing.F) (img []byte, seeds [][]byte) {
	disk := bytes.Repeat([]byte("fuzz grain data "), 6*8192/16)
	clear(disk[8192*2 : 8192*3])
	read := func(g uint64, buf []byte) (bool, error) { copy(buf, disk[g*8192:]); return true, nil }
	var w tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: 96, GrainSize: 16, FileName: "f.vmdk",
		Descriptor: &vmdk.Descriptor{CID: 7, DDB: map[string]string{"ddb.uuid": "60 00"}}}, read); err != nil {
		f.Fatal(err)
	}
	img = append(noise(8192, 1), w.Bytes...)
	var s bytes.Buffer
	if _, err := vmdk.WriteStreamOptimized(&s, vmdk.StreamWriterOptions{Capacity: 96, GrainSize: 16, FileName: "s.vmdk", Layout: vmdk.StreamGDAtEnd}, read); err != nil {
		f.Fatal(err)
	}
	img = append(img, s.Bytes()...)
	img = append(img, make([]byte, 4096-len(img)%4096)...)
	dir := f.TempDir()
	path := filepath.Join(dir, "image.dd")
	if err := os.WriteFile(path, img, 0o444); err != nil {
		f.Fatal(err)
	}
	caseDir := filepath.Join(dir, "case")
	if _, err := Carve(context.Background(), caseDir, path, CarveOptions{Hash: "none"}); err != nil {
		f.Fatal(err)
	}
	if _, err := Rebuild(context.Background(), caseDir, RebuildOptions{}); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{HitsName, filepath.Join(ShardsDirName, fmt.Sprintf("0-%d", len(img)), ShardStateName), filepath.Join(DisksDirName, "disk-01.json")} {
		b, err := os.ReadFile(filepath.Join(caseDir, name))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return img, seeds
}

// FuzzCaseFiles feeds crafted case files to every reader rebuild and a
// resumed carve use: hits.jsonl (then, when the checks on load pass it, to
// the planner over a small image: whatever a hit that passes says, Plan
// must not panic, allocate without bound or place a grain outside the
// image), shard.json (then to the resume that truncates the shard's files
// to its byte counts), fingerprints.bin and a completed rebuild's disk
// report. A damaged or edited case gives an error, never a panic.
func FuzzCaseFiles(f *testing.F) {
	img, seeds := fuzzCase(f)
	for _, s := range seeds {
		f.Add(s)
	}
	for _, l := range storedHits {
		f.Add([]byte(l + "\n"))
	}
	f.Add(append(fpHeader(0, 2), make([]byte, 16)...))
	f.Add(fpHeader(4096, 1<<40))
	f.Add([]byte(`{"range":{"start":0,"end":8192},"checkpoint":4096,"hits_bytes":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		write := func(name string) string {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		if hits, _, err := readHits(write(HitsName), int64(len(img))); err == nil {
			for _, d := range reassemble.Plan(bytes.NewReader(img), int64(len(img)), hits, reassemble.Options{}) {
				for g := uint64(0); g < d.Grains(); g++ {
					if gr := d.Placed(g); gr != nil && (gr.Source == nil || gr.Source.ImageOffset < 0 || gr.Source.ImageOffset >= int64(len(img))) {
						t.Fatalf("grain %d placed outside the image: %+v", g, gr.Source)
					}
				}
			}
		}
		shard := filepath.Join(dir, "shard")
		write(filepath.Join("shard", ShardStateName))
		if st, err := readShardState(shard); err == nil && st != nil {
			os.WriteFile(filepath.Join(shard, HitsName), make([]byte, 100), 0o644)
			if w, err := openShardWriter(shard, st, newHashSet(nil)); err == nil {
				w.close()
			}
		}
		if fp, err := OpenFingerprints(write(FingerprintsName)); err == nil {
			fp.At(0)
			fp.At(1 << 40)
			fp.Close()
		}
		write(filepath.Join(DisksDirName, "disk-01.json"))
		summariesFromReports(&Case{Dir: dir, Manifest: &Manifest{}})
	})
}
