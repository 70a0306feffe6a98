// Command carve is stage 1 of vmdkcarve: it scans a raw disk image for
// VMware VMDK structures and records what it finds in a case directory.
//
//	carve [flags] -o CASE IMAGE
//
// It maps flags onto pipeline.CarveOptions, shows progress and prints a
// summary; everything else happens in package pipeline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"vmdkcarve/internal/cliargs"
	"vmdkcarve/internal/interrupt"
	"vmdkcarve/internal/profile"
	"vmdkcarve/internal/progress"
	"vmdkcarve/internal/units"
	"vmdkcarve/pipeline"
	"vmdkcarve/signatures"
)

// Exit codes (DESIGN.md, CLI contract).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usageHead = `carve: find VMware VMDK structures in a raw disk image (stage 1 of vmdkcarve)

Usage:
  carve [flags] -o CASE IMAGE

IMAGE is read-only evidence (a dd image, a block device, or the first segment
of an EWF-E01 set: image.E01, its other segments image.E02, ... found beside
it); nothing is ever written to it or beside it. An E01 set is recognized by
its signature, not its name; carve reads the media it stores, and checks the
MD5 and SHA-1 it records against the media read back (a mismatch is reported
and recorded in case.json, and the carve goes on). Every 512-byte-aligned offset is handed to the
recognizers below, and every 4 KiB block is fingerprinted (XXH3-64), so that
'rebuild CASE' can reassemble the virtual disks afterwards.

Re-running the same command on the same CASE resumes an interrupted carve from
its last checkpoint; a finished carve is not redone unless --force. --range
carves one shard of the image (run several, on several machines if you like,
into the same CASE): once the finished shards cover the whole image they are
merged, giving exactly what one run over the whole image gives.

