package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"vmdkcarve/findings"
)

// FindingsName is the case's list of every finding (CASE/findings.json).
const FindingsName = "findings.json"

// maxAreaFindings bounds the unreadable areas listed one finding each: a
// failing disk's mapfile can hold hundreds of thousands; the rest are
// folded into one finding (case.json lists them all).
const maxAreaFindings = 64

// FindingsFile is CASE/findings.json: every finding of the case, sorted
// (findings.Sort), with their counts by severity.
type FindingsFile struct {
	Tool     string             `json:"tool"`
	Version  string             `json:"version"`
	Errors   int                `json:"errors"`
	Warnings int                `json:"warnings"`
	Info     int                `json:"info"`
	Findings []findings.Finding `json:"findings"`
}

// evidenceFindings are the findings about the evidence itself: the
// unreadable areas, each worded by its source (a mapfile's areas not
// rescued, an E01's error2 sectors, its damaged chunks), a missing
// digest and a stored one that does not match.
func evidenceFindings(ev Evidence) []findings.Finding {
	var out []findings.Finding
	areas := ev.UnreadableAreas
	if areas == nil {
		areas = sourcedAreas(ev.Unreadable, "") // a case carved before areas had sources
	}
	bySource := map[string][]UnreadableArea{}
	for _, a := range areas {
		bySource[a.Source] = append(bySource[a.Source], a)
	}
	for _, source := range slices.Sorted(maps.Keys(bySource)) {
		as := bySource[source]
		for i, a := range as {
			if i == maxAreaFindings && len(as) > maxAreaFindings+1 {
				var total int64
				for _, b := range as[i:] {
					total += b.End - b.Start
				}
				if source == AreaEWFChunk {
					out = append(out, findings.EvidenceChunksDamaged(len(as)-i, total, a.Start))
				} else {
					out = append(out, findings.UnreadableAreasBy(source, len(as)-i, total, a.Start))
				}
				break
			}
			if c := a.Chunk; source == AreaEWFChunk && c != nil {
				out = append(out, findings.EvidenceChunkDamaged(c.Number, c.Segment, c.FileOffset, a.Start, a.End-a.Start, c.Error))
			} else {
				out = append(out, findings.UnreadableAreaBy(source, a.Start, a.End-a.Start))
			}
		}
	}
	if ev.MD5 == "" && ev.SHA1 == "" && ev.SHA256 == "" {
		out = append(out, findings.EvidenceNotHashed())
	}
	// An E01 set's stored digests that the carve's do not match, in name
	// order so the list is the same every run.
	for _, name := range slices.Sorted(maps.Keys(ev.StoredHashes)) {
		sh := ev.StoredHashes[name]
		if sh == nil || sh.Match == nil || *sh.Match {
			continue
		}
		stored := sh.Stored
		if sh.OtherStored != "" {
			stored += " (and " + sh.OtherStored + ")"
		}
		out = append(out, findings.EvidenceHashMismatch(ev.Path, name, stored, sh.Computed))
	}
	return out
}

// emitFindings are the findings of writing a disk and checking its
// guest, beyond those of its plan.
func emitFindings(rep *DiskReport) []findings.Finding {
	var out []findings.Finding
	if v := rep.Verified; v.HashMismatch+v.DecodeFailure > 0 {
		out = append(out, findings.GrainVerifyFailed(v.HashMismatch, v.DecodeFailure))
	}
	for _, g := range rep.Guest {
		c := g.Check
		if c == nil || (c.Walked && len(c.Problems) == 0 && c.FilesRecovered >= c.Files) {
			continue
		}
		out = append(out, findings.GuestCheckUnclean(g.Kind, g.Offset, c.Walked, len(c.Problems), c.FilesRecovered, c.Files))
	}
	for i := range out {
		out[i] = out[i].On(rep.Disk.ID, 0)
	}
	return out
}

// writeFindings sorts the case's findings and writes them to
// CASE/findings.json.
func writeFindings(c *Case, fs []findings.Finding) error {
	findings.Sort(fs)
	file := FindingsFile{Tool: Tool, Version: Version, Findings: fs}
	if file.Findings == nil {
		file.Findings = []findings.Finding{}
	}
	file.Errors, file.Warnings, file.Info = findings.Count(fs)
	b, err := json.MarshalIndent(file, "", " ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(c.Dir, FindingsName), b)
}

// readFindings reads CASE/findings.json; a case rebuilt before findings
// existed has none, which is no error.
func readFindings(c *Case) ([]findings.Finding, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, FindingsName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var file FindingsFile
	if err := json.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", filepath.Join(c.Dir, FindingsName), err)
	}
	return file.Findings, nil
}
