// Package layering holds the test of DESIGN.md's dependency rule:
// dependencies point one way (cmd → pipeline → reassemble → fsprobe →
// fs/*, vmdk; pipeline → carver → signatures → fs/*, vmdk; pipeline →
// ewf, which uses nothing of the module but internal/formaterr), signatures
// and fsprobe never import a filesystem library (only the report's
// whole-volume checks, pipeline/guestcheck, do), corpus uses vmdk and
// nothing that depends on it, the DFXML writer, pipeline/dfxml,
// nothing of the module, and findings imports nothing of the module.
package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const (
	mod     = "vmdkcarve/"
	goNTFS  = "www.velocidex.com/golang/go-ntfs"
	goExt4  = "github.com/dsoprea/go-ext4"
	formats = "fs/" // the format codecs, fs/ntfs, fs/ext4, ...
	// progressBar draws the terminal bar of internal/progress.
	progressBar = "github.com/schollz/progressbar"
)

// rules: each package (of this module) and what none of its dependencies,
// direct or not, may be (module-relative paths are prefixes of
// "vmdkcarve/..."; others are prefixes of import paths).
var rules = []struct {
	pkg       string
	forbidden []string
}{
	// ewf, the E01 codec, is a leaf: the module's only package it may
	// use is internal/formaterr.
	{"ewf", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd",
		"internal/holes", "internal/mapfile", "internal/entropy", "internal/units", "internal/benchtools", goNTFS, goExt4}},
	{"vmdk", []string{formats, "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"fs/ntfs", []string{"fs/ext4", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"fs/ext4", []string{"fs/ntfs", "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"fs/part", []string{"fs/ntfs", "fs/ext4", "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"fingerprint", []string{formats, "vmdk", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd"}},
	{"signatures", []string{"fsprobe", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"carver", []string{"fsprobe", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"fsprobe", []string{"signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	// The DFXML writer has its own model: it knows nothing of the case or
	// the plan (pipeline's report_dfxml.go converts them). pipeline itself
	// needs no entry: it imports the writer, so the writer importing it
	// would be an import cycle.
	{"pipeline/dfxml", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline/guestcheck", "corpus", "cmd", "internal", goNTFS, goExt4}},
	{"pipeline/guestcheck", []string{"fsprobe", "signatures", "carver", "reassemble", "corpus", "cmd"}},
	// The map renders its own plain model: it knows no case, plan or format.
	{"pipeline/htmlmap", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline/guestcheck", "corpus", "cmd", goNTFS, goExt4}},
	{"reassemble", []string{"carver", "pipeline", "corpus", "cmd"}},
	{"reassemble/damage", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"pipeline", []string{"corpus", "cmd", "internal/progress", progressBar}},
	// The progress display is the commands' (DESIGN.md: progress and
	// policy out of the core); it knows nothing of the pipeline.
	{"internal/progress", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", goNTFS, goExt4}},
	{"internal/interrupt", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", "internal/progress", goNTFS, goExt4}},
	// The commands' argument parsing knows nothing of what they run.
	{"internal/cliargs", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", "internal/progress", goNTFS, goExt4}},
	// Mapping files is a leaf the scan and the rebuild share.
	{"internal/mmap", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", "internal/progress", goNTFS, goExt4}},
	// The profile flag's writer is the commands' alone.
	{"internal/profile", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", "internal/progress", goNTFS, goExt4}},
	{"corpus", []string{formats, "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "cmd", goNTFS, goExt4}},
	// findings is a leaf: the codes and their words, which reassemble and
	// pipeline fill from their own records and every output prints.
	{"findings", []string{formats, "vmdk", "fingerprint", "fsprobe", "signatures", "carver", "reassemble", "pipeline", "corpus", "cmd", "internal", goNTFS, goExt4}},
}

// deps lists the packages pkg depends on, directly or not.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestDependenciesPointOneWay(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go tool is not on PATH: the dependency rule cannot be checked")
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			for _, d := range deps(t, r.pkg) {
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, mod+f) || (strings.Contains(f, ".") && strings.HasPrefix(d, f)) {
						t.Errorf("%s depends on %s, which the rule forbids (DESIGN.md, Packages)", r.pkg, d)
					}
				}
			}
		})
	}
}

// TestRuleSeesDependencies: the check above is not vacuous; it sees the
// dependencies it would forbid elsewhere.
func TestRuleSeesDependencies(t *testing.T) {
	d := deps(t, "pipeline")
	for _, want := range []string{mod + "reassemble", mod + "fsprobe", mod + "signatures", mod + "fs/ntfs", goNTFS + "/parser"} {
		if !slices.Contains(d, want) {
			t.Errorf("go list -deps pipeline lacks %s: %v", want, d)
		}
	}
}
