package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"vmdkcarve/carver"
	"vmdkcarve/findings"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// StepWrite is the step RepairOptions.Meter is told about beyond
// Rebuild's: the grains of the rebuilt disk written to OUT.
const StepWrite = "write"

// Errors of Repair that a caller tells apart (wrapped).
var (
	// ErrOutputExists: OUT (or its flat extent) exists and Force is not
	// set.
	ErrOutputExists = errors.New("the output exists (use --force to overwrite it)")
	// ErrOutputIsInput: OUT (or its flat extent) is the input file.
	ErrOutputIsInput = errors.New("the output is the input: repair never writes over the evidence")
	// ErrNoSuchDisk: RepairOptions.Disk names no disk found in the input.
	ErrNoSuchDisk = errors.New("no such disk")
)

// RepairOptions configures Repair. The zero value is the default.
type RepairOptions struct {
	// Format is the output's format; "" is FormatSparse.
	Format OutputFormat
	// CaseDir keeps the case (carve and rebuild of the input, with the
	// full reports) in this directory; "" uses a temporary case, removed
	// once OUT is written. An existing case of the same input is resumed
	// or reused, as carve and rebuild do.
	CaseDir string
	// Disk is the ID of the disk to write when the input holds several
	// (RepairResult.Others lists them); 0 chooses by the rule of Repair.
	Disk int
	// Force overwrites an existing OUT (and, for FormatESXi, its flat
	// extent). Never the input.
	Force bool
	// Workers and Hash are the carve's (CarveOptions): "" hashes the input
	// as carve does by default (SHA-256), so the report can show the
	// broken file was read, not changed.
	Workers int
	Hash    string
	// CarveProgress receives the carve's progress; Progress one line per
	// step. nil is silent.
	CarveProgress carver.Progress
	Progress      func(format string, args ...any)
	// Meter is told how far the long steps are: Rebuild's (RebuildOptions
	// .Meter), then StepWrite, the grains written to OUT. nil is silent.
	Meter func(step, unit string, done, total int64)
}

// RepairResult is what Repair did. It is also what `repair --json`
// prints, hence the JSON names.
type RepairResult struct {
	Input  string       `json:"input"`
	Format OutputFormat `json:"format"`
	// Outputs are the files written, OUT first (for FormatESXi, the
	// descriptor, then its flat extent).
	Outputs []OutputFile `json:"outputs"`
	// Case is the case directory when kept (RepairOptions.CaseDir), ""
	// when it was temporary and is removed.
	Case string `json:"case,omitempty"`
	// Chosen is why Disk was the disk written.
	Chosen string `json:"chosen"`
	// Findings are what a user should know about the repair: the
	// evidence's findings (the input as a whole) and the written disk's
	// (Disk.Findings), sorted. When nothing was recovered, every disk's.
	Findings []findings.Finding `json:"findings"`
	// Others are the other disks found in the input, not written.
	Others []OtherDisk `json:"others"`
	// Disk is the report of the disk written, as CASE/disks/disk-NN.json
	// holds it (its output paths are the case's).
	Disk *DiskReport `json:"report"`
}

// OtherDisk is a disk found in the input but not written
// (RepairOptions.Disk writes it).
type OtherDisk struct {
	ID       int               `json:"id"`
	Capacity uint64            `json:"capacity_bytes"`
	Variants []string          `json:"variants"`
	Counts   reassemble.Counts `json:"counts"`
}

