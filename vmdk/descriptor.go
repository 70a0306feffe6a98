package vmdk

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DescriptorMagic is the first line of every text descriptor.
const DescriptorMagic = "# Disk DescriptorFile"

// Limits on descriptor content.
const (
	maxExtents   = 4096 // a 2 TiB twoGbMax disk has 1024 extents
	maxDDBKeys   = 1024
	maxLineBytes = 4096
)

// Descriptor is a parsed text descriptor (FORMAT.md §4.4).
type Descriptor struct {
	Version            int               `json:"version,omitempty"`
	CID                uint32            `json:"cid"`
	ParentCID          uint32            `json:"parent_cid"`
	HasCID             bool              `json:"has_cid"`
	CreateType         string            `json:"create_type,omitempty"`
	ParentFileNameHint string            `json:"parent_file_name_hint,omitempty"`
	Extents            []Extent          `json:"extents,omitempty"`
	DDB                map[string]string `json:"ddb,omitempty"`
}

// Extent is one extent line: ACCESS SECTORS TYPE "FILENAME" [OFFSET].
type Extent struct {
	Access   string `json:"access"`
	Sectors  uint64 `json:"sectors"`
	Type     string `json:"type"`
	FileName string `json:"file_name,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
}

// KnownCreateTypes lists the createType values VMware products and qemu write.
var KnownCreateTypes = map[string]bool{
	"monolithicSparse": true, "monolithicFlat": true, "twoGbMaxExtentSparse": true,
	"twoGbMaxExtentFlat": true, "streamOptimized": true, "vmfs": true, "vmfsSparse": true,
	"vmfsThin": true, "vmfsEagerZeroedThick": true, "vmfsPreallocated": true, "vmfsRaw": true,
	"vmfsRawDeviceMap": true, "vmfsPassthroughRawDeviceMap": true, "seSparse": true,
	"fullDevice": true, "partitionedDevice": true, "custom": true,
}

var extentLine = regexp.MustCompile(`^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(FLAT|SPARSE|ZERO|VMFS|VMFSSPARSE|VMFSRDM|VMFSRAW|SESPARSE)(?:\s+"([^"]*)"(?:\s+(\d+))?)?`)

// ParseDescriptor parses descriptor text. The text may be NUL-padded (an
// embedded descriptor) or cut short; parsing stops at the first NUL. It
// requires the "# Disk DescriptorFile" line first and at least one of a
// createType or an extent line, so stray copies of the template in program
// binaries and documentation are rejected unless they parse fully.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) > MaxDescriptorBytes {
		b = b[:MaxDescriptorBytes]
	}
	text := strings.TrimLeft(string(b), " \t\r\n")
	if !strings.HasPrefix(text, DescriptorMagic) {
		return nil, fmt.Errorf("descriptor: %w", ErrNotVMDK)
	}
	d := &Descriptor{}
	sawCreateType := false
	offset := int64(len(b) - len(text))
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		lineOffset := offset
		offset += int64(len(line)) + 1
		if len(line) > maxLineBytes {
			return nil, &FormatError{Struct: "descriptor", Offset: lineOffset, Field: "line", Value: len(line), Reason: "line too long"}
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if m := extentLine.FindStringSubmatch(line); m != nil {
			if len(d.Extents) >= maxExtents {
				return nil, &FormatError{Struct: "descriptor", Offset: lineOffset, Field: "extents", Value: len(d.Extents), Reason: "too many extents"}
			}
			e := Extent{Access: m[1], Type: m[3], FileName: m[4]}
			var err error
			if e.Sectors, err = strconv.ParseUint(m[2], 10, 64); err != nil {
				return nil, &FormatError{Struct: "descriptor", Offset: lineOffset, Field: "extent sectors", Value: m[2], Reason: err.Error()}
			}
			if m[5] != "" {
				if e.Offset, err = strconv.ParseUint(m[5], 10, 64); err != nil {
					return nil, &FormatError{Struct: "descriptor", Offset: lineOffset, Field: "extent offset", Value: m[5], Reason: err.Error()}
				}
			}
			d.Extents = append(d.Extents, e)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			// VMware says unknown lines are ignored; damaged text is kept
			// as far as it parses.
			continue
		}
		key = strings.TrimSpace(key)
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch {
		case key == "version":
			d.Version, _ = strconv.Atoi(value)
		case key == "CID":
			if v, err := strconv.ParseUint(value, 16, 32); err == nil {
				d.CID, d.HasCID = uint32(v), true
			}
		case key == "parentCID":
			if v, err := strconv.ParseUint(value, 16, 32); err == nil {
				d.ParentCID = uint32(v)
			}
		case key == "createType":
			d.CreateType = value
			sawCreateType = true
		case key == "parentFileNameHint":
			d.ParentFileNameHint = value
		case strings.HasPrefix(key, "ddb."):
			if d.DDB == nil {
				d.DDB = make(map[string]string)
			}
			if len(d.DDB) < maxDDBKeys {
				d.DDB[key] = value
			}
		}
	}
	if !sawCreateType && len(d.Extents) == 0 {
		return nil, &FormatError{Struct: "descriptor", Field: "createType", Value: "", Reason: "neither createType nor an extent line"}
	}
	return d, nil
}

