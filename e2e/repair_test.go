package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
)

// brokenFile makes a real guest disk, converts it with qemu-img into a
// monolithicSparse VMDK, damages the file, and returns the damaged file
// alone (as an administrator has it) with the truth.
func brokenFile(t *testing.T, seed uint64, ds corpus.DiskSpec, damage []corpus.Damage) (string, *corpus.Truth) {
	t.Helper()
	truth := generateGuests(t, corpus.Spec{Seed: seed, ImageSize: ds.Capacity + 8<<20, Disks: []corpus.DiskSpec{ds},
		Files: []corpus.FileSpec{{Disk: ds.ID, Variant: corpus.QemuSparse, Offset: 1 << 20, Damage: damage}}})
	img, err := os.ReadFile(truth.Image)
	if err != nil {
		t.Fatal(err)
	}
	f := truth.Files[0]
	path := filepath.Join(t.TempDir(), "broken.vmdk")
	if err := os.WriteFile(path, img[f.ImageOffset:f.ImageOffset+f.Length], 0o444); err != nil {
		t.Fatal(err)
	}
	return path, truth
}

// recoverable is the truth disk with every grain that did not survive the
// damage zeroed: what a repair can give back at best (missing grains read
// as zeros).
func recoverable(t *testing.T, truth *corpus.Truth) string {
	t.Helper()
	dt := truth.Disks[0]
	b, err := os.ReadFile(dt.Raw)
	if err != nil {
		t.Fatal(err)
	}
	surviving := truth.Surviving(dt.ID)
	for _, g := range truth.Files[0].Grains {
		if !surviving[g.Grain] {
			clear(b[g.Grain*grainBytes : min((g.Grain+1)*grainBytes, uint64(len(b)))])
		}
	}
	path := filepath.Join(t.TempDir(), "recoverable.raw")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRepairOneCommand is what a new user on a fresh machine does with a
// broken .vmdk: one command, `repair BROKEN.vmdk OUT.vmdk`. Two real
// guests in qemu-img's monolithicSparse: an ext4 disk whose primary grain
// directory and tables are zeroed (the redundant copy survives), and an
// NTFS disk whose first 64 KiB are overwritten (its header, descriptor
// and both copies of the grain tables: qemu's layout ends its metadata at
// 64 KiB, so the head held no guest data). Each is repaired in every
// output format, and each output is checked by qemu-img check and
// vmdkinfo (the VMDK formats) and compared by qemu-img against the truth
// as far as it survived. Grain by grain, with the report of the kept
// case: every grain placed or declared zero equals the truth, every
// missing grain reads as zeros; recall is logged and must be whole.
func TestRepairOneCommand(t *testing.T) {
	tooltest.Need(t, "qemu-img", "vmdkinfo")
	bin := filepath.Join(buildCommands(t, "repair"), "repair")
	for _, tc := range []struct {
		name   string
		seed   uint64
		disk   corpus.DiskSpec
		damage []corpus.Damage
		says   []string // in the findings of the one command
		codes  []string // the codes of its findings, every one
	}{
		{"ext4 guest, primary grain tables zeroed", 81, corpus.DiskSpec{ID: 1, Capacity: 64 << 20, FS: corpus.FSExt4},
			[]corpus.Damage{{Kind: corpus.ZeroPrimaryTables}},
			[]string{"from a monolithicSparse file", "grain tables were read from the redundant copy instead", "missing none: every grain the disk had was recovered", "files read back whole"},
			[]string{"primary-tables-lost"}},
		{"NTFS guest, first 64 KiB overwritten", 82, corpus.DiskSpec{ID: 1, Capacity: 48 << 20, FS: corpus.FSNTFS},
			[]corpus.Damage{{Kind: corpus.Overwrite, At: 0, Bytes: 64 << 10}},
			[]string{"from a monolithicSparse (header and tables lost) file", "The file's header, descriptor and grain tables are all gone",
				"could be neither recovered nor proven empty", "Missing grains read as zeros in the output because no disk format can mark them missing",
				"missing (metadata-lost): virtual bytes 65536-"},
			[]string{"grains-missing", "capacity-bounded", "metadata-lost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken, truth := brokenFile(t, tc.seed, tc.disk, tc.damage)
			want := recoverable(t, truth)

			// The one command, as the README gives it.
			work := t.TempDir()
			out := runRepair(t, bin, work, filepath.Base(broken), broken, "fixed.vmdk")
			text := strings.Join(strings.Fields(out), " ") // however it is wrapped
			for _, s := range append(tc.says, "repaired", "wrote fixed.vmdk") {
				if !strings.Contains(text, s) {
					t.Errorf("the findings lack %q", s)
				}
			}
			// Every finding shows its code, and only the findings expected.
			var codes []string
			for _, m := range regexp.MustCompile(`\[([a-z-]+)\]`).FindAllStringSubmatch(text, -1) {
				codes = append(codes, m[1])
			}
			slices.Sort(codes)
			if wantCodes := slices.Sorted(slices.Values(tc.codes)); !slices.Equal(codes, wantCodes) {
				t.Errorf("finding codes %v, want %v", codes, wantCodes)
			}
			fixed := filepath.Join(work, "fixed.vmdk")
			tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", fixed)
			tooltest.VMDKInfo(t, fixed)
			tooltest.Run(t, "qemu-img", "compare", "-f", "vmdk", "-F", "raw", fixed, want)
			if ents, _ := os.ReadDir(filepath.Dir(broken)); len(ents) != 1 {
				t.Errorf("%d files beside the input, want none", len(ents)-1)
			}

			// Every format, from one kept case (the first run makes it,
			// the others reuse it).
			caseDir := filepath.Join(t.TempDir(), "case")
			for _, format := range []pipeline.OutputFormat{pipeline.FormatSparse, pipeline.FormatRaw, pipeline.FormatStream, pipeline.FormatESXi} {
				t.Run(string(format), func(t *testing.T) {
					dir := t.TempDir()
					runRepair(t, bin, dir, "", "--format", string(format), "--case", caseDir, broken, "out.vmdk")
					outPath := filepath.Join(dir, "out.vmdk")
					qfmt := "vmdk"
					if format == pipeline.FormatRaw {
						qfmt = "raw"
					} else {
						tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", outPath)
						tooltest.VMDKInfo(t, outPath)
					}
					if format == pipeline.FormatESXi {
						if _, err := os.Stat(filepath.Join(dir, "out-flat.vmdk")); err != nil {
							t.Fatal(err)
						}
					}
					tooltest.Run(t, "qemu-img", "compare", "-f", qfmt, "-F", "raw", outPath, want)
					scoreRepair(t, caseDir, outPath, qfmt, truth)
				})
			}

			// For a script: --json on stdout, --progress json on stderr.
			t.Run("json", func(t *testing.T) {
				dir := t.TempDir()
				cmd := exec.Command(bin, "--json", "--progress", "json", "--case", caseDir, broken, "out.vmdk")
				cmd.Dir = dir
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
				}
				var res pipeline.RepairResult
				if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
				}
				var codes []string
				for _, f := range res.Findings {
					codes = append(codes, string(f.Code))
				}
				slices.Sort(codes)
				if want := slices.Sorted(slices.Values(tc.codes)); !slices.Equal(codes, want) || len(res.Outputs) != 1 || res.Outputs[0].Path != "out.vmdk" {
					t.Errorf("codes %v (want %v), outputs %+v", codes, want, res.Outputs)
				}
				for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
					var ev map[string]any
					if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["command"] != "repair" {
						t.Errorf("progress line %q: %v", line, err)
					}
				}
			})
		})
	}
}

