package signatures

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"

	"vmdkcarve/internal/entropy"
	"vmdkcarve/vmdk"
)

// A Recognizer looks at a window that starts at an aligned image offset.
// Recognize gets at most Window bytes (fewer at the end of the image) and
// must not retain them. scratch is a per-worker buffer of ScratchBytes bytes
// the recognizer may use (for decompression); it is nil when ScratchBytes is 0.
type Recognizer struct {
	Name         string // the name users enable or disable it by
	Kind         Kind
	Doc          string
	Align        int // the window offset is a multiple of Align
	Window       int // the most bytes Recognize reads
	ScratchBytes int
	Recognize    func(w, scratch []byte) (Hit, bool)
	// Magics, when set, are necessary conditions of Recognize (any one
	// of them holds wherever it accepts): the carver tests them at every
	// offset and calls Recognize only where one holds (magic.go).
	Magics []Magic
}

// maxGrainRecord is the window a grain-marker recognizer needs: the
// marker plus the largest compressed grain of the largest grain size.
var maxGrainRecord = 12 + int(vmdk.MaxCompressedGrain(vmdk.MaxGrainSize*vmdk.SectorSize))

var registry = []Recognizer{
	{
		Name: "sparse-header", Kind: KindSparseHeader, Align: vmdk.SectorSize, Window: vmdk.SectorSize,
		Doc:       `"KDMV" hosted sparse / stream header or stream footer (FORMAT.md §1.3 rules)`,
		Recognize: recognizeSparseHeader,
		// "KDMV", then a version of 1 to 3.
		Magics: []Magic{bytesAt(0, vmdk.SparseMagic).and(0xFFFFFFFC<<32, 0)},
	},
	{
		Name: "descriptor", Kind: KindDescriptor, Align: vmdk.SectorSize, Window: 20 * 1024,
		Doc:       `"# Disk DescriptorFile" text, embedded or standalone, parsed before it is kept`,
		Recognize: recognizeDescriptor,
		Magics:    []Magic{bytesAt(0, vmdk.DescriptorMagic[:8])},
	},
	{
		Name: "grain-marker", Kind: KindGrainMarker, Align: vmdk.SectorSize, Window: maxGrainRecord,
		ScratchBytes: vmdk.MaxGrainSize * vmdk.SectorSize,
		Doc:          "stream grain record: lba, size, zlib data that decodes with a valid Adler-32",
		Recognize:    recognizeGrainMarker,
		// The lba: a multiple of the smallest grain, below 2^50.
		Magics: []Magic{{Mask: 0xFFFC<<48 | (vmdk.MinGrainSize - 1), Value: 0}},
	},
	{
		Name: "meta-marker", Kind: KindMetaMarker, Align: vmdk.SectorSize, Window: vmdk.SectorSize,
		Doc:       "stream GT, GD or footer marker (the EOS marker is a zero sector and is not recorded)",
		Recognize: recognizeMetaMarker,
		// A zero size, then a type of 3 at most.
		Magics: []Magic{{Offset: 8, Mask: 0xFC<<32 | 0xFFFFFFFF, Value: 0}},
	},
	{
		Name: "grain-directory", Kind: KindGD, Align: vmdk.SectorSize, Window: vmdk.SectorSize,
		Doc:       "sector shaped like a pre-allocated grain directory: entries stepping by 4, then zeros",
		Recognize: recognizeGD,
		Magics:    gdMagics(),
	},
	{
		Name: "grain-table", Kind: KindGT, Align: vmdk.SectorSize, Window: vmdk.GTEsPerGT * 4,
		Doc:       "2 KiB shaped like a grain table of 64 KiB grains: distinct grain-aligned entries",
		Recognize: recognizeGT,
		// The first two entries' low bytes are multiples of 128 (MayBeGT).
		Magics: []Magic{{Mask: 0x7F<<32 | 0x7F, Value: 0}},
	},
	{
		Name: "cowd-header", Kind: KindCOWD, Align: vmdk.SectorSize, Window: 2048,
		Doc:       `"COWD" ESX vmfsSparse delta / VMDK3 header (recognised and reported only)`,
		Recognize: recognizeCOWD,
		Magics:    []Magic{bytesAt(0, vmdk.COWDMagic+"\x01\x00\x00\x00")},
	},
	{
		Name: "sesparse-header", Kind: KindSESparse, Align: vmdk.SectorSize, Window: vmdk.SectorSize,
		Doc:       "ESXi seSparse const header (recognised and reported only)",
		Recognize: recognizeSESparse,
		Magics:    []Magic{{Mask: ^uint64(0), Value: vmdk.SESparseMagic}},
	},
}

