// Package pipeline owns the case directory: its layout, the case.json
// manifest, stage order, resume, shards and the stage entry points the
// commands call.
//
// Case directory layout:
//
//	CASE/case.json                manifest: evidence, tool version, stages
//	CASE/shards/<start>-<end>/    one per carve run or --range shard:
//	    hits.jsonl                hits found in [start,end), one JSON per line
//	    fingerprints.bin          one fingerprint per 4 KiB block of [start,end)
//	    shard.json                range, parameters, complete, checkpoint, hash state, counts
//	CASE/hits.jsonl               merged hits of all shards, sorted by (offset, kind)
//	CASE/fingerprints.bin         merged fingerprints of the whole image
//
// The merged files appear once the complete shards cover the whole image.
// case.json, shard.json and the merged files are written atomically (temp,
// fsync, rename). A shard's hits.jsonl and fingerprints.bin are append logs
// instead (rewriting gigabytes per checkpoint would be absurd): shard.json
// records how many bytes of each are durable, and a resumed run truncates
// them to that before appending.
package pipeline

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"vmdkcarve/signatures"
)

// File names inside a case directory.
const (
	ManifestName     = "case.json"
	HitsName         = "hits.jsonl"
	FingerprintsName = "fingerprints.bin"
	ShardsDirName    = "shards"
	ShardStateName   = "shard.json"
	lockName         = ".lock"
)

// Stage names in Manifest.Stages.
const (
	StageCarve = "carve"
)

// Tool and Version identify the writer in every manifest.
const (
	Tool    = "vmdkcarve"
	Version = "0.1.0"
)

// MaxHitLine bounds one line of hits.jsonl. The largest hit is a descriptor
// (a 20 KiB window, at most 6 bytes of JSON per byte when escaped), so 1 MiB
// is ample; a longer line means a corrupt file, not a bigger hit.
const MaxHitLine = 1 << 20

// Manifest is case.json.
type Manifest struct {
	Tool     string            `json:"tool"`
	Version  string            `json:"version"`
	Evidence Evidence          `json:"evidence"`
	Stages   map[string]*Stage `json:"stages"`
}

// Evidence identifies the image a case was carved from.
type Evidence struct {
	Path string `json:"path"` // absolute
	Size int64  `json:"size"`
	// The digests are set only when one carve run read the whole image
	// with those hashes (--hash); sharded runs leave them empty (no run
	// saw every byte).
	MD5     string    `json:"md5,omitempty"`
	SHA1    string    `json:"sha1,omitempty"`
	SHA256  string    `json:"sha256,omitempty"`
	ModTime time.Time `json:"mod_time"`
	// Unreadable are the areas of the media whose bytes are unknown,
	// never zeros, sorted and disjoint: what a ddrescue mapfile (carve
	// --mapfile) says was not rescued, the sectors an E01 set's
	// acquisition could not read (its error2 section), and the E01
	// chunks the carve found damaged. UnreadableAreas lists them as each
	// source reported them (a case carved before it existed has only
	// Unreadable).
	Unreadable      []Range          `json:"unreadable,omitempty"`
	UnreadableAreas []UnreadableArea `json:"unreadable_areas,omitempty"`
	// Format is how the evidence stores the media: "" for raw (a dd
	// image, a sparse file, a device), FormatEWF for an E01 set, whose
	// files are Segments (Path is the first).
	Format   string         `json:"format,omitempty"`
	Segments []EvidenceFile `json:"segments,omitempty"`
	// StoredHashes are the digests an E01 set records of its media, by
	// hash name, each with the one the carve computed; StoredHashMismatch
	// says one differs (finding evidence-hash-mismatch): the stored hash
	// and the media read back disagree.
	StoredHashes       map[string]*StoredHash `json:"stored_hashes,omitempty"`
	StoredHashMismatch bool                   `json:"stored_hash_mismatch,omitempty"`
	// DigestsZeroed says MD5, SHA1 and SHA256 are of the media as the
	// carve read it, with its damaged E01 chunks read as zeros (what
	// ewfexport -w exports): not the media's digests. The stored hashes
	// are not compared with them (StoredHash.NotCompared).
	DigestsZeroed bool `json:"digests_zeroed,omitempty"`
}

// addDigests records the digests (by hash name) the evidence does not
// have yet.
func (ev *Evidence) addDigests(d map[string]string) {
	for _, f := range []struct {
		name string
		to   *string
	}{{"md5", &ev.MD5}, {"sha1", &ev.SHA1}, {"sha256", &ev.SHA256}} {
		if v := d[f.name]; v != "" && *f.to == "" {
			*f.to = v
		}
	}
}

