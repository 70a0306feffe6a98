package signatures

import (
	"fmt"
	"sync"

	"vmdkcarve/vmdk"
)

// A FieldError says which field of a hit read back from a case file is
// out of range, and why. hits.jsonl is a file on disk like any other: a
// user may have edited it, a disk may have damaged it, so every field is
// checked against what the recognizers could have written before the
// planner divides, multiplies or allocates by it.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// maxLength is the most bytes a hit of each kind can span: its
// recognizers' largest window (a grain record's whole record). It is
// built on first use: recognizers in other files register in init.
var maxLength = sync.OnceValue(func() map[Kind]int64 {
	m := map[Kind]int64{KindError: 0}
	for _, r := range registry {
		m[r.Kind] = max(m[r.Kind], int64(r.Window))
	}
	// A grain record's length is sector-padded.
	m[KindGrainMarker] = (m[KindGrainMarker] + vmdk.SectorSize - 1) / vmdk.SectorSize * vmdk.SectorSize
	return m
})

// Validate checks a hit read back from a case file: an image offset
// inside an image of imageSize bytes (when imageSize > 0) on a sector
// boundary, a known kind and verdict, a length within its recognizer's
// window, exactly the detail its kind carries, and that detail within the
// rules its parser applies (a valid hit's in full; a damaged hit, never
// used to place data, within the bounds that keep it harmless).
func (h *Hit) Validate(imageSize int64) error {
	bad := func(field, format string, a ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	limit, known := maxLength()[h.Kind]
	switch {
	case !known:
		return bad("kind", "%q is no recognizer's", h.Kind)
	case h.Verdict != Valid && h.Verdict != Damaged:
		return bad("verdict", "%q: want %q or %q", h.Verdict, Valid, Damaged)
	case h.Offset < 0 || imageSize > 0 && h.Offset >= imageSize:
		return bad("offset", "%d is outside the %d-byte image", h.Offset, imageSize)
	case h.Offset%vmdk.SectorSize != 0:
		return bad("offset", "%d is not on a sector boundary", h.Offset)
	case h.Length < 0 || h.Length > limit:
		return bad("length", "%d: want 0 to %d for a %s hit", h.Length, limit, h.Kind)
	case len(h.Reason) > 4096:
		return bad("reason", "%d bytes", len(h.Reason))
	}
	details := []struct {
		kind Kind
		set  bool
	}{
		{KindSparseHeader, h.Sparse != nil}, {KindDescriptor, h.Descriptor != nil}, {KindGrainMarker, h.Grain != nil},
		{KindMetaMarker, h.Meta != nil}, {KindGD, h.Table != nil && h.Kind == KindGD}, {KindGT, h.Table != nil && h.Kind == KindGT},
		{KindCOWD, h.COWD != nil}, {KindSESparse, h.SESparse != nil}, {KindNTFS, h.NTFS != nil}, {KindExt4, h.Ext4 != nil},
		{KindMBR, h.MBR != nil},
	}
	own := false
	for _, d := range details {
		if d.set && d.kind != h.Kind {
			return bad(string(d.kind), "set in a %s hit", h.Kind)
		}
		own = own || d.set
	}
	if !own && h.Verdict == Valid && h.Kind != KindError {
		return bad("kind", "a valid %s hit without its %s details", h.Kind, h.Kind)
	}
	if err := h.validateDetail(); err != nil {
		return bad(string(h.Kind), "%v", err)
	}
	return nil
}

// validateDetail applies the detail's parser rules.
func (h *Hit) validateDetail() error {
	valid := h.Verdict == Valid
	switch {
	case h.Sparse != nil:
		// A damaged header is reported, never planned from: it holds
		// whatever the sector said (a crafted 2^31 GTEs per GT).
		if err := h.Sparse.Validate(); err != nil && valid {
			return err
		}
	case h.Descriptor != nil:
		return h.Descriptor.Validate()
	case h.Grain != nil:
		g := h.Grain
		grainBytes := vmdk.MaxGrainSize * vmdk.SectorSize
		m := vmdk.GrainMarker{LBA: g.LBA, Size: g.Size}
		switch {
		case g.Size < 8 || int64(g.Size) > vmdk.MaxCompressedGrain(int64(grainBytes)):
			return fmt.Errorf("size %d: want 8 to %d", g.Size, vmdk.MaxCompressedGrain(int64(grainBytes)))
		case g.LBA%vmdk.MinGrainSize != 0 || g.LBA >= 1<<50:
			return fmt.Errorf("lba %d: want a multiple of %d below 2^50", g.LBA, vmdk.MinGrainSize)
		case h.Length != m.RecordBytes():
			return fmt.Errorf("length %d: the record of %d compressed bytes is %d", h.Length, g.Size, m.RecordBytes())
		case g.DataBytes < 0 || g.DataBytes > grainBytes || valid && g.DataBytes == 0:
			return fmt.Errorf("data_bytes %d: want 1 to %d", g.DataBytes, grainBytes)
		}
	case h.Meta != nil:
		b := vmdk.MarshalMetaMarker(h.Meta.NumSectors, h.Meta.Type)
		if _, err := vmdk.ParseMetaMarker(b); err != nil {
			return err
		}
	case h.Table != nil:
		t := h.Table
		most := vmdk.GTEsPerGT
		if h.Kind == KindGD {
			most = vmdk.SectorSize / 4
		}
		if t.Entries < 0 || t.Entries > most || h.Kind == KindGT && t.Last < t.First {
			return fmt.Errorf("entries %d (want 0 to %d), first %d, last %d", t.Entries, most, t.First, t.Last)
		}
	case h.COWD != nil:
		return h.COWD.Validate()
	case h.SESparse != nil:
		return h.SESparse.Validate()
	case h.NTFS != nil:
		return h.NTFS.Validate()
	case h.Ext4 != nil:
		return h.Ext4.Validate()
	case h.MBR != nil:
		if len(h.MBR.Partitions) == 0 || len(h.MBR.Partitions) > 4 {
			return fmt.Errorf("%d partitions: want 1 to 4", len(h.MBR.Partitions))
		}
		for _, p := range h.MBR.Partitions {
			if p.Type == 0 || p.Start == 0 || p.Sectors == 0 {
				return fmt.Errorf("partition type %d at %d, %d sectors", p.Type, p.Start, p.Sectors)
			}
		}
	}
	return nil
}