// MaxDescriptorCapacity bounds the capacity a descriptor may describe:
// 2^47 sectors (64 PiB), far above the 62 TB of the largest VMFS disk.
const MaxDescriptorCapacity = 1 << 47

// Capacity is the sum of the extent sizes in sectors, or 0 (unknown) when
// the sum passes MaxDescriptorCapacity: the sizes are the text's word, and
// a sum that wrapped around would be a small, plausible lie.
func (d *Descriptor) Capacity() uint64 {
	var n uint64
	for _, e := range d.Extents {
		if e.Sectors > MaxDescriptorCapacity-n {
			return 0
		}
		n += e.Sectors
	}
	return n
}

// UUID returns ddb.uuid, if present.
func (d *Descriptor) UUID() string { return d.DDB["ddb.uuid"] }

// Validate checks a descriptor read back from a case file (which a user
// may edit) against what ParseDescriptor could have made: at most
// maxExtents extents with a known access and type, at most maxDDBKeys
// "ddb." keys, and no field holding a line break or a NUL (a parsed
// field ends at one) or longer than a line.
func (d *Descriptor) Validate() error {
	bad := func(field string, v any, why string) error {
		if s, ok := v.(string); ok {
			v = fmt.Sprintf("%.80q", s) // quoted: the text may hold line breaks
		}
		return &FormatError{Struct: "descriptor", Field: field, Value: v, Reason: why}
	}
	text := func(field, v string) error {
		if len(v) > maxLineBytes || strings.ContainsAny(v, "\n\x00") {
			return bad(field, v, "holds a line break or a NUL, or is longer than a line")
		}
		return nil
	}
	if len(d.Extents) > maxExtents {
		return bad("extents", len(d.Extents), "too many extents")
	}
	if len(d.DDB) > maxDDBKeys {
		return bad("ddb", len(d.DDB), "too many keys")
	}
	for _, f := range []struct{ name, v string }{{"createType", d.CreateType}, {"parentFileNameHint", d.ParentFileNameHint}} {
		if err := text(f.name, f.v); err != nil {
			return err
		}
	}
	for i, e := range d.Extents {
		if !extentAccess[e.Access] || !extentTypes[e.Type] {
			return bad(fmt.Sprintf("extent %d", i+1), e.Access+" "+e.Type, "unknown access or type")
		}
		if strings.ContainsAny(e.FileName, "\"\n\x00") {
			return bad(fmt.Sprintf("extent %d file name", i+1), e.FileName, "holds a quote, a line break or a NUL")
		}
	}
	for k, v := range d.DDB {
		if !strings.HasPrefix(k, "ddb.") || strings.Contains(k, "=") || k != strings.TrimSpace(k) {
			return bad("ddb key", k, `not a "ddb." key the parser reads`)
		}
		if err := text("ddb key", k); err != nil {
			return err
		}
		if err := text(fmt.Sprintf("%.80q", k), v); err != nil {
			return err
		}
	}
	return nil
}

// Extent access modes and types (the extentLine pattern).
var (
	extentAccess = map[string]bool{"RW": true, "RDONLY": true, "NOACCESS": true}
	extentTypes  = map[string]bool{"FLAT": true, "SPARSE": true, "ZERO": true, "VMFS": true, "VMFSSPARSE": true,
		"VMFSRDM": true, "VMFSRAW": true, "SESPARSE": true}
)

