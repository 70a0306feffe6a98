package pipeline

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"vmdkcarve/carver"
)

// The environment variables a batch engine sets in each task of an array
// job, read by ParseShard for "auto/N".
const (
	// Slurm job arrays (sbatch --array=0-N-1): the task's ID, the
	// array's lowest and highest IDs and its task count.
	EnvSlurmTaskID    = "SLURM_ARRAY_TASK_ID"
	EnvSlurmTaskMin   = "SLURM_ARRAY_TASK_MIN"
	EnvSlurmTaskMax   = "SLURM_ARRAY_TASK_MAX"
	EnvSlurmTaskCount = "SLURM_ARRAY_TASK_COUNT"
	// Kubernetes Indexed Jobs (completionMode: Indexed): the pod's index,
	// 0 to completions-1.
	EnvJobCompletionIndex = "JOB_COMPLETION_INDEX"
)

// ShardRange returns the k-th (0-based) of n ranges that split an image
// of imageSize bytes into equal runs of whole 4 KiB blocks (the image's
// last, partial block counts as one): range k starts at block
// ⌊k·blocks/n⌋, so every boundary is 4096-aligned, the ranges differ in
// length by one block at most, and the last one ends at the image size.
// Together the n ranges tile the image, so the shards carved from them
// merge into what one run gives.
//
// When n exceeds the number of blocks some ranges are empty (Start ==
// End). That is allowed rather than refused: an array job sized for the
// big images a lab usually carves still succeeds, every task whose range
// is empty carving nothing, on a tiny one. An empty range must not be
// passed as CarveOptions.Range, where End 0 means the image end.
func ShardRange(k, n int, imageSize int64) (Range, error) {
	switch {
	case n < 1:
		return Range{}, fmt.Errorf("pipeline: %d shards: want 1 or more", n)
	case k < 0 || k >= n:
		return Range{}, fmt.Errorf("pipeline: shard %d of %d: want 0 to %d", k, n, n-1)
	case imageSize < MinImageSize:
		return Range{}, fmt.Errorf("pipeline: an image of %d bytes is too small to carve (need at least %d)", imageSize, MinImageSize)
	}
	blocks := (imageSize + carver.BlockSize - 1) / carver.BlockSize
	r := Range{Start: shardBoundary(k, n, blocks), End: imageSize}
	if k+1 < n {
		r.End = shardBoundary(k+1, n, blocks)
	}
	return r, nil
}

// shardBoundary is the image offset of block ⌊k·blocks/n⌋, for 0 ≤ k < n.
// The product is taken in 128 bits: k·blocks overflows int64 for a
// petabyte image split a few thousand ways. The quotient is below blocks,
// so it fits, and Div64 cannot panic (the product's high word is below n).
func shardBoundary(k, n int, blocks int64) int64 {
	hi, lo := bits.Mul64(uint64(k), uint64(blocks))
	q, _ := bits.Div64(hi, lo, uint64(n))
	return int64(q) * carver.BlockSize
}

// ParseShard parses --shard: "K/N" carves the K-th (0-based) of N shards,
// "auto/N" takes K from the batch engine's environment, looked up with
// getenv (os.Getenv; a test passes a map's lookup): a Slurm array task's
// SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN, else a
// Kubernetes Indexed Job's JOB_COMPLETION_INDEX. The array must have N
// tasks with consecutive IDs: an array of another size or with gaps
// (--array=0-8:2, --array=1,4,7) would leave shards uncarved or carve
// one twice, so it is refused in every task.
func ParseShard(s string, getenv func(string) string) (k, n int, err error) {
	ks, ns, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad shard %q: want K/N or auto/N", s)
	}
	if n, err = strconv.Atoi(ns); err != nil || n < 1 {
		return 0, 0, fmt.Errorf("bad shard %q: N must be a whole number of 1 or more", s)
	}
	if ks == "auto" {
		if k, err = shardFromEnv(n, getenv); err != nil {
			return 0, 0, err
		}
		return k, n, nil
	}
	if k, err = strconv.Atoi(ks); err != nil || k < 0 || k >= n {
		return 0, 0, fmt.Errorf("bad shard %q: K must be a whole number from 0 to N-1 (%d)", s, n-1)
	}
	return k, n, nil
}

// shardFromEnv finds this task's shard index among n.
func shardFromEnv(n int, getenv func(string) string) (int, error) {
	if getenv(EnvSlurmTaskID) != "" {
		return slurmShard(n, getenv)
	}
	if v := getenv(EnvJobCompletionIndex); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 || k >= n {
			return 0, fmt.Errorf("shard auto/%d: %s=%q: want 0 to %d (completions: %d in the Job)", n, EnvJobCompletionIndex, v, n-1, n)
		}
		return k, nil
	}
	return 0, fmt.Errorf("shard auto/%d: neither %s (a Slurm job array task) nor %s (a Kubernetes Indexed Job) is set: give the shard as K/N",
		n, EnvSlurmTaskID, EnvJobCompletionIndex)
}

// slurmShard maps a Slurm array task onto its shard: ID minus the
// array's lowest ID.
func slurmShard(n int, getenv func(string) string) (int, error) {
	num := func(name string, unset int) (int, error) {
		v := getenv(name)
		if v == "" {
			return unset, nil
		}
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 {
			return 0, fmt.Errorf("shard auto/%d: %s=%q is not a task ID or count", n, name, v)
		}
		return x, nil
	}
	id, err := num(EnvSlurmTaskID, 0)
	if err != nil {
		return 0, err
	}
	lo, err := num(EnvSlurmTaskMin, 0)
	if err != nil {
		return 0, err
	}
	hi, err := num(EnvSlurmTaskMax, lo+n-1)
	if err != nil {
		return 0, err
	}
	count, err := num(EnvSlurmTaskCount, n)
	if err != nil {
		return 0, err
	}
	want := fmt.Sprintf("submit it with --array=0-%d", n-1)
	switch {
	case count != n:
		return 0, fmt.Errorf("shard auto/%d: the job array has %s=%d tasks, not %d: %s", n, EnvSlurmTaskCount, count, n, want)
	case hi-lo+1 != n:
		return 0, fmt.Errorf("shard auto/%d: the job array's task IDs %s=%d to %s=%d are not %d consecutive IDs: %s",
			n, EnvSlurmTaskMin, lo, EnvSlurmTaskMax, hi, n, want)
	case id < lo || id-lo >= n:
		return 0, fmt.Errorf("shard auto/%d: %s=%d is outside the array's IDs %d to %d: %s", n, EnvSlurmTaskID, id, lo, lo+n-1, want)
	}
	return id - lo, nil
}