// Stage records one stage's parameters and completion.
type Stage struct {
	Complete bool             `json:"complete"`
	Reason   string           `json:"reason,omitempty"` // why it is not complete
	Started  time.Time        `json:"started"`
	Finished time.Time        `json:"finished,omitzero"`
	Params   json.RawMessage  `json:"params,omitempty"` // the effective options
	Counts   map[string]int64 `json:"counts,omitempty"`
}

// Case is an open case directory.
type Case struct {
	Dir      string
	Manifest *Manifest
}

// ErrNoCase reports a directory without a case.json.
var ErrNoCase = errors.New("pipeline: not a case directory (no case.json)")

// CreateOrOpenCase opens the case in dir, creating the directory and an
// empty manifest if there is none yet.
func CreateOrOpenCase(dir string) (*Case, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pipeline: creating case directory: %w", err)
	}
	c, err := OpenCase(dir)
	if !errors.Is(err, ErrNoCase) {
		return c, err
	}
	// A non-empty directory that is not a case is probably a mistake (the
	// evidence directory, a home directory): refuse to scatter case files
	// into it (checked before the lock file is made). Our own lock and
	// the manifest's temporary file are no stranger's: another run may be
	// creating the case this moment (the shards of an array job start
	// together), or one was killed while it did.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pipeline: reading case directory: %w", err)
	}
	for _, e := range ents {
		if e.Name() != lockName && e.Name() != ManifestName && !strings.HasPrefix(e.Name(), "."+ManifestName+".tmp-") {
			// A case's manifest is written before anything else in it:
			// if it is there now, the entry is that case's.
			if c, err := OpenCase(dir); err == nil {
				return c, nil
			}
			return nil, fmt.Errorf("pipeline: %s is not empty and holds no %s: choose a new or empty case directory", dir, ManifestName)
		}
	}
	unlock, err := lockCase(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have created it while we waited for the lock.
	if c, err := OpenCase(dir); !errors.Is(err, ErrNoCase) {
		return c, err
	}
	c = &Case{Dir: dir, Manifest: &Manifest{Tool: Tool, Version: Version, Stages: map[string]*Stage{}}}
	return c, c.SaveManifest()
}

// OpenCase opens an existing case directory.
func OpenCase(dir string) (*Case, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	return &Case{Dir: dir, Manifest: m}, nil
}

func readManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoCase, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: reading %s: %w", path, err)
	}
	m := new(Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("pipeline: %s is corrupt: %w", path, err)
	}
	if m.Stages == nil {
		m.Stages = map[string]*Stage{}
	}
	return m, nil
}

// SaveManifest writes c.Manifest to case.json atomically.
func (c *Case) SaveManifest() error {
	b, err := json.MarshalIndent(c.Manifest, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: encoding manifest: %w", err)
	}
	return WriteFileAtomic(filepath.Join(c.Dir, ManifestName), append(b, '\n'))
}

