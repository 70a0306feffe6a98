package pipeline

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"vmdkcarve/carver"
	"vmdkcarve/internal/holes"
	"vmdkcarve/signatures"
)

// MinImageSize is the smallest image worth carving: one sector, the size of
// the smallest structure a recognizer knows.
const MinImageSize = 512

// checkpointInterval is how many scanned bytes pass between checkpoints: at
// disk speed a few seconds of work, so a killed run loses little, while the
// fsyncs it costs stay negligible. A variable so tests can make it small.
var checkpointInterval int64 = 256 << 20

// Range is a byte range [Start,End) of the image.
type Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Start, r.End) }

// CarveOptions are the carve stage's options; the zero value means the
// defaults (the whole image, SHA-256, every recognizer, NumCPU workers).
type CarveOptions struct {
	Workers int
	// Range limits the scan to a shard of the image (nil = whole image).
	// Start must be 4096-aligned; End must be 4096-aligned or the image
	// size, so that shard fingerprints tile the image exactly. End 0
	// means the image end.
	Range *Range
	// Hash is "sha256" (default) or "none". The evidence hash is recorded
	// only when the run covers the whole image.
	Hash    string
	Force   bool     // redo a shard that is already complete
	Enable  []string // recognizer names (empty = all)
	Disable []string
	// Mapfile is a GNU ddrescue mapfile of the image: the areas it says
	// were not rescued are unknown, never zeros (no hit is taken from
	// them, and rebuild decides nothing from their bytes).
	Mapfile string
	// ChunkSize is the carver's read size (0 = carver default).
	ChunkSize int
	// ReadHoles reads and scans every byte, even the holes the filesystem
	// reports (internal/holes): what a platform without SEEK_HOLE does.
	// The outputs are the same either way; only the time differs.
	ReadHoles bool
	Progress  carver.Progress
}

// CarveParams are the effective carve options, echoed into case.json and
// shard.json. Only Recognizers affects the output: workers and chunk size
// never change a byte of it.
type CarveParams struct {
	Recognizers []string `json:"recognizers"`
	Hash        string   `json:"hash"`
	Workers     int      `json:"workers,omitempty"`
	ChunkSize   int      `json:"chunk_size,omitempty"`
	Range       *Range   `json:"range,omitempty"`
}

// KindCount counts the hits of one kind by verdict.
type KindCount struct {
	Valid   int64 `json:"valid"`
	Damaged int64 `json:"damaged"`
}

// CarveResult says what one Carve call did.
type CarveResult struct {
	Case     string   `json:"case"`
	Evidence Evidence `json:"evidence"`
	Range    Range    `json:"range"`
	// Skipped: the shard was already complete and not redone (no Force).
	Skipped bool `json:"skipped,omitempty"`
	// ResumedFrom is the offset this run started scanning at: Range.Start
	// unless an interrupted run was resumed.
	ResumedFrom int64         `json:"resumed_from"`
	Scanned     int64         `json:"scanned"` // bytes read by this run
	Elapsed     time.Duration `json:"elapsed"`
	// Hits and Counts cover the whole shard, including resumed parts.
	Hits   int64                         `json:"hits"`
	Counts map[signatures.Kind]KindCount `json:"counts"`
	// Complete reports that stage carve is complete: the complete shards
	// cover the whole image and were merged. Reason says why not.
	Complete bool   `json:"complete"`
	Reason   string `json:"reason,omitempty"`
}

// shardState is shard.json.
type shardState struct {
	Range    Range       `json:"range"`
	Params   CarveParams `json:"params"`
	Complete bool        `json:"complete"`
	// Checkpoint is the image offset up to which hits.jsonl (HitsBytes
	// bytes) and fingerprints.bin are durable; a resumed run truncates
	// both to it and continues scanning there.
	Checkpoint int64 `json:"checkpoint"`
	HitsBytes  int64 `json:"hits_bytes"`
	// FingerprintBytes is fingerprints.bin's durable length at Checkpoint,
	// in the format FingerprintFormat (a shard of another format is
	// carved again).
	FingerprintBytes  int64  `json:"fingerprint_bytes,omitempty"`
	FingerprintFormat uint32 `json:"fingerprint_format,omitempty"`
	// HashStates are the evidence hashes' states (MarshalBinary) at
	// Checkpoint, by name, set when the shard hashes the whole image;
	// Digests their results once it is complete. HashState and SHA256 are
	// what earlier versions wrote (SHA-256 alone): still read.
	HashStates map[string][]byte `json:"hash_states,omitempty"`
	Digests    map[string]string `json:"digests,omitempty"`
	HashState  []byte            `json:"hash_state,omitempty"`
	SHA256     string            `json:"sha256,omitempty"`
	Hits       int64             `json:"hits"`
	// UnreadableHits counts the hits dropped because their bytes lie in
	// an unreadable area (Evidence.Unreadable, or a damaged E01 chunk).
	UnreadableHits int64 `json:"unreadable_hits,omitempty"`
	// DamagedChunks are the damaged E01 chunks the shard's reads met (up
	// to Checkpoint, and perhaps beyond): unknown bytes, read as zeros.
	// The merge unions every shard's.
	DamagedChunks []UnreadableArea              `json:"damaged_chunks,omitempty"`
	Counts        map[signatures.Kind]KindCount `json:"counts"`
	Started       time.Time                     `json:"started"`
	Updated       time.Time                     `json:"updated"`
	Finished      time.Time                     `json:"finished,omitzero"`
}

