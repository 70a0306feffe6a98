package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"

	"vmdkcarve/findings"
	"vmdkcarve/pipeline/dfxml"
	"vmdkcarve/pipeline/guestcheck"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// Stage names of rebuild.
const (
	StageRebuild = "rebuild"
	PlansDirName = "plans"
	DisksDirName = "disks"
)

// ErrNothingRecovered is returned (wrapped) when rebuild finished but found
// no virtual disk with a single placed grain: exit code 3.
var ErrNothingRecovered = errors.New("nothing was recovered")

// RebuildOptions configures stages 2 and 3. The zero value is the default.
type RebuildOptions struct {
	// Raw also writes disks/disk-NN.raw, a raw image of each disk in which
	// missing grains read as zeros (the report lists them).
	Raw bool
	// Formats are written as well as disk-NN.vmdk (the monolithicSparse
	// is always written): FormatRaw as disk-NN.raw (as Raw),
	// FormatStream as disk-NN-stream.vmdk, FormatESXi as
	// disk-NN-esxi.vmdk and disk-NN-esxi-flat.vmdk.
	Formats []OutputFormat
	// Force redoes a rebuild that already completed.
	Force bool
	// Progress receives one line per step; nil is silent.
	Progress func(format string, args ...any)
	// Meter, if set, is told how far the long steps are, as counts for a
	// progress bar (internal/progress): step "plan" counts VMDK
	// instances placed, step "emit" the grains written, over every disk
	// (they are written side by side: Meter must be safe for concurrent
	// use, and a call may arrive after one with a larger done). With
	// Meter set, Progress no longer gets a line per instance placed.
	Meter func(step, unit string, done, total int64)
	// NewestOnly emits, of several versions of one disk whose order is
	// known, only the newest (--versions newest). Every version is
	// planned and listed either way.
	NewestOnly bool
}

// DiskReport is disks/disk-NN.json: the plan plus what was written and
// what the guest probes found.
type DiskReport struct {
	Tool     string               `json:"tool"`
	Version  string               `json:"version"`
	Evidence Evidence             `json:"evidence"`
	Output   []OutputFile         `json:"output"`
	Disk     *reassemble.Disk     `json:"disk"`
	Guest    []guestcheck.Finding `json:"guest_filesystems"`
	Verified VerifySummary        `json:"verified"`
	// Findings are what a user should know about this disk: the damage
	// found and what was done (findings.Registry has every code).
	Findings []findings.Finding `json:"findings"`
}

