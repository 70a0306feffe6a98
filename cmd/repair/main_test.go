package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/vmdk"
)

// brokenVMDK writes a monolithicSparse VMDK of text grains whose primary
// grain directory and tables are zeroed, and returns its path.
func brokenVMDK(t *testing.T, dir string) string { return brokenVMDKOf(t, dir, nil) }

// brokenVMDKOf is brokenVMDK with the descriptor template desc.
func brokenVMDKOf(t *testing.T, dir string, desc *vmdk.Descriptor) string {
	t.Helper()
	const sectors = 4096
	var m tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&m, vmdk.SparseWriterOptions{Capacity: sectors, FileName: "broken.vmdk", Descriptor: desc}, func(g uint64, b []byte) (bool, error) {
		if g%4 != 3 {
			copy(b, strings.Repeat("grain data ", 6000))
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	h, err := vmdk.ParseSparseHeader(m.Bytes[:512])
	if err != nil {
		t.Fatal(err)
	}
	clear(m.Bytes[h.GDOffset*512 : (h.GDOffset+h.GDSectors()+h.GDEntries()*h.GTSectors())*512])
	path := filepath.Join(dir, "broken.vmdk")
	if err := os.WriteFile(path, m.Bytes, 0o444); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	in := brokenVMDK(t, dir)
	noise := filepath.Join(dir, "noise.vmdk")
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'r'}).Read(b)
	if err := os.WriteFile(noise, b, 0o444); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	exists := filepath.Join(outDir, "exists.vmdk")
	if err := os.WriteFile(exists, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := func(name string) string { return filepath.Join(outDir, name) }
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring of stdout
		stderr string // a substring of stderr
	}{
		{"help", []string{"--help"}, exitOK, "", "Output formats"},
		{"no arguments", nil, exitUsage, "", "want BROKEN.vmdk and OUT.vmdk"},
		{"one argument", []string{in}, exitUsage, "", "got 1 arguments"},
		{"three arguments", []string{in, out("a"), out("b")}, exitUsage, "", "got 3 arguments"},
		{"bad format", []string{"--format", "qcow2", in, out("q.vmdk")}, exitUsage, "", "unknown output format"},
		{"bad progress", []string{"--progress", "loud", in, out("p.vmdk")}, exitUsage, "", "--progress"},
		{"bad disk", []string{"--disk", "-1", in, out("d.vmdk")}, exitUsage, "", "--disk"},
		{"bad hash", []string{"--hash", "crc", in, out("h.vmdk")}, exitUsage, "", "--hash"},
		{"unknown flag", []string{"--frobnicate", in, out("f.vmdk")}, exitUsage, "", "flag provided but not defined"},
		{"missing input", []string{filepath.Join(dir, "nope.vmdk"), out("m.vmdk")}, exitError, "", "no such file"},
		{"output exists", []string{"--progress", "none", in, exists}, exitError, "", "--force"},
		{"output is the input", []string{"--force", in, in}, exitError, "", "never writes over the evidence"},
		{"nothing recovered", []string{"--progress", "none", noise, out("n.vmdk")}, exitNothingFound, "nothing could be recovered", ""},
		{"no such disk", []string{"--progress", "none", "--disk", "4", in, out("4.vmdk")}, exitError, "", "no such disk"},
		{"repaired", []string{"--progress", "none", in, out("fixed.vmdk")}, exitOK, "24 recovered, 8 empty", ""},
		{"flags after the files", []string{in, out("fixed-stream.vmdk"), "--format", "stream", "--progress", "none"}, exitOK, "(streamOptimized)", ""},
		{"forced", []string{"--progress", "none", "--force", "--format", "raw", in, exists}, exitOK, "wrote     " + exists, ""},
		{"steps on stderr", []string{"--progress", "plain", in, out("steps.vmdk")}, exitOK, "", "repair: writing disk 01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stdout:\n%s\nstderr:\n%s\nwant %q and %q", stdout.String(), stderr.String(), tc.stdout, tc.stderr)
			}
		})
	}
	if b, _ := os.ReadFile(out("n.vmdk")); b != nil {
		t.Error("nothing recovered, but an output was written")
	}
	if st, err := os.Stat(exists); err != nil || st.Size() != 4096*512 {
		t.Errorf("--force did not write the raw disk over the existing file: %v %v", st, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("the input's directory holds %d entries, want the 2 inputs", len(ents))
	}
}

// TestFindingsWords: the findings of a disk with missing grains say how
// many, that they read as zeros, why and where.
func TestFindingsWords(t *testing.T) {
	dir := t.TempDir()
	in := brokenVMDK(t, dir)
	// Cut the file's last two grains off: the tables name sectors past
	// its end, and those grains are missing.
	b, _ := os.ReadFile(in)
	in2 := filepath.Join(dir, "worse.vmdk")
	if err := os.WriteFile(in2, b[:len(b)-2*65536], 0o444); err != nil {
		t.Fatal(err)
	}
	caseDir := filepath.Join(t.TempDir(), "case")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--progress", "none", "--case", caseDir, in2, filepath.Join(t.TempDir(), "fixed.vmdk")}, &stdout, &stderr)
	t.Logf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(stdout.String(), "snapshot") {
		t.Error("a base disk called a snapshot")
	}
	for _, want := range []string{
		"found     monolithicSparse at byte 0 of the file, header intact",
		"could be neither recovered nor proven empty.\n          They read as zeros in the output",
		"missing   2 grains (128.0 KiB)",
		"at virtual bytes 1900544-2031615 (grains 29-30)",
		"report    " + filepath.Join(caseDir, "disks", "disk-01.json"),
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("findings lack %q", want)
		}
	}
}

// TestFindingsSnapshot: a delta's findings say that the output holds only
// the grains written since its parent.
func TestFindingsSnapshot(t *testing.T) {
	in := brokenVMDKOf(t, t.TempDir(), &vmdk.Descriptor{CID: 0x11112222, ParentCID: 0x33334444})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--progress", "none", in, filepath.Join(t.TempDir(), "fixed.vmdk")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "snapshot  the file is a snapshot (delta) of a parent disk (parentCID 33334444") {
		t.Errorf("findings:\n%s", stdout.String())
	}
}