--shard K/N carves the K-th (from 0) of N equal shards, their boundaries on
4 KiB blocks: run K = 0 .. N-1, in any order, at once or not. On a batch
engine, --shard auto/N takes K from the task's environment: a Slurm job
array's SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN; the array must be
N tasks with consecutive IDs, e.g. sbatch --array=0-N-1), else a Kubernetes
Indexed Job's JOB_COMPLETION_INDEX (completions: N). A shard that holds no
block (N larger than the image's 4 KiB blocks) carves nothing and succeeds.
deploy/slurm and deploy/k8s hold ready job scripts.

Case directory:
  CASE/case.json                manifest: evidence path, size, SHA-256, stages
  CASE/shards/START-END/        one per run or shard: hits.jsonl,
                                fingerprints.bin, shard.json (checkpoint)
  CASE/hits.jsonl               all hits, one JSON object per line, by offset
  CASE/fingerprints.bin         one fingerprint per 4 KiB block of the image

Flags:
`

const usageTail = `
Sizes accept K, M, G and T suffixes (powers of 1024).

Recognizers (for --enable / --disable):
%s
Exit status: 0 success, 1 error (an interrupted carve resumes when re-run),
2 usage.
`

type config struct {
	caseDir  string
	image    string
	progress progress.Mode
	opts     pipeline.CarveOptions
	// shard and shards are K and N of --shard K/N (N is 0 without it):
	// the range they name is known only once the image is measured.
	shard, shards int
	// cpuProfile is --cpuprofile: where the CPU profile goes, if anywhere.
	cpuProfile string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "carve: %v\nRun 'carve --help' for usage.\n", err)
		return exitUsage
	}
	if cfg.shards > 0 || cfg.opts.Range != nil {
		if code := joinShard(cfg, stdout, stderr); code >= 0 {
			return code
		}
	}
	ctx, stop := interrupt.Context(context.Background())
	defer stop()
	stopProfile, err := profile.StartCPU(cfg.cpuProfile)
	if err != nil {
		fmt.Fprintf(stderr, "carve: %v\n", err)
		return exitError
	}
	defer stopProfile()

	prog := progress.New(stderr, cfg.progress, progress.Options{Command: "carve"})
	cfg.opts.Progress = prog.Scanner("carve")
	res, err := pipeline.Carve(ctx, cfg.caseDir, cfg.image, cfg.opts)
	prog.Finish()
	if err != nil {
		fmt.Fprintf(stderr, "carve: %v\n", err)
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "carve: interrupted; run the same command again to resume from the last checkpoint\n")
		}
		return exitError
	}
	printSummary(stdout, res)
	if n := damagedChunks(res.Evidence); n > 0 {
		fmt.Fprintf(stderr, "carve: warning: %d chunks of the E01 set are damaged: their media bytes are unknown, carved around (see %s, evidence.unreadable_areas)\n", n, pipeline.ManifestName)
	}
	if res.Evidence.StoredHashMismatch {
		fmt.Fprintf(stderr, "carve: warning: a hash the E01 set stores does not match its media read back (see %s, evidence.stored_hashes)\n", pipeline.ManifestName)
	}
	return exitOK
}

// joinShard prepares a shard run: it turns --shard into the range it
// names (Carve joins the case, which the other shards of an array job may
// be creating at the same moment). It returns an exit code to stop with,
// or -1 to carve.
func joinShard(cfg *config, stdout, stderr io.Writer) int {
	// Measured first, so that missing evidence fails before a case is
	// made, as in Carve.
	size, err := pipeline.EvidenceSize(cfg.image)
	if err != nil {
		fmt.Fprintf(stderr, "carve: %v\n", err)
		return exitError
	}
	if cfg.shards > 0 {
		r, err := pipeline.ShardRange(cfg.shard, cfg.shards, size)
		if err != nil {
			fmt.Fprintf(stderr, "carve: %v\n", err)
			return exitError
		}
		if r.Start == r.End {
			fmt.Fprintf(stdout, "shard     %d/%d of %s is empty: the image (%d bytes) has fewer 4 KiB blocks than shards; nothing to carve\n",
				cfg.shard, cfg.shards, cfg.image, size)
			return exitOK
		}
		cfg.opts.Range = &r
	}
	return -1
}

// parseArgs maps the command line onto a config. Go's flag package stops at
// the first non-flag argument; parsing again after each positional lets
// flags follow IMAGE too (carve IMAGE -o CASE), which users type anyway.
func parseArgs(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("carve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, usageTail, signatures.Help())
	}
	var rangeFlag, shardFlag, chunkFlag, enable, disable, progressFlag string
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the carve to `FILE` (go tool pprof), to explain its speed")
	fs.StringVar(&cfg.caseDir, "o", "", "case directory to create or resume (required)")
	fs.IntVar(&cfg.opts.Workers, "workers", 0, "scanning goroutines (0 = one per CPU)")
	fs.StringVar(&rangeFlag, "range", "", "carve only the shard `START:END` of the image (bytes; END empty = image end)")
	fs.StringVar(&cfg.opts.Mapfile, "mapfile", "", "the GNU ddrescue mapfile of IMAGE: the areas it says were not rescued are unknown, never zeros (no structure is taken from them, rebuild decides no grain from their bytes)")
	fs.StringVar(&shardFlag, "shard", "", "carve only shard `K/N`, the K-th (from 0) of N equal ones; auto/N takes K from a Slurm array or Kubernetes Indexed Job (see above)")
	fs.StringVar(&cfg.opts.Hash, "hash", "", "hash the evidence while reading it: `LIST` of md5, sha1, sha256 (each on its own core beside the scan), or none; only a whole-image run records them (default sha256, and the md5/sha1 an E01 stores, to check them)")
	fs.StringVar(&progressFlag, "progress", "auto", progress.FlagHelp)
	fs.BoolVar(&cfg.opts.ReadHoles, "read-holes", false, "read and scan the holes of a sparse IMAGE too, as where the filesystem cannot report them (same output, slower)")
	fs.BoolVar(&cfg.opts.Force, "force", false, "redo a shard that is already complete (or was carved with other recognizers)")
	fs.StringVar(&enable, "enable", "", "comma-separated recognizers to run (default all)")
	fs.StringVar(&disable, "disable", "", "comma-separated recognizers not to run")
	fs.StringVar(&chunkFlag, "chunk", "", "read `SIZE` per chunk, a multiple of 4K (default 8M)")

	positional, err := cliargs.Parse(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(positional) != 1:
		return nil, fmt.Errorf("want exactly one IMAGE, got %d arguments", len(positional))
	case cfg.caseDir == "":
		return nil, errors.New("-o CASE is required")
	case !validHashes(cfg.opts.Hash):
		return nil, fmt.Errorf("--hash %q: want none or a comma-separated list of %s", cfg.opts.Hash, strings.Join(pipeline.HashNames(), ", "))
	case cfg.opts.Workers < 0:
		return nil, fmt.Errorf("--workers %d: want 0 or more", cfg.opts.Workers)
	}
	cfg.image = positional[0]
	mode, err := progress.ParseMode(progressFlag)
	if err != nil {
		return nil, err
	}
	cfg.progress = mode
	if rangeFlag != "" && shardFlag != "" {
		return nil, errors.New("--range and --shard both name the shard to carve: give one")
	}
	if shardFlag != "" {
		k, n, err := pipeline.ParseShard(shardFlag, os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("--shard: %w", err)
		}
		cfg.shard, cfg.shards = k, n
	}
	if rangeFlag != "" {
		r, err := pipeline.ParseRange(rangeFlag)
		if err != nil {
			return nil, fmt.Errorf("--range: %w", err)
		}
		cfg.opts.Range = r
	}
	if chunkFlag != "" {
		n, err := pipeline.ParseSize(chunkFlag)
		if err != nil || n <= 0 || n%4096 != 0 || n > 1<<30 {
			return nil, fmt.Errorf("--chunk %q: want a multiple of 4K up to 1G", chunkFlag)
		}
		cfg.opts.ChunkSize = int(n)
	}
	cfg.opts.Enable = splitList(enable)
	cfg.opts.Disable = splitList(disable)
	// Unknown recognizer names are a usage error, caught before any work.
	if _, err := signatures.Select(cfg.opts.Enable, cfg.opts.Disable); err != nil {
		return nil, err
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func printSummary(w io.Writer, res *pipeline.CarveResult) {
	fmt.Fprintf(w, "case      %s\n", res.Case)
	if ev := res.Evidence; ev.Format == pipeline.FormatEWF {
		fmt.Fprintf(w, "evidence  %s (%s of media, an E01 set of %d segments)\n", ev.Path, units.Bytes(ev.Size), len(ev.Segments))
	} else {
		fmt.Fprintf(w, "evidence  %s (%s)\n", ev.Path, units.Bytes(ev.Size))
	}
	fmt.Fprintf(w, "shard     [%d, %d)\n", res.Range.Start, res.Range.End)
	switch {
	case res.Skipped:
		fmt.Fprintf(w, "scanned   nothing: the shard was already complete (use --force to redo it)\n")
	default:
		secs := res.Elapsed.Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(res.Scanned) / secs / 1e6
		}
		fmt.Fprintf(w, "scanned   %s in %s (%.0f MB/s)", units.Bytes(res.Scanned), res.Elapsed.Round(time.Millisecond), rate)
		if res.ResumedFrom != res.Range.Start {
			fmt.Fprintf(w, ", resumed at offset %d", res.ResumedFrom)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "hits      %d\n", res.Hits)
	kinds := make([]string, 0, len(res.Counts))
	for k := range res.Counts {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		c := res.Counts[signatures.Kind(k)]
		fmt.Fprintf(w, "  %-16s %8d valid %8d damaged\n", k, c.Valid, c.Damaged)
	}
	if res.Evidence.MD5 != "" {
		fmt.Fprintf(w, "md5       %s\n", res.Evidence.MD5)
	}
	if res.Evidence.SHA1 != "" {
		fmt.Fprintf(w, "sha1      %s\n", res.Evidence.SHA1)
	}
	if res.Evidence.SHA256 != "" {
		fmt.Fprintf(w, "sha256    %s\n", res.Evidence.SHA256)
	}
	if res.Evidence.DigestsZeroed {
		fmt.Fprintf(w, "          (of the media with its damaged chunks read as zeros, as ewfexport -w exports it: not the media's digests)\n")
	}
	printStoredHashes(w, res.Evidence)
	if res.Complete {
		fmt.Fprintf(w, "carve     complete: run 'rebuild %s'\n", res.Case)
	} else {
		fmt.Fprintf(w, "carve     incomplete: %s\n", res.Reason)
	}
}

func validHashes(s string) bool {
	_, err := pipeline.ParseHashes(s)
	return err == nil
}

// damagedChunks counts the E01 chunks the carve found damaged.
func damagedChunks(ev pipeline.Evidence) int {
	n := 0
	for _, a := range ev.UnreadableAreas {
		if a.Source == pipeline.AreaEWFChunk {
			n++
		}
	}
	return n
}

// printStoredHashes says how the hashes an E01 set stores compare with
// those the carve computed: a mismatch is a warning, not a failure.
func printStoredHashes(w io.Writer, ev pipeline.Evidence) {
	names := make([]string, 0, len(ev.StoredHashes))
	for n := range ev.StoredHashes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		sh := ev.StoredHashes[n]
		switch {
		case sh == nil:
		case sh.NotCompared != "":
			fmt.Fprintf(w, "e01 %-5s %s stored (not compared: %s)\n", n, sh.Stored, sh.NotCompared)
		case sh.Match == nil:
			fmt.Fprintf(w, "e01 %-5s %s stored (not checked: computed only by a whole-image run hashing %s)\n", n, sh.Stored, n)
		case *sh.Match:
			fmt.Fprintf(w, "e01 %-5s %s stored, matches the media\n", n, sh.Stored)
		default:
			fmt.Fprintf(w, "WARNING   the E01 set's stored %s %s does not match the media read back (%s): the set was altered or damaged, or its writer hashed other bytes than it stored\n", n, sh.Stored, sh.Computed)
		}
	}
}
