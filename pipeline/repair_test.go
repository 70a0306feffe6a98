package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/findings"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/vmdk"
)

// repairSectors is the capacity of the test disk: three grain tables, and
// a short last grain.
const repairSectors = 2*vmdk.GTEsPerGT*128 + 40*128 + 7

// repairDisk returns a guest disk whose non-zero sectors name their own
// offset (so a misplaced one says where it came from), with zero grains
// between them, and the path of a raw copy.
func repairDisk(t *testing.T) ([]byte, string) {
	t.Helper()
	img := make([]byte, repairSectors*vmdk.SectorSize)
	for g := 0; g*65536 < len(img); g++ {
		if g%3 == 1 || (g > 600 && g < 1000) {
			continue // zero grains, and a whole zero grain table
		}
		for s := g * 65536; s < min((g+1)*65536, len(img)); s += 512 {
			copy(img[s:s+512], fmt.Sprintf("sector %d of the repair test disk ", s/512))
		}
	}
	raw := filepath.Join(t.TempDir(), "truth.raw")
	if err := os.WriteFile(raw, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return img, raw
}

// brokenSparse writes img as a monolithicSparse VMDK (with redundant
// tables) at path and zeroes its primary grain directory and tables.
func brokenSparse(t *testing.T, img []byte, path string) {
	t.Helper()
	var m tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&m, vmdk.SparseWriterOptions{Capacity: repairSectors, FileName: filepath.Base(path)}, func(g uint64, buf []byte) (bool, error) {
		copy(buf, img[g*65536:])
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	h, err := vmdk.ParseSparseHeader(m.Bytes[:512])
	if err != nil {
		t.Fatal(err)
	}
	start := int64(h.GDOffset) * 512
	end := start + int64(h.GDSectors()+h.GDEntries()*h.GTSectors())*512
	clear(m.Bytes[start:end])
	if err := os.WriteFile(path, m.Bytes, 0o444); err != nil {
		t.Fatal(err)
	}
}

// readOutput reads a written disk back as raw bytes with our own readers
// (qemu-img judges it too, where installed).
func readOutput(t *testing.T, f OutputFormat, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(OutputPaths(f, path)[len(OutputPaths(f, path))-1])
	if err != nil {
		t.Fatal(err)
	}
	switch f {
	case FormatRaw, FormatESXi:
		return b
	}
	h, gtes, err := vmdk.GrainMap(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, h.Capacity*512)
	for g, s := range gtes {
		if s == 0 {
			continue
		}
		dst := out[g*65536 : min((g+1)*65536, len(out))]
		if f == FormatSparse {
			copy(dst, b[int(s)*512:])
			continue
		}
		grain := make([]byte, 65536)
		if _, n, err := vmdk.DecodeGrain(b[int(s)*512:], grain); err != nil || n < len(dst) {
			t.Fatalf("grain %d: %v (%d bytes)", g, err, n)
		}
		copy(dst, grain)
	}
	return out
}

func TestRepairFormats(t *testing.T) {
	img, raw := repairDisk(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "broken.vmdk")
	brokenSparse(t, img, in)
	before, _ := os.ReadFile(in)
	for _, f := range []OutputFormat{FormatSparse, FormatRaw, FormatStream, FormatESXi} {
		t.Run(string(f), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "fixed.vmdk")
			res, err := Repair(context.Background(), in, out, RepairOptions{Format: f})
			if err != nil {
				t.Fatal(err)
			}
			c := res.Disk.Disk.Counts
			if c.Missing+c.Conflict+c.Damaged != 0 || c.Placed == 0 || res.Disk.Disk.Capacity != repairSectors {
				t.Errorf("counts %+v, capacity %d", c, res.Disk.Disk.Capacity)
			}
			if res.Case != "" || res.Chosen != "the only disk found" || len(res.Others) != 0 {
				t.Errorf("case %q, chosen %q, others %v", res.Case, res.Chosen, res.Others)
			}
			paths := OutputPaths(f, out)
			if len(res.Outputs) != len(paths) {
				t.Fatalf("outputs %+v, want %v", res.Outputs, paths)
			}
			for i, o := range res.Outputs {
				st, err := os.Stat(paths[i])
				// Windows has no permission bits beyond read-only.
				if err != nil || o.Path != paths[i] || st.Size() != o.Size || (runtime.GOOS != "windows" && st.Mode().Perm() != 0o644) {
					t.Errorf("output %+v: %v %v", o, st, err)
				}
			}
			if got := readOutput(t, f, out); !bytes.Equal(got, img) {
				t.Error("the repaired disk differs from the original")
			}
			if f != FormatRaw {
				tooltest.Compare(t, out, raw)
				tooltest.VMDKInfo(t, out)
			}
			// Nothing beside the input, and the input untouched.
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("the input's directory holds %d entries", len(ents))
			}
			if after, _ := os.ReadFile(in); !bytes.Equal(after, before) {
				t.Error("the input changed")
			}
		})
	}
}