// UpdateManifest re-reads case.json under the case lock, applies update and
// saves it, so that processes working on the same case (parallel shards)
// do not overwrite each other's changes. c.Manifest is replaced by the
// result. If update fails nothing is written.
func (c *Case) UpdateManifest(update func(m *Manifest) error) error {
	unlock, err := lockCase(c.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	return c.updateLocked(update)
}

func (c *Case) updateLocked(update func(m *Manifest) error) error {
	m, err := readManifest(c.Dir)
	if err != nil {
		return err
	}
	if err := update(m); err != nil {
		return err
	}
	c.Manifest = m
	return c.SaveManifest()
}

// CarveComplete reports whether stage 1 finished: the merged hits and
// fingerprints cover the whole image.
func (c *Case) CarveComplete() bool {
	s := c.Manifest.Stages[StageCarve]
	return s != nil && s.Complete
}

// LoadHits reads CASE/hits.jsonl, every hit checked against the
// evidence's size (ReadHits).
func (c *Case) LoadHits() ([]signatures.Hit, error) {
	hits, _, err := c.loadHits()
	return hits, err
}

// loadHits is LoadHits that also says how many duplicate hits it dropped.
func (c *Case) loadHits() ([]signatures.Hit, int, error) {
	return readHits(filepath.Join(c.Dir, HitsName), c.Manifest.Evidence.Size)
}

// Fingerprints opens CASE/fingerprints.bin. Close it when done.
func (c *Case) Fingerprints() (*Fingerprints, error) {
	return OpenFingerprints(filepath.Join(c.Dir, FingerprintsName))
}

// ReadHits reads a hits.jsonl file: one signatures.Hit per line. The
// file is a user's to edit and a disk's to damage: a line longer than
// MaxHitLine, that does not decode, or whose fields a recognizer could not
// have written (signatures.Hit.Validate) is an error naming the file, the
// line and the field. The hits come back sorted by offset (stably: the
// file's order within an offset) with identical copies of a hit dropped.
func ReadHits(path string) ([]signatures.Hit, error) {
	hits, _, err := readHits(path, 0)
	return hits, err
}

// readHits is ReadHits with the image size the offsets must lie inside
// (0: unknown); it also returns how many duplicate hits it dropped.
//
// The lines are decoded on every core, hitBatchBytes of them at a time: a
// case of a datastore holds millions of hits, and encoding/json decodes a
// line in several microseconds. The first bad line in the file is the one
// reported, as when they were decoded one after the other.
func readHits(path string, imageSize int64) ([]signatures.Hit, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("pipeline: opening hits: %w", err)
	}
	defer f.Close()
	type batch struct {
		data []byte // the lines, one after the other
		ends []int  // where each line ends in data
		nums []int  // each line's number in the file
		hits []signatures.Hit
		err  error // of the batch's first bad line, which stops it
	}
	var batches []*batch
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU()) // (and so at most that many batches held unread)
	decode := func(b *batch) {
		defer func() { b.data, b.ends, b.nums = nil, nil, nil }() // only the hits stay
		b.hits = make([]signatures.Hit, 0, len(b.nums))
		start := 0
		for i, end := range b.ends {
			line := b.data[start:end]
			start = end
			var h signatures.Hit
			if err := json.Unmarshal(line, &h); err != nil {
				b.err = fmt.Errorf("pipeline: %s:%d: corrupt hit: %w", path, b.nums[i], err)
				return
			}
			if err := h.Validate(imageSize); err != nil {
				b.err = fmt.Errorf("pipeline: %s:%d: %w", path, b.nums[i], err)
				return
			}
			b.hits = append(b.hits, h)
		}
	}
	cur := &batch{}
	send := func() {
		b := cur
		batches = append(batches, b)
		cur = &batch{}
		g.Go(func() error { decode(b); return nil })
	}
	scanErr := scanLines(f, path, func(line []byte, n int) error {
		cur.data = append(cur.data, line...)
		cur.ends = append(cur.ends, len(cur.data))
		cur.nums = append(cur.nums, n)
		if len(cur.data) >= hitBatchBytes {
			send()
		}
		return nil
	})
	if len(cur.nums) > 0 {
		send()
	}
	g.Wait()
	var hits []signatures.Hit
	for _, b := range batches {
		if b.err != nil {
			return nil, 0, b.err // (before any line the scan could not read)
		}
		hits = append(hits, b.hits...)
	}
	if scanErr != nil {
		return nil, 0, scanErr
	}
	sorted := slices.IsSortedFunc(hits, func(a, b signatures.Hit) int { return cmp.Compare(a.Offset, b.Offset) })
	if !sorted {
		slices.SortStableFunc(hits, func(a, b signatures.Hit) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	hits, dups := dedupHits(hits)
	return hits, dups, nil
}

// hitBatchBytes is how many bytes of hits.jsonl lines one goroutine of
// readHits decodes at a time (about 1500 hits).
const hitBatchBytes = 256 << 10

// dedupHits drops the hits identical to an earlier one at the same offset
// (hits sorted by offset): a line copied 50 times is one structure, not
// 50 disks. Hits are compared by their canonical encoding, so copies that
// differ in spacing or field order are copies too; only offsets holding
// more than one hit are encoded, so the cost stays linear.
func dedupHits(hits []signatures.Hit) ([]signatures.Hit, int) {
	out := hits[:0]
	dups := 0
	seen := map[string]bool{}
	for i := 0; i < len(hits); {
		j := i + 1
		for j < len(hits) && hits[j].Offset == hits[i].Offset {
			j++
		}
		if j == i+1 {
			out = append(out, hits[i])
			i = j
			continue
		}
		clear(seen)
		for _, h := range hits[i:j] {
			b, err := json.Marshal(&h)
			if err == nil && seen[string(b)] {
				dups++
				continue
			}
			seen[string(b)] = true
			out = append(out, h)
		}
		i = j
	}
	return out, dups
}

// scanLines calls fn for every non-empty line of r (without its newline)
// and its 1-based number.
func scanLines(r io.Reader, path string, fn func(line []byte, n int) error) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), MaxHitLine)
	n := 0
	for s.Scan() {
		n++
		if len(s.Bytes()) == 0 {
			continue
		}
		if err := fn(s.Bytes(), n); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("pipeline: %s:%d: longer than %d bytes: corrupt file", path, n+1, MaxHitLine)
		}
		return fmt.Errorf("pipeline: reading %s: %w", path, err)
	}
	return nil
}
