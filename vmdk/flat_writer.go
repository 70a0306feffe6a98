package vmdk

import (
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"vmdkcarve/internal/entropy"
)

// An ESXi thick disk is two files (FORMAT.md §4.3, §4.4): NAME.vmdk, a
// text descriptor with createType "vmfs" and one extent line
// `RW <sectors> VMFS "NAME-flat.vmdk"` (no offset: qemu refuses one on a
// VMFS line), and NAME-flat.vmdk, the raw disk byte for byte. A raw image
// is the same flat extent without a descriptor.

// ESXi's BIOS geometry for SCSI disks: 255 heads, 63 sectors per track;
// cylinders follow from the capacity.
const (
	esxiHeads   = 255
	esxiSectors = 63
)

// MaxFlatSectors bounds a flat extent: 64 TiB, above the 62 TB VMFS
// allows a virtual disk, and far from overflowing a byte offset.
const MaxFlatSectors = 1 << 37

// FlatName is the extent name ESXi gives the flat file of the descriptor
// named descriptorName: "disk.vmdk" → "disk-flat.vmdk" (a name without
// the .vmdk suffix gets "-flat.vmdk" appended).
func FlatName(descriptorName string) string {
	return strings.TrimSuffix(descriptorName, ".vmdk") + "-flat.vmdk"
}

// CheckExtentName reports whether name can be written, unquoted and
// unescaped, inside the double quotes of an extent line and found again
// beside the descriptor by every reader: a plain UTF-8 base name with no
// quote, backslash, path separator, control or invisible character. Readers take the bytes
// between the quotes as they are (FORMAT.md §4.4), so there is nothing to
// escape a character with.
func CheckExtentName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("vmdk: extent name %q: want a file name", name)
	case len(name) > 255:
		return fmt.Errorf("vmdk: extent name of %d bytes: want at most 255", len(name))
	case name != filepath.Base(name) || strings.ContainsAny(name, `/\`):
		return fmt.Errorf("vmdk: extent name %q: want a base name, without a directory", name)
	case strings.ContainsAny(name, `"`):
		return fmt.Errorf("vmdk: extent name %q: a double quote cannot be written in an extent line", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("vmdk: extent name %q: not UTF-8", name)
	}
	for _, r := range name {
		if !strconv.IsPrint(r) {
			return fmt.Errorf("vmdk: extent name %q: control and invisible characters cannot be written in an extent line", name)
		}
	}
	return nil
}

// VMFSDescriptorOptions configures VMFSDescriptor.
type VMFSDescriptorOptions struct {
	Capacity uint64 // virtual sectors: the flat extent's size
	FlatName string // the flat extent's base name, as FlatName gives it
	// Descriptor is an optional template: the CID and the DDB are kept
	// (but for the keys a flat disk contradicts); without one the CID is
	// derived from FlatName and Capacity, so the same input gives the same
	// bytes.
	Descriptor *Descriptor
}

// VMFSDescriptor returns the text descriptor of an ESXi thick disk whose
// flat extent is opts.FlatName (FORMAT.md §4.4): createType "vmfs", one
// VMFS extent line, and a DDB with the adapter type, the geometry and the
// hardware version ESXi reads, the template's where it has them.
func VMFSDescriptor(opts VMFSDescriptorOptions) ([]byte, error) {
	if opts.Capacity == 0 || opts.Capacity > MaxFlatSectors {
		return nil, fmt.Errorf("vmdk: vmfs descriptor: capacity of %d sectors", opts.Capacity)
	}
	if err := CheckExtentName(opts.FlatName); err != nil {
		return nil, err
	}
	d := &Descriptor{
		Version:    1,
		CID:        derivedCID(opts.FlatName, opts.Capacity),
		ParentCID:  0xffffffff,
		CreateType: "vmfs",
		Extents:    []Extent{{Access: "RW", Sectors: opts.Capacity, Type: "VMFS", FileName: opts.FlatName}},
		DDB:        map[string]string{},
	}
	if t := opts.Descriptor; t != nil {
		// The parentCID is not kept: a vmfs flat disk is a base disk, and
		// a descriptor naming a parent would make it a broken link.
		d.CID = t.CID
		d.DDB = maps.Clone(t.DDB)
		if d.DDB == nil {
			d.DDB = map[string]string{}
		}
		// A flat extent is thick whatever the original was: the key
		// would tell ESXi otherwise.
		delete(d.DDB, "ddb.thinProvisioned")
	}
	setDefault(d.DDB, "ddb.adapterType", "lsilogic")
	setDefault(d.DDB, "ddb.virtualHWVersion", "4")
	// The geometry is taken whole from the template or computed whole:
	// a hosted disk's 16 heads mixed with ESXi's 63 sectors would be
	// neither.
	if d.DDB["ddb.geometry.cylinders"] == "" || d.DDB["ddb.geometry.heads"] == "" || d.DDB["ddb.geometry.sectors"] == "" {
		d.DDB["ddb.geometry.cylinders"] = strconv.FormatUint(max(opts.Capacity/(esxiHeads*esxiSectors), 1), 10)
		d.DDB["ddb.geometry.heads"] = strconv.Itoa(esxiHeads)
		d.DDB["ddb.geometry.sectors"] = strconv.Itoa(esxiSectors)
	}
	return d.Encode()
}

// derivedCID is a deterministic CID for a written file: qemu draws a
// random one, which would make two runs over the same input differ.
func derivedCID(name string, capacity uint64) uint32 {
	f := fnv.New32a()
	fmt.Fprintf(f, "%s/%d", name, capacity)
	return f.Sum32()
}

func setDefault(m map[string]string, key, value string) {
	if m[key] == "" {
		m[key] = value
	}
}

// FlatFile is what WriteFlat writes: a new, empty file.
type FlatFile interface {
	io.WriterAt
	Truncate(size int64) error
}

// WriteFlat writes a flat extent (a raw disk image) of capacity sectors to
// w, a new empty file, and returns its size. read is called for every
// grain of grainSize sectors (0 means 128) in order, as by
// WriteMonolithicSparse; absent and all-zero grains are not written, so
// they are holes where the filesystem keeps them and zeros everywhere.
func WriteFlat(w FlatFile, capacity, grainSize uint64, read func(grain uint64, buf []byte) (bool, error)) (int64, error) {
	if grainSize == 0 {
		grainSize = 128
	}
	if capacity == 0 || capacity > MaxFlatSectors || !isPowerOfTwo(grainSize) || grainSize < MinGrainSize || grainSize > MaxGrainSize {
		return 0, fmt.Errorf("vmdk: cannot write a flat extent of %d sectors with %d-sector grains", capacity, grainSize)
	}
	size := int64(capacity) * SectorSize
	if err := w.Truncate(size); err != nil {
		return 0, err
	}
	gb := int64(grainSize) * SectorSize
	buf := make([]byte, gb)
	for g := uint64(0); int64(g)*gb < size; g++ {
		b := buf[:min(gb, size-int64(g)*gb)]
		clear(b)
		ok, err := read(g, b)
		if err != nil {
			return 0, fmt.Errorf("vmdk: reading grain %d: %w", g, err)
		}
		if !ok || entropy.Zero(b) {
			continue
		}
		if _, err := w.WriteAt(b, int64(g)*gb); err != nil {
			return 0, err
		}
	}
	return size, nil
}
