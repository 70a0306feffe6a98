package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// OutputFormat is a format a rebuilt disk can be written in. The values
// are stable: they are the --format values and the report's output
// formats.
type OutputFormat string

const (
	// FormatSparse is a monolithicSparse VMDK: VMware Workstation and
	// Fusion, VirtualBox, qemu and Proxmox open it.
	FormatSparse OutputFormat = "monolithicSparse"
	// FormatRaw is a raw image (missing grains read as zeros).
	FormatRaw OutputFormat = "raw"
	// FormatStream is a streamOptimized VMDK in the VMware layout (GD at
	// the end, markers, footer, end-of-stream): what an OVF/OVA carries
	// for import into ESXi or vSphere.
	FormatStream OutputFormat = "streamOptimized"
	// FormatESXi is an ESXi thick disk: a text descriptor NAME.vmdk
	// (createType "vmfs") and its raw extent NAME-flat.vmdk beside it.
	FormatESXi OutputFormat = "esxi"
)

// formatNames are the names --format accepts for each format.
var formatNames = map[string]OutputFormat{
	"monolithicsparse": FormatSparse, "vmdk": FormatSparse, "sparse": FormatSparse,
	"raw": FormatRaw, "dd": FormatRaw,
	"streamoptimized": FormatStream, "stream": FormatStream, "ova": FormatStream, "ovf": FormatStream,
	"esxi": FormatESXi, "vmfs": FormatESXi, "flat": FormatESXi,
}

// FormatHelp lists the output formats and what opens them, for --help.
const FormatHelp = `  monolithicSparse  one .vmdk file: VMware Workstation/Fusion, VirtualBox,
                    qemu and Proxmox open it (also: vmdk, sparse)
  raw               a raw disk image, byte for byte (also: dd)
  streamOptimized   a compressed .vmdk as an OVF/OVA carries it, for import
                    into ESXi/vSphere (also: stream, ova, ovf)
  esxi              an ESXi thick disk for a datastore: the descriptor OUT
                    (NAME.vmdk) and its extent NAME-flat.vmdk beside it
                    (also: vmfs, flat)`

// ParseFormat reads a --format value (case-insensitive, with the aliases
// FormatHelp lists).
func ParseFormat(s string) (OutputFormat, error) {
	if f, ok := formatNames[strings.ToLower(s)]; ok {
		return f, nil
	}
	names := []string{string(FormatSparse), string(FormatRaw), string(FormatStream), string(FormatESXi)}
	return "", fmt.Errorf("unknown output format %q: want one of %s", s, strings.Join(names, ", "))
}

// diskGeometry is what every output format needs of a disk besides its
// grains.
type diskGeometry struct {
	Capacity  uint64 // sectors
	GrainSize uint64 // sectors
	// Descriptor is the original's descriptor, when one was found: its
	// CID, parentCID and DDB are kept.
	Descriptor *vmdk.Descriptor
}

// readGrainFunc reads grain g into buf, as the vmdk writers call it.
type readGrainFunc func(g uint64, buf []byte) (bool, error)

// OutputPaths returns the files writing format f at path creates: path
// itself, and for FormatESXi the flat extent beside it.
func OutputPaths(f OutputFormat, path string) []string {
	if f == FormatESXi {
		return []string{path, filepath.Join(filepath.Dir(path), vmdk.FlatName(filepath.Base(path)))}
	}
	return []string{path}
}