// Carve runs stage 1: it scans the image (or opts.Range of it) into a shard
// of the case, resuming an interrupted run of the same shard, and merges the
// shards into CASE/hits.jsonl and CASE/fingerprints.bin once the complete
// ones cover the image. The evidence is only ever opened read-only.
func Carve(ctx context.Context, caseDir, imagePath string, opts CarveOptions) (*CarveResult, error) {
	began := time.Now()
	defaultHash := opts.Hash == ""
	rs, names, err := carveRecognizers(&opts)
	if err != nil {
		return nil, err
	}

	img, err := openEvidence(imagePath)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	ev := img.ev
	if defaultHash {
		opts.Hash = ev.defaultHashes() // and those an E01 stores, to check them
	}
	rng, err := checkRange(opts.Range, ev.Size)
	if err != nil {
		return nil, err
	}
	if opts.Mapfile != "" {
		areas, err := readMapfile(opts.Mapfile, ev.Size)
		if err != nil {
			return nil, err
		}
		ev.addUnreadable(sourcedAreas(areas, AreaMapfile))
	}
	// The holes of a sparse image are zeros the scan need not read. A
	// filesystem that cannot say gives none, and an error here costs only
	// the speed: everything is read. (An E01 set has no holes to ask for.)
	var zeros []holes.Extent
	if img.raw != nil && !opts.ReadHoles {
		zeros, _ = holes.Zeros(img.raw, ev.Size)
	}
	params := CarveParams{Recognizers: names, Hash: opts.Hash, Workers: opts.Workers, ChunkSize: opts.ChunkSize, Range: opts.Range}
	if opts.Range != nil {
		params.Range = &rng
	}

	c, err := CreateOrOpenCase(caseDir)
	if err != nil {
		return nil, err
	}
	if err := c.startCarve(ev, params, began); err != nil {
		return nil, err
	}
	res := &CarveResult{Case: caseDir, Evidence: c.Manifest.Evidence, Range: rng, ResumedFrom: rng.Start}

	shardDir := filepath.Join(c.Dir, ShardsDirName, rng.String())
	st, err := readShardState(shardDir)
	if err != nil && !opts.Force {
		return nil, fmt.Errorf("%w (use --force to redo the shard)", err)
	}
	if st != nil && !slices.Equal(st.Params.Recognizers, names) && !opts.Force {
		return nil, fmt.Errorf("pipeline: shard %s was carved with recognizers %v, not %v: use --force to redo it",
			shardDir, st.Params.Recognizers, names)
	}
	if opts.Force {
		st = nil
	}
	if st != nil && st.Complete {
		res.Skipped = true
	} else {
		if st, err = carveShard(ctx, img.scanReader(), ev, zeros, shardDir, rng, rs, params, st, opts, res); err != nil {
			// Record why the stage is incomplete; the shard's checkpoint
			// already says where a rerun resumes.
			c.UpdateManifest(func(m *Manifest) error {
				if s := m.Stages[StageCarve]; s != nil {
					s.Complete, s.Reason = false, fmt.Sprintf("shard %s interrupted: %v", rng, err)
				}
				return nil
			})
			return res, err
		}
	}
	res.Hits, res.Counts = st.Hits, st.Counts
	if err := c.finishCarve(ev.Size, st, names, res.Skipped, began); err != nil {
		return res, err
	}
	s := c.Manifest.Stages[StageCarve]
	res.Complete, res.Reason, res.Evidence = s.Complete, s.Reason, c.Manifest.Evidence
	res.Elapsed = time.Since(began)
	return res, nil
}

