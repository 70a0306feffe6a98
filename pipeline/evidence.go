package pipeline

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"vmdkcarve/ewf"
)

// FormatEWF in Evidence.Format: the evidence is an EWF-E01 segment set,
// read through package ewf. Raw evidence (a dd image, a device) leaves
// Format empty.
const FormatEWF = "ewf"

// EvidenceFile is one file of the evidence (a segment of an E01 set).
type EvidenceFile struct {
	Path string `json:"path"` // absolute
	Size int64  `json:"size"`
}

// StoredHash is a digest an E01 set records of its media and, once a
// carve has read the whole media with that hash, the one it computed.
type StoredHash struct {
	Stored   string   `json:"stored"`
	Sections []string `json:"sections"` // the E01 sections that record it: hash, digest
	// OtherStored is a second, different value another section records
	// (the set contradicts itself: one of them cannot match).
	OtherStored string `json:"other_stored,omitempty"`
	Computed    string `json:"computed,omitempty"`
	// Match is set once Computed is: whether it equals every stored value.
	Match *bool `json:"match,omitempty"`
	// NotCompared says why the stored value was not compared with the
	// carve's digest: the media has damaged chunks, whose bytes are
	// unknown, so no digest of the media can be computed.
	NotCompared string `json:"not_compared,omitempty"`
}

// source is evidence opened for reading: the media's bytes and how
// case.json describes them.
type source struct {
	io.ReaderAt
	ev  Evidence
	raw *os.File   // raw evidence (nil for an E01): its holes can be asked for
	ewf *ewf.Image // an E01 set (nil for raw)
}

func (s *source) Close() error {
	if s.ewf != nil {
		return s.ewf.Close()
	}
	return s.raw.Close()
}

// scanReader is what the carve scans: a raw image's *os.File itself,
// which the carver maps instead of copying it (carver/mapped_unix.go; a
// wrapper would hide it and cost a copy of every byte), or an E01 set
// whose damaged chunks read as unknown bytes, not the end of the carve.
func (s *source) scanReader() io.ReaderAt {
	if s.ewf != nil {
		return newDamageReader(s.ewf)
	}
	return s.raw
}

// openEvidence opens evidence of either kind, by its signature rather
// than its name: an EWF-E01 set (path its first segment; the others are
// found beside it) or a raw image or device. Evidence is only ever
// opened read-only.
func openEvidence(path string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening evidence: %w", err)
	}
	var magic [len(ewf.Signature)]byte
	n, _ := f.ReadAt(magic[:], 0)
	if other := ewf.OtherFormat(magic[:n]); other != "" {
		f.Close()
		return nil, fmt.Errorf("pipeline: evidence %s is an %s file, which carve does not read: export the media first (ewfexport -f raw)", path, other)
	}
	if !ewf.IsEWF(magic[:n]) {
		ev, err := describeEvidence(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		return &source{ReaderAt: f, ev: ev, raw: f}, nil
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pipeline: evidence %s: %w", path, err)
	}
	img, err := ewf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening evidence %s as an E01 set: %w", path, err)
	}
	ev, err := describeEWF(img, path, fi)
	if err != nil {
		img.Close()
		return nil, err
	}
	return &source{ReaderAt: img, ev: ev, ewf: img}, nil
}

// describeEWF describes an E01 set: its media's size, its segment files,
// the hashes it stores and the sectors its acquisition could not read
// (unknown bytes, as a mapfile's unrescued areas are).
func describeEWF(img *ewf.Image, path string, first os.FileInfo) (Evidence, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Evidence{}, fmt.Errorf("pipeline: evidence path: %w", err)
	}
	if img.Size() < MinImageSize {
		return Evidence{}, fmt.Errorf("pipeline: evidence %s holds %d bytes of media: too small to hold any VMDK structure (need at least %d)", path, img.Size(), MinImageSize)
	}
	ev := Evidence{Path: abs, Size: img.Size(), ModTime: first.ModTime().UTC(), Format: FormatEWF}
	for _, s := range img.Segments() {
		p, err := filepath.Abs(s.Path)
		if err != nil {
			return Evidence{}, fmt.Errorf("pipeline: evidence path: %w", err)
		}
		ev.Segments = append(ev.Segments, EvidenceFile{Path: p, Size: s.Size})
	}
	for _, h := range img.StoredHashes() {
		if ev.StoredHashes == nil {
			ev.StoredHashes = map[string]*StoredHash{}
		}
		sh := ev.StoredHashes[h.Name]
		switch {
		case sh == nil:
			ev.StoredHashes[h.Name] = &StoredHash{Stored: h.Value, Sections: []string{h.Section}}
		case sh.Stored == h.Value:
			sh.Sections = append(sh.Sections, h.Section)
		default:
			sh.OtherStored = h.Value
			sh.Sections = append(sh.Sections, h.Section)
		}
	}
	var errs []Range
	for _, r := range img.ReadErrors() {
		errs = append(errs, Range{r.Start, r.End})
	}
	ev.addUnreadable(sourcedAreas(errs, AreaEWFError2))
	return ev, nil
}