// Repair carves the one file in as its own evidence, rebuilds every disk
// it holds, and writes one of them to out in opts.Format. It never writes
// beside in (only out, and its flat extent for FormatESXi), refuses an
// out that is in, and refuses to overwrite an existing out unless
// opts.Force.
//
// The disk written is opts.Disk, or else the one with the most grains
// placed (the lowest ID on a tie): a single file normally holds one disk,
// but a damaged file may show pieces of others (an older version's
// stream, a copy of another file in its slack), and the disk with the
// most proven grains is the file's own. The others are listed in the
// result.
//
// When nothing was recovered the error wraps ErrNothingRecovered and
// nothing is written.
func Repair(ctx context.Context, in, out string, opts RepairOptions) (*RepairResult, error) {
	logf := opts.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.Format == "" {
		opts.Format = FormatSparse
	}
	if _, ok := extraSuffix[opts.Format]; !ok && opts.Format != FormatSparse {
		return nil, fmt.Errorf("pipeline: unknown output format %q", opts.Format)
	}
	if opts.CaseDir != "" {
		if inside, err := within(opts.CaseDir, out); err != nil || inside {
			return nil, fmt.Errorf("pipeline: the output %s lies in the case directory %s: write it elsewhere", out, opts.CaseDir)
		}
	}
	if err := checkRepairPaths(in, out, opts.Format, opts.Force); err != nil {
		return nil, err
	}
	res := &RepairResult{Input: in, Format: opts.Format}
	caseDir := opts.CaseDir
	if caseDir == "" {
		tmp, err := os.MkdirTemp("", "vmdkcarve-repair-")
		if err != nil {
			return nil, fmt.Errorf("pipeline: temporary case: %w", err)
		}
		defer os.RemoveAll(tmp)
		caseDir = filepath.Join(tmp, "case")
	} else {
		res.Case = caseDir
	}

	hash := opts.Hash
	logf("carving %s into %s", in, caseDir)
	if _, err := Carve(ctx, caseDir, in, CarveOptions{Workers: opts.Workers, Hash: hash, Progress: opts.CarveProgress}); err != nil {
		return res, err
	}
	logf("rebuilding")
	rb, err := Rebuild(ctx, caseDir, RebuildOptions{Progress: opts.Progress, Meter: opts.Meter})
	if rb != nil {
		// Until a disk is chosen, every finding is the repair's: when
		// nothing was recovered they say why.
		res.Findings = rb.Findings
	}
	if err != nil {
		return res, err
	}
	if len(rb.Disks) == 0 {
		return res, fmt.Errorf("pipeline: no VMDK found in %s: %w", in, ErrNothingRecovered)
	}
	chosen, why, err := chooseDisk(rb.Disks, opts.Disk)
	if err != nil {
		return res, err
	}
	res.Chosen = why
	for _, d := range rb.Disks {
		if d.ID != chosen.ID {
			res.Others = append(res.Others, OtherDisk{ID: d.ID, Capacity: d.Capacity, Variants: d.Variants, Counts: d.Counts})
		}
	}
	if chosen.Counts.Placed == 0 {
		return res, fmt.Errorf("pipeline: disk %02d: no grain placed: %w", chosen.ID, ErrNothingRecovered)
	}
	if res.Disk, err = readReport(caseDir, chosen); err != nil {
		return res, err
	}
	res.Findings = repairFindings(rb.Findings, res.Disk)
	// Again: the carve may have taken long enough for OUT to appear.
	if err := checkRepairPaths(in, out, opts.Format, opts.Force); err != nil {
		return res, err
	}
	logf("writing disk %02d to %s as %s", chosen.ID, out, opts.Format)
	if res.Outputs, err = convertRebuilt(ctx, filepath.Join(caseDir, chosen.Path), out, opts.Format, res.Disk, opts.Meter); err != nil {
		return res, err
	}
	return res, nil
}

// repairFindings are the findings of a repair that wrote the disk of
// rep: the evidence's of the case's (the input file as a whole), then the
// disk's own. The other disks' findings stay in the case.
func repairFindings(all []findings.Finding, rep *DiskReport) []findings.Finding {
	var out []findings.Finding
	for _, f := range all {
		if f.Disk == 0 {
			out = append(out, f)
		}
	}
	out = append(out, rep.Findings...)
	findings.Sort(out)
	return out
}

// checkRepairPaths refuses an output that is the input, exists (unless
// force) or cannot be made, before any work is done.
func checkRepairPaths(in, out string, f OutputFormat, force bool) error {
	ist, err := os.Stat(in)
	if err != nil {
		return fmt.Errorf("pipeline: input: %w", err)
	}
	if ist.IsDir() {
		return fmt.Errorf("pipeline: input %s is a directory: want one .vmdk file", in)
	}
	for _, p := range OutputPaths(f, out) {
		if same, err := samePath(in, ist, p); err != nil {
			return err
		} else if same {
			return fmt.Errorf("pipeline: %s: %w", p, ErrOutputIsInput)
		}
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return fmt.Errorf("pipeline: output %s is a directory: want a file name", p)
		case err == nil && !force:
			return fmt.Errorf("pipeline: %s: %w", p, ErrOutputExists)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("pipeline: output: %w", err)
		}
	}
	if dir := filepath.Dir(out); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("pipeline: the output's directory %s does not exist", dir)
		}
	}
	if f == FormatSparse || f == FormatStream || f == FormatESXi {
		// The file's name goes into its descriptor's extent line: refuse a
		// name that cannot before carving, not after.
		names := OutputPaths(f, out)
		if err := vmdk.CheckExtentName(filepath.Base(names[len(names)-1])); err != nil {
			return fmt.Errorf("pipeline: output name: %w", err)
		}
	}
	return nil
}

