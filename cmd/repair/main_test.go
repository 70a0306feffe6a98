package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/findings"
	"vmdkcarve/internal/progress"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/vmdk"
)

// flat is text with every run of white space made one space, so that a
// test looks for a sentence however it is wrapped.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

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

func TestRepairExitCodes(t *testing.T) {
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
		{"bad progress", []string{"--progress", "loud", in, out("p.vmdk")}, exitUsage, "", "want auto, plain, json or none"},
		{"help names json", []string{"-h"}, exitOK, "", "one JSON object per line"},
		{"bad disk", []string{"--disk", "-1", in, out("d.vmdk")}, exitUsage, "", "--disk"},
		{"bad hash", []string{"--hash", "crc", in, out("h.vmdk")}, exitUsage, "", "--hash"},
		{"unknown flag", []string{"--frobnicate", in, out("f.vmdk")}, exitUsage, "", "flag provided but not defined"},
		{"missing input", []string{filepath.Join(dir, "nope.vmdk"), out("m.vmdk")}, exitError, "", "no such file"},
		{"output exists", []string{"--progress", "none", in, exists}, exitError, "", "--force"},
		{"output is the input", []string{"--force", in, in}, exitError, "", "never writes over the evidence"},
		{"nothing recovered", []string{"--progress", "none", noise, out("n.vmdk")}, exitNothingFound, "nothing could be recovered", ""},
		{"no such disk", []string{"--progress", "none", "--disk", "4", in, out("4.vmdk")}, exitError, "", "no such disk"},
		{"repaired", []string{"--progress", "none", in, out("fixed.vmdk")}, exitOK, "24 recovered, 8 empty", ""},
		{"coded findings", []string{"--progress", "none", in, out("coded.vmdk")}, exitOK, "[primary-tables-lost]", ""},
		{"flags after the files", []string{in, out("fixed-stream.vmdk"), "--format", "stream", "--progress", "none"}, exitOK, "(streamOptimized)", ""},
		{"forced", []string{"--progress", "none", "--force", "--format", "raw", in, exists}, exitOK, "wrote     " + exists, ""},
		{"steps on stderr", []string{"--progress", "plain", in, out("steps.vmdk")}, exitOK, "", "repair: writing disk 01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(flat(stdout.String()), flat(tc.stdout)) || !strings.Contains(flat(stderr.String()), flat(tc.stderr)) {
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

// TestRepairFindingsWords: the findings of a disk with missing grains say how
// many, that they read as zeros, why and where.
func TestRepairFindingsWords(t *testing.T) {
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
	text := flat(stdout.String())
	for _, want := range []string{
		"disk 01: 2.0 MiB virtual, 32 grains of 64.0 KiB, from a monolithicSparse file; the only disk found",
		"missing 2 grains (128.0 KiB) could be neither recovered nor proven empty.",
		"Missing grains read as zeros in the output because no disk format can mark them missing",
		"missing (table-entry-invalid): virtual bytes 1900544-2031615 (grains 29-30)",
		"input opened read-only; its sha256: ",
		"findings 1 error, 1 warning, 0 info.",
		"error 2 grains of the disk's 32 have no evidence naming their bytes (2 table-entry-invalid).",
		"[grains-missing]",
		"warning The primary copy of 1 of the file's 1 grain table is unusable. 1 grain table was read from the redundant copy instead. [primary-tables-lost]",
		"report " + filepath.Join(caseDir, "disks", "disk-01.json"),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("findings lack %q", want)
		}
	}
	// The sentences lead, the code follows: errors first.
	if e, w := strings.Index(text, "[grains-missing]"), strings.Index(text, "[primary-tables-lost]"); e > w {
		t.Error("the warning is listed before the error")
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if len(line) > width && strings.Contains(line, " ") && !strings.HasPrefix(line, "repaired") && !strings.HasPrefix(line, "wrote") {
			t.Errorf("line of %d bytes: %q", len(line), line)
		}
	}
}

// TestRepairJSON: --json prints the RepairResult as one JSON object, its
// findings coded as the case's findings.json has them, and no text.
func TestRepairJSON(t *testing.T) {
	in := brokenVMDK(t, t.TempDir())
	caseDir := filepath.Join(t.TempDir(), "case")
	out := filepath.Join(t.TempDir(), "fixed.vmdk")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--json", "--progress", "none", "--case", caseDir, in, out}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	var got struct {
		pipeline.RepairResult
		Exit int `json:"exit"`
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not the RepairResult: %v", err)
	}
	if dec.More() {
		t.Error("more than one JSON value on stdout")
	}
	if got.Input != in || got.Format != pipeline.FormatSparse || len(got.Outputs) != 1 || got.Outputs[0].Path != out || got.Case != caseDir || got.Exit != exitOK {
		t.Errorf("result %+v", got)
	}
	if got.Disk == nil || got.Disk.Disk == nil || got.Disk.Disk.Counts.Placed != 24 || got.Disk.Disk.Counts.Zero != 8 {
		t.Fatalf("report %+v", got.Disk)
	}
	codes := func(fs []findings.Finding) []findings.Code {
		var out []findings.Code
		for _, f := range fs {
			if f.Message == "" || f.Severity == "" {
				t.Errorf("finding without words: %+v", f)
			}
			out = append(out, f.Code)
		}
		return out
	}
	if c := codes(got.Findings); !slices.Contains(c, findings.CodePrimaryTablesLost) || slices.Contains(c, findings.CodeEvidenceNotHashed) {
		t.Errorf("findings %v: want primary-tables-lost, and no evidence-not-hashed (the input is hashed by default)", c)
	}
	// They are the case's findings (one disk: all of them).
	b, err := os.ReadFile(filepath.Join(caseDir, pipeline.FindingsName))
	if err != nil {
		t.Fatal(err)
	}
	var file pipeline.FindingsFile
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(codes(got.Findings), codes(file.Findings)) {
		t.Errorf("--json findings %v, the case's %v", codes(got.Findings), codes(file.Findings))
	}

	// Nothing recovered: still one object, with the error and exit 3.
	noise := filepath.Join(t.TempDir(), "noise.vmdk")
	junk := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'j'}).Read(junk)
	if err := os.WriteFile(noise, junk, 0o444); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run([]string{"--json", "--progress", "none", noise, filepath.Join(t.TempDir(), "n.vmdk")}, &stdout, &stderr); code != exitNothingFound {
		t.Fatalf("exit %d", code)
	}
	var failed struct {
		Error    string             `json:"error"`
		Exit     int                `json:"exit"`
		Findings []findings.Finding `json:"findings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &failed); err != nil || failed.Exit != exitNothingFound || !strings.Contains(failed.Error, "nothing") || failed.Findings == nil {
		t.Errorf("nothing recovered: %v %+v\n%s", err, failed, stdout.String())
	}
}

// TestRepairProgressJSON: --progress json writes one JSON event per line on
// stderr, through every stage of the repair, each finished once.
func TestRepairProgressJSON(t *testing.T) {
	in := brokenVMDK(t, t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--progress", "json", in, filepath.Join(t.TempDir(), "fixed.vmdk")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	finished := map[string]int{}
	notes := 0
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		var ev progress.Event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if ev.Command != "repair" {
			t.Errorf("line %q: command %q", sc.Text(), ev.Command)
		}
		if ev.Message != "" {
			notes++
		}
		if ev.Finished {
			finished[ev.Stage]++
			if ev.Done == nil || ev.Total == nil || *ev.Done != *ev.Total {
				t.Errorf("stage %s finished at %v of %v", ev.Stage, ev.Done, ev.Total)
			}
		}
	}
	for _, stage := range []string{"carve", pipeline.StepPlan, pipeline.StepEmit, pipeline.StepWrite} {
		if finished[stage] != 1 {
			t.Errorf("stage %s finished %d times, want once (all: %v)", stage, finished[stage], finished)
		}
	}
	if notes == 0 {
		t.Error("no step messages")
	}
	if !strings.Contains(stdout.String(), "[primary-tables-lost]") {
		t.Error("the findings are not on stdout")
	}
}

// TestRepairFindingsSnapshot: a delta's findings say that the output holds only
// the grains written since its parent.
func TestRepairFindingsSnapshot(t *testing.T) {
	in := brokenVMDKOf(t, t.TempDir(), &vmdk.Descriptor{CID: 0x11112222, ParentCID: 0x33334444})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--progress", "none", in, filepath.Join(t.TempDir(), "fixed.vmdk")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(flat(stdout.String()), "snapshot The file is a snapshot (delta) of a parent disk (parentCID 33334444") {
		t.Errorf("findings:\n%s", stdout.String())
	}
}

// TestRepairOtherDisks: a file holding a second, smaller VMDK (a copy left
// in its slack) writes the larger disk, names the other with the flag that
// writes it, and prints only the written disk's findings.
func TestRepairOtherDisks(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(brokenVMDK(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	var m tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&m, vmdk.SparseWriterOptions{Capacity: 1024, FileName: "small.vmdk"}, func(g uint64, buf []byte) (bool, error) {
		copy(buf, strings.Repeat("small disk ", 6000))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "both.vmdk")
	if err := os.WriteFile(in, append(b, m.Bytes...), 0o444); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--progress", "none", in, filepath.Join(t.TempDir(), "fixed.vmdk")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	text := flat(stdout.String())
	for _, want := range []string{
		"disk 01: 2.0 MiB virtual, 32 grains of 64.0 KiB, from a monolithicSparse file; of the 2 disks found, the one with the most grains placed",
		"other disk 02 (monolithicSparse, 512.0 KiB): 8 grains recovered, not written (--disk 2 writes it)",
		"[primary-tables-lost]",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("findings lack %q:\n%s", want, stdout.String())
		}
	}
	// --disk 2 writes the intact disk: disk 01's damage is not its.
	stdout.Reset()
	if code := run([]string{"--progress", "none", "--disk", "2", in, filepath.Join(t.TempDir(), "small.vmdk")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--disk 2: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	text = flat(stdout.String())
	if !strings.Contains(text, "other disk 01") || !strings.Contains(text, "8 recovered") || strings.Contains(text, "primary-tables-lost") {
		t.Errorf("--disk 2:\n%s", stdout.String())
	}
}
