package corpus

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ext4 host volumes.
//
// What the tools do (e2fsprogs 1.47.0, checked by the tests):
//   - Determinism: mkfs.ext4 and debugfs stamp the current time into the
//     superblock, inodes and journal; E2FSPROGS_FAKE_TIME fixes it. The
//     UUID (-U), directory hash seed (hash_seed=), root owner and every
//     size-dependent parameter are passed explicitly, and MKE2FS_CONFIG
//     points at an empty file so the host's mke2fs.conf cannot change the
//     layout. With these the volume is byte-identical run to run.
//   - Holes: debugfs "write" keeps the holes of a sparse source AND skips
//     every all-zero block of a dense one, so a VMDK's zero padding, unused
//     grain-table space and zero blocks inside grains are not stored: a
//     file's fragments cover only its non-zero blocks. The truth records
//     exactly the stored runs (from debugfs "ex"); the rest reads as zeros.
//   - Allocation: the goal of a file's first block is its flex group's
//     first block, and each next block's goal is the block after the
//     previous one (or extrapolated across a logical hole), searching
//     forward and wrapping only at the end of the volume. So holes made by
//     deleting filler files are filled in disk order: fragments come out in
//     file order. OutOfOrder is therefore not achievable with debugfs alone
//     and is ignored on ext4 (the truth shows the real order).

// ext4FakeTime is the time stamped into every ext4 structure: 2015-01-01.
const ext4FakeTime = "1420070400"

var (
	// " 0/ 0   1/  2     0 -     3   990 -   993      4 [Uninit]"
	exLeaf = regexp.MustCompile(`^\s*(\d+)/\s*(\d+)\s+\d+/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*-\s*(\d+)\s+(\d+)(.*)$`)
	// index node: " 0/ 1   1/  1     0 - 4294967295  1234   4294967295"
	exIndex = regexp.MustCompile(`^\s*(\d+)/\s*(\d+)\s+\d+/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s+\d+\s*$`)
	// dumpe2fs group lines.
	dumpSB    = regexp.MustCompile(`(Primary|Backup) superblock at (\d+), Group descriptors at (\d+)-(\d+)`)
	dumpRange = regexp.MustCompile(`(Reserved GDT blocks|Inode table) at (\d+)-(\d+)`)
	dumpOne   = regexp.MustCompile(`(Block bitmap|Inode bitmap) at (\d+)`)
)

// ext4Env is the environment every e2fsprogs tool runs with.
func ext4Env(tmp string) []string {
	return []string{"E2FSPROGS_FAKE_TIME=" + ext4FakeTime, "MKE2FS_CONFIG=" + filepath.Join(tmp, "mke2fs.conf"), "LC_ALL=C"}
}

// seededUUID is a version-4-shaped UUID drawn from the seed and a purpose.
func seededUUID(seed, purpose uint64) string {
	a, b := mix(seed^purpose), mix(seed^purpose^0x75756964)
	b = b&^(0xf<<60) | 4<<60
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, a>>16&0xffff, b>>48&0xffff, 0x8000|b>>32&0x3fff, a&0xffff<<32|b&0xffffffff)
}

// mkfsExt4 formats path (an existing file of the volume's size). quick
// leaves the inode tables and the journal unwritten (lazy init), as a
// quick reformat over an old volume does.
func mkfsExt4(path, tmp string, bs int, seed uint64, quick bool) error {
	tool, err := needTool("mkfs.ext4")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "mke2fs.conf"), nil, 0o644); err != nil {
		return err
	}
	lazy := "lazy_itable_init=0,lazy_journal_init=0"
	if quick {
		lazy = "lazy_itable_init=1,lazy_journal_init=1"
	}
	// nodiscard: discard on a file punches holes, destroying the old data
	// a quick format must leave. The feature list is the ext4 default,
	// spelled out because the config file is empty.
	args := []string{"-q", "-F", "-t", "ext4", "-b", strconv.Itoa(bs), "-I", "256", "-i", "16384", "-m", "0",
		"-O", "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr",
		"-U", seededUUID(seed, 0x65787434), // "ext4"
		"-E", lazy + ",nodiscard,root_owner=0:0,hash_seed=" + seededUUID(seed, 0x68617368), // "hash"
		path}
	_, err = run(ext4Env(tmp), tool, args...)
	return err
}

// debugfs runs a debugfs command script over the volume.
func debugfs(tmp, vol string, write bool, cmds []string) ([]byte, error) {
	tool, err := needTool("debugfs")
	if err != nil {
		return nil, err
	}
	script := filepath.Join(tmp, "debugfs.cmd")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-f", script, vol}
	if write {
		args = append([]string{"-w"}, args...)
	}
	return run(ext4Env(tmp), tool, args...)
}