// carveRecognizers selects the recognizers the options name and checks
// the hash asked for (defaulting it to sha256).
func carveRecognizers(opts *CarveOptions) ([]signatures.Recognizer, []string, error) {
	rs, err := signatures.Select(opts.Enable, opts.Disable)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	hashes, err := ParseHashes(opts.Hash)
	if err != nil {
		return nil, nil, err
	}
	opts.Hash = strings.Join(hashes, ",")
	if len(hashes) == 0 {
		opts.Hash = "none"
	}
	return rs, names, nil
}

// startCarve records the evidence (refusing a case that belongs to other
// evidence) and the carve's parameters in the manifest.
func (c *Case) startCarve(ev Evidence, params CarveParams, began time.Time) error {
	return c.UpdateManifest(func(m *Manifest) error {
		if m.Evidence.Path != "" && (m.Evidence.Path != ev.Path || m.Evidence.Size != ev.Size) {
			return fmt.Errorf("pipeline: case %s belongs to evidence %s (%d bytes), not %s (%d bytes): use another case directory",
				c.Dir, m.Evidence.Path, m.Evidence.Size, ev.Path, ev.Size)
		}
		if m.Evidence.Path != "" && !slices.Equal(m.Evidence.givenAreas(), ev.givenAreas()) {
			return fmt.Errorf("pipeline: case %s was carved with other unreadable areas (--mapfile): every shard of a case needs the same mapfile", c.Dir)
		}
		if m.Evidence.Path == "" {
			m.Evidence = ev
		}
		st := m.Stages[StageCarve]
		if st == nil {
			st = &Stage{Started: began}
			m.Stages[StageCarve] = st
		}
		st.Params, _ = json.Marshal(params)
		return nil
	})
}

// finishCarve merges the shards carved so far into the case, under the
// case lock, and records whether the stage is complete.
func (c *Case) finishCarve(imageSize int64, st *shardState, names []string, skipped bool, began time.Time) error {
	unlock, err := lockCase(c.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	return c.updateLocked(func(m *Manifest) error {
		s := m.Stages[StageCarve]
		if s == nil {
			s = &Stage{Started: began}
			m.Stages[StageCarve] = s
		}
		if skipped && s.Complete {
			return nil // nothing new to merge
		}
		if d := st.digests(); len(d) > 0 {
			m.Evidence.addDigests(d)
			if len(st.DamagedChunks) > 0 {
				m.Evidence.DigestsZeroed = true // the hashes were fed zeros for them
			}
		}
		m.Evidence.compareStored()
		merged, damaged, reason, err := mergeShards(c.Dir, imageSize, names)
		if err != nil {
			return err
		}
		s.Complete, s.Reason = merged != nil, reason
		if merged != nil {
			s.Finished = time.Now().UTC()
			s.Counts = merged
			m.Evidence.setDamagedChunks(damaged)
		}
		return nil
	})
}

// describeEvidence measures the image. The size comes from seeking to the
// end, which works for block devices too (their Stat size is 0).
func describeEvidence(img *os.File, path string) (Evidence, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Evidence{}, fmt.Errorf("pipeline: evidence path: %w", err)
	}
	fi, err := img.Stat()
	if err != nil {
		return Evidence{}, fmt.Errorf("pipeline: evidence %s: %w", path, err)
	}
	if fi.IsDir() {
		return Evidence{}, fmt.Errorf("pipeline: evidence %s is a directory, want an image file or device", path)
	}
	size, err := img.Seek(0, io.SeekEnd)
	if err != nil {
		return Evidence{}, fmt.Errorf("pipeline: evidence %s: measuring size: %w", path, err)
	}
	if size < MinImageSize {
		return Evidence{}, fmt.Errorf("pipeline: evidence %s is %d bytes: too small to hold any VMDK structure (need at least %d)", path, size, MinImageSize)
	}
	return Evidence{Path: abs, Size: size, ModTime: fi.ModTime().UTC()}, nil
}

