package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/findings"
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

// dataDisk returns a monolithicSparse VMDK of 4096 sectors whose 32
// grains all hold data.
func dataDisk(t *testing.T) []byte {
	t.Helper()
	var w tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&w, vmdk.SparseWriterOptions{Capacity: 4096, FileName: "x.vmdk"}, func(g uint64, b []byte) (bool, error) {
		copy(b, strings.Repeat("data ", 20000))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return w.Bytes
}

func TestExitCodes(t *testing.T) {
	withDisk := carved(t, dataDisk(t))
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
		{"rebuilt: no finding", []string{"--progress", "none", "--force", withDisk}, exitOK, "findings: 0 errors, 0 warnings, 0 info\n"},
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

// TestPrintFindings: one line per finding, its severity, code, where it
// lies and both sentences, then the count.
func TestPrintFindings(t *testing.T) {
	var w bytes.Buffer
	printFindings(&w, []findings.Finding{
		findings.UnreadableArea(4096, 512),
		findings.GrainsMissing(3, 640, map[string]uint64{"no-evidence": 3}).On(1, 0),
		findings.HeaderLost(1<<20, "footer").On(1, 2),
	})
	lines := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	want := []string{
		"",
		"findings (findings.json; codes in README, Finding codes):",
		"warning  unreadable-area  evidence            512 bytes of the evidence at image offset 4096 could not be read",
		"error    grains-missing   disk 01             3 grains of the disk's 640 have no evidence naming their bytes (3 no-evidence). They were written as holes",
		"warning  header-lost      disk 01 instance 2  No valid VMDK header was found where the file begins (image offset 1048576)",
		"findings: 1 error, 2 warnings, 0 info",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), w.String())
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\n%q\nwant it to start with\n%q", i, lines[i], want[i])
		}
	}
}

// TestProgress: rebuild's notes and steps in each --progress mode; json
// lines parse, and the plan and emit steps each end finished at their
// totals (the disk's 32 grains, once more for each extra --format).
func TestProgress(t *testing.T) {
	caseDir := carved(t, dataDisk(t))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--progress", "plain", caseDir}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"rebuild: planning from", "rebuild plan: 1 of 1 instances (100.0%)", "rebuild emit: 32 of 32 grains (100.0%)", "rebuild: disk-01: writing"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("plain progress lacks %q:\n%s", want, stderr.String())
		}
	}
	stderr.Reset()
	if code := run([]string{"--progress", "json", "--force", "--format", "raw", caseDir}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	finished := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var ev struct {
			Stage, Message string
			Done, Total    int64
			Finished       bool
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", l, err)
		}
		if ev.Finished {
			if ev.Done != ev.Total {
				t.Errorf("%s finished at %d of %d", ev.Stage, ev.Done, ev.Total)
			}
			finished[ev.Stage] = ev.Total
		}
	}
	if want := map[string]int64{"plan": 1, "emit": 64}; !maps.Equal(finished, want) {
		t.Errorf("finished steps %v, want %v:\n%s", finished, want, stderr.String())
	}
	// Every extra format reads the grains again: the emit step counts
	// each pass, so that it ends at its total.
	stderr.Reset()
	if code := run([]string{"--progress", "json", "--force", "--format", "raw,stream,raw", caseDir}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	emitted := false
	for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var ev struct {
			Stage       string
			Done, Total int64
			Finished    bool
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", l, err)
		}
		if ev.Finished && ev.Stage == "emit" {
			emitted = true
			if ev.Done != 96 || ev.Total != 96 {
				t.Errorf("--format raw,stream: emit finished at %d of %d, want 96 of 96", ev.Done, ev.Total)
			}
		}
	}
	if !emitted {
		t.Errorf("--format raw,stream: the emit step never finished:\n%s", stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"--progress", "none", "--force", caseDir}, &stdout, &stderr); code != exitOK || stderr.Len() != 0 {
		t.Errorf("--progress none: exit %d, stderr %q", code, stderr.String())
	}
	if code := run([]string{"--progress", "loud", caseDir}, &stdout, &stderr); code != exitUsage {
		t.Errorf("--progress loud: exit %d, want %d", code, exitUsage)
	}
}