// ext4Extents returns the data runs of each named file (volume offsets),
// parsed from debugfs "ex", and the extent-tree index and leaf blocks.
func ext4Extents(tmp, vol string, bs int, paths []string) (map[string][]Fragment, []int64, error) {
	var cmds []string
	for _, p := range paths {
		cmds = append(cmds, "ex "+p)
	}
	out, err := debugfs(tmp, vol, false, cmds)
	if err != nil {
		return nil, nil, err
	}
	res := map[string][]Fragment{}
	var tree []int64
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "debugfs: ex "); ok {
			cur = p
			res[cur] = []Fragment{}
			continue
		}
		if m := exLeaf.FindStringSubmatch(line); m != nil && cur != "" {
			if m[1] != m[2] || strings.Contains(m[8], "Uninit") {
				continue // not a leaf, or an unwritten extent (reads as zeros)
			}
			l, _ := strconv.ParseInt(m[3], 10, 64)
			p, _ := strconv.ParseInt(m[5], 10, 64)
			n, _ := strconv.ParseInt(m[7], 10, 64)
			res[cur] = append(res[cur], Fragment{FileOffset: l * int64(bs), ImageOffset: p * int64(bs), Length: n * int64(bs)})
			continue
		}
		if m := exIndex.FindStringSubmatch(line); m != nil && cur != "" {
			b, _ := strconv.ParseInt(m[3], 10, 64)
			tree = append(tree, b)
		}
	}
	for _, p := range paths {
		if _, ok := res[p]; !ok {
			return nil, nil, fmt.Errorf("debugfs printed no extents for %s:\n%s", p, out)
		}
		res[p] = mergeFrags(res[p])
	}
	return res, tree, nil
}

// mergeFrags sorts fragments by file offset and joins runs contiguous in
// both the file and the image (ext4 caps one extent at 32768 blocks, which
// is not a fragment boundary).
func mergeFrags(fs []Fragment) []Fragment {
	slices.SortFunc(fs, func(a, b Fragment) int { return int(a.FileOffset - b.FileOffset) })
	var out []Fragment
	for _, f := range fs {
		if n := len(out); n > 0 && out[n-1].FileOffset+out[n-1].Length == f.FileOffset && out[n-1].ImageOffset+out[n-1].Length == f.ImageOffset {
			out[n-1].Length += f.Length
			continue
		}
		out = append(out, f)
	}
	return out
}

// clipFrags cuts fragments at the file's length (the last block of a
// file is stored whole).
func clipFrags(fs []Fragment, size int64) []Fragment {
	var out []Fragment
	for _, f := range fs {
		if f.FileOffset >= size {
			continue
		}
		f.Length = min(f.Length, size-f.FileOffset)
		out = append(out, f)
	}
	return out
}