// checkRange validates a shard range against the image size.
func checkRange(r *Range, size int64) (Range, error) {
	if r == nil {
		return Range{0, size}, nil
	}
	rng := *r
	if rng.End == 0 {
		rng.End = size
	}
	switch {
	case rng.Start < 0 || rng.Start%carver.BlockSize != 0:
		return rng, fmt.Errorf("pipeline: range start %d is not a multiple of %d", rng.Start, carver.BlockSize)
	case rng.End <= rng.Start:
		return rng, fmt.Errorf("pipeline: range %d:%d is empty or reversed", rng.Start, rng.End)
	case rng.End > size:
		return rng, fmt.Errorf("pipeline: range end %d is past the end of the image (%d bytes)", rng.End, size)
	case rng.End%carver.BlockSize != 0 && rng.End != size:
		// An unaligned end would make the shard's last fingerprint cover
		// a partial block that a whole-image run fingerprints whole.
		return rng, fmt.Errorf("pipeline: range end %d is neither a multiple of %d nor the image end (%d)", rng.End, carver.BlockSize, size)
	}
	return rng, nil
}

// readFileMax reads a file of at most limit bytes; a longer one is an
// error, not an allocation of its size.
func readFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("longer than %d bytes: corrupt file", limit)
	}
	return b, err
}

func readShardState(dir string) (*shardState, error) {
	path := filepath.Join(dir, ShardStateName)
	b, err := readFileMax(path, maxShardState)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: reading %s: %w", path, err)
	}
	st := new(shardState)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("pipeline: %s is corrupt: %w", path, err)
	}
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", path, err)
	}
	return st, nil
}

// maxShardState bounds shard.json: a few hash states and counts by kind.
const maxShardState = 1 << 20

// validate checks a shard.json read back from disk (a user may have
// edited it, a disk damaged it) before a resume truncates files to its
// byte counts or scans from its checkpoint: a range of whole 4 KiB blocks,
// a checkpoint inside it on a block boundary, counts that are not
// negative. A field that fails is named with why.
func (st *shardState) validate() error {
	r := st.Range
	switch {
	case r.Start < 0 || r.Start%carver.BlockSize != 0 || r.End <= r.Start:
		return fmt.Errorf("range: %d:%d is not a non-empty range starting on a %d-byte block", r.Start, r.End, carver.BlockSize)
	case st.Checkpoint < r.Start || st.Checkpoint > r.End || st.Checkpoint != r.End && (st.Checkpoint-r.Start)%carver.BlockSize != 0:
		return fmt.Errorf("checkpoint: %d is not a block boundary of the range %d:%d", st.Checkpoint, r.Start, r.End)
	case st.HitsBytes < 0:
		return fmt.Errorf("hits_bytes: %d is negative", st.HitsBytes)
	case st.FingerprintBytes < 0:
		return fmt.Errorf("fingerprint_bytes: %d is negative", st.FingerprintBytes)
	case st.Hits < 0 || st.UnreadableHits < 0:
		return fmt.Errorf("hits: %d (and %d unreadable) is negative", st.Hits, st.UnreadableHits)
	}
	for k, c := range st.Counts {
		if c.Valid < 0 || c.Damaged < 0 {
			return fmt.Errorf("counts: %s: %+v is negative", k, c)
		}
	}
	return nil
}

func writeShardState(dir string, st *shardState) error {
	st.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: encoding shard state: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, ShardStateName), append(b, '\n'))
}

