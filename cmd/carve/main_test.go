package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	tmp := t.TempDir()
	image := filepath.Join(tmp, "img.dd")
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	os.WriteFile(image, data, 0o444)
	caseDir := filepath.Join(tmp, "case")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"--help"}, exitOK, "", "grain-marker"},
		{"no case", []string{image}, exitUsage, "", "-o CASE is required"},
		{"no image", []string{"-o", caseDir}, exitUsage, "", "exactly one IMAGE"},
		{"two images", []string{"-o", caseDir, image, image}, exitUsage, "", "exactly one IMAGE"},
		{"bad flag", []string{"--bogus", "-o", caseDir, image}, exitUsage, "", "bogus"},
		{"bad range", []string{"--range", "5", "-o", caseDir, image}, exitUsage, "", "--range"},
		{"bad chunk", []string{"--chunk", "1000", "-o", caseDir, image}, exitUsage, "", "--chunk"},
		{"bad recognizer", []string{"--enable", "nope", "-o", caseDir, image}, exitUsage, "", "unknown recognizer"},
		{"missing image", []string{"-o", caseDir, filepath.Join(tmp, "nope")}, exitError, "", "opening evidence"},
		{"first shard", []string{"--progress", "none", "--range", "0:512K", "-o", caseDir, image}, exitOK, "incomplete", ""},
		{"flags after the image", []string{image, "--range", "512K:", "--chunk", "64K", "-o", caseDir}, exitOK, "carve     complete", ""},
		{"done already", []string{"-o", caseDir, "--range", "512K:1M", image}, exitOK, "already complete", ""},
		{"plain progress, forced", []string{"--progress", "plain", "--force", "--workers", "1", "-o", caseDir, image}, exitOK, "sha256", "carve: 1.0 MiB of 1.0 MiB"},
		{"auto progress off a terminal is plain", []string{"--force", "-o", caseDir, image}, exitOK, "sha256", "carve: 1.0 MiB of 1.0 MiB (100.0%)"},
		{"json progress", []string{"--progress", "json", "--force", "-o", caseDir, image}, exitOK, "sha256", `"stage":"carve","unit":"bytes","done":1048576,"total":1048576`},
		{"bad progress", []string{"--progress", "bar", "-o", caseDir, image}, exitUsage, "", "want auto, plain, json or none"},
		{"help names the progress modes", []string{"--help"}, exitOK, "", "json (one JSON object per line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("carve %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestShardFlag carves a case as shards named by --shard, explicit and
// from each batch engine's environment (in the order a scheduler might
// run them), and checks the flag's errors.
func TestShardFlag(t *testing.T) {
	tmp := t.TempDir()
	image := filepath.Join(tmp, "img.dd")
	data := make([]byte, 3<<20+512)
	rand.NewChaCha8([32]byte{2}).Read(data)
	os.WriteFile(image, data, 0o444)
	tiny := filepath.Join(tmp, "tiny.dd")
	os.WriteFile(tiny, data[:3*4096], 0o444)
	small := filepath.Join(tmp, "small.dd")
	os.WriteFile(small, data[:100], 0o444)
	caseDir, tinyCase := filepath.Join(tmp, "case"), filepath.Join(tmp, "tiny")
	// The test may itself run as a Slurm or Kubernetes task.
	t.Setenv("SLURM_ARRAY_TASK_ID", "")
	t.Setenv("JOB_COMPLETION_INDEX", "")
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"with --range", nil, []string{"--shard", "0/2", "--range", "0:4K", "-o", caseDir, image}, exitUsage, "", "--range and --shard"},
		{"K out of range", nil, []string{"--shard", "2/2", "-o", caseDir, image}, exitUsage, "", "--shard: bad shard"},
		{"auto without an engine", nil, []string{"--shard", "auto/3", "-o", caseDir, image}, exitUsage, "", "neither SLURM_ARRAY_TASK_ID"},
		{"auto, array of another size", map[string]string{"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}, []string{"--shard", "auto/3", "-o", caseDir, image}, exitUsage, "", "--array=0-2"},
		{"missing image", nil, []string{"--shard", "0/3", "-o", caseDir, filepath.Join(tmp, "nope")}, exitError, "", "opening evidence"},
		{"too small", nil, []string{"--shard", "0/3", "-o", caseDir, small}, exitError, "", "too small to carve"},
		{"explicit", nil, []string{"--progress", "none", "--shard", "2/3", "-o", caseDir, image}, exitOK, "shard     [2097152, 3146240)", ""},
		{"kubernetes", map[string]string{"JOB_COMPLETION_INDEX": "0"}, []string{"--progress", "none", "--shard", "auto/3", "-o", caseDir, image}, exitOK, "shard     [0, 1048576)", ""},
		{"slurm", map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_COUNT": "3"},
			[]string{"--progress", "none", "--shard", "auto/3", "-o", caseDir, image}, exitOK, "carve     complete", ""},
		{"done already", nil, []string{"--progress", "none", "--shard", "1/3", "-o", caseDir, image}, exitOK, "shard     [1048576, 2097152)\nscanned   nothing", ""},
		{"empty shard", nil, []string{"--shard", "0/5", "-o", tinyCase, tiny}, exitOK, "shard     0/5 of " + tiny + " is empty", ""},
		{"shards of a tiny image", nil, []string{"--progress", "none", "--shard", "1/5", "-o", tinyCase, tiny}, exitOK, "shard     [0, 4096)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("carve %v with %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, tc.env, code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tinyCase, "shards", "0-0")); err == nil {
		t.Errorf("the empty shard left a shard directory")
	}
}

// TestJSONProgress: --progress json writes only JSON lines on stderr, the
// last of the stage finished at the whole image.
func TestJSONProgress(t *testing.T) {
	image := filepath.Join(t.TempDir(), "img.dd")
	data := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)
	os.WriteFile(image, data, 0o444)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--progress", "json", "--chunk", "64K", "-o", filepath.Join(t.TempDir(), "case"), image}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	var last map[string]any
	for _, l := range lines {
		last = nil
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", l, err)
		}
	}
	if last["finished"] != true || last["done"] != float64(len(data)) || last["stage"] != "carve" || last["command"] != "carve" {
		t.Errorf("last progress line %v: want carve finished at %d", last, len(data))
	}
}