// samePath reports whether p names the input (whose Stat is ist): the
// same file by device and inode, or, for a p that does not exist yet, the
// same cleaned absolute path.
func samePath(in string, ist os.FileInfo, p string) (bool, error) {
	if st, err := os.Stat(p); err == nil {
		return os.SameFile(ist, st), nil
	}
	a, err := filepath.Abs(in)
	if err != nil {
		return false, err
	}
	b, err := filepath.Abs(p)
	if err != nil {
		return false, err
	}
	return a == b, nil
}

// within reports whether path lies inside dir (both made absolute).
func within(dir, path string) (bool, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(d, p)
	if err != nil {
		return false, nil // another volume
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), nil
}

// chooseDisk picks the disk to write: want when set, else the one with
// the most grains placed, the lowest ID on a tie.
func chooseDisk(disks []DiskSummary, want int) (DiskSummary, string, error) {
	if want != 0 {
		for _, d := range disks {
			if d.ID == want {
				return d, fmt.Sprintf("disk %02d, as --disk asked", want), nil
			}
		}
		ids := make([]string, len(disks))
		for i, d := range disks {
			ids[i] = fmt.Sprintf("%d", d.ID)
		}
		return DiskSummary{}, "", fmt.Errorf("pipeline: disk %d: %w (found: %s)", want, ErrNoSuchDisk, strings.Join(ids, ", "))
	}
	best := slices.MinFunc(disks, func(a, b DiskSummary) int {
		if a.Counts.Placed != b.Counts.Placed {
			if a.Counts.Placed > b.Counts.Placed {
				return -1
			}
			return 1
		}
		return a.ID - b.ID
	})
	if len(disks) == 1 {
		return best, "the only disk found", nil
	}
	return best, fmt.Sprintf("of the %d disks found, the one with the most grains placed (--disk N chooses another)", len(disks)), nil
}

// readReport reads the report of a rebuilt disk.
func readReport(caseDir string, d DiskSummary) (*DiskReport, error) {
	p := filepath.Join(caseDir, strings.TrimSuffix(d.Path, ".vmdk")+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	rep := new(DiskReport)
	if err := json.Unmarshal(b, rep); err != nil || rep.Disk == nil {
		return nil, fmt.Errorf("pipeline: %s: unreadable report", p)
	}
	return rep, nil
}

// convertRebuilt writes the rebuilt monolithicSparse disk at src (this
// package's own output, beside its report) to out in format f. Reading the
// written disk back, rather than the evidence again, writes exactly the
// grains rebuild verified and reported.
// meter, when set, is told the grains read for writing (StepWrite).
func convertRebuilt(ctx context.Context, src, out string, f OutputFormat, rep *DiskReport, meter func(step, unit string, done, total int64)) ([]OutputFile, error) {
	r, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil {
		return nil, err
	}
	h, gtes, err := vmdk.GrainMap(r, st.Size())
	if err != nil {
		return nil, fmt.Errorf("pipeline: reading back %s: %w", src, err)
	}
	d := rep.Disk
	if h.Capacity != d.Capacity || h.GrainSize != d.GrainSize {
		return nil, fmt.Errorf("pipeline: %s is %d sectors of %d-sector grains, its report says %d of %d", src, h.Capacity, h.GrainSize, d.Capacity, d.GrainSize)
	}
	grains := int64((d.Capacity + d.GrainSize - 1) / max(d.GrainSize, 1))
	read := func(g uint64, buf []byte) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if meter != nil {
			// Grains are read in order (a call may repeat one): g+1 of
			// them are done.
			meter(StepWrite, "grains", int64(g)+1, grains)
		}
		if g >= uint64(len(gtes)) || gtes[g] == 0 {
			return false, nil
		}
		// Our writer stores every grain whole: a short read is an error.
		if _, err := r.ReadAt(buf, int64(gtes[g])*vmdk.SectorSize); err != nil {
			return false, fmt.Errorf("reading back grain %d of %s: %w", g, src, err)
		}
		return true, nil
	}
	// OUT is the user's file, not a case file: the usual mode of a new
	// file, not the temporary file's 0600.
	return writeFormat(f, out, 0o644, diskGeometry{Capacity: d.Capacity, GrainSize: d.GrainSize, Descriptor: d.Descriptor}, read)
}
