// Command repair rebuilds one broken VMDK file in one step: it carves the
// file as its own evidence, rebuilds the disk it holds and writes it in
// the format asked for, printing what was damaged and what was done.
//
//	repair [flags] BROKEN.vmdk OUT.vmdk
//
// It maps flags onto pipeline.RepairOptions, shows progress and prints
// the findings; everything else happens in package pipeline.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"vmdkcarve/findings"
	"vmdkcarve/internal/cliargs"
	"vmdkcarve/internal/interrupt"
	"vmdkcarve/internal/progress"
	"vmdkcarve/pipeline"
)

// Exit codes (DESIGN.md, CLI contract).
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitNothingFound = 3
)

const usageHead = `repair: rebuild one broken VMware virtual disk file in one step

Usage:
  repair [flags] BROKEN.vmdk OUT.vmdk

BROKEN.vmdk is a damaged VMDK file: its header or grain tables zeroed or
overwritten, its tail cut, pieces encrypted. It is only read: nothing is
written to it or beside it but OUT. repair carves it as its own evidence
(as 'carve' does a disk image), rebuilds the disk it holds (as 'rebuild'
does), writes it to OUT and prints in plain words what was damaged, what
was recovered and what was not: each finding's sentences (what it means,
what was done), then its code, which the README's table of finding codes
explains.

A grain (64 KiB of the disk) is written only when the file's own
structures prove where it belongs; the rest is missing. OUT has no way to
mark a grain missing: missing grains read as zeros there, and repair says
how many there are and where. Wrong is worse than missing: nothing is
guessed.

The work is done in a temporary case directory (under $TMPDIR; it needs
about as much free space as the disk's data), removed at the end; --case
DIR keeps it there instead, with the full reports (DIR/disks/disk-NN.json
says where every grain came from) for 'rebuild' and a closer look.

If the file holds several disks (pieces of another version, a copy of
another file in its slack), the one with the most grains recovered is
written and the others are listed; --disk N writes disk N instead.

--json prints the same summary as one JSON object on stdout instead (for
scripts): the input, the files written with their SHA-256, the disk's
full report (every grain run, its source and reason), the other disks
and the findings, each with its code, severity, message and action.

Output formats (--format):
%s

Flags:
`

const usageTail = `
Examples:
  repair broken.vmdk fixed.vmdk                          # Workstation, VirtualBox, qemu, Proxmox
  repair --format esxi broken.vmdk /vmfs/volumes/ds1/vm/fixed.vmdk
  repair --format streamOptimized broken.vmdk fixed-stream.vmdk   # into an OVF/OVA
  repair --case /big/disk/case broken.vmdk fixed.vmdk    # keep the reports
  repair --json --progress json broken.vmdk fixed.vmdk   # for a script

Ctrl-C (or SIGTERM) stops the repair cleanly: OUT is written whole or not
at all; with --case, the same command resumes the carve.

Exit status: 0 repaired (also when some grains are missing: the findings
say so), 1 error (the input cannot be read, OUT exists without --force,
OUT is the input, ...), 2 usage, 3 nothing could be recovered (nothing is
written). With --json, stdout holds the JSON object in every case but 2,
with "error" and "exit" when the repair failed.
`

type config struct {
	in, out  string
	progress progress.Mode
	json     bool // print the RepairResult as JSON, not the text
	opts     pipeline.RepairOptions
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "repair: %v\nRun 'repair --help' for usage.\n", err)
		return exitUsage
	}
	ctx, stop := interrupt.Context(context.Background())
	defer stop()

	prog := progress.New(stderr, cfg.progress, progress.Options{Command: "repair"})
	if cfg.progress != progress.None {
		cfg.opts.CarveProgress = prog.Scanner("carve")
		cfg.opts.Progress = prog.Notef
		cfg.opts.Meter = func(step, unit string, done, total int64) { prog.Update(step, progress.Unit(unit), done, total) }
	}
	res, err := pipeline.Repair(ctx, cfg.in, cfg.out, cfg.opts)
	prog.Finish()
	switch {
	case errors.Is(err, pipeline.ErrNothingRecovered):
		fmt.Fprintf(stderr, "repair: %v\n", err)
		if cfg.json {
			return printJSON(stdout, stderr, res, err, exitNothingFound)
		}
		printNothing(stdout, cfg.in, cfg.out, res)
		return exitNothingFound
	case err != nil:
		fmt.Fprintf(stderr, "repair: %v\n", err)
		if ctx.Err() != nil && cfg.opts.CaseDir != "" {
			fmt.Fprintf(stderr, "repair: interrupted; run the same command again to resume from the last checkpoint\n")
		}
		if cfg.json {
			return printJSON(stdout, stderr, res, err, exitError)
		}
		return exitError
	}
	if cfg.json {
		return printJSON(stdout, stderr, res, nil, exitOK)
	}
	printFindings(stdout, res)
	return exitOK
}