// TestRepairKeepsCase: with a case directory the case stays, with the
// report the result names; a second run reuses it.
func TestRepairKeepsCase(t *testing.T) {
	img, _ := repairDisk(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "broken.vmdk")
	brokenSparse(t, img, in)
	caseDir := filepath.Join(t.TempDir(), "case")
	out := filepath.Join(t.TempDir(), "fixed.raw")
	res, err := Repair(context.Background(), in, out, RepairOptions{Format: FormatRaw, CaseDir: caseDir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Case != caseDir {
		t.Errorf("case %q", res.Case)
	}
	for _, p := range []string{ManifestName, "disks/disk-01.json", "disks/disk-01.vmdk"} {
		if _, err := os.Stat(filepath.Join(caseDir, p)); err != nil {
			t.Error(err)
		}
	}
	first, _ := os.ReadFile(out)
	if _, err := Repair(context.Background(), in, out, RepairOptions{Format: FormatRaw, CaseDir: caseDir}); !errors.Is(err, ErrOutputExists) {
		t.Fatalf("second run over an existing output: %v", err)
	}
	res, err = Repair(context.Background(), in, out, RepairOptions{Format: FormatRaw, CaseDir: caseDir, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, first) || !bytes.Equal(first, img) {
		t.Error("the reused case wrote another disk")
	}
	if _, err := Repair(context.Background(), in, filepath.Join(t.TempDir(), "x.raw"), RepairOptions{Format: FormatRaw, CaseDir: caseDir, Disk: 5}); !errors.Is(err, ErrNoSuchDisk) {
		t.Errorf("--disk 5: %v", err)
	}
}

func TestRepairRefuses(t *testing.T) {
	img, _ := repairDisk(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "broken.vmdk")
	brokenSparse(t, img, in)
	// An input named like the flat extent of an ESXi output.
	flatIn := filepath.Join(dir, "x-flat.vmdk")
	if err := os.WriteFile(flatIn, img[:4096], 0o644); err != nil {
		t.Fatal(err)
	}
	exists := filepath.Join(t.TempDir(), "exists.vmdk")
	if err := os.WriteFile(exists, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A link to the input (where links can be made: Windows may refuse).
	link := filepath.Join(t.TempDir(), "link.vmdk")
	if err := os.Symlink(in, link); err != nil {
		t.Logf("no symlink (%v): a hard link stands in", err)
		if err := os.Link(in, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		in, out string
		opts    RepairOptions
		want    error
		msg     string
	}{
		{"output is the input", in, in, RepairOptions{Force: true}, ErrOutputIsInput, ""},
		{"output is the input by another path", in, filepath.Join(dir, ".", "broken.vmdk"), RepairOptions{Force: true}, ErrOutputIsInput, ""},
		{"output is a link to the input", in, link, RepairOptions{Force: true}, ErrOutputIsInput, ""},
		{"flat extent is the input", flatIn, filepath.Join(dir, "x.vmdk"), RepairOptions{Format: FormatESXi, Force: true}, ErrOutputIsInput, ""},
		{"output exists", in, exists, RepairOptions{}, ErrOutputExists, ""},
		{"missing input", filepath.Join(dir, "nope.vmdk"), filepath.Join(t.TempDir(), "o.vmdk"), RepairOptions{}, os.ErrNotExist, ""},
		{"input is a directory", dir, filepath.Join(t.TempDir(), "o.vmdk"), RepairOptions{}, nil, "is a directory"},
		{"output directory missing", in, filepath.Join(t.TempDir(), "no", "o.vmdk"), RepairOptions{}, nil, "does not exist"},
		{"output is a directory", in, t.TempDir(), RepairOptions{Force: true}, nil, "is a directory"},
		{"output name the extent line cannot hold", in, filepath.Join(t.TempDir(), "a\"b.vmdk"), RepairOptions{}, nil, "double quote"},
		{"output in the case", in, filepath.Join(dir, "case", "disks", "disk-01.vmdk"), RepairOptions{CaseDir: filepath.Join(dir, "case")}, nil, "lies in the case directory"},
		{"unknown format", in, filepath.Join(t.TempDir(), "o.vmdk"), RepairOptions{Format: "qcow2"}, nil, "unknown output format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Repair(context.Background(), tc.in, tc.out, tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v %q", err, tc.want, tc.msg)
			}
		})
	}
	if b, _ := os.ReadFile(exists); string(b) != "mine" {
		t.Error("an existing output was overwritten")
	}
}

// TestRepairNothingRecovered: a file with no VMDK in it writes nothing.
func TestRepairNothingRecovered(t *testing.T) {
	in := filepath.Join(t.TempDir(), "noise.vmdk")
	if err := os.WriteFile(in, noise(1<<20, 9), 0o444); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "o.vmdk")
	if _, err := Repair(context.Background(), in, out, RepairOptions{}); !errors.Is(err, ErrNothingRecovered) {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output written: %v", err)
	}
}

// TestRebuildFormats: rebuild writes the extra formats beside the VMDK and
// lists them in the report.
func TestRebuildFormats(t *testing.T) {
	img, raw := repairDisk(t)
	in := filepath.Join(t.TempDir(), "broken.vmdk")
	brokenSparse(t, img, in)
	caseDir := filepath.Join(t.TempDir(), "case")
	if _, err := Carve(context.Background(), caseDir, in, CarveOptions{Hash: "none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(context.Background(), caseDir, RebuildOptions{Raw: true, Formats: []OutputFormat{FormatStream, FormatESXi, FormatRaw, FormatSparse}}); err != nil {
		t.Fatal(err)
	}
	rep, err := readReport(caseDir, DiskSummary{Path: "disks/disk-01.vmdk"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range rep.Output {
		got = append(got, o.Format+" "+o.Path)
		if st, err := os.Stat(filepath.Join(caseDir, o.Path)); err != nil || st.Size() != o.Size {
			t.Errorf("%+v: %v", o, err)
		}
	}
	want := []string{"vmdk disks/disk-01.vmdk", "streamOptimized disks/disk-01-stream.vmdk", "esxi-descriptor disks/disk-01-esxi.vmdk", "esxi-flat disks/disk-01-esxi-flat.vmdk", "raw disks/disk-01.raw"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("outputs\n%v\nwant\n%v", got, want)
	}
	for _, p := range []string{"disk-01-stream.vmdk", "disk-01-esxi.vmdk"} {
		tooltest.Compare(t, filepath.Join(caseDir, "disks", p), raw)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]OutputFormat{
		"monolithicSparse": FormatSparse, "vmdk": FormatSparse, "MONOLITHICSPARSE": FormatSparse,
		"raw": FormatRaw, "dd": FormatRaw, "streamOptimized": FormatStream, "ova": FormatStream,
		"esxi": FormatESXi, "vmfs": FormatESXi,
	} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "qcow2", "vhd", "monolithicFlat"} {
		if _, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) accepted", bad)
		}
	}
}

func TestChooseDisk(t *testing.T) {
	disk := func(id int, placed uint64) DiskSummary {
		d := DiskSummary{ID: id}
		d.Counts.Placed = placed
		return d
	}
	for _, tc := range []struct {
		name  string
		disks []DiskSummary
		want  int
		id    int
		err   error
	}{
		{"one", []DiskSummary{disk(1, 5)}, 0, 1, nil},
		{"most placed", []DiskSummary{disk(1, 5), disk(2, 9), disk(3, 2)}, 0, 2, nil},
		{"tie: lowest ID", []DiskSummary{disk(3, 9), disk(2, 9), disk(4, 1)}, 0, 2, nil},
		{"asked", []DiskSummary{disk(1, 5), disk(2, 9)}, 1, 1, nil},
		{"asked, absent", []DiskSummary{disk(1, 5), disk(2, 9)}, 7, 0, ErrNoSuchDisk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, why, err := chooseDisk(tc.disks, tc.want)
			if !errors.Is(err, tc.err) || (err == nil && (d.ID != tc.id || why == "")) {
				t.Fatalf("disk %d (%q), %v; want %d, %v", d.ID, why, err, tc.id, tc.err)
			}
		})
	}
}