// defaultHashes is the --hash default for the evidence: SHA-256, and the
// hashes an E01 set stores, so that the carve can check them.
func (ev *Evidence) defaultHashes() string {
	names := []string{"sha256"}
	for name := range ev.StoredHashes {
		names = append(names, name)
	}
	hs, err := ParseHashes(strings.Join(names, ","))
	if err != nil {
		return "sha256" // a stored hash we cannot compute: not checked
	}
	return strings.Join(hs, ",")
}

// compareStored compares the digests the carve computed with those the
// E01 set stores, and records the result; a mismatch is recorded (and
// reported by the command), not an error: the evidence is still carved.
func (ev *Evidence) compareStored() {
	computed := map[string]string{"md5": ev.MD5, "sha1": ev.SHA1, "sha256": ev.SHA256}
	ev.StoredHashMismatch = false
	for name, sh := range ev.StoredHashes {
		if sh == nil {
			continue // an edited case.json's null: nothing stored to check
		}
		if ev.DigestsZeroed {
			// The digest over zeros in place of the damaged chunks is
			// not the media's: a mismatch would say only that chunks
			// are damaged, a match would prove nothing about them.
			sh.Computed, sh.Match = "", nil
			sh.NotCompared = "the set has damaged chunks, whose bytes are unknown: the media's digest cannot be computed (the carve's digests read them as zeros)"
			continue
		}
		if c := computed[name]; c != "" {
			match := strings.EqualFold(c, sh.Stored) && (sh.OtherStored == "" || strings.EqualFold(c, sh.OtherStored))
			sh.Computed, sh.Match = c, &match
		}
		if sh.Match != nil && !*sh.Match {
			ev.StoredHashMismatch = true
		}
	}
}

// sameEvidence checks that evidence opened now is what a case recorded:
// its size, and for an E01 set its format and segment files.
func sameEvidence(recorded, now Evidence) error {
	if recorded.Size != now.Size {
		return fmt.Errorf("pipeline: evidence %s is not the %d bytes the case was carved from (%d now)", recorded.Path, recorded.Size, now.Size)
	}
	if recorded.Format != now.Format {
		return fmt.Errorf("pipeline: evidence %s was carved as %q, but is %q now", recorded.Path, formatName(recorded.Format), formatName(now.Format))
	}
	if !slices.Equal(recorded.Segments, now.Segments) {
		return fmt.Errorf("pipeline: evidence %s: the segment files are not those the case was carved from (%v, now %v)", recorded.Path, recorded.Segments, now.Segments)
	}
	return nil
}

func formatName(f string) string {
	if f == "" {
		return "raw"
	}
	return f
}

// EvidenceSize measures evidence as Carve does: the media size of an E01
// set, else the size found by seeking to the end (a block device's Stat
// size is 0). Unlike Carve it accepts evidence too small to carve (the
// caller says so in its own terms).
func EvidenceSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("pipeline: opening evidence: %w", err)
	}
	defer f.Close()
	var magic [len(ewf.Signature)]byte
	if n, _ := f.ReadAt(magic[:], 0); ewf.IsEWF(magic[:n]) {
		img, err := ewf.Open(path)
		if err != nil {
			return 0, fmt.Errorf("pipeline: opening evidence %s as an E01 set: %w", path, err)
		}
		defer img.Close()
		return img.Size(), nil
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("pipeline: evidence %s: measuring size: %w", path, err)
	}
	return size, nil
}
