package vmdk

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
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

// Capacity is the sum of the extent sizes in sectors.
func (d *Descriptor) Capacity() uint64 {
	var n uint64
	for _, e := range d.Extents {
		n += e.Sectors
	}
	return n
}

// UUID returns ddb.uuid, if present.
func (d *Descriptor) UUID() string { return d.DDB["ddb.uuid"] }

// Encode writes the descriptor in the layout qemu and libvmdk accept
// (FORMAT.md §6.1): the three section comment lines are required by libvmdk.
// (It is not MarshalText on purpose: JSON reports keep the parsed fields.)
func (d *Descriptor) Encode() ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nversion=%d\nCID=%08x\nparentCID=%08x\n", DescriptorMagic, max(d.Version, 1), d.CID, d.ParentCID)
	fmt.Fprintf(&b, "createType=%q\n", d.CreateType)
	if d.ParentFileNameHint != "" {
		fmt.Fprintf(&b, "parentFileNameHint=%q\n", d.ParentFileNameHint)
	}
	b.WriteString("\n# Extent description\n")
	for _, e := range d.Extents {
		fmt.Fprintf(&b, "%s %d %s %q", e.Access, e.Sectors, e.Type, e.FileName)
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
		fmt.Fprintf(&b, "%s = %q\n", k, d.DDB[k])
	}
	return []byte(b.String()), nil
}