// TestRegrain reads 128-sector output grains through plans of other grain
// sizes, the last grain cut by the capacity: each plan read gets exactly
// its grain's bytes, and a grain is absent only when all its sources are.
func TestRegrain(t *testing.T) {
	const capacity = 4*256 + 200 // sectors: the last 256-sector grain is short
	img := make([]byte, capacity*512)
	for i := range img {
		img[i] = byte(i/512 + 1)
	}
	for _, have := range []uint64{64, 128, 256} {
		t.Run(fmt.Sprint(have), func(t *testing.T) {
			hb := int(have) * 512
			read := func(g uint64, buf []byte) (bool, error) {
				want := min(hb, len(img)-int(g)*hb)
				if len(buf) != want {
					return false, fmt.Errorf("grain %d read with %d bytes, want %d", g, len(buf), want)
				}
				if g == 1 { // absent: the output grains it covers read as zeros
					return false, nil
				}
				copy(buf, img[int(g)*hb:])
				return true, nil
			}
			r := regrain(have, 128, capacity, read)
			for g := 0; g*65536 < len(img); g++ {
				buf := make([]byte, min(65536, len(img)-g*65536))
				ok, err := r(uint64(g), buf)
				if err != nil {
					t.Fatal(err)
				}
				lo := g * 65536
				absentFrom, absentTo := hb, 2*hb // plan grain 1
				switch {
				case lo >= absentFrom && lo+len(buf) <= absentTo:
					if ok {
						t.Errorf("grain %d present, its source is absent", g)
					}
				case !ok:
					t.Errorf("grain %d absent", g)
				default:
					want := bytes.Clone(img[lo : lo+len(buf)])
					for i := range want {
						if lo+i >= absentFrom && lo+i < absentTo {
							want[i] = 0
						}
					}
					if !bytes.Equal(buf, want) {
						t.Errorf("grain %d differs", g)
					}
				}
			}
		})
	}
}