// carveShard scans rng of the evidence ev into shardDir, starting from
// st's checkpoint when st is an interrupted run of the same shard.
func carveShard(ctx context.Context, img io.ReaderAt, ev Evidence, zeros []holes.Extent, shardDir string, rng Range, rs []signatures.Recognizer,
	params CarveParams, st *shardState, opts CarveOptions, res *CarveResult) (*shardState, error) {
	h := newHashSet(nil)
	if rng.Start == 0 && rng.End == ev.Size {
		names, _ := ParseHashes(opts.Hash) // checked by carveRecognizers
		h = newHashSet(names)
	}
	if st != nil && st.Checkpoint > rng.Start && st.FingerprintFormat != fpVersion {
		st = nil // fingerprints of an earlier format: carved again
	}
	if st != nil && len(h.hs) > 0 && st.Checkpoint > rng.Start {
		// Resume the hashes where the checkpoint left them; a checkpoint
		// without their states (an earlier run with other hashes, or
		// none) cannot be resumed with hashing, so the shard starts over.
		if err := h.restore(st.hashStates()); err != nil {
			st = nil
		}
	}
	if st == nil || st.Range != rng {
		st = &shardState{Range: rng, Checkpoint: rng.Start, Counts: map[signatures.Kind]KindCount{}, Started: time.Now().UTC()}
		h.reset()
	}
	st.Params = params
	if st.Counts == nil {
		st.Counts = map[signatures.Kind]KindCount{}
	}
	if err := os.MkdirAll(shardDir, 0o755); err != nil {
		return nil, fmt.Errorf("pipeline: creating shard directory: %w", err)
	}
	w, err := openShardWriter(shardDir, st, h)
	if err != nil {
		return nil, err
	}
	w.unreadable = ev.Unreadable
	if d, ok := img.(*damageReader); ok {
		d.restore(st.DamagedChunks)
		w.damage = d
	}
	defer w.close()
	// The state on disk must say where to resume before anything is
	// appended, so that even a run killed at once leaves a valid shard.
	if err := w.checkpoint(); err != nil {
		return nil, err
	}
	res.ResumedFrom = st.Checkpoint
	prog := opts.Progress
	if prog == nil {
		prog = carver.NoProgress{}
	}
	copts := carver.Options{
		Workers:     opts.Workers,
		ChunkSize:   opts.ChunkSize,
		Recognizers: rs,
		Hashes:      h.hs,
		Zeros:       zeros,
		Progress:    resumedProgress{prog, st.Checkpoint - rng.Start, rng.End - rng.Start, st.Hits},
		ImageSize:   ev.Size,
	}
	var scanErr error
	if st.Checkpoint < rng.End { // else killed after the last checkpoint, before finishing
		scanErr = carver.Scan(ctx, img, st.Checkpoint, rng.End, copts, w)
	}
	res.Scanned = w.pos - res.ResumedFrom
	if scanErr != nil {
		// Keep what was scanned: the sink got every chunk up to w.pos in
		// order, so a checkpoint there is consistent (unless the sink
		// itself failed part-way through a chunk).
		if !w.broken {
			w.checkpoint()
		}
		return nil, fmt.Errorf("pipeline: carving %s [%d,%d): %w", filepath.Base(shardDir), rng.Start, rng.End, scanErr)
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	return st, nil
}

// hashStates returns the hash states of a checkpoint, reading the
// SHA-256-only field of earlier versions.
func (st *shardState) hashStates() map[string][]byte {
	if st.HashStates == nil && len(st.HashState) > 0 {
		return map[string][]byte{"sha256": st.HashState}
	}
	return st.HashStates
}

// digests returns the digests of a complete shard, reading the
// SHA-256-only field of earlier versions.
func (st *shardState) digests() map[string]string {
	if st.Digests == nil && st.SHA256 != "" {
		return map[string]string{"sha256": st.SHA256}
	}
	return st.Digests
}

// shardWriter is the carver.Sink of a shard: it appends hits and
// fingerprints to the shard's files and checkpoints shard.json.
type shardWriter struct {
	dir            string
	st             *shardState
	h              *hashSet
	hitsF, fpF     *os.File
	hits, fps      *bufio.Writer
	fpEnc          *fpEncoder
	pos            int64 // offset up to which the sink has received chunks
	hitsBytes      int64
	lastCheckpoint int64
	broken         bool          // a write failed mid-chunk: the files no longer match pos
	waitHashed     func() bool   // waits until the hashes have read up to pos (carver.ChunkResult.WaitHashed)
	unreadable     []Range       // unreadable areas (--mapfile, E01 error2): no hit is taken from them
	damage         *damageReader // the E01 chunks found damaged so far: nor from them
	line           []byte
}

func openShardWriter(dir string, st *shardState, h *hashSet) (*shardWriter, error) {
	w := &shardWriter{dir: dir, st: st, h: h, pos: st.Checkpoint, hitsBytes: st.HitsBytes, lastCheckpoint: st.Checkpoint}
	var err error
	if w.hitsF, err = openTruncated(filepath.Join(dir, HitsName), st.HitsBytes, nil); err != nil {
		return nil, err
	}
	fpBytes := max(st.FingerprintBytes, fpHeaderSize)
	if (fpBytes-fpHeaderSize)%fpEntrySize != 0 {
		return nil, fmt.Errorf("pipeline: %s: fingerprint_bytes %d is not a whole number of records (use --force to redo the shard)", filepath.Join(dir, ShardStateName), st.FingerprintBytes)
	}
	if w.fpF, err = openTruncated(filepath.Join(dir, FingerprintsName), fpBytes, fpHeader(st.Range.Start, 0)); err != nil {
		w.hitsF.Close()
		return nil, err
	}
	st.FingerprintFormat = fpVersion
	w.hits = bufio.NewWriterSize(w.hitsF, 1<<20)
	w.fps = bufio.NewWriterSize(w.fpF, 1<<20)
	w.fpEnc = &fpEncoder{w: w.fps, written: fpBytes}
	return w, nil
}

// openTruncated opens path for appending after truncating it to size bytes
// (the durable part recorded by a checkpoint). header, if not nil, is
// written at the start: a file shorter than the checkpoint says means the
// shard files were lost or damaged, which is an error, not a restart.
func openTruncated(path string, size int64, header []byte) (*os.File, error) {
	if err := unshare(path, size); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening shard file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < size && !(header != nil && size == int64(len(header))) {
		err = fmt.Errorf("%d bytes, but the checkpoint says %d are durable (use --force to redo the shard)", fi.Size(), size)
	}
	if err == nil {
		err = f.Truncate(size)
	}
	if err == nil && header != nil {
		_, err = f.WriteAt(header, 0)
	}
	if err == nil {
		_, err = f.Seek(size, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pipeline: shard file %s: %w", path, err)
	}
	return f, nil
}

// Chunk implements carver.Sink.
func (w *shardWriter) Chunk(c carver.ChunkResult) error {
	if c.Start != w.pos {
		w.broken = true
		return fmt.Errorf("pipeline: chunk at %d, expected %d", c.Start, w.pos)
	}
	added := int64(0)
	counts := w.st.Counts
	kept := 0
	for i := range c.Hits {
		if h := &c.Hits[i]; w.unreadable != nil || w.damage != nil {
			// Read from unknown bytes: not a structure. (A damaged chunk
			// only a later chunk's read meets is dropped by the merge.)
			lo, hi := h.Offset, h.Offset+max(h.Length, 1)
			if _, ok := overlapsAny(w.unreadable, lo, hi); ok || (w.damage != nil && w.damage.overlaps(lo, hi)) {
				w.st.UnreadableHits++
				continue
			}
		}
		kept++
		var err error
		if w.line, err = appendJSONLine(w.line[:0], &c.Hits[i]); err == nil {
			_, err = w.hits.Write(w.line)
		}
		if err != nil {
			w.broken = true
			return fmt.Errorf("pipeline: writing hits: %w", err)
		}
		added += int64(len(w.line))
		kc := counts[c.Hits[i].Kind]
		if c.Hits[i].Verdict == signatures.Valid {
			kc.Valid++
		} else {
			kc.Damaged++
		}
		counts[c.Hits[i].Kind] = kc
	}
	for _, fp := range c.Fingerprints {
		w.fpEnc.add(fp)
	}
	if w.fpEnc.err != nil {
		w.broken = true
		return fmt.Errorf("pipeline: writing fingerprints: %w", w.fpEnc.err)
	}
	w.st.Hits += int64(kept)
	w.hitsBytes += added
	w.pos = c.End
	w.waitHashed = c.WaitHashed
	if w.pos-w.lastCheckpoint >= checkpointInterval {
		return w.checkpoint()
	}
	return nil
}

func appendJSONLine(dst []byte, h *signatures.Hit) ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return dst, err
	}
	return append(append(dst, b...), '\n'), nil
}

