// Package tooltest runs the real peer tools (qemu-img, vmdkinfo) from tests,
// skipping with a clear message when a tool is not installed.
package tooltest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Need skips the test unless every named tool is on PATH (fails it when
// CI=true: CI installs every tool, so a missing one is a broken run).
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, "%s is not installed (apt-get install qemu-utils libvmdk-utils e2fsprogs ntfs-3g): skipping the interop check", tool)
		}
	}
}

// CI reports whether the tests run in CI (CI=true), where .ci/run has
// installed every tool.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test for a missing tool, or fails it when CI=true.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Run runs a tool and fails the test with its output if it exits non-zero.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Compare asserts with qemu-img that a VMDK reads back equal to a raw image.
func Compare(t testing.TB, vmdkPath, rawPath string) {
	t.Helper()
	Need(t, "qemu-img")
	Run(t, "qemu-img", "check", "-f", "vmdk", vmdkPath)
	Run(t, "qemu-img", "compare", "-f", "vmdk", "-F", "raw", vmdkPath, rawPath)
}

// VMDKInfo asserts that libvmdk's vmdkinfo opens the file.
func VMDKInfo(t testing.TB, vmdkPath string) {
	t.Helper()
	Need(t, "vmdkinfo")
	Run(t, "vmdkinfo", vmdkPath)
}

// MemFile is an in-memory io.WriterAt that grows as written, for tests
// that hand a writer a file.
type MemFile struct{ Bytes []byte }

// WriteAt implements io.WriterAt.
func (m *MemFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.Bytes) {
		m.Bytes = append(m.Bytes, make([]byte, end-len(m.Bytes))...)
	}
	copy(m.Bytes[off:], p)
	return len(p), nil
}