// WritableKey reports whether a DDB key can be written into a descriptor
// as it is: "ddb." and then letters, digits, '.', '_' or '-' (every key
// VMware and qemu write). The format has no escapes, so a key with a
// space, a quote, a '=' or a line break could change what the text says
// (an injected extent line): such a key is left out, never escaped.
func WritableKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "ddb.")
	if !ok || rest == "" || len(k) > maxLineBytes/2 {
		return false
	}
	for _, c := range rest {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// WritableValue reports whether a quoted value can be written as it is:
// valid UTF-8 without a quote or a control character (the format has no
// escapes), short enough for a line.
func WritableValue(v string) bool {
	if !utf8.ValidString(v) || len(v) > maxLineBytes/2 {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c == '"' {
			return false
		}
	}
	return true
}

// WritableDDB returns the entries of ddb that can be written as they are
// (WritableKey, WritableValue) and the keys left out, sorted.
func WritableDDB(ddb map[string]string) (map[string]string, []string) {
	out := make(map[string]string, len(ddb))
	var dropped []string
	for k, v := range ddb {
		if WritableKey(k) && WritableValue(v) {
			out[k] = v
		} else {
			dropped = append(dropped, k)
		}
	}
	sort.Strings(dropped)
	return out, dropped
}

// fitDDB returns the entries of ddb (a DDB from evidence, to be written
// into d) that can be written as they are, in key order while the text
// stays within room bytes: a descriptor carved with a thousand long keys
// must not cost the disk its output. Those left out are still in the
// report, which keeps the descriptor as parsed.
func (d *Descriptor) fitDDB(ddb map[string]string, room int) map[string]string {
	ok, _ := WritableDDB(ddb)
	bare := *d
	bare.DDB = nil
	text, err := bare.Encode()
	if err != nil {
		return nil
	}
	keys := make([]string, 0, len(ok))
	for k := range ok {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := len(text)
	out := make(map[string]string, len(ok))
	for _, k := range keys {
		line := len(k) + len(ok[k]) + len(` = ""`+"\n")
		if n+line > room {
			break
		}
		out[k] = ok[k]
		n += line
	}
	return out
}

// Encode writes the descriptor in the layout qemu and libvmdk accept
// (FORMAT.md §6.1): the three section comment lines are required by libvmdk.
// (It is not MarshalText on purpose: JSON reports keep the parsed fields.)
// The format has no escapes: a field that cannot be written as it is (a
// key or value WritableKey or WritableValue refuses, an unknown extent
// access or type, a file name with a quote) is an error, never written;
// callers that copy a DDB from evidence pass it through WritableDDB.
func (d *Descriptor) Encode() ([]byte, error) {
	bad := func(field, v string) error {
		return &FormatError{Struct: "descriptor", Field: field, Value: v, Reason: "cannot be written as it is"}
	}
	for _, f := range []struct{ name, v string }{{"createType", d.CreateType}, {"parentFileNameHint", d.ParentFileNameHint}} {
		if !WritableValue(f.v) {
			return nil, bad(f.name, f.v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nversion=%d\nCID=%08x\nparentCID=%08x\n", DescriptorMagic, max(d.Version, 1), d.CID, d.ParentCID)
	fmt.Fprintf(&b, "createType=\"%s\"\n", d.CreateType)
	if d.ParentFileNameHint != "" {
		fmt.Fprintf(&b, "parentFileNameHint=\"%s\"\n", d.ParentFileNameHint)
	}
	b.WriteString("\n# Extent description\n")
	for i, e := range d.Extents {
		if !extentAccess[e.Access] || !extentTypes[e.Type] || !WritableValue(e.FileName) {
			return nil, bad(fmt.Sprintf("extent %d", i+1), fmt.Sprintf("%s %s %q", e.Access, e.Type, e.FileName))
		}
		fmt.Fprintf(&b, "%s %d %s \"%s\"", e.Access, e.Sectors, e.Type, e.FileName)
		if e.Type == "FLAT" || e.Offset != 0 {
			fmt.Fprintf(&b, " %d", e.Offset)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n# The Disk Data Base\n#DDB\n\n")
	keys := make([]string, 0, len(d.DDB))
	for k := range d.DDB {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !WritableKey(k) {
			return nil, bad("ddb key", k)
		}
		if !WritableValue(d.DDB[k]) {
			return nil, bad(k, d.DDB[k])
		}
		fmt.Fprintf(&b, "%s = \"%s\"\n", k, d.DDB[k])
	}
	return []byte(b.String()), nil
}
