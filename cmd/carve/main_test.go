package main

import (
	"bytes"
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
