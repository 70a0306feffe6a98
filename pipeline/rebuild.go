package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"

	"vmdkcarve/internal/entropy"
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
	// Force redoes a rebuild that already completed.
	Force bool
	// Progress receives one line per step; nil is silent.
	Progress func(format string, args ...any)
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
	img, err := os.Open(ev.Path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening evidence: %w", err)
	}
	defer img.Close()
	if st, err := img.Stat(); err != nil || st.Size() != ev.Size {
		return nil, fmt.Errorf("pipeline: evidence %s is not the %d bytes the case was carved from", ev.Path, ev.Size)
	}
	started := time.Now()
	params, _ := json.Marshal(struct {
		Raw, NewestOnly bool
		DamagePolicy    reassemble.DamageThresholds
	}{opts.Raw, opts.NewestOnly, reassemble.DamagePolicyThresholds()})
	if err := c.UpdateManifest(func(m *Manifest) error {
		m.Stages[StageRebuild] = &Stage{Started: started, Params: params, Reason: "running"}
		return nil
	}); err != nil {
		return nil, err
	}

	// With a mapfile, the image is read as rebuild may trust it: the
	// areas not rescued fail every read that touches them.
	var image io.ReaderAt = img
	if err := checkAreas(ev.Unreadable, ev.Size); err != nil {
		return nil, fmt.Errorf("pipeline: %s: evidence.unreadable: %w", filepath.Join(c.Dir, ManifestName), err)
	}
	if areas := ev.Unreadable; len(areas) > 0 {
		image = &unreadableImage{r: img, areas: areas}
		logf("%d areas of the image were not rescued (ddrescue mapfile): nothing is decided from their bytes", len(areas))
	}
	hits, dups, err := c.loadHits()
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
	if fp, err := c.Fingerprints(); err == nil {
		defer fp.Close()
		fp.UseImage(image, ev.Size)
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
		err    error
	}
	var jobs []*job
	for _, d := range disks {
		if v := d.Versions; opts.NewestOnly && v != nil && v.Order != "unknown" && !v.Newest {
			logf("disk-%02d: an older version (group %d, %s): not emitted (--versions newest)", d.ID, v.Group, v.Order)
			res.Skipped = append(res.Skipped, d.ID)
			continue
		}
		name := fmt.Sprintf("disk-%02d", d.ID)
		plan, err := json.MarshalIndent(d, "", " ")
		if err != nil {
			return nil, false, nil, err
		}
		if err := WriteFileAtomic(filepath.Join(c.Dir, PlansDirName, name+".json"), plan); err != nil {
			return nil, false, nil, err
		}
		logf("%s: writing %d grains placed, %d zero, %d missing, %d damaged", name, d.Counts.Placed, d.Counts.Zero, d.Counts.Missing+d.Counts.Conflict, d.Counts.Damaged)
		jobs = append(jobs, &job{d: d, name: name})
	}
	// Disks are written side by side, one per core: each reads its grains
	// (decoding stream records), writes its file in order, hashes it and
	// checks its guest, independent of the others. Results are taken in
	// disk order, so the logs and the summary do not depend on which
	// finishes first.
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU())
	for _, j := range jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				j.err = err
				return nil
			}
			j.report, j.err = emitDisk(c, img, j.d, j.name, opts)
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
			continue
		}
		if j.d.Counts.Placed > 0 {
			recovered = true
		}
		res.Disks = append(res.Disks, summarize(j.report))
	}
	return res, recovered, failed, nil
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