// writeFormat writes a disk at path in format f, each file atomically
// (temp, fsync, rename) with the given mode (0 keeps the temporary file's
// 0600), and returns what it wrote, with each file's SHA-256. The ESXi
// pair is published extent first, so the descriptor never names a file
// that is not there.
func writeFormat(f OutputFormat, path string, mode os.FileMode, geom diskGeometry, read readGrainFunc) ([]OutputFile, error) {
	name := filepath.Base(path)
	switch f {
	case FormatSparse, FormatStream:
		if err := vmdk.CheckExtentName(name); err != nil {
			return nil, err
		}
	}
	var out []OutputFile
	commit := func(a *AtomicFile, p string, format string, size int64) error {
		if mode != 0 {
			if err := a.Chmod(mode); err != nil {
				return fmt.Errorf("pipeline: %s: %w", p, err)
			}
		}
		sum, err := commitHashed(a)
		if err != nil {
			return err
		}
		out = append(out, OutputFile{Path: p, Format: format, Size: size, SHA256: sum})
		return nil
	}
	switch f {
	case FormatSparse:
		a, err := CreateAtomic(path)
		if err != nil {
			return nil, err
		}
		defer a.Abort()
		size, err := vmdk.WriteMonolithicSparse(a, vmdk.SparseWriterOptions{
			Capacity: geom.Capacity, GrainSize: geom.GrainSize, FileName: name, Descriptor: geom.Descriptor,
		}, read)
		if err != nil {
			return nil, err
		}
		return out, commit(a, path, "vmdk", size)
	case FormatStream:
		a, err := CreateAtomic(path)
		if err != nil {
			return nil, err
		}
		defer a.Abort()
		// VMware's own layout (FORMAT.md §3.1): what ovftool and ESXi
		// export, one sequential pass, which ESXi's import reads as a
		// stream. The grain size is 128 sectors, the only one ESXi is
		// known to take in a stream.
		size, err := vmdk.WriteStreamOptimized(a, vmdk.StreamWriterOptions{
			Capacity: geom.Capacity, GrainSize: 128, FileName: name, Descriptor: geom.Descriptor, Layout: vmdk.StreamGDAtEnd,
		}, regrain(geom.GrainSize, 128, geom.Capacity, read))
		if err != nil {
			return nil, err
		}
		return out, commit(a, path, string(FormatStream), size)
	case FormatRaw:
		a, err := CreateAtomic(path)
		if err != nil {
			return nil, err
		}
		defer a.Abort()
		size, err := vmdk.WriteFlat(a, geom.Capacity, geom.GrainSize, read)
		if err != nil {
			return nil, err
		}
		return out, commit(a, path, string(FormatRaw), size)
	case FormatESXi:
		paths := OutputPaths(f, path)
		flatName := filepath.Base(paths[1])
		text, err := vmdk.VMFSDescriptor(vmdk.VMFSDescriptorOptions{Capacity: geom.Capacity, FlatName: flatName, Descriptor: geom.Descriptor})
		if err != nil {
			return nil, err
		}
		a, err := CreateAtomic(paths[1])
		if err != nil {
			return nil, err
		}
		defer a.Abort()
		size, err := vmdk.WriteFlat(a, geom.Capacity, geom.GrainSize, read)
		if err != nil {
			return nil, err
		}
		if err := commit(a, paths[1], "esxi-flat", size); err != nil {
			return nil, err
		}
		d, err := CreateAtomic(path)
		if err != nil {
			os.Remove(paths[1])
			return nil, err
		}
		defer d.Abort()
		if _, err := d.Write(text); err != nil {
			os.Remove(paths[1])
			return nil, fmt.Errorf("pipeline: writing %s: %w", path, err)
		}
		if err := commit(d, path, "esxi-descriptor", int64(len(text))); err != nil {
			os.Remove(paths[1])
			return nil, err
		}
		// The descriptor first: it is the file a user opens.
		slices.Reverse(out)
		return out, nil
	}
	return nil, fmt.Errorf("pipeline: unknown output format %q", f)
}

// regrain reads grains of size want (sectors) through a reader of grains
// of size have, for a writer whose grain size differs from the plan's; a
// disk of capacity sectors. Both are powers of two; a grain of want is
// absent only when every grain of have it covers is. Each read is given
// exactly its grain's bytes (the last grain is cut by the capacity), as
// a plan's reader checks a grain's hash over them.
func regrain(have, want, capacity uint64, read readGrainFunc) readGrainFunc {
	if have == want || have == 0 {
		return read
	}
	hb := int64(have) * vmdk.SectorSize
	wb := int64(want) * vmdk.SectorSize
	capBytes := int64(capacity) * vmdk.SectorSize
	buf := make([]byte, hb)
	if have > want {
		// One plan grain holds several output grains: read it once.
		cached, cachedOK := int64(-1), false
		return func(g uint64, out []byte) (bool, error) {
			start := int64(g) * wb
			pg := start / hb
			if pg != cached {
				b := buf[:min(hb, capBytes-pg*hb)]
				clear(buf)
				ok, err := read(uint64(pg), b)
				if err != nil {
					return false, err
				}
				cached, cachedOK = pg, ok
			}
			if !cachedOK {
				return false, nil
			}
			copy(out, buf[start-pg*hb:])
			return true, nil
		}
	}
	per := want / have
	return func(g uint64, out []byte) (bool, error) {
		found := false
		for off := int64(0); off < int64(len(out)); off += hb {
			b := buf[:min(hb, int64(len(out))-off)]
			clear(b)
			ok, err := read(g*per+uint64(off/hb), b)
			if err != nil {
				return false, err
			}
			if ok {
				copy(out[off:], b)
				found = true
			}
		}
		return found, nil
	}
}

// extraSuffix names the file of an extra format beside disk-NN.vmdk.
var extraSuffix = map[OutputFormat]string{
	FormatRaw:    ".raw",
	FormatStream: "-stream.vmdk",
	FormatESXi:   "-esxi.vmdk",
}

// extraFormats lists, once each, the formats opts asks for besides the
// monolithicSparse disk-NN.vmdk (which FormatSparse names).
func extraFormats(opts RebuildOptions) []OutputFormat {
	formats := slices.Clone(opts.Formats)
	if opts.Raw {
		formats = append(formats, FormatRaw)
	}
	var list []OutputFormat
	for _, f := range formats {
		if _, ok := extraSuffix[f]; ok && !slices.Contains(list, f) {
			list = append(list, f)
		}
	}
	return list
}

// writeExtraFormats writes the formats opts asks for besides the
// monolithicSparse disk-NN.vmdk into dir (the case's disks/), and returns
// them with their paths relative to the case, as the report lists them.
func writeExtraFormats(dir, name string, opts RebuildOptions, d *reassemble.Disk, read readGrainFunc) ([]OutputFile, error) {
	geom := diskGeometry{Capacity: d.Capacity, GrainSize: d.GrainSize, Descriptor: d.Descriptor}
	var out []OutputFile
	for _, f := range extraFormats(opts) {
		files, err := writeFormat(f, filepath.Join(dir, name+extraSuffix[f]), 0, geom, read)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range files {
			o.Path = filepath.Join(DisksDirName, filepath.Base(o.Path))
			out = append(out, o)
		}
	}
	return out, nil
}
