package corpus

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// damageHost applies the host damages to the volume file, in order, and
// records each one's ranges (volume offsets; shifted to the image when the
// volume is laid). Damage is written into the volume itself rather than at
// image time so that a later damage sees an earlier one (a quick format
// after zeroed superblocks writes new ones).
func damageHost(spec Spec, v *volume, files []hostFile, tmp string) error {
	h := spec.Host
	f, err := os.OpenFile(v.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for i, d := range h.Damage {
		var ranges []Range
		var encrypted []EncryptedFileTruth
		switch d.Kind {
		case QuickFormat, Reformat:
			if err := f.Sync(); err != nil {
				return err
			}
			if ranges, err = quickFormat(spec, v, tmp, uint64(i), d.Kind == QuickFormat); err != nil {
				return err
			}
		case ZeroSuperblocks:
			ranges = structRanges(v, "superblock", "group-descriptors")
		case ZeroBootSector:
			ranges = structRanges(v, "boot-sector")
		case ZeroMFT:
			// The first run only: exactly the structure named "mft".
			for _, st := range v.structures {
				if st.Name == "mft" {
					ranges = append(ranges, Range{ImageOffset: st.ImageOffset, Length: st.Length, Fill: "zero"})
				}
			}
		case WipeHostMetadata:
			ranges = wipeRanges(v, h.Size)
		case EncryptEveryNthMiB:
			// Every file named .vmdk, flat descriptors too.
			fd := d.fileDamage()
			for _, hf := range files {
				chunks := fd.Chunks(hf.size)
				if len(chunks) > MaxChunks {
					return specErr("%s: more than %d chunks in %s", d.Kind, MaxChunks, hf.path)
				}
				for _, c := range chunks {
					for _, p := range mapRange(v.frags[hf.slot()], c[0], c[1]-c[0]) {
						ranges = append(ranges, Range{ImageOffset: p.ImageOffset, Length: p.Length, Fill: "noise"})
					}
				}
				encrypted = append(encrypted, EncryptedFileTruth{HostPath: hf.path, FileIndex: hf.index, Descriptor: hf.desc,
					Size: hf.size, Stride: EffectiveStride(fd, hf.size), Phase: d.Offset, Head: d.Head})
			}
		}
		if len(ranges) == 0 {
			return specErr("host damage %s changed nothing on this volume", d.Kind)
		}
		for _, r := range ranges {
			if r.Fill == "mkfs" {
				continue // mkfs wrote these bytes itself: they are the damage
			}
			if err := fillRange(f, spec.Seed, h.Offset, r); err != nil {
				return err
			}
		}
		v.damage = append(v.damage, HostDamageTruth{HostDamage: d, Ranges: ranges, Files: encrypted})
	}
	return f.Close()
}

// structRanges returns zero ranges over every structure whose name
// contains one of the given words (so "superblock" also names backups).
func structRanges(v *volume, words ...string) []Range {
	var out []Range
	for _, s := range v.structures {
		for _, w := range words {
			if strings.Contains(s.Name, w) && !strings.HasSuffix(s.Name, "mirror") {
				out = append(out, Range{ImageOffset: s.ImageOffset, Length: s.Length, Fill: "zero"})
				break
			}
		}
	}
	return out
}

// wipeRanges is the volume minus the data runs of every file.
func wipeRanges(v *volume, size int64) []Range {
	var data []Fragment
	for _, fs := range v.frags {
		data = append(data, fs...)
	}
	data = append(data, v.fillers...)
	slices.SortFunc(data, func(a, b Fragment) int { return int(a.ImageOffset - b.ImageOffset) })
	var out []Range
	pos := int64(0)
	for _, d := range append(data, Fragment{ImageOffset: size}) {
		if d.ImageOffset > pos {
			out = append(out, Range{ImageOffset: pos, Length: d.ImageOffset - pos, Fill: "zero"})
		}
		pos = max(pos, d.ImageOffset+d.Length)
	}
	return out
}

// fillRange writes zeros or damage noise over r (volume offsets; the noise
// is keyed by image offset, base being the volume's image offset).
func fillRange(f *os.File, seed uint64, base int64, r Range) error {
	buf := make([]byte, min(r.Length, imageBlock))
	for off := r.ImageOffset; off < r.End(); off += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), r.End()-off)]
		if r.Fill == "noise" {
			fillNoise(seed, streamDamage, base+off, b)
		} else {
			clear(b)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// quickFormat re-runs mkfs over the volume and returns the sectors it
// changed, found by comparing with a copy taken before. quick leaves the
// new inode tables and journal unwritten (ext4 lazy init); otherwise mkfs
// writes them out, zeroing the old inodes that lay there (Reformat).
func quickFormat(spec Spec, v *volume, tmp string, n uint64, quick bool) ([]Range, error) {
	old := v.path + ".before-format"
	if err := copyFile(old, v.path); err != nil {
		return nil, err
	}
	defer os.Remove(old)
	// A reformat draws a new UUID: a different seed purpose.
	seed := mix(spec.Seed ^ 0x666f726d6174 ^ n) // "format"
	var err error
	switch spec.Host.FS {
	case FSExt4:
		err = mkfsExt4(v.path, tmp, spec.Host.blockSize(), seed, quick)
	case FSNTFS:
		err = mkntfs(v.path, spec.Host, true)
	}
	if err != nil {
		return nil, err
	}
	return diffFiles(old, v.path)
}

// diffFiles returns the 512-byte sectors where two equal-sized files
// differ, merged into runs, streaming both in blocks.
func diffFiles(a, b string) ([]Range, error) {
	fa, err := os.Open(a)
	if err != nil {
		return nil, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return nil, err
	}
	defer fb.Close()
	ba, bb := make([]byte, imageBlock), make([]byte, imageBlock)
	var out []Range
	for off := int64(0); ; off += imageBlock {
		na, ea := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb)
		if na != nb {
			return nil, fmt.Errorf("%s and %s differ in size", a, b)
		}
		for s := 0; s < na; s += 512 {
			e := min(s+512, na)
			if bytes.Equal(ba[s:e], bb[s:e]) {
				continue
			}
			at := off + int64(s)
			if k := len(out); k > 0 && out[k-1].End() == at {
				out[k-1].Length += int64(e - s)
			} else {
				out = append(out, Range{ImageOffset: at, Length: int64(e - s), Fill: "mkfs"})
			}
		}
		if ea != nil {
			return out, nil
		}
	}
}

// copyFile copies src to dst, keeping dst sparse where src reads zero.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	buf := make([]byte, imageBlock)
	zero := make([]byte, 4096)
	for off := int64(0); ; off += imageBlock {
		n, rerr := io.ReadFull(in, buf)
		for s := 0; s < n; s += 4096 {
			e := min(s+4096, n)
			if bytes.Equal(buf[s:e], zero[:e-s]) {
				continue
			}
			if _, err := out.WriteAt(buf[s:e], off+int64(s)); err != nil {
				out.Close()
				return err
			}
		}
		if rerr != nil {
			break
		}
	}
	if err := out.Truncate(st.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