// register adds a recognizer defined in another file of this package; call
// it from an init function. Files initialise in name order, so the
// registry order stays fixed.
func register(r Recognizer) { registry = append(registry, r) }

// All returns every recognizer, in a fixed order.
func All() []Recognizer { return append([]Recognizer(nil), registry...) }

// Select returns the recognizers named in enable (all if empty) minus those
// in disable. Unknown names are an error that lists the known ones.
func Select(enable, disable []string) ([]Recognizer, error) {
	known := make(map[string]bool)
	for _, r := range registry {
		known[r.Name] = true
	}
	for _, n := range append(append([]string(nil), enable...), disable...) {
		if !known[n] {
			return nil, fmt.Errorf("signatures: unknown recognizer %q (known: %s)", n, strings.Join(Names(), ", "))
		}
	}
	on := func(name string) bool {
		if len(enable) == 0 {
			return true
		}
		for _, n := range enable {
			if n == name {
				return true
			}
		}
		return false
	}
	var out []Recognizer
	for _, r := range registry {
		if on(r.Name) && !slices.Contains(disable, r.Name) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Names lists the recognizer names, sorted.
func Names() []string {
	var names []string
	for _, r := range registry {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	return names
}

// Help describes every recognizer, one per line, for --help output.
func Help() string {
	var b strings.Builder
	for _, r := range registry {
		fmt.Fprintf(&b, "  %-16s %s\n", r.Name, r.Doc)
	}
	return b.String()
}

// MaxWindow is the largest window any recognizer in rs reads: the margin a
// carver page needs so that no hit is cut at a page boundary.
func MaxWindow(rs []Recognizer) int {
	m := 0
	for _, r := range rs {
		m = max(m, r.Window)
	}
	return m
}

// Run calls r on w, turning a panic into an error hit so that one crafted
// window cannot end a scan.
func Run(r *Recognizer, w, scratch []byte) (h Hit, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			h, ok = Hit{Kind: KindError, Verdict: Damaged, Reason: fmt.Sprintf("recognizer %s panicked: %v", r.Name, p)}, true
		}
	}()
	return r.Recognize(w, scratch)
}

func damagedOrNothing(kind Kind, err error) (Hit, bool) {
	var fe *vmdk.FormatError
	if errors.As(err, &fe) {
		return Hit{Kind: kind, Verdict: Damaged, Reason: err.Error()}, true
	}
	return Hit{}, false
}

func recognizeSparseHeader(w, _ []byte) (Hit, bool) {
	if !vmdk.IsSparseMagic(w) {
		return Hit{}, false
	}
	h, err := vmdk.ParseSparseHeader(w)
	if err != nil {
		// The magic plus a version is 2^-34 by chance; keep the header as
		// damaged evidence only if the newline bytes (another 2^-32) agree.
		if h == nil || !vmdk.HasSparseNewlines(w) {
			return Hit{}, false
		}
		hit, ok := damagedOrNothing(KindSparseHeader, err)
		hit.Sparse = h
		return hit, ok
	}
	hit := Hit{Kind: KindSparseHeader, Verdict: Valid, Length: vmdk.SectorSize, Sparse: h}
	if h.PadNonZero {
		hit.Verdict, hit.Reason = Damaged, "bytes 79..511 are not zero"
	}
	return hit, true
}

var descriptorMagic = []byte(vmdk.DescriptorMagic)

func recognizeDescriptor(w, _ []byte) (Hit, bool) {
	if !bytes.HasPrefix(w, descriptorMagic) {
		return Hit{}, false
	}
	d, err := vmdk.ParseDescriptor(w)
	if err != nil {
		// The template text without its values sits in program binaries
		// and documentation: a descriptor that does not parse is no hit.
		return Hit{}, false
	}
	n := bytes.IndexByte(w, 0)
	if n < 0 {
		n = len(w)
	}
	hit := Hit{Kind: KindDescriptor, Verdict: Valid, Length: int64(n), Descriptor: d}
	if d.CreateType != "" && !vmdk.KnownCreateTypes[d.CreateType] {
		hit.Verdict, hit.Reason = Damaged, fmt.Sprintf("unknown createType %q", d.CreateType)
	}
	return hit, true
}

func recognizeGrainMarker(w, scratch []byte) (Hit, bool) {
	m, ok := vmdk.PeekGrainMarker(w, 0, 0)
	if !ok {
		return Hit{}, false
	}
	hit := Hit{Kind: KindGrainMarker, Length: m.RecordBytes(), Grain: &GrainInfo{LBA: m.LBA, Size: m.Size}}
	_, n, err := vmdk.DecodeGrain(w, scratch)
	if err != nil {
		// A marker and zlib header alone are ~2^-20 by chance in random
		// data: too weak to keep a failed decode as evidence, unless the
		// record ran off the end of the window (a cut stream tail).
		if errors.Is(err, vmdk.ErrTruncated) {
			hit.Verdict, hit.Reason = Damaged, err.Error()
			return hit, true
		}
		return Hit{}, false
	}
	data := scratch[:n]
	hit.Verdict = Valid
	hit.Grain.DataBytes = n
	hit.Grain.Hash = xxhash.Sum64(data)
	hit.Grain.Zero = entropy.Zero(data)
	return hit, true
}

func recognizeMetaMarker(w, _ []byte) (Hit, bool) {
	if !vmdk.MayBeMetaMarker(w) {
		return Hit{}, false
	}
	m, err := vmdk.ParseMetaMarker(w)
	if err != nil {
		return Hit{}, false
	}
	return Hit{Kind: KindMetaMarker, Verdict: Valid, Length: vmdk.SectorSize, Meta: m}, true
}

func recognizeGD(w, _ []byte) (Hit, bool) {
	// Cheap test: the first two entries step by 4.
	if len(w) < vmdk.SectorSize || w[0]|w[1]|w[2]|w[3] == 0 {
		return Hit{}, false
	}
	n, ok := vmdk.LooksLikeGD(w[:vmdk.SectorSize], 4)
	if !ok {
		return Hit{}, false
	}
	first := vmdk.DecodeEntries(w[:4])[0]
	return Hit{Kind: KindGD, Verdict: Valid, Length: vmdk.SectorSize, Table: &TableInfo{Entries: n, First: first}}, true
}

// gdMagics is the magic test of recognizeGD: its first two entries step
// by 4 (LooksLikeGD's gtSectors), so they agree in their low two bits and
// differ in bit 2, whatever the first entry is (a sum modulo 2^32 keeps
// the low bits of one modulo 8). One magic per value of the low three
// bits of the first entry; together they pass an eighth of random sectors
// and no zero sector, which otherwise each called recognizeGD.
func gdMagics() []Magic {
	ms := make([]Magic, 8)
	for low := range uint64(8) {
		ms[low] = Magic{Mask: 7<<32 | 7, Value: (low+4)%8<<32 | low}
	}
	return ms
}

// gtGrainAlign is the alignment a GT-shaped block's entries must share:
// 128 sectors, the grain size of every writer seen.
const gtGrainAlign = 128

func recognizeGT(w, _ []byte) (Hit, bool) {
	if !vmdk.MayBeGT(w) {
		return Hit{}, false
	}
	s, ok := vmdk.LooksLikeGT(w, gtGrainAlign, 2)
	if !ok {
		return Hit{}, false
	}
	return Hit{Kind: KindGT, Verdict: Valid, Length: int64(vmdk.GTEsPerGT * 4), Table: &TableInfo{Entries: s.NonZero, First: s.Min, Last: s.Max}}, true
}

func recognizeCOWD(w, _ []byte) (Hit, bool) {
	if !vmdk.IsCOWDMagic(w) {
		return Hit{}, false
	}
	h, err := vmdk.ParseCOWDHeader(w)
	if err != nil {
		return Hit{}, false
	}
	return Hit{Kind: KindCOWD, Verdict: Valid, Length: 2048, COWD: h}, true
}

func recognizeSESparse(w, _ []byte) (Hit, bool) {
	if !vmdk.IsSESparseMagic(w) {
		return Hit{}, false
	}
	h, err := vmdk.ParseSESparseHeader(w)
	if err != nil {
		return damagedOrNothing(KindSESparse, err)
	}
	return Hit{Kind: KindSESparse, Verdict: Valid, Length: vmdk.SectorSize, SESparse: h}, true
}
