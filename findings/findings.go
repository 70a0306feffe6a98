// Package findings names what a user of a rebuild should know: every
// damage found in the evidence and every decision taken because of it,
// as a Finding with a stable Code, a Severity, one sentence of what it
// means and one of what was done.
//
// The registry (registry.go) is the one table of codes: each code's
// severity and the general wording of both sentences, from which the
// README's table of codes is generated. The constructors (constructors.go)
// take a finding's figures and word its own two sentences, so that every
// output (the JSON reports, DFXML, the HTML map, the console) says the
// same thing in the same words. The package decides nothing and imports
// nothing of the module: reassemble and pipeline derive the findings
// from their own records.
package findings

import (
	"cmp"
	"slices"
)

// Code names a kind of finding. Codes are kebab-case and stable: scripts
// and examiners look them up, so a code is never renamed or reused; a new
// kind of finding gets a new code.
type Code string

// Severity grades a finding.
type Severity string

const (
	// Info is a decision worth knowing that loses nothing: copies
	// merged, versions found, a host map used.
	Info Severity = "info"
	// Warning is damage found and worked around, or a figure known only
	// within bounds: the rebuilt disk may still be whole.
	Warning Severity = "warning"
	// Error is data lost or not proven: grains missing, damaged or in
	// conflict, a check failed, the evidence not what it claims to be.
	Error Severity = "error"
)

// Rank orders severities, errors first: 0 for an error, 1 for a
// warning, 2 for the rest.
func (s Severity) Rank() int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Finding is one thing a user should know about a case. Disk and
// Instance are 0 for a finding about the evidence as a whole (Instance 0
// alone: about the disk); ImageOffset, when set, is where in the evidence
// it lies, Length how many bytes from there it covers (when it covers an
// area); Grains how many grains of the disk it concerns. Detail holds its
// figures by name (numbers and short strings), for scripts.
type Finding struct {
	Code        Code           `json:"code"`
	Severity    Severity       `json:"severity"`
	Message     string         `json:"message"` // what it means
	Action      string         `json:"action"`  // what was done
	Disk        int            `json:"disk,omitempty"`
	Instance    int            `json:"instance,omitempty"`
	ImageOffset *int64         `json:"image_offset,omitempty"`
	Length      int64          `json:"length,omitempty"`
	Grains      uint64         `json:"grains,omitempty"`
	Detail      map[string]any `json:"detail,omitempty"`
}

// At returns f with its image offset set to off.
func (f Finding) At(off int64) Finding {
	f.ImageOffset = &off
	return f
}

// On returns f as a finding about instance inst of disk disk.
func (f Finding) On(disk, inst int) Finding {
	f.Disk, f.Instance = disk, inst
	return f
}

// Sort orders findings as every output lists them: the evidence's first,
// then by disk and instance (the disk's own before its instances'),
// within one by severity (errors first), code, image offset and message.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Disk, b.Disk),
			cmp.Compare(a.Instance, b.Instance),
			cmp.Compare(a.Severity.Rank(), b.Severity.Rank()),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(offset(a), offset(b)),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

func offset(f Finding) int64 {
	if f.ImageOffset == nil {
		return -1
	}
	return *f.ImageOffset
}

// Count returns how many findings have each severity.
func Count(fs []Finding) (errors, warnings, infos int) {
	for _, f := range fs {
		switch f.Severity {
		case Error:
			errors++
		case Warning:
			warnings++
		default:
			infos++
		}
	}
	return errors, warnings, infos
}
