package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/vmdk"
)

// carved returns a carved case over an image of noise with the given
// files laid at 1 MiB.
func carved(t *testing.T, files ...[]byte) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	img := make([]byte, 4<<20)
	for i := range img {
		img[i] = byte(rng.Uint32())
	}
	at := 1 << 20
	for _, f := range files {
		img = append(img[:at], append(f, img[at:]...)...)
		at += len(f)
	}
	path := filepath.Join(t.TempDir(), "image.dd")
	if err := os.WriteFile(path, img, 0o444); err != nil {
		t.Fatal(err)
	}
	caseDir := filepath.Join(t.TempDir(), "case")
	if _, err := pipeline.Carve(context.Background(), caseDir, path, pipeline.CarveOptions{}); err != nil {
		t.Fatal(err)
	}
	return caseDir
}

func TestExitCodes(t *testing.T) {
	var w tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: 4096, FileName: "x.vmdk"}, func(g uint64, b []byte) (bool, error) {
		copy(b, strings.Repeat("data ", 20000))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	withDisk := carved(t, w.Bytes)
	empty := carved(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"help", []string{"--help"}, exitOK, ""},
		{"no case", nil, exitUsage, ""},
		{"bad format", []string{"--format", "qcow2", withDisk}, exitUsage, ""},
		{"not a case", []string{t.TempDir()}, exitError, ""},
		{"nothing found", []string{"--progress", "none", empty}, exitNothingFound, ""},
		{"rebuilt", []string{"--progress", "none", "--format", "raw", withDisk}, exitOK, "disks/disk-01.vmdk"},
		{"already done", []string{"--progress", "none", withDisk}, exitOK, "already complete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.out) {
				t.Fatalf("stdout %q lacks %q", stdout.String(), tc.out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(withDisk, "disks", "disk-01.raw")); err != nil {
		t.Fatal("--format raw wrote no raw image:", err)
	}
}
