package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestShardRange(t *testing.T) {
	const tb = int64(1) << 40
	for _, tc := range []struct {
		k, n    int
		size    int64
		want    Range
		wantErr string
	}{
		{0, 1, 10000, Range{0, 10000}, ""},
		{0, 2, 8192, Range{0, 4096}, ""},
		{1, 2, 8192, Range{4096, 8192}, ""},
		// 3 blocks, the last partial, in 2: block ⌊3/2⌋ = 1.
		{0, 2, 8193, Range{0, 4096}, ""},
		{1, 2, 8193, Range{4096, 8193}, ""},
		// 10 MiB in 3: 2560 blocks, boundaries at blocks 853 and 1706.
		{0, 3, 10 << 20, Range{0, 853 * 4096}, ""},
		{1, 3, 10 << 20, Range{853 * 4096, 1706 * 4096}, ""},
		{2, 3, 10 << 20, Range{1706 * 4096, 10 << 20}, ""},
		// An image smaller than one block is one shard's, whatever N.
		{0, 4, 600, Range{0, 0}, ""},
		{3, 4, 600, Range{0, 600}, ""},
		// More shards than blocks (3): the empty ones carve nothing.
		{0, 5, 12288, Range{0, 0}, ""},
		{1, 5, 12288, Range{0, 4096}, ""},
		{2, 5, 12288, Range{4096, 4096}, ""},
		{4, 5, 12288, Range{8192, 12288}, ""},
		// k·blocks overflows 64 bits: 4 EiB of blocks (2^50) times 2^20.
		{1<<20 - 1, 1 << 20, 1 << 62, Range{(1<<50 - 1<<30) * 4096, 1 << 62}, ""},
		{1, 1 << 20, 1 << 62, Range{1 << 42, 2 << 42}, ""},
		{7, 10, 2*tb + 512, Range{(2*tb/4096 + 1) * 7 / 10 * 4096, (2*tb/4096 + 1) * 8 / 10 * 4096}, ""},
		{0, 0, 8192, Range{}, "want 1 or more"},
		{-1, 2, 8192, Range{}, "want 0 to 1"},
		{2, 2, 8192, Range{}, "want 0 to 1"},
		{0, 1, 511, Range{}, "too small"},
	} {
		got, err := ShardRange(tc.k, tc.n, tc.size)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ShardRange(%d, %d, %d) = %v, %v; want %v, error %q", tc.k, tc.n, tc.size, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestShardRangesTile: for any split the ranges follow each other from 0
// to the image end, each aligned as Carve requires and no longer than
// one block more than any other.
func TestShardRangesTile(t *testing.T) {
	for _, size := range []int64{512, 4095, 4096, 4097, 12288, 1<<20 + 1000, 1 << 30, 20<<40 + 3*512} {
		for _, n := range []int{1, 2, 3, 5, 7, 64, 1000, 4096} {
			pos, lo, hi := int64(0), int64(1)<<62, int64(0)
			for k := range n {
				r, err := ShardRange(k, n, size)
				switch {
				case err != nil:
					t.Fatalf("ShardRange(%d, %d, %d): %v", k, n, size, err)
				case r.Start != pos || r.End < r.Start:
					t.Fatalf("ShardRange(%d, %d, %d) = %v: want it to start at %d", k, n, size, r, pos)
				case r.Start%4096 != 0 || r.End%4096 != 0 && r.End != size:
					t.Fatalf("ShardRange(%d, %d, %d) = %v: not on 4 KiB blocks", k, n, size, r)
				}
				pos = r.End
				lo, hi = min(lo, r.End-r.Start), max(hi, r.End-r.Start)
			}
			if pos != size {
				t.Errorf("%d shards of %d bytes end at %d", n, size, pos)
			}
			if hi-lo > 2*4096 { // one block, plus the short last block's shortfall
				t.Errorf("%d shards of %d bytes: lengths from %d to %d", n, size, lo, hi)
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	slurm := func(id, lo, hi, count string) map[string]string {
		return map[string]string{EnvSlurmTaskID: id, EnvSlurmTaskMin: lo, EnvSlurmTaskMax: hi, EnvSlurmTaskCount: count}
	}
	for _, tc := range []struct {
		name    string
		in      string
		env     map[string]string
		k, n    int
		wantErr string
	}{
		{"explicit", "2/5", nil, 2, 5, ""},
		{"explicit ignores the environment", "0/1", map[string]string{EnvJobCompletionIndex: "3"}, 0, 1, ""},
		{"K too large", "5/5", nil, 0, 0, "from 0 to N-1 (4)"},
		{"negative K", "-1/5", nil, 0, 0, "from 0 to N-1"},
		{"N zero", "0/0", nil, 0, 0, "1 or more"},
		{"no slash", "3", nil, 0, 0, "want K/N or auto/N"},
		{"not numbers", "a/b", nil, 0, 0, "whole number"},

		{"slurm from 0", "auto/3", slurm("2", "0", "2", "3"), 2, 3, ""},
		{"slurm from 1", "auto/3", slurm("1", "1", "3", "3"), 0, 3, ""},
		{"slurm without min, max and count", "auto/4", map[string]string{EnvSlurmTaskID: "3"}, 3, 4, ""},
		{"slurm before kubernetes", "auto/4", map[string]string{EnvSlurmTaskID: "1", EnvJobCompletionIndex: "2"}, 1, 4, ""},
		{"slurm array of another size", "auto/4", slurm("1", "0", "2", "3"), 0, 0, "SLURM_ARRAY_TASK_COUNT=3 tasks, not 4: submit it with --array=0-3"},
		{"slurm array with a step", "auto/3", slurm("2", "0", "4", "3"), 0, 0, "SLURM_ARRAY_TASK_MIN=0 to SLURM_ARRAY_TASK_MAX=4 are not 3 consecutive"},
		{"slurm ID past the array", "auto/3", map[string]string{EnvSlurmTaskID: "3"}, 0, 0, "SLURM_ARRAY_TASK_ID=3 is outside"},
		{"slurm ID not a number", "auto/3", slurm("x", "0", "2", "3"), 0, 0, `SLURM_ARRAY_TASK_ID="x"`},
		{"slurm count not a number", "auto/3", slurm("0", "0", "2", "three"), 0, 0, `SLURM_ARRAY_TASK_COUNT="three"`},

		{"kubernetes", "auto/8", map[string]string{EnvJobCompletionIndex: "7"}, 7, 8, ""},
		{"kubernetes index 0", "auto/8", map[string]string{EnvJobCompletionIndex: "0"}, 0, 8, ""},
		{"kubernetes index past completions", "auto/8", map[string]string{EnvJobCompletionIndex: "8"}, 0, 0, `JOB_COMPLETION_INDEX="8": want 0 to 7`},
		{"kubernetes index not a number", "auto/8", map[string]string{EnvJobCompletionIndex: "one"}, 0, 0, "JOB_COMPLETION_INDEX"},

		{"no engine", "auto/2", nil, 0, 0, "neither SLURM_ARRAY_TASK_ID (a Slurm job array task) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set"},
		{"auto without N", "auto/", map[string]string{EnvJobCompletionIndex: "0"}, 0, 0, "1 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, n, err := ParseShard(tc.in, func(name string) string { return tc.env[name] })
			if k != tc.k || n != tc.n || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseShard(%q) with %v = %d, %d, %v; want %d, %d, error %q", tc.in, tc.env, k, n, err, tc.k, tc.n, tc.wantErr)
			}
		})
	}
}

// TestShardsFromEnvironmentTile maps every task of each engine's array
// onto its range and checks the ranges tile the image: what the tasks of
// one job carve together is the whole image, each byte once.
func TestShardsFromEnvironmentTile(t *testing.T) {
	const size, n = 3<<30 + 1536, 7
	for _, engine := range []struct {
		name string
		env  func(task int) map[string]string
	}{
		{"slurm --array=0-6", func(task int) map[string]string {
			return map[string]string{EnvSlurmTaskID: fmt.Sprint(task), EnvSlurmTaskMin: "0", EnvSlurmTaskMax: "6", EnvSlurmTaskCount: "7"}
		}},
		{"slurm --array=10-16", func(task int) map[string]string {
			return map[string]string{EnvSlurmTaskID: fmt.Sprint(10 + task), EnvSlurmTaskMin: "10", EnvSlurmTaskMax: "16", EnvSlurmTaskCount: "7"}
		}},
		{"kubernetes completions: 7", func(task int) map[string]string {
			return map[string]string{EnvJobCompletionIndex: fmt.Sprint(task)}
		}},
	} {
		pos := int64(0)
		for task := range n {
			env := engine.env(task)
			k, got, err := ParseShard(fmt.Sprintf("auto/%d", n), func(name string) string { return env[name] })
			if err != nil || got != n || k != task {
				t.Fatalf("%s task %d: ParseShard = %d/%d, %v; want %d/%d", engine.name, task, k, got, err, task, n)
			}
			r, err := ShardRange(k, n, size)
			if err != nil || r.Start != pos {
				t.Fatalf("%s task %d: ShardRange = %v, %v; want it to start at %d", engine.name, task, r, err, pos)
			}
			pos = r.End
		}
		if pos != size {
			t.Errorf("%s: the tasks' ranges end at %d, not the image end %d", engine.name, pos, size)
		}
	}
}

// TestConcurrentShardsJoinOneCase starts every shard of a new case at
// once, as an array job does, and checks none is refused and the merge is
// what one run gives. Before CreateOrOpenCase took the manifest's
// temporary file for a stranger's, 23 of 160 such runs were refused.
func TestConcurrentShardsJoinOneCase(t *testing.T) {
	image, data, _ := writeImage(t, 1<<20+1000, 7)
	size := int64(len(data))
	whole := filepath.Join(t.TempDir(), "whole")
	carve(t, whole, image, CarveOptions{Workers: 1})
	const n = 4
	for round := range 10 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("case", round))
		var wg sync.WaitGroup
		errs := make([]error, n)
		for k := range n {
			wg.Go(func() {
				r, err := ShardRange(k, n, size)
				if err == nil {
					_, err = Carve(context.Background(), dir, image, CarveOptions{Workers: 1, ChunkSize: testChunk, Range: &r})
				}
				errs[k] = err
			})
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("round %d, shard %d/%d: %v", round, k, n, err)
			}
		}
		c, err := OpenCase(dir)
		if err != nil || !c.CarveComplete() {
			t.Fatalf("round %d: case %v, complete %v", round, err, err == nil && c.CarveComplete())
		}
		sameOutputs(t, fmt.Sprint("round ", round), whole, dir)
	}
}
