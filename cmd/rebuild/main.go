// Command rebuild runs stages 2 and 3 of vmdkcarve on a carved case: it
// decides where every grain of every virtual disk found comes from and
// writes each disk as a monolithicSparse VMDK with a JSON report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"vmdkcarve/findings"
	"vmdkcarve/internal/interrupt"
	"vmdkcarve/internal/profile"
	"vmdkcarve/internal/progress"
	"vmdkcarve/internal/units"
	"vmdkcarve/pipeline"
)

// Exit codes (DESIGN.md).
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitNothingFound = 3
)

const usage = `usage: rebuild [flags] CASE

Reads CASE/hits.jsonl (written by carve), groups the VMDK structures found
into virtual disks, decides for every grain where its bytes come from, and
writes for each disk:

  CASE/plans/disk-NN.json   the plan: every instance, fragment and grain run
  CASE/disks/disk-NN.vmdk   a monolithicSparse VMDK (qemu-img and VMware open it)
  CASE/disks/disk-NN.json   the report: plan, output hashes, guest filesystems
  CASE/disks/disk-NN.raw    with --format raw: a raw image as well
  CASE/disks/disk-NN-stream.vmdk      with --format streamOptimized (OVF/OVA)
  CASE/disks/disk-NN-esxi.vmdk        with --format esxi: an ESXi descriptor
  CASE/disks/disk-NN-esxi-flat.vmdk   and its flat extent

and for the case:

  CASE/findings.json        every finding: each damage found and what was
                            done, with a stable code (README, Finding codes),
                            printed after the summary table
  CASE/report.dfxml         the DFXML report (DFXML schema): the evidence, its
                            digests, and per disk its byte runs in the image
  CASE/report.html          the map: the image strip, a grain map per disk,
                            the disk table and the findings (one file, offline)
  CASE/disks/no-grain.json  VMDK headers that own no grain (not made disks)

A grain is placed only on evidence (table = the VMDK's own grain table,
marker = a stream grain marker's LBA, flat = its offset in a flat extent (raw
guest disk, monolithicFlat or ESXi -flat.vmdk) found by the guest's partition
table and its descriptor's size, host = its file offset linked to the
image by the host filesystem's own map (NTFS MFT runs, ext4 extents), copy =
an identical copy elsewhere, stream = proven zero by an unbroken chain of
stream records, fsprobe = the grain's own guest structures locate it (MBR,
NTFS boot sector and MFT records, ext4 superblock and checksummed inodes)
when every grain table is lost, order = write order between two proven
grains, where every proven grain agrees with it). Without a host map a file is assumed contiguous from its
header only until the bytes contradict it, and once contradicted nothing
rests on that assumption. Anything less is left out (reads as zeros) and
reported as missing, never guessed. Several versions of one disk are each
rebuilt and linked in their reports; versions are never mixed.

Summary columns: grains by status (placed, zero, missing, conflict), by
evidence (table .. order; a grain may have several), unplaced = non-zero
grain slots of a file whose tables are lost that nothing placed (their image
offsets are in the report), metadata = guest metadata grains placed of those
the guest's own structures predict, files = guest files read back whole.

Exit codes: 0 success, 1 error (also: a disk that could not be written; the
others are), 2 usage, 3 finished but nothing recovered.

Flags:
`