// TestRepairSeveralDisks: a file holding two disks (a second VMDK in its
// tail, as a copy left in slack) writes the one with the most grains
// placed, lists the other, and writes that one on request.
func TestRepairSeveralDisks(t *testing.T) {
	img, _ := repairDisk(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.vmdk")
	brokenSparse(t, img, big)
	small := make([]byte, 4096*512)
	for i := range small {
		small[i] = byte('a' + i/512%26)
	}
	var m tooltest.MemFile
	if _, err := vmdk.WriteMonolithicSparse(&m, vmdk.SparseWriterOptions{Capacity: 4096, FileName: "small.vmdk"}, func(g uint64, buf []byte) (bool, error) {
		copy(buf, small[g*65536:])
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(big)
	in := filepath.Join(dir, "both.vmdk")
	if err := os.WriteFile(in, append(b, m.Bytes...), 0o444); err != nil {
		t.Fatal(err)
	}
	caseDir := filepath.Join(t.TempDir(), "case")
	out := filepath.Join(t.TempDir(), "a.raw")
	res, err := Repair(context.Background(), in, out, RepairOptions{Format: FormatRaw, CaseDir: caseDir, Hash: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Others) != 1 || !strings.Contains(res.Chosen, "most grains placed") {
		t.Fatalf("chosen %q, others %+v", res.Chosen, res.Others)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, img) {
		t.Error("the disk with the most grains is not the one written")
	}
	// The findings are the evidence's and the written disk's only: the
	// big disk's zeroed primary tables are; the other's are in the case.
	// (Not hashed, so that the evidence has a finding of its own.)
	checkFindings := func(res *RepairResult, tablesLost bool) {
		t.Helper()
		var codes []findings.Code
		for _, f := range res.Findings {
			if f.Disk != 0 && f.Disk != res.Disk.Disk.ID {
				t.Errorf("disk %02d written, a finding of disk %02d: %+v", res.Disk.Disk.ID, f.Disk, f)
			}
			codes = append(codes, f.Code)
		}
		if slices.Contains(codes, findings.CodePrimaryTablesLost) != tablesLost || !slices.Contains(codes, findings.CodeEvidenceNotHashed) {
			t.Errorf("disk %02d: findings %v (primary-tables-lost: want %v; evidence-not-hashed)", res.Disk.Disk.ID, codes, tablesLost)
		}
	}
	checkFindings(res, true)
	out2 := filepath.Join(t.TempDir(), "b.raw")
	res, err = Repair(context.Background(), in, out2, RepairOptions{Format: FormatRaw, CaseDir: caseDir, Disk: res.Others[0].ID, Hash: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out2); !bytes.Equal(got, small) || !strings.Contains(res.Chosen, "--disk") {
		t.Errorf("--disk %d did not write the other disk (%q)", res.Disk.Disk.ID, res.Chosen)
	}
	checkFindings(res, false)
}