// checkpoint makes everything received so far durable and records it in
// shard.json, with the hash state that matches it.
func (w *shardWriter) checkpoint() error {
	if err := w.fpEnc.flush(); err != nil {
		w.broken = true
		return fmt.Errorf("pipeline: writing fingerprints: %w", err)
	}
	for _, f := range []struct {
		b *bufio.Writer
		f *os.File
	}{{w.hits, w.hitsF}, {w.fps, w.fpF}} {
		if err := f.b.Flush(); err != nil {
			w.broken = true
			return fmt.Errorf("pipeline: flushing %s: %w", f.f.Name(), err)
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("pipeline: syncing %s: %w", f.f.Name(), err)
		}
	}
	w.st.Checkpoint, w.st.HitsBytes, w.st.FingerprintBytes = w.pos, w.hitsBytes, w.fpEnc.written
	if w.damage != nil {
		w.st.DamagedChunks = w.damage.areas()
	}
	w.st.HashState, w.st.HashStates = nil, nil
	// The states must match pos: a hash that stopped short (the scan
	// failed) leaves none, and a resumed run starts the shard over.
	if w.waitHashed == nil || w.waitHashed() {
		states, err := w.h.states()
		if err != nil {
			return err
		}
		w.st.HashStates = states
	}
	w.lastCheckpoint = w.pos
	return writeShardState(w.dir, w.st)
}