func main() {
	// rebuild writes its disks past the page cache (AtomicFile.WriteDirect),
	// so a goroutine writing waits in the kernel for the device, and keeps
	// its P until the runtime hands it on: two Ps beyond the CPUs keep the
	// CPUs busy meanwhile (rebuild of the 4 GiB bench image on 2 CPUs,
	// 12 runs each: 0.87 s fastest, 0.93 s median, against 0.93 s and
	// 1.03 s without). A GOMAXPROCS the user set is kept.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + blockedWriters)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// blockedWriters is how many more Ps than CPUs rebuild runs with: about
// the disks written side by side, each with one write in flight.
const blockedWriters = 2

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "vmdk", "output `FORMATS`, comma-separated: vmdk (always written), raw (disk-NN.raw), streamOptimized (disk-NN-stream.vmdk, for an OVF/OVA), esxi (disk-NN-esxi.vmdk + disk-NN-esxi-flat.vmdk), each as well as the VMDK")
	force := fs.Bool("force", false, "redo a rebuild that already completed")
	progressFlag := fs.String("progress", "auto", progress.FlagHelp)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the rebuild to `FILE` (go tool pprof), to explain its speed")
	versions := fs.String("versions", "all", "several versions of one disk: all (emit each, linked in the reports) or newest (emit only the newest, when their order is known)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	raw, extra, err := parseFormats(*format)
	if err != nil {
		fmt.Fprintf(stderr, "rebuild: --format: %v\n", err)
		return exitUsage
	}
	if *versions != "all" && *versions != "newest" {
		fmt.Fprintf(stderr, "rebuild: --versions must be all or newest, not %q\n", *versions)
		return exitUsage
	}
	opts := pipeline.RebuildOptions{Raw: raw, Formats: extra, Force: *force, NewestOnly: *versions == "newest"}
	mode, err := progress.ParseMode(*progressFlag)
	if err != nil {
		fmt.Fprintf(stderr, "rebuild: %v\n", err)
		return exitUsage
	}
	prog := progress.New(stderr, mode, progress.Options{Command: "rebuild"})
	if mode != progress.None {
		opts.Progress = prog.Notef
		opts.Meter = func(step, unit string, done, total int64) { prog.Update(step, progress.Unit(unit), done, total) }
	}
	ctx, stop := interrupt.Context(context.Background())
	defer stop()
	stopProfile, err := profile.StartCPU(*cpuProfile)
	if err != nil {
		fmt.Fprintf(stderr, "rebuild: %v\n", err)
		return exitError
	}
	defer stopProfile()
	res, err := pipeline.Rebuild(ctx, fs.Arg(0), opts)
	prog.Finish()
	if res != nil {
		printSummary(stdout, res)
	}
	switch {
	case errors.Is(err, pipeline.ErrNothingRecovered):
		fmt.Fprintf(stderr, "rebuild: %v\n", err)
		return exitNothingFound
	case err != nil:
		fmt.Fprintf(stderr, "rebuild: %v\n", err)
		return exitError
	case len(res.Disks) == 0:
		fmt.Fprintln(stderr, "rebuild: no VMDK found in the evidence: nothing was recovered")
		return exitNothingFound
	}
	return exitOK
}

// parseFormats reads --format: raw is RebuildOptions.Raw, as it always
// was; the other formats beside the VMDK are RebuildOptions.Formats.
func parseFormats(list string) (raw bool, extra []pipeline.OutputFormat, err error) {
	for _, name := range strings.Split(list, ",") {
		f, err := pipeline.ParseFormat(strings.TrimSpace(name))
		if err != nil {
			return false, nil, err
		}
		switch f {
		case pipeline.FormatSparse:
		case pipeline.FormatRaw:
			raw = true
		default:
			extra = append(extra, f)
		}
	}
	return raw, extra, nil
}

func printSummary(w io.Writer, res *pipeline.RebuildResult) {
	if res.Done {
		fmt.Fprintln(w, "rebuild already complete (use --force to redo); reports say:")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "disk\tcapacity\tcopies\tgrains\tplaced\tzero\tmissing\tconflict\tdamaged\ttable\tmarker\tflat\thost\tanchored\tcopy\tstream\tfsprobe\torder\tunplaced\tmetadata\tfiles\tversion\tguest\tfile\t")
	for _, d := range res.Disks {
		c := d.Counts
		guest := strings.Join(d.GuestKind, ",")
		if guest == "" {
			guest = "-"
		}
		version := d.Versions
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%02d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", d.ID, units.Bytes(int64(d.Capacity)), d.Sources, c.Grains, c.Placed, c.Zero,
			c.Missing, c.Conflict, c.Damaged, c.ByEvidence["table"], c.ByEvidence["marker"], c.ByEvidence["flat"], c.ByEvidence["host"], c.ByEvidence["anchored"], c.ByEvidence["copy"], c.ByEvidence["stream"],
			c.ByEvidence["fsprobe"], c.ByEvidence["order"], d.Unplaced, d.Metadata, d.Files, version, guest, d.Path)
	}
	tw.Flush()
	for _, d := range res.Disks {
		for _, line := range d.Damage {
			fmt.Fprintf(w, "disk %02d damage policy: %s\n", d.ID, line)
		}
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(tw, "not emitted (older versions, --versions newest): %v\n", res.Skipped)
	}
	tw.Flush()
	printFindings(w, res.Findings)
}

// printFindings lists the case's findings, one line each (severity,
// code, where, what it means and what was done), and counts them. The
// README's table of finding codes says more of each code.
func printFindings(w io.Writer, fs []findings.Finding) {
	if len(fs) > 0 {
		fmt.Fprintf(w, "\nfindings (%s; codes in README, Finding codes):\n", pipeline.FindingsName)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range fs {
		where := "evidence"
		switch {
		case f.Instance != 0:
			where = fmt.Sprintf("disk %02d instance %d", f.Disk, f.Instance)
		case f.Disk != 0:
			where = fmt.Sprintf("disk %02d", f.Disk)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\n", f.Severity, f.Code, where, f.Message, f.Action)
	}
	tw.Flush()
	errs, warns, infos := findings.Count(fs)
	fmt.Fprintf(w, "findings: %d %s, %d %s, %d info\n", errs, plural(errs, "error", "errors"), warns, plural(warns, "warning", "warnings"), infos)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