// buildExt4 makes the volume and puts the files on it.
//
// Fragmentation: for each VMDK in turn, filler files are written in the
// pattern keep, hole, keep, hole, ... keep; the hole fillers are removed,
// leaving Fragments free runs whose sizes add up to the file's stored
// blocks plus a little slack (the extent-tree leaf the file will need);
// then the VMDK is written and the allocator pours it into the holes in
// order. What it really did is read back with debugfs "ex". A hole may be
// split by a backup superblock group, and a sparse file's logical holes
// move the allocation goal, so the real count can differ a little from
// the target; the truth has the real pieces.
func buildExt4(spec Spec, files []hostFile, tmp string) (*volume, error) {
	for _, t := range HostTools(FSExt4) {
		if _, err := needTool(t); err != nil {
			return nil, err
		}
	}
	h := spec.Host
	bs := h.blockSize()
	v := &volume{path: filepath.Join(tmp, "host.vol"), frags: map[int][]Fragment{}}
	if err := makeSparse(v.path, h.Size); err != nil {
		return nil, err
	}
	if err := mkfsExt4(v.path, tmp, bs, spec.Seed, false); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x65787434)) // "ext4"
	fillerDir := filepath.Join(tmp, "fillers")
	if err := os.MkdirAll(fillerDir, 0o755); err != nil {
		return nil, err
	}
	nextFiller := 0
	var kept []string
	filler := func(blocks int64) (string, error) {
		nextFiller++
		src := filepath.Join(fillerDir, fmt.Sprintf("fill%04d", nextFiller))
		return src, writeFiller(src, nextFiller, blocks*int64(bs))
	}
	for _, f := range files {
		stored, err := nonZeroBlocks(f.src, bs)
		if err != nil {
			return nil, err
		}
		var cmds, holes []string
		if f.frags > 1 {
			// Slack: one extent-tree leaf (and a spare) come out of the holes.
			sizes := splitSeeded(rng, stored+2, f.frags)
			for i, n := range sizes {
				src, err := filler(1 + rng.Int64N(8))
				if err != nil {
					return nil, err
				}
				keep := "/" + filepath.Base(src)
				cmds = append(cmds, fmt.Sprintf("write %s %s", src, keep))
				kept = append(kept, keep)
				if src, err = filler(n); err != nil {
					return nil, err
				}
				hole := "/" + filepath.Base(src)
				cmds = append(cmds, fmt.Sprintf("write %s %s", src, hole))
				holes = append(holes, hole)
				if i == len(sizes)-1 {
					// A last keeper closes the final hole, so the next
					// file's holes start after it.
					if src, err = filler(1 + rng.Int64N(8)); err != nil {
						return nil, err
					}
					keep := "/" + filepath.Base(src)
					cmds = append(cmds, fmt.Sprintf("write %s %s", src, keep))
					kept = append(kept, keep)
				}
			}
			for _, hole := range holes {
				cmds = append(cmds, "rm "+hole)
			}
		}
		cmds = append(cmds, fmt.Sprintf("write %s %s", f.src, f.path))
		if _, err := debugfs(tmp, v.path, true, cmds); err != nil {
			return nil, err
		}
		ex, _, err := ext4Extents(tmp, v.path, bs, []string{f.path})
		if err != nil {
			return nil, err
		}
		frags := clipFrags(ex[f.path], f.size)
		var got int64
		for _, fr := range frags {
			got += (fr.Length + int64(bs) - 1) / int64(bs)
		}
		// debugfs reports a full volume on stderr but exits 0: a short
		// file is how it shows.
		if got != stored {
			return nil, specErr("%s: %d of %d blocks stored on the %d-byte ext4 volume (full?)", f.path, got, stored, h.Size)
		}
		v.frags[f.slot()] = frags
	}
	// The extent-tree blocks, the fillers, the directory and the journal.
	paths := append([]string{"<2>", "<8>"}, kept...)
	for _, f := range files {
		paths = append(paths, f.path)
	}
	ex, tree, err := ext4Extents(tmp, v.path, bs, paths)
	if err != nil {
		return nil, err
	}
	for _, k := range kept {
		v.fillers = append(v.fillers, ex[k]...)
	}
	slices.SortFunc(v.fillers, func(a, b Fragment) int { return int(a.ImageOffset - b.ImageOffset) })
	for _, fr := range ex["<2>"] {
		v.structures = append(v.structures, Structure{"root-directory", fr.ImageOffset, fr.Length})
	}
	for _, fr := range ex["<8>"] {
		v.structures = append(v.structures, Structure{"journal", fr.ImageOffset, fr.Length})
	}
	slices.Sort(tree)
	for _, b := range tree {
		v.structures = append(v.structures, Structure{"extent-tree-block", b * int64(bs), int64(bs)})
	}
	st, err := ext4Structures(v.path, tmp, bs)
	if err != nil {
		return nil, err
	}
	v.structures = append(st, v.structures...)
	return v, nil
}

// ext4Structures lists superblocks, group descriptors, reserved GDT
// blocks, bitmaps and inode tables from dumpe2fs.
func ext4Structures(vol, tmp string, bs int) ([]Structure, error) {
	tool, err := needTool("dumpe2fs")
	if err != nil {
		return nil, err
	}
	out, err := run(ext4Env(tmp), tool, vol)
	if err != nil {
		return nil, err
	}
	B := int64(bs)
	var st []Structure
	seen := map[int64]bool{} // with flex_bg, bitmaps of many groups are listed once each
	add := func(name string, off, n int64) {
		if !seen[off] {
			seen[off] = true
			st = append(st, Structure{name, off, n})
		}
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	for line := range strings.Lines(string(out)) {
		if m := dumpSB.FindStringSubmatch(line); m != nil {
			sb := num(m[2]) * B
			name := "backup-superblock"
			if m[1] == "Primary" {
				sb, name = 1024, "superblock" // at byte 1024 whatever the block size
			}
			add(name, sb, 1024)
			add(strings.Replace(name, "superblock", "group-descriptors", 1), num(m[3])*B, (num(m[4])-num(m[3])+1)*B)
		}
		if m := dumpRange.FindStringSubmatch(line); m != nil {
			add(strings.ToLower(strings.ReplaceAll(m[1], " ", "-")), num(m[2])*B, (num(m[3])-num(m[2])+1)*B)
		}
		if m := dumpOne.FindStringSubmatch(line); m != nil {
			add(strings.ToLower(strings.ReplaceAll(m[1], " ", "-")), num(m[2])*B, B)
		}
	}
	if len(st) == 0 || st[0].Name != "superblock" {
		return nil, fmt.Errorf("dumpe2fs listed no superblock:\n%s", out)
	}
	return st, nil
}

// makeSparse creates a sparse file of n bytes.
func makeSparse(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