// finish completes the shard: the fingerprint count goes into the header,
// then shard.json says complete.
func (w *shardWriter) finish() error {
	if err := w.checkpoint(); err != nil {
		return err
	}
	count := (w.st.Range.End - w.st.Range.Start + carver.BlockSize - 1) / carver.BlockSize
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(count))
	if _, err := w.fpF.WriteAt(b[:], fpCountOffset); err != nil {
		return fmt.Errorf("pipeline: finishing %s: %w", w.fpF.Name(), err)
	}
	if err := w.fpF.Sync(); err != nil {
		return fmt.Errorf("pipeline: syncing %s: %w", w.fpF.Name(), err)
	}
	w.st.Digests = w.h.digests()
	w.st.Complete = true
	w.st.HashState, w.st.HashStates = nil, nil
	w.st.Finished = time.Now().UTC()
	return writeShardState(w.dir, w.st)
}

func (w *shardWriter) close() {
	w.hitsF.Close()
	w.fpF.Close()
}

// shardInfo is a complete shard found on disk.
type shardInfo struct {
	dir string
	st  *shardState
}

// mergeShards writes CASE/hits.jsonl and CASE/fingerprints.bin from the
// complete shards carved with the given recognizers, if together they cover
// [0,size). It walks the image from 0, each time taking the next piece from
// the shard that starts at or before the covered point and reaches
// furthest, so an overlap is taken from one shard only: the dedup of hits
// two shards both found is exact because shards report exactly what a whole
// run reports in their range. It returns the merged counts, or nil and the
// reason when the shards do not cover the image yet. The damaged E01
// chunks the shards found are unioned (mergeDamaged) and returned; no hit
// that meets one is merged.
func mergeShards(caseDir string, size int64, recognizers []string) (map[string]int64, []UnreadableArea, string, error) {
	shards, err := completeShards(caseDir, size, recognizers)
	if err != nil {
		return nil, nil, "", err
	}
	type piece struct {
		shard      shardInfo
		start, end int64
	}
	var pieces []piece
	for pos := int64(0); pos < size; {
		best := -1
		for i, s := range shards {
			if s.st.Range.Start <= pos && s.st.Range.End > pos && (best < 0 || s.st.Range.End > shards[best].st.Range.End) {
				best = i
			}
		}
		if best < 0 {
			covered := int64(0)
			for _, p := range pieces {
				covered += p.end - p.start
			}
			return nil, nil, fmt.Sprintf("complete shards cover %d of %d bytes; the first gap starts at %d", covered, size, pos), nil
		}
		end := shards[best].st.Range.End
		pieces = append(pieces, piece{shards[best], pos, end})
		pos = end
	}

	var used []shardInfo
	for _, p := range pieces {
		used = append(used, p.shard)
	}
	damaged, err := mergeDamaged(used, size)
	if err != nil {
		return nil, nil, "", err
	}
	unknown := ranges(damaged)

	hitsOut, err := CreateAtomic(filepath.Join(caseDir, HitsName))
	if err != nil {
		return nil, nil, "", err
	}
	defer hitsOut.Abort()
	fpOut, err := CreateAtomic(filepath.Join(caseDir, FingerprintsName))
	if err != nil {
		return nil, nil, "", err
	}
	defer fpOut.Abort()
	hw := bufio.NewWriterSize(hitsOut, 1<<20)
	fw := bufio.NewWriterSize(fpOut, 1<<20)
	fw.Write(fpHeader(0, (size+carver.BlockSize-1)/carver.BlockSize))
	fe := &fpEncoder{w: fw}
	counts := map[string]int64{"bytes": size, "shards": int64(len(pieces))}
	for _, p := range pieces {
		if err := copyHits(hw, p.shard.dir, p.start, p.end, unknown, counts); err != nil {
			return nil, nil, "", err
		}
		if err := copyFingerprints(fe, p.shard.dir, p.shard.st.Range.Start, p.start, p.end); err != nil {
			return nil, nil, "", err
		}
	}
	if err := fe.flush(); err != nil {
		return nil, nil, "", fmt.Errorf("pipeline: writing merged fingerprints: %w", err)
	}
	if err := hw.Flush(); err != nil {
		return nil, nil, "", fmt.Errorf("pipeline: writing merged hits: %w", err)
	}
	if err := fw.Flush(); err != nil {
		return nil, nil, "", fmt.Errorf("pipeline: writing merged fingerprints: %w", err)
	}
	if err := hitsOut.Commit(); err != nil {
		return nil, nil, "", err
	}
	if err := fpOut.Commit(); err != nil {
		return nil, nil, "", err
	}
	if p := pieces[0]; len(pieces) == 1 && len(unknown) == 0 && p.shard.st.Range == (Range{0, size}) {
		shareShardFiles(caseDir, p.shard)
	}
	return counts, damaged, "", nil
}