// emitDisk writes disk-NN.vmdk (and .raw) and disk-NN.json.
func emitDisk(c *Case, img io.ReaderAt, d *reassemble.Disk, name string, opts RebuildOptions) (*DiskReport, error) {
	dr := newDiskReader(img, d)
	report := &DiskReport{Tool: Tool, Version: Version, Evidence: c.Manifest.Evidence, Disk: d}

	vmdkPath := filepath.Join(c.Dir, DisksDirName, name+".vmdk")
	f, err := CreateAtomic(vmdkPath)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	size, err := vmdk.WriteMonolithicSparse(f, vmdk.SparseWriterOptions{
		Capacity: d.Capacity, GrainSize: d.GrainSize, FileName: name + ".vmdk", Descriptor: d.Descriptor,
	}, dr.readGrain)
	if err != nil {
		return nil, err
	}
	sum, err := commitHashed(f)
	if err != nil {
		return nil, err
	}
	report.Output = append(report.Output, OutputFile{Path: filepath.Join(DisksDirName, name+".vmdk"), Format: "vmdk", Size: size, SHA256: sum})

	if opts.Raw {
		rawPath := filepath.Join(c.Dir, DisksDirName, name+".raw")
		out, err := writeRaw(rawPath, dr, int64(d.Capacity)*vmdk.SectorSize)
		if err != nil {
			return nil, err
		}
		report.Output = append(report.Output, *out)
	}
	report.Verified = dr.verify
	report.Guest = guestcheck.Identify(dr, int64(d.Capacity)*vmdk.SectorSize)
	for i := range report.Guest {
		if f := &report.Guest[i]; f.Kind == "ntfs" || f.Kind == "ext" {
			res := guestcheck.Check(dr, int64(d.Capacity)*vmdk.SectorSize, *f)
			f.Check = &res
		}
	}

	b, err := json.MarshalIndent(report, "", " ")
	if err != nil {
		return nil, err
	}
	return report, WriteFileAtomic(filepath.Join(c.Dir, DisksDirName, name+".json"), b)
}

func writeRaw(path string, dr *diskReader, size int64) (*OutputFile, error) {
	f, err := CreateAtomic(path)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	if err := f.Truncate(size); err != nil {
		return nil, err
	}
	gb := int64(dr.disk.GrainSize) * vmdk.SectorSize
	buf := make([]byte, gb)
	for g := uint64(0); int64(g)*gb < size; g++ {
		n := min(gb, size-int64(g)*gb)
		b := buf[:n]
		clear(b)
		ok, err := dr.readGrain(g, b)
		if err != nil {
			return nil, err
		}
		if ok && !entropy.Zero(b) {
			if _, err := f.WriteAt(b, int64(g)*gb); err != nil {
				return nil, err
			}
		}
	}
	sum, err := commitHashed(f)
	if err != nil {
		return nil, err
	}
	return &OutputFile{Path: filepath.Join(DisksDirName, filepath.Base(path)), Format: "raw", Size: size, SHA256: sum}, nil
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
}

func newDiskReader(img io.ReaderAt, d *reassemble.Disk) *diskReader {
	gb := int64(d.GrainSize) * vmdk.SectorSize
	return &diskReader{img: img, disk: d, cacheG: -1, cache: make([]byte, gb),
		record: make([]byte, 12+vmdk.MaxCompressedGrain(gb))}
}

// readGrain fills buf (one grain, or less for the last) with grain g.
func (r *diskReader) readGrain(g uint64, buf []byte) (bool, error) {
	gr := r.disk.Placed(g)
	if gr == nil || gr.Source == nil {
		return false, nil
	}
	r.verify.GrainsRead++
	src := gr.Source
	hashed := buf
	if src.Compressed {
		r.cacheG = -1 // the cache is about to hold this grain's decoded bytes
		rec := r.record[:min(int64(len(r.record)), max(src.RecordBytes, 12))]
		n, err := reassemble.ReadSource(r.img, src, rec)
		if err != nil {
			return false, err
		}
		_, k, err := vmdk.DecodeGrain(rec[:n], r.cache)
		if err != nil || k < len(buf) {
			r.verify.DecodeFailure++
			return false, nil
		}
		copy(buf, r.cache[:len(buf)])
		hashed = r.cache[:k] // the carve hashed the whole decoded grain
	} else if _, err := reassemble.ReadSource(r.img, src, buf); err != nil {
		return false, err
	}
	if xxhash.Sum64(hashed) != gr.Hash {
		r.verify.HashMismatch++
		return false, nil
	}
	return true, nil
}

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
	return res, nil
}