// OutputFile is one file rebuild wrote.
type OutputFile struct {
	Path   string `json:"path"`
	Format string `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// VerifySummary says how emitted grains were checked against the plan.
type VerifySummary struct {
	GrainsRead    uint64 `json:"grains_read"`
	HashMismatch  uint64 `json:"hash_mismatch"`
	DecodeFailure uint64 `json:"decode_failure"`
	// Redecoded counts the stream grains the fast inflater did not decode
	// to the carve's bytes, decoded again by the carve's (decodeRecord):
	// malformed streams, or grains that then fail their check.
	Redecoded uint64 `json:"redecoded,omitempty"`
}

// DiskSummary is one row of the summary table.
type DiskSummary struct {
	ID        int
	Path      string
	Capacity  uint64 // bytes
	Sources   int
	Variants  []string
	Versions  string // "group G: N of M (order)" when versions of one disk were found
	Counts    reassemble.Counts
	GuestKind []string
	// Unplaced counts grain slots of files whose tables are lost that no
	// evidence placed; Metadata is "placed/expected" guest metadata grains
	// and Files "whole/all" guest files, "-" when not known.
	Unplaced int64
	Metadata string
	Files    string
	// Damage lists the damage policy's decisions per instance: the
	// encryption lattices accepted, or why random chunks were content.
	Damage []string
}

// RebuildResult is what Rebuild did.
type RebuildResult struct {
	Disks   []DiskSummary
	Done    bool  // the stage was already complete: nothing was redone
	Skipped []int // disks not emitted (older versions under --versions newest)
	// Findings are every finding of the case, sorted (CASE/findings.json).
	Findings []findings.Finding
	// files are report.dfxml's fileobjects of Disks, built by each disk's
	// emit job from its report while the other disks are written, instead
	// of from the reports read back at the end.
	files []dfxml.FileObject
}

// Rebuild runs stage 2 (plan every disk) and stage 3 (emit each as a
// monolithicSparse VMDK with its report) on a carved case.
func Rebuild(ctx context.Context, caseDir string, opts RebuildOptions) (*RebuildResult, error) {
	logf := opts.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c, err := OpenCase(caseDir)
	if err != nil {
		return nil, err
	}
	if !c.CarveComplete() {
		return nil, fmt.Errorf("pipeline: carve is not complete in %s: run carve (every --range shard) first", caseDir)
	}
	if s := c.Manifest.Stages[StageRebuild]; s != nil && s.Complete && !opts.Force {
		res, err := summariesFromReports(c)
		if err == nil {
			res.Done = true
			return res, nil
		}
	}
	ev := c.Manifest.Evidence
	img, err := openEvidence(ev.Path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if err := sameEvidence(ev, img.ev); err != nil {
		return nil, err
	}
	started := time.Now()
	params, _ := json.Marshal(struct {
		Raw, NewestOnly bool
		Formats         []OutputFormat `json:",omitempty"`
		DamagePolicy    reassemble.DamageThresholds
	}{opts.Raw, opts.NewestOnly, opts.Formats, reassemble.DamagePolicyThresholds()})
	if err := c.UpdateManifest(func(m *Manifest) error {
		m.Stages[StageRebuild] = &Stage{Started: started, Params: params, Reason: "running"}
		return nil
	}); err != nil {
		return nil, err
	}

	// With unreadable areas, the image is read as rebuild may trust it:
	// they fail every read that touches them.
	var image io.ReaderAt = img
	if err := checkAreas(ev.Unreadable, ev.Size); err != nil {
		return nil, fmt.Errorf("pipeline: %s: evidence.unreadable: %w", filepath.Join(c.Dir, ManifestName), err)
	}
	if areas := ev.Unreadable; len(areas) > 0 {
		image = newUnreadableImage(img, ev)
		logf("%d areas of the image are unreadable (mapfile, E01 error2 or damaged chunks): nothing is decided from their bytes", len(areas))
	}
	// The fingerprints load while the hits do: both are read whole, and
	// neither needs the other.
	type loaded struct {
		fp  *Fingerprints
		err error
	}
	fpLoaded := make(chan loaded, 1)
	go func() {
		fp, err := c.Fingerprints()
		fpLoaded <- loaded{fp, err}
	}()
	hits, dups, err := c.loadHits()
	fpl := <-fpLoaded
	if fpl.err == nil {
		defer fpl.fp.Close()
	}
	if err != nil {
		return nil, err
	}
	if dups > 0 {
		logf("%d duplicate hits dropped (identical copies of another hit at the same offset)", dups)
	}
	logf("planning from %d hits", len(hits))
	popts := reassemble.Options{
		// At most one line per percent: an image of 10^6 headers must not
		// print 10^6 lines.
		Progress: func(done, total int) {
			if done == total || done*100/total != (done-1)*100/total {
				logf("instance %d of %d placed", done, total)
			}
		},
	}
	if opts.Meter != nil {
		popts.Progress = func(done, total int) { opts.Meter(StepPlan, "instances", int64(done), int64(total)) }
	}
	if fp, err := fpl.fp, fpl.err; err == nil {
		// The randomness of a raw image's blocks is tested in place, on
		// a mapping of it (mappedImage).
		tested := image
		if img.raw != nil && len(ev.Unreadable) == 0 {
			if m := mapImage(img.raw, ev.Size); m != nil {
				defer m.Close()
				tested = m
			}
		}
		fp.UseImage(tested, ev.Size)
		if len(ev.Unreadable) > 0 {
			fp.Unknown(ev.Unreadable)
		}
		popts.Fingerprints = fp
	} else {
		logf("no fingerprints (%v): the damage policy cannot test for intermittent encryption", err)
	}
	plan := reassemble.PlanCase(image, ev.Size, hits, popts)
	disks := plan.Disks
	for _, dir := range []string{PlansDirName, DisksDirName} {
		if err := os.MkdirAll(filepath.Join(c.Dir, dir), 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeNoGrain(c, plan); err != nil {
		return nil, err
	}
	if n := plan.NoGrainInstances; n > 0 {
		logf("%d VMDK instances own no grain (a header whose tables are lost or zero): not disks, listed in %s", n, filepath.Join(DisksDirName, NoGrainName))
	}
	if err := removeStaleDisks(c, len(disks)); err != nil {
		return nil, err
	}
	res, recovered, failed, err := emitDisks(ctx, c, image, disks, opts, logf)
	if err != nil {
		return nil, err
	}
	res.Findings = append(evidenceFindings(ev), res.Findings...)
	for _, n := range plan.HostNotes {
		res.Findings = append(res.Findings, findings.HostProbeLimited(n))
	}
	if n := plan.NoGrainInstances; n > 0 && len(plan.NoGrain) > 0 {
		res.Findings = append(res.Findings, findings.NoGrainHeaders(n, len(plan.NoGrain), plan.NoGrain[0].FirstOffset))
	}
	// The case's three reports read what rebuild found and write a file
	// each: side by side, once the findings are in their order (each
	// report lists them so).
	findings.Sort(res.Findings)
	var reports errgroup.Group
	reports.Go(func() error { return writeFindings(c, slices.Clone(res.Findings)) })
	reports.Go(func() error { return c.writeReportDFXML(res, failed, started) })
	reports.Go(func() error { return writeReportHTML(c, disks, res) })
	if err := reports.Wait(); err != nil {
		return nil, err
	}
	if err := c.finishRebuild(res, len(disks), failed, started, params); err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("pipeline: %d of %d disks not emitted: %s", len(failed), len(disks), strings.Join(failed, "; "))
	}
	if !recovered {
		return res, fmt.Errorf("pipeline: %d VMDK instances found, no grain placed: %w", len(disks)+plan.NoGrainInstances, ErrNothingRecovered)
	}
	return res, nil
}

// removeStaleDisks removes the plans, disks and reports of an earlier
// rebuild numbered past the n disks this one plans: a re-run that finds
// fewer disks (hits deduplicated, headers that own no grain listed) must
// not leave disk-199.json beside them, which the summary of a completed
// rebuild would read back as a disk of this one.
func removeStaleDisks(c *Case, n int) error {
	for _, dir := range []string{PlansDirName, DisksDirName} {
		paths, err := filepath.Glob(filepath.Join(c.Dir, dir, "disk-*"))
		if err != nil {
			return err
		}
		for _, p := range paths {
			base := filepath.Base(p)
			num, _, _ := strings.Cut(strings.TrimPrefix(base, "disk-"), ".")
			if id, err := strconv.Atoi(num); err == nil && id > n {
				if err := os.Remove(p); err != nil {
					return fmt.Errorf("pipeline: removing %s of an earlier rebuild: %w", p, err)
				}
			}
		}
	}
	return nil
}

// NoGrainName is disks/no-grain.json: the VMDK instances found that own
// no grain (reassemble.Result.NoGrain), listed compactly.
const NoGrainName = "no-grain.json"

// NoGrainReport is disks/no-grain.json.
type NoGrainReport struct {
	Tool      string                   `json:"tool"`
	Version   string                   `json:"version"`
	Evidence  Evidence                 `json:"evidence"`
	Instances int                      `json:"instances"`
	Runs      []reassemble.InstanceRun `json:"runs"`
}

// writeNoGrain writes disks/no-grain.json, or removes one a rebuild
// before left when every instance now owns a grain.
func writeNoGrain(c *Case, plan *reassemble.Result) error {
	path := filepath.Join(c.Dir, DisksDirName, NoGrainName)
	if plan.NoGrainInstances == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.MarshalIndent(&NoGrainReport{Tool: Tool, Version: Version, Evidence: c.Manifest.Evidence,
		Instances: plan.NoGrainInstances, Runs: plan.NoGrain}, "", " ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// emitDisks writes every planned disk (its plan, the disk and its report)
// but the older versions --versions newest leaves out. A disk that cannot
// be written is listed in failed and does not stop the others; recovered
// says whether any disk placed a grain.
func emitDisks(ctx context.Context, c *Case, img io.ReaderAt, disks []*reassemble.Disk, opts RebuildOptions, logf func(string, ...any)) (res *RebuildResult, recovered bool, failed []string, err error) {
	res = &RebuildResult{}
	type job struct {
		d      *reassemble.Disk
		name   string
		report *DiskReport
		file   dfxml.FileObject
		err    error
	}
	var jobs []*job
	for _, d := range disks {
		if v := d.Versions; opts.NewestOnly && v != nil && v.Order != "unknown" && !v.Newest {
			logf("disk-%02d: an older version (group %d, %s): not emitted (--versions newest)", d.ID, v.Group, v.Order)
			res.Skipped = append(res.Skipped, d.ID)
			res.Findings = append(res.Findings, d.Findings()...)
			res.Findings = append(res.Findings, findings.VersionNotEmitted(v.Group, v.Order).On(d.ID, 0))
			continue
		}
		name := fmt.Sprintf("disk-%02d", d.ID)
		logf("%s: writing %d grains placed, %d zero, %d missing, %d damaged", name, d.Counts.Placed, d.Counts.Zero, d.Counts.Missing+d.Counts.Conflict, d.Counts.Damaged)
		jobs = append(jobs, &job{d: d, name: name})
	}
	// Disks are written side by side, two per core (emitPerCPU): each
	// writes its plan, reads its grains (decoding stream records), writes
	// its file in order, hashes it and checks its guest, independent of
	// the others. Results are taken in disk order, so the logs and the
	// summary do not depend on which finishes first.
	meter := newGrainMeter(opts)
	for _, j := range jobs {
		meter.add(j.d)
	}
	// The largest start first, so that the last to finish is a small one
	// (and, once fewer disks than cores are left, it reads ahead). A disk
	// holds one of the slots while it computes, and gives it up to wait
	// for its file to reach the disk (emitDisk's computed): the next one
	// starts meanwhile.
	var g errgroup.Group
	slots := make(chan struct{}, emitPerCPU*runtime.NumCPU())
	emitPending.Add(int64(len(jobs)))
	byWork := slices.Clone(jobs)
	slices.SortStableFunc(byWork, func(a, b *job) int { return cmp.Compare(emitCost(b.d), emitCost(a.d)) })
	for _, j := range byWork {
		slots <- struct{}{}
		g.Go(func() error {
			defer emitPending.Add(-1)
			var once sync.Once
			computed := func() { once.Do(func() { <-slots }) }
			defer computed()
			if err := ctx.Err(); err != nil {
				j.err = err
				return nil
			}
			if j.err = writePlan(c, j.d, j.name); j.err == nil {
				j.report, j.err = emitDisk(c, img, j.d, j.name, opts, meter, computed)
			}
			if j.err == nil {
				j.file = diskFileObject(j.report)
				j.file.Findings = dfxmlFindings(j.report.Findings)
			}
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, false, nil, err
	}
	for _, j := range jobs {
		if j.err != nil {
			// One disk that cannot be written (a capacity a
			// monolithicSparse extent cannot hold, a write error) must
			// not cost the others: go on, and fail the stage at the end.
			logf("%s: not emitted: %v", j.name, j.err)
			failed = append(failed, fmt.Sprintf("%s: %v", j.name, j.err))
			res.Findings = append(res.Findings, j.d.Findings()...)
			res.Findings = append(res.Findings, findings.DiskNotEmitted(j.err.Error()).On(j.d.ID, 0))
			continue
		}
		res.Findings = append(res.Findings, j.report.Findings...)
		if j.d.Counts.Placed > 0 {
			recovered = true
		}
		res.Disks = append(res.Disks, summarize(j.report))
		res.files = append(res.files, j.file)
	}
	return res, recovered, failed, nil
}

// emitPerCPU is how many disks are written at a time per CPU. A disk of
// uncompressed grains keeps its writer waiting on the device for much of
// the time (its grains cost a copy and two hashes, against a transfer
// each), so one disk per CPU left the CPUs partly idle while two such
// disks ran; a second per CPU keeps them busy. Each costs about 8 MiB of
// buffers. On the 4 GiB bench image's 5 disks (2 CPUs, 12 runs each,
// alternating): median 0.91 s against 1.01 s with one per CPU.
const emitPerCPU = 2

// writePlan writes plans/disk-NN.json, the plan of disk d.
func writePlan(c *Case, d *reassemble.Disk, name string) error {
	plan, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(c.Dir, PlansDirName, name+".json"), plan)
}

// emitCost estimates the work of writing disk d, for the order disks are
// started in: a grain placed costs its read, check, write and hash, and a
// stream grain (placed by its marker) as much again to inflate (on the
// bench image a stream disk of half the grains took as long as a sparse
// one).
func emitCost(d *reassemble.Disk) uint64 {
	return d.Counts.Placed + d.Counts.ByEvidence[reassemble.EvMarker]
}

// finishRebuild records the rebuild stage in the manifest: its counts, and
// complete unless a disk failed.
func (c *Case) finishRebuild(res *RebuildResult, planned int, failed []string, started time.Time, params json.RawMessage) error {
	counts := map[string]int64{"disks": int64(planned)}
	for _, d := range res.Disks {
		counts["grains_placed"] += int64(d.Counts.Placed)
		counts["grains_missing"] += int64(d.Counts.Missing + d.Counts.Conflict)
		counts["grains_damaged"] += int64(d.Counts.Damaged)
	}
	return c.UpdateManifest(func(m *Manifest) error {
		st := &Stage{Complete: len(failed) == 0, Started: started, Finished: time.Now(), Params: params, Counts: counts}
		if len(failed) > 0 {
			st.Reason = strings.Join(failed, "; ")
		}
		m.Stages[StageRebuild] = st
		return nil
	})
}

// emitDisk writes disk-NN.vmdk (and .raw) and disk-NN.json. It calls
// computed once what is left is waiting for disk-NN.vmdk to be synced.
func emitDisk(c *Case, img io.ReaderAt, d *reassemble.Disk, name string, opts RebuildOptions, meter *grainMeter, computed func()) (*DiskReport, error) {
	dr := newDiskReader(img, d)
	readGrain := meter.counting(dr.readGrain)
	report := &DiskReport{Tool: Tool, Version: Version, Evidence: c.Manifest.Evidence, Disk: d}

	vmdkPath := filepath.Join(c.Dir, DisksDirName, name+".vmdk")
	f, err := CreateAtomic(vmdkPath)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	f.WriteDirect()
	hw := newHashingWriter(f)
	read, stop := readGrains(dr)
	defer stop()
	size, err := vmdk.WriteMonolithicSparse(hw, vmdk.SparseWriterOptions{
		Capacity: d.Capacity, GrainSize: d.GrainSize, FileName: name + ".vmdk", Descriptor: d.Descriptor,
		Allocated: dr.allocated, ReadFills: true,
	}, meter.counting(read))
	stop()
	if err != nil {
		return nil, err
	}
	sum, err := hw.sum(f, size)
	if err != nil {
		return nil, err
	}
	report.Output = append(report.Output, OutputFile{Path: filepath.Join(DisksDirName, name+".vmdk"), Format: "vmdk", Size: size, SHA256: sum})

	outs, err := writeExtraFormats(filepath.Join(c.Dir, DisksDirName), name, opts, d, readGrain)
	if err != nil {
		return nil, err
	}
	report.Output = append(report.Output, outs...)
	report.Verified = dr.verify
	report.Guest = guestcheck.Identify(dr, int64(d.Capacity)*vmdk.SectorSize)
	for i := range report.Guest {
		if f := &report.Guest[i]; f.Kind == "ntfs" || f.Kind == "ext" {
			res := guestcheck.Check(dr, int64(d.Capacity)*vmdk.SectorSize, *f)
			f.Check = &res
		}
	}
	report.Findings = append(d.Findings(), emitFindings(report)...)
	findings.Sort(report.Findings)
	if report.Findings == nil {
		report.Findings = []findings.Finding{}
	}

	b, err := json.MarshalIndent(report, "", " ")
	if err != nil {
		return nil, err
	}
	// The report appears only after the disk it describes.
	computed()
	if err := f.Commit(); err != nil {
		return nil, err
	}
	return report, WriteFileAtomic(filepath.Join(c.Dir, DisksDirName, name+".json"), b)
}

// commitHashed hashes a written output file (SHA-256, for the report) and
// publishes it.
func commitHashed(f *AtomicFile) (string, error) {
	sum, err := hashFile(f.File)
	if err != nil {
		return "", err
	}
	return sum, f.Commit()
}

// hashingWriter hashes (SHA-256) what is written through it, for as long
// as every write continues where the one before ended: a file written
// front to back is hashed without being read back.
type hashingWriter struct {
	w   io.WriterAt
	h   hash.Hash
	end int64
	// broken: a write went elsewhere (or failed); the hash says nothing.
	broken bool
}

func newHashingWriter(w io.WriterAt) *hashingWriter { return &hashingWriter{w: w, h: sha256.New()} }

func (hw *hashingWriter) WriteAt(p []byte, off int64) (int, error) {
	if off != hw.end || hw.broken {
		hw.broken = true
		return hw.w.WriteAt(p, off)
	}
	// Hashing costs about what the write does: the two run side by side.
	hashed := make(chan struct{})
	go func() {
		hw.h.Write(p)
		close(hashed)
	}()
	n, err := hw.w.WriteAt(p, off)
	<-hashed
	if err != nil || n != len(p) {
		hw.broken = true
		return n, err
	}
	hw.end += int64(n)
	return n, nil
}

// sum is the SHA-256 of f, written through hw and size bytes long: the
// one hashed while writing if the writes ran front to back over all of it,
// else f read back.
func (hw *hashingWriter) sum(f *AtomicFile, size int64) (string, error) {
	if hw.broken || hw.end != size {
		return hashFile(f.File)
	}
	return hex.EncodeToString(hw.h.Sum(nil)), nil
}

func hashFile(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// diskReader reads a planned disk: placed grains from the image (decoded
// if compressed, checked against the planned hash), everything else as
// zeros. A grain that fails its check now is treated as missing and
// counted, never written.
type diskReader struct {
	img    io.ReaderAt
	disk   *reassemble.Disk
	verify VerifySummary
	record []byte
	cacheG int64
	cache  []byte
	// zeroHashes are the hashes of a zero grain and of a zero last grain
	// (allocated).
	zeroHashes []uint64
}

func newDiskReader(img io.ReaderAt, d *reassemble.Disk) *diskReader {
	gb := int64(d.GrainSize) * vmdk.SectorSize
	return &diskReader{img: img, disk: d, cacheG: -1, cache: make([]byte, gb),
		record: make([]byte, 12+vmdk.MaxCompressedGrain(gb))}
}

// allocated says whether readGrain will give grain g, not all zeros, if
// the image still holds what the plan found there (vmdk.SparseWriterOptions.
// Allocated): a placed grain whose hash is not that of zeros.
func (r *diskReader) allocated(g uint64) bool {
	gr := r.disk.Placed(g)
	if gr == nil || gr.Source == nil {
		return false
	}
	if r.zeroHashes == nil {
		gb := int64(r.disk.GrainSize) * vmdk.SectorSize
		last := int64(r.disk.Capacity)*vmdk.SectorSize - int64(r.disk.Grains()-1)*gb
		// A compressed grain is hashed as decoded, the whole grain or
		// the last one's length: either may be zeros.
		r.zeroHashes = []uint64{xxhash.Sum64(make([]byte, gb)), xxhash.Sum64(make([]byte, last))}
	}
	return gr.Hash != r.zeroHashes[0] && gr.Hash != r.zeroHashes[1]
}

// readGrain fills buf (one grain, or less for the last) with grain g: all
// of it when it returns true (vmdk.SparseWriterOptions.ReadFills); when
// false, what buf holds is nothing.
func (r *diskReader) readGrain(g uint64, buf []byte) (bool, error) {
	gr := r.disk.Placed(g)
	if gr == nil || gr.Source == nil {
		return false, nil
	}
	r.verify.GrainsRead++
	src := gr.Source
	if src.Compressed {
		r.cacheG = -1 // the cache is about to hold this grain's decoded bytes
		rec := r.record[:min(int64(len(r.record)), max(src.RecordBytes, 12))]
		n, err := reassemble.ReadSource(r.img, src, rec)
		if err != nil {
			return false, err
		}
		// Decoded in place when buf holds a whole grain (all but a short
		// last one), else in the cache and copied.
		dst := r.cache
		if len(buf) == len(r.cache) {
			dst = buf
		}
		k, same, again, err := decodeRecord(rec[:n], dst, gr.Hash)
		if again {
			r.verify.Redecoded++
		}
		if err != nil || k < len(buf) {
			r.verify.DecodeFailure++
			return false, nil
		}
		if len(buf) != len(dst) {
			copy(buf, dst[:len(buf)])
		}
		if !same {
			r.verify.HashMismatch++
			return false, nil
		}
		return true, nil
	}
	n, err := reassemble.ReadSource(r.img, src, buf)
	if err != nil {
		return false, err
	}
	clear(buf[n:]) // (a read cut by the image's end: zeros, which the hash check then judges)
	if xxhash.Sum64(buf) != gr.Hash {
		r.verify.HashMismatch++
		return false, nil
	}
	return true, nil
}

// decodeRecord decodes the stream grain record rec into dst and says
// whether the bytes decoded (k of them: the carve hashed the whole decoded
// grain) hash to want, the carve's hash of the record decoded. The faster
// inflater decodes first (decodeFast); when its bytes are not the carve's
// (a malformed stream it reads otherwise, or damage), the carve's own
// inflater decodes again and decides: again says it did.
func decodeRecord(rec, dst []byte, want uint64) (k int, same, again bool, err error) {
	if _, k, err = decodeFast(rec, dst); err == nil && xxhash.Sum64(dst[:k]) == want {
		return k, true, false, nil
	}
	if _, k, err = vmdk.DecodeGrainUnchecked(rec, dst); err != nil {
		return k, false, true, err
	}
	return k, xxhash.Sum64(dst[:k]) == want, true, nil
}

// decodeFast is rebuild's first inflater, a variable so that a test can
// give one that reads a stream otherwise than the carve's: fuzzing found
// no valid stream that klauspost's decodes otherwise to find one with.
var decodeFast = vmdk.DecodeGrainFast

// MissingIn reports whether [off, off+n) of the rebuilt disk touches a
// grain that was not recovered (missing or conflicting: it reads as zeros
// without being zeros), for the guest file checks.
func (r *diskReader) MissingIn(off, n int64) bool {
	gb := int64(r.disk.GrainSize) * vmdk.SectorSize
	if n <= 0 || off < 0 {
		return false
	}
	for g := off / gb; g <= (off+n-1)/gb; g++ {
		if r.disk.Placed(uint64(g)) != nil {
			continue
		}
		run, ok := r.disk.RunOf(uint64(g))
		if !ok || run.Status != reassemble.Zero {
			return true
		}
	}
	return false
}

// ReadAt reads the rebuilt disk, for the guest probes.
func (r *diskReader) ReadAt(p []byte, off int64) (int, error) {
	gb := int64(r.disk.GrainSize) * vmdk.SectorSize
	size := int64(r.disk.Capacity) * vmdk.SectorSize
	done := 0
	for done < len(p) {
		if off >= size {
			return done, io.EOF
		}
		g := off / gb
		if g != r.cacheG {
			n := min(gb, size-g*gb)
			b := r.cache[:n]
			clear(r.cache)
			ok, err := r.readGrain(uint64(g), b)
			if err != nil {
				return done, err
			}
			if !ok {
				clear(b)
			}
			r.cacheG = g
		}
		k := copy(p[done:], r.cache[off-g*gb:min(gb, size-g*gb)])
		done += k
		off += int64(k)
	}
	return done, nil
}

func summarize(rep *DiskReport) DiskSummary {
	d := rep.Disk
	s := DiskSummary{ID: d.ID, Capacity: d.Capacity * vmdk.SectorSize, Sources: len(d.Instances), Counts: d.Counts}
	if len(rep.Output) > 0 {
		s.Path = rep.Output[0].Path
	}
	for _, inst := range d.Instances {
		s.Variants = append(s.Variants, inst.Variant)
	}
	s.Metadata, s.Files = "-", "-"
	var metaPlaced, metaAll int64
	for _, inst := range d.Instances {
		if dm := inst.Damage; dm != nil && dm.RandomChunks > 0 {
			s.Damage = append(s.Damage, fmt.Sprintf("instance %d: %s", inst.ID, dm.Decision))
		}
		s.Unplaced += inst.UnplacedGrains
		metaPlaced += inst.MetadataPlaced
		metaAll += inst.MetadataGrains
	}
	if metaAll > 0 {
		s.Metadata = fmt.Sprintf("%d/%d", metaPlaced, metaAll)
	}
	for _, f := range rep.Guest {
		s.GuestKind = append(s.GuestKind, f.Kind)
		if f.Check != nil && f.Check.Files > 0 {
			s.Files = fmt.Sprintf("%d/%d", f.Check.FilesRecovered, f.Check.Files)
		}
	}
	if v := d.Versions; v != nil {
		s.Versions = fmt.Sprintf("v%d/%d of group %d", v.Position+1, len(v.Disks), v.Group)
		if v.Order == "unknown" {
			s.Versions = fmt.Sprintf("group %d (order unknown)", v.Group)
		}
	}
	return s
}

// summariesFromReports rebuilds the summary table from the reports of a
// completed rebuild, so a re-run prints the same table without redoing work.
func summariesFromReports(c *Case) (*RebuildResult, error) {
	paths, err := filepath.Glob(filepath.Join(c.Dir, DisksDirName, "disk-*.json"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no reports")
	}
	res := &RebuildResult{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rep := new(DiskReport)
		if err := json.Unmarshal(b, rep); err != nil || rep.Disk == nil {
			return nil, fmt.Errorf("%s: unreadable report", p)
		}
		res.Disks = append(res.Disks, summarize(rep))
	}
	fs, err := readFindings(c)
	if err != nil {
		return nil, err
	}
	res.Findings = fs
	return res, nil
}