// runRepair runs the repair command in dir and returns its output; it
// checks that the input's name (when given) shows in the findings.
func runRepair(t *testing.T, bin, dir, inName string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("repair %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("repair %s\n%s", strings.Join(args, " "), stdout.String())
	if inName != "" && !strings.Contains(stdout.String(), inName) {
		t.Errorf("the findings do not name the input %s", inName)
	}
	return stdout.String()
}

// scoreRepair reads a repaired disk back with qemu-img and scores it grain
// by grain against the truth with the kept case's report.
func scoreRepair(t *testing.T, caseDir, outPath, qfmt string, truth *corpus.Truth) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caseDir, pipeline.DisksDirName, "disk-01.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := new(pipeline.DiskReport)
	if err := json.Unmarshal(b, rep); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(t.TempDir(), "read.raw")
	tooltest.Run(t, "qemu-img", "convert", "-f", qfmt, "-O", "raw", outPath, raw)
	got, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(truth.Disks[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("repaired %d bytes, truth %d", len(got), len(want))
	}
	surviving := truth.Surviving(truth.Disks[0].ID)
	zero := make([]byte, grainBytes)
	placed, wrong := 0, 0
	for g, st := range statuses(rep.Disk) {
		lo, hi := g*grainBytes, min((g+1)*grainBytes, len(want))
		switch st {
		case reassemble.Placed, reassemble.Zero:
			if !bytes.Equal(got[lo:hi], want[lo:hi]) {
				wrong++
				t.Errorf("grain %d: %s but its bytes differ from the truth", g, st)
			} else if surviving[uint64(g)] {
				placed++
			}
		default:
			if !bytes.Equal(got[lo:hi], zero[:hi-lo]) {
				wrong++
				t.Errorf("grain %d: %s but does not read as zeros", g, st)
			}
		}
	}
	recall := fmt.Sprintf("%d/%d", placed, len(surviving))
	t.Logf("recall %s of the surviving grains (of %d non-zero), %d wrong; counts %+v", recall, truth.Disks[0].NonZeroGrains, wrong, rep.Disk.Counts)
	if placed != len(surviving) || wrong != 0 {
		t.Errorf("recall %s, %d wrong", recall, wrong)
	}
}
