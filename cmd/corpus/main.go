// Command corpus writes a deterministic evidence image with ground truth:
// a host image (noise) holding VMDK files of several writers, some damaged,
// the guest disks they hold as raw files, and truth.json saying where every
// file and grain was put.
//
//	corpus -o DIR [--seed N] [--size 256M] [--scenario NAME]
//
// Scenarios: demo, bench, variants, flat (flat extents with their text
// descriptor files), tables-lost, random-guests (guests holding
// random-looking files, no partition table, a cipher-text partition),
// encrypted-lattice (files encrypted in place in strided chunks), and the
// host-filesystem ones (ext4-host, ntfs-host and their -wiped and
// -encrypted variants), which need mkfs.ext4, debugfs, dumpe2fs, mkntfs,
// ntfscp and ntfsinfo.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"vmdkcarve/corpus"
)

// Exit codes follow the project's CLI contract (DESIGN.md).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("corpus", flag.ContinueOnError)
	out := fs.String("o", "", "output `DIR` (created if needed; image.dd, disk-NN.raw and truth.json are written there)")
	seed := fs.Uint64("seed", 1, "`N`: the seed; the same seed, scenario and size give byte-identical output")
	size := fs.String("size", "", "image `SIZE` in bytes, with an optional K, M, G or T suffix (binary); default: the scenario's (demo 256M, bench 2G, variants 64M)")
	scenario := fs.String("scenario", "demo", "`NAME` of the scenario: "+strings.Join(corpus.Scenarios(), ", "))
	noQemu := fs.Bool("no-qemu", false, "do not use qemu-img even if installed (qemu variants become our own writers)")
	zeroFill := fs.Bool("zero-fill", false, "fill the image with zeros instead of noise")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: corpus -o DIR [--seed N] [--size 256M] [--scenario NAME]\n\n")
		fmt.Fprintf(w, "Writes a deterministic evidence image with ground truth for testing and timing vmdkcarve.\n")
		fmt.Fprintf(w, "The qemu-img variants are used when qemu-img is on PATH; otherwise our own writers stand in.\n\nScenarios:\n")
		for _, n := range corpus.Scenarios() {
			fmt.Fprintf(w, "  %-20s %s\n", n, corpus.ScenarioHelp(n))
		}
		fmt.Fprintf(w, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "corpus: -o DIR is required and no arguments are taken")
		fs.Usage()
		return exitUsage
	}
	var imageSize int64
	if *size != "" {
		n, err := parseSize(*size)
		if err != nil {
			fmt.Fprintf(os.Stderr, "corpus: --size: %v\n", err)
			return exitUsage
		}
		imageSize = n
	}
	spec, err := corpus.Scenario(*scenario, *seed, imageSize, corpus.HaveQemu() && !*noQemu)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corpus: %v\n", err)
		return exitUsage
	}
	if *zeroFill {
		spec.NoiseFill = corpus.Zero
	}

	start := time.Now()
	truth, err := corpus.Generate(spec, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corpus: %v\n", err)
		if errors.Is(err, corpus.ErrNoTool) {
			fmt.Fprintln(os.Stderr, "corpus: install e2fsprogs and ntfs-3g for the host-filesystem scenarios")
		}
		if errors.Is(err, corpus.ErrSpec) {
			return exitUsage
		}
		return exitError
	}
	report(truth, *scenario, time.Since(start))
	return exitOK
}

// parseSize reads "2G", "256M", "1536K" or a plain byte count; the result
// must be a positive multiple of 512.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if i := len(s) - 1; i >= 0 {
		switch strings.ToUpper(s[i:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		case "T":
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:i]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	n *= mult
	if n%512 != 0 {
		return 0, fmt.Errorf("%d is not a multiple of 512", n)
	}
	return n, nil
}

func report(t *corpus.Truth, scenario string, took time.Duration) {
	fmt.Printf("scenario %s, seed %d: %s (%d bytes, %s fill) in %s\n", scenario, t.Seed, t.Image, t.ImageSize, t.Fill, took.Round(time.Millisecond))
	w := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "DISK\tCAPACITY\tGRAINS\tNON-ZERO\tGUEST FS\tRAW")
	for _, d := range t.Disks {
		fs := "synthetic"
		if g := d.FS; g != nil {
			binary := 0
			for _, f := range g.Files {
				if f.Binary() {
					binary++
				}
			}
			fs = fmt.Sprintf("%s (%d files, %d binary)", g.FS, len(g.Files), binary)
			if g.PartitionOffset == 0 {
				fs += ", no partition table"
			}
			if g.Cipher {
				fs += ", cipher"
			}
		} else if len(d.RandomMiBs) > 0 {
			fs += fmt.Sprintf(" (%d random MiBs)", len(d.RandomMiBs))
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%s\t%s\n", d.ID, d.Capacity, d.Grains, d.NonZeroGrains, fs, filepath.Base(d.Raw))
	}
	if h := t.Host; h != nil {
		fmt.Fprintf(w, "\nHOST %s volume at %#x, %d bytes, %d-byte blocks, %d structures", h.FS, h.ImageOffset, h.Size, h.BlockSize, len(h.Structures))
		for _, d := range h.Damage {
			fmt.Fprintf(w, "; %s (%d ranges)", d.Kind, len(d.Ranges))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nFILE\tDISK\tVARIANT\tIMAGE OFFSET\tLENGTH\tFRAGMENTS\tGRAINS\tINTACT\tDESCRIPTOR\tDAMAGE")
	for _, f := range t.Files {
		var dmg []string
		for _, d := range f.Damage {
			s := string(d.Kind)
			switch {
			case d.Kind == corpus.EncryptChunks:
				chunk := d.Chunk
				if chunk == 0 {
					chunk = 1 << 20
				}
				s += fmt.Sprintf("(%d every %d from %d", chunk, d.Stride, d.At)
				if d.Head != 0 {
					s += fmt.Sprintf(", head %d", d.Head)
				}
				if d.Until != 0 {
					s += fmt.Sprintf(", until %d", d.Until)
				}
				s += ")"
			case d.Bytes != 0:
				s += fmt.Sprintf("(%d@%d)", d.Bytes, d.At)
			}
			dmg = append(dmg, s)
		}
		if len(dmg) == 0 {
			dmg = []string{"-"}
		}
		frags := max(1, len(f.Fragments))
		// A flat extent's separate descriptor file; the others embed theirs.
		desc := "embedded"
		switch d := f.Descriptor; {
		case d.Laid():
			desc = fmt.Sprintf("%#x (%d bytes)", d.ImageOffset, d.Length)
		case d != nil:
			desc = "not laid"
		}
		fmt.Fprintf(w, "%d\t%d\t%s\t%#x\t%d\t%d\t%d\t%d\t%s\t%s\n", f.Index, f.Disk, f.Variant, f.ImageOffset, f.Length, frags, len(f.Grains), f.IntactGrains, desc, strings.Join(dmg, ","))
	}
	w.Flush()
	fmt.Printf("truth: %s\n", filepath.Join(filepath.Dir(t.Image), corpus.TruthName))
}
