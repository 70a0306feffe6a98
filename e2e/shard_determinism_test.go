package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/pipeline"
)

// TestShardDeterminism carves one corpus image with every combination of
// worker count, shard split and chunk size, each shard a Carve call of
// its own into one case (the last shard first), rebuilds each case, and
// requires the merged hits and fingerprints and the rebuilt disks to be
// byte-identical to those of one run over the whole image (the first
// combination). The image size is not a whole number of 4 KiB blocks,
// so the last shard ends on a partial block; 16 KiB chunks are smaller
// than the recognizers' margins, so hits straddle chunk and shard
// boundaries, and 8 MiB (the default) is most of a fifth of the image.
func TestShardDeterminism(t *testing.T) {
	spec, err := corpus.Scenario("variants", 3, 64<<20+2560, corpus.HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	image := generate(t, spec).Image
	size := fileSize(t, image)
	ref := ""
	for _, workers := range []int{1, 2, 7} {
		for _, n := range []int{1, 2, 5} {
			for _, chunk := range []int{16 << 10, 0} {
				what := fmt.Sprintf("%d workers, %d shards, chunk %d", workers, n, chunk)
				dir := filepath.Join(t.TempDir(), "case")
				for i := range n {
					k := n - 1 - i
					r, err := pipeline.ShardRange(k, n, size)
					if err != nil {
						t.Fatal(err)
					}
					res, err := pipeline.Carve(context.Background(), dir, image, pipeline.CarveOptions{Workers: workers, ChunkSize: chunk, Range: &r})
					if err != nil {
						t.Fatalf("%s: shard %d: %v", what, k, err)
					}
					if last := i == n-1; res.Complete != last {
						t.Fatalf("%s: after shard %d (%d of %d): complete = %v (%s)", what, k, i+1, n, res.Complete, res.Reason)
					}
				}
				if _, err := pipeline.Rebuild(context.Background(), dir, pipeline.RebuildOptions{}); err != nil {
					t.Fatalf("%s: rebuild: %v", what, err)
				}
				if ref == "" {
					ref = dir
					continue
				}
				sameCase(t, what, ref, dir)
			}
		}
	}
}