// completeShards lists the complete shards of the case that used the given
// recognizers (a shard carved with another set would merge into a mix).
func completeShards(caseDir string, size int64, recognizers []string) ([]shardInfo, error) {
	root := filepath.Join(caseDir, ShardsDirName)
	ents, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pipeline: listing shards: %w", err)
	}
	var out []shardInfo
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		st, err := readShardState(dir)
		if err != nil {
			return nil, err
		}
		if st == nil || !st.Complete || !slices.Equal(st.Params.Recognizers, recognizers) ||
			st.Range.Start < 0 || st.Range.End > size || st.Range.Start >= st.Range.End {
			continue
		}
		out = append(out, shardInfo{dir, st})
	}
	// A fixed order makes the choice among equally long shards
	// deterministic (not that it can change the output).
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	return out, nil
}

// copyHits copies the lines of a shard's hits.jsonl whose offset lies in
// [start,end) verbatim, counting them by kind and verdict, but for those
// that meet an area of unknown (sorted, disjoint).
func copyHits(w io.Writer, shardDir string, start, end int64, unknown []Range, counts map[string]int64) error {
	path := filepath.Join(shardDir, HitsName)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pipeline: merging: %w", err)
	}
	defer f.Close()
	var key struct {
		Offset  int64              `json:"offset"`
		Length  int64              `json:"length"`
		Kind    signatures.Kind    `json:"kind"`
		Verdict signatures.Verdict `json:"verdict"`
	}
	errDone := errors.New("done")
	err = scanLines(f, path, func(line []byte, n int) error {
		key.Offset, key.Length = -1, 0
		if err := json.Unmarshal(line, &key); err != nil || key.Offset < 0 {
			return fmt.Errorf("pipeline: %s:%d: corrupt hit: %v", path, n, err)
		}
		if key.Offset < start {
			return nil
		}
		if key.Offset >= end {
			return errDone // the lines are sorted by offset
		}
		if _, ok := overlapsAny(unknown, key.Offset, key.Offset+max(key.Length, 1)); ok {
			return nil
		}
		counts["hits"]++
		counts["hits."+string(key.Kind)]++
		if key.Verdict != signatures.Valid {
			counts["damaged."+string(key.Kind)]++
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		_, err := w.Write([]byte{'\n'})
		return err
	})
	if err != nil && err != errDone {
		return err
	}
	return nil
}

// copyFingerprints encodes the records of the blocks of [start,end) from
// a shard's fingerprints.bin into e.
func copyFingerprints(e *fpEncoder, shardDir string, shardStart, start, end int64) error {
	fp, err := OpenFingerprints(filepath.Join(shardDir, FingerprintsName))
	if err != nil {
		return err
	}
	defer fp.Close()
	first := (start - shardStart) / carver.BlockSize
	n := (end - start + carver.BlockSize - 1) / carver.BlockSize
	if fp.First != shardStart || first+n > fp.Count {
		return fmt.Errorf("%w: %s holds blocks from %d, %d of them; merging needs %d from %d", ErrFingerprints, shardDir, fp.First, fp.Count, n, start)
	}
	if err := fp.copyTo(e, first, n); err != nil {
		return fmt.Errorf("pipeline: merging fingerprints of %s: %w", shardDir, err)
	}
	return nil
}

// ParseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024; a trailing "iB" or "B" is accepted too).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("bad size %q: want a non-negative number with an optional K, M, G or T suffix", s)
	}
	return n << shift, nil
}

// ParseRange parses "START:END" (sizes as in ParseSize); an empty END means
// the end of the image.
func ParseRange(s string) (*Range, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("bad range %q: want START:END", s)
	}
	start, err := ParseSize(a)
	if err != nil {
		return nil, fmt.Errorf("range start: %w", err)
	}
	r := &Range{Start: start}
	if b != "" {
		if r.End, err = ParseSize(b); err != nil {
			return nil, fmt.Errorf("range end: %w", err)
		}
		if r.End == 0 {
			return nil, fmt.Errorf("bad range %q: empty", s)
		}
	}
	return r, nil
}