// jsonResult is what --json prints: the RepairResult, and when the
// repair failed its error and exit status (a script reads one object
// either way).
type jsonResult struct {
	*pipeline.RepairResult
	Error string `json:"error,omitempty"`
	Exit  int    `json:"exit"`
}

// printJSON prints res (which may be nil or partial after err) as one
// JSON object on stdout and returns exit.
func printJSON(stdout, stderr io.Writer, res *pipeline.RepairResult, err error, exit int) int {
	if res != nil && res.Findings == nil {
		// A list, never null, as in CASE/findings.json.
		shallow := *res
		shallow.Findings = []findings.Finding{}
		res = &shallow
	}
	out := jsonResult{RepairResult: res, Exit: exit}
	if err != nil {
		out.Error = err.Error()
	}
	b, merr := json.MarshalIndent(out, "", "  ")
	if merr != nil {
		fmt.Fprintf(stderr, "repair: --json: %v\n", merr)
		return exitError
	}
	if _, werr := stdout.Write(append(b, '\n')); werr != nil {
		fmt.Fprintf(stderr, "repair: --json: %v\n", werr)
		return exitError
	}
	return exit
}

// parseArgs maps the command line onto a config. As in carve, flags may
// follow the positional arguments too.
func parseArgs(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("repair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usageHead, pipeline.FormatHelp)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageTail)
	}
	var format string
	fs.StringVar(&format, "format", string(pipeline.FormatSparse), "output `FORMAT`: monolithicSparse, raw, streamOptimized or esxi (see above)")
	fs.StringVar(&cfg.opts.CaseDir, "case", "", "keep the case (the carve, the rebuild and their reports) in `DIR` instead of a temporary directory; re-running resumes it")
	fs.IntVar(&cfg.opts.Disk, "disk", 0, "write disk `N` when the file holds several (the findings list them); 0 = the one with the most grains recovered")
	fs.BoolVar(&cfg.opts.Force, "force", false, "overwrite OUT (and OUT-flat.vmdk with --format esxi) if it exists; never the input")
	progressFlag := fs.String("progress", "auto", progress.FlagHelp)
	fs.BoolVar(&cfg.json, "json", false, "print the summary (the files written, the disk's report, the findings) as one JSON object on stdout instead of the text")
	fs.IntVar(&cfg.opts.Workers, "workers", 0, "scanning goroutines (0 = one per CPU)")
	fs.StringVar(&cfg.opts.Hash, "hash", "sha256", "hash the input while reading it: `LIST` of md5, sha1, sha256, or none; recorded in the report and the case's case.json (see --case)")

	positional, err := cliargs.Parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(positional) != 2 {
		return nil, fmt.Errorf("want BROKEN.vmdk and OUT.vmdk, got %d arguments", len(positional))
	}
	cfg.in, cfg.out = positional[0], positional[1]
	f, err := pipeline.ParseFormat(format)
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	cfg.opts.Format = f
	if cfg.progress, err = progress.ParseMode(*progressFlag); err != nil {
		return nil, err
	}
	switch {
	case cfg.opts.Disk < 0:
		return nil, fmt.Errorf("--disk %d: want a disk number from the findings, or 0", cfg.opts.Disk)
	case cfg.opts.Workers < 0:
		return nil, fmt.Errorf("--workers %d: want 0 or more", cfg.opts.Workers)
	}
	if _, err := pipeline.ParseHashes(cfg.opts.Hash); err != nil || cfg.opts.Hash == "" {
		return nil, fmt.Errorf("--hash %q: want none or a comma-separated list of md5, sha1, sha256", cfg.opts.Hash)
	}
	return cfg, nil
}
