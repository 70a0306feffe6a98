// Package tooltest runs the real peer tools (qemu-img, vmdkinfo) from tests,
// skipping with a clear message when a tool is not installed.
package tooltest

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need skips the test unless every named tool is on PATH (fails it when
// CI=true: CI installs every tool, so a missing one is a broken run).
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, "%s is not installed (apt-get install qemu-utils libvmdk-utils e2fsprogs ntfs-3g ewf-tools libxml2-utils chromium): skipping the interop check", tool)
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

// MakeFS makes a real filesystem image of size bytes with the named tool
// (mkfs.ext4, mkntfs) and returns its bytes; a missing tool skips the
// test, or fails it when CI=true.
func MakeFS(t testing.TB, size int64, tool string, args ...string) []byte {
	t.Helper()
	Need(t, tool)
	path := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	Run(t, tool, append(args, path)...)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// MBRDisk puts a volume into an MBR disk, one partition of type typ at
// 1 MiB.
func MBRDisk(vol []byte, typ byte) []byte {
	disk := make([]byte, 1<<20+len(vol))
	e := disk[446:]
	e[4] = typ
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(vol)/512))
	binary.LittleEndian.PutUint16(disk[510:], 0xAA55)
	copy(disk[1<<20:], vol)
	return disk
}

// GPTDisk puts a volume into a GPT disk (protective MBR, header at LBA 1,
// 128 entries at LBA 2, checksums right) at LBA 2048, with 1 MiB after it.
func GPTDisk(vol []byte) []byte {
	disk := make([]byte, 1<<20+len(vol)+1<<20)
	e := disk[446:]
	e[4] = 0xEE
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(disk)/512-1))
	binary.LittleEndian.PutUint16(disk[510:], 0xAA55)
	entries := disk[1024 : 1024+128*128]
	copy(entries[0:16], "linux data guid!") // any non-zero type GUID
	binary.LittleEndian.PutUint64(entries[32:], 2048)
	binary.LittleEndian.PutUint64(entries[40:], uint64(2048+len(vol)/512-1))
	h := disk[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x10000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[32:], uint64(len(disk)/512-1))
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	copy(disk[1<<20:], vol)
	return disk
}

// TempFile writes data to a file in the test's temporary directory and
// opens it for reading for the rest of the test: an image to read, map or
// carve.
func TempFile(t testing.TB, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.dd")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return Open(t, path)
}

// Open opens a file for reading for the rest of the test.
func Open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// ErrRead is the error FailingReaderAt returns.
var ErrRead = errors.New("simulated read error")

// FailingReaderAt reads from R but fails, with ErrRead, every read that
// reaches past Off: a disk whose tail cannot be read.
type FailingReaderAt struct {
	R   io.ReaderAt
	Off int64
}

// ReadAt implements io.ReaderAt.
func (f FailingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > f.Off {
		return 0, ErrRead
	}
	return f.R.ReadAt(b, off)
}
