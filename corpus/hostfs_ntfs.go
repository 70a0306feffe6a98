package corpus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NTFS host volumes.
//
// What the tools do (ntfs-3g 2022.10.3, checked by the tests):
//   - mkntfs -T (zero time) makes a byte-identical volume run to run.
//     ntfscp has no such option: it stamps the current time into the new
//     file's $STANDARD_INFORMATION and $FILE_NAME and into the directory's
//     index entry. normalizeNTFSTimes rewrites every FILETIME inside the
//     window of the copy (in the $MFT's and the directories' index
//     records, fixups applied) to mkntfs -T's time, so the image is
//     byte-identical too.
//   - ntfscp does not keep holes: a sparse source is stored in full, and
//     on a fresh volume each file is one contiguous run.
//   - ntfscp cannot delete, so fragmentation cannot come from the
//     allocator. Instead fragmentNTFS moves each file's clusters into a
//     seeded set of free runs (in file order, or shuffled for OutOfOrder),
//     writes the new runlist into the file's $DATA attribute (mapping
//     pairs encoder below, update sequence fixed up), updates $Bitmap and
//     zeroes the clusters the file left. The truth is then read back from
//     ntfsinfo's runlist, not from what we wrote (they are checked equal).

// ntfsZeroTime is the FILETIME of 1970-01-01, what mkntfs -T writes.
const ntfsZeroTime = 116444736000000000

func mkntfs(path string, h *HostSpec, quick bool) error {
	tool, err := needTool("mkntfs")
	if err != nil {
		return err
	}
	// -f: quick (no zeroing, no bad-sector scan) both for the first format
	// (the file is sparse zeros anyway) and the damaging re-format. -p,
	// -H and -S make the boot sector's geometry match the MBR partition.
	_, err = run([]string{"LC_ALL=C"}, tool, "-F", "-q", "-f", "-T", "-c", strconv.Itoa(h.blockSize()), "-s", "512",
		"-p", strconv.FormatInt(h.Offset/512, 10), "-H", "255", "-S", "63", path)
	return err
}

var (
	ntfsAttr    = regexp.MustCompile(`^Dumping attribute (\$\w+) \(0x[0-9a-f]+\) from mft record (\d+)`)
	ntfsRunLine = regexp.MustCompile(`^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s*$`)
)

// ntfsRuns returns the runlists ntfsinfo prints for one file ("/path") or
// inode ("<N>"), by attribute name, in clusters, and the MFT record number.
func ntfsRuns(vol, file string) (map[string][][3]int64, int64, error) {
	tool, err := needTool("ntfsinfo")
	if err != nil {
		return nil, 0, err
	}
	args := []string{"-v", "-F", file, vol}
	if n, ok := strings.CutPrefix(file, "<"); ok {
		args = []string{"-v", "-i", strings.TrimSuffix(n, ">"), vol}
	}
	out, err := run([]string{"LC_ALL=C"}, tool, args...)
	if err != nil {
		return nil, 0, err
	}
	runs := map[string][][3]int64{}
	attr, rec := "", int64(-1)
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if m := ntfsAttr.FindStringSubmatch(line); m != nil {
			attr = m[1]
			rec, _ = strconv.ParseInt(m[2], 10, 64)
			continue
		}
		if m := ntfsRunLine.FindStringSubmatch(line); m != nil && attr != "" {
			var r [3]int64
			for i := range r {
				r[i], _ = strconv.ParseInt(m[i+1], 16, 64)
			}
			runs[attr] = append(runs[attr], r)
		}
	}
	if rec < 0 {
		return nil, 0, fmt.Errorf("ntfsinfo printed no attributes for %s:\n%s", file, out)
	}
	return runs, rec, nil
}

// buildNTFS makes the volume, copies the files in and fragments them.
func buildNTFS(spec Spec, files []hostFile, tmp string) (*volume, error) {
	for _, t := range HostTools(FSNTFS) {
		if _, err := needTool(t); err != nil {
			return nil, err
		}
	}
	h := spec.Host
	v := &volume{path: tmp + "/host.vol", frags: map[int][]Fragment{}, fixups: map[int][]int64{}}
	if err := makeSparse(v.path, h.Size); err != nil {
		return nil, err
	}
	if err := mkntfs(v.path, h, false); err != nil {
		return nil, err
	}
	ntfscp, _ := needTool("ntfscp")
	t0 := time.Now()
	for _, f := range files {
		if _, err := run([]string{"LC_ALL=C"}, ntfscp, "-q", v.path, f.src, f.path); err != nil {
			if strings.Contains(err.Error(), "space") {
				return nil, specErr("%s does not fit on the %d-byte ntfs volume: %v", f.path, h.Size, err)
			}
			return nil, err
		}
	}
	t1 := time.Now()
	if err := normalizeNTFSTimes(v.path, t0, t1); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(files, func(f hostFile) bool { return f.frags > 1 }) {
		if err := fragmentNTFS(spec, v.path, files); err != nil {
			return nil, err
		}
	}
	C := int64(h.blockSize())
	for _, f := range files {
		runs, rec, err := ntfsRuns(v.path, f.path)
		if err != nil {
			return nil, err
		}
		if _, ok := runs["$DATA"]; !ok && f.size > 0 {
			// No runlist: a small file (a flat extent's descriptor)
			// resident in its MFT record.
			fr, fix, err := residentData(v.path, rec, f.size)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.path, err)
			}
			v.frags[f.slot()], v.fixups[f.slot()] = []Fragment{fr}, fix
			continue
		}
		var frags []Fragment
		for _, r := range runs["$DATA"] {
			frags = append(frags, Fragment{FileOffset: r[0] * C, ImageOffset: r[1] * C, Length: r[2] * C})
		}
		v.frags[f.slot()] = clipFrags(mergeFrags(frags), f.size)
	}
	// Structures: boot sectors and the system files' runs, from ntfsinfo.
	v.structures = []Structure{{"boot-sector", 0, 512}, {"backup-boot-sector", h.Size - 512, 512}}
	for _, sys := range []struct {
		inode, attr, name string
	}{
		{"<0>", "$DATA", "mft"}, {"<0>", "$BITMAP", "mft-bitmap"}, {"<1>", "$DATA", "mft-mirror"},
		{"<2>", "$DATA", "logfile"}, {"<6>", "$DATA", "bitmap"}, {"<5>", "$INDEX_ALLOCATION", "root-index"},
	} {
		runs, _, err := ntfsRuns(v.path, sys.inode)
		if err != nil {
			return nil, err
		}
		for i, r := range runs[sys.attr] {
			name := sys.name
			if i > 0 {
				name += "-continued"
			}
			v.structures = append(v.structures, Structure{name, r[1] * C, r[2] * C})
		}
	}
	return v, nil
}

// ntfsVol gives access to a volume's raw records.
type ntfsVol struct {
	f       *os.File
	cluster int64
	recSize int64
	mft     [][3]int64 // $MFT runs (vcn, lcn, len)
}

func openNTFS(path string) (*ntfsVol, error) {
	runs, _, err := ntfsRuns(path, "<0>")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	var bs [512]byte
	if _, err := f.ReadAt(bs[:], 0); err != nil {
		f.Close()
		return nil, err
	}
	v := &ntfsVol{f: f, mft: runs["$DATA"]}
	v.cluster = int64(binary.LittleEndian.Uint16(bs[0x0b:])) * int64(bs[0x0d])
	if c := int8(bs[0x40]); c < 0 {
		v.recSize = 1 << -c
	} else {
		v.recSize = int64(c) * v.cluster
	}
	if v.cluster == 0 || v.recSize < 512 || v.recSize > 4096 {
		f.Close()
		return nil, fmt.Errorf("ntfs boot sector: cluster %d, record %d", v.cluster, v.recSize)
	}
	return v, nil
}

// recordOffset is the volume offset of MFT record n.
func (v *ntfsVol) recordOffset(n int64) (int64, error) {
	off := n * v.recSize
	for _, r := range v.mft {
		if s := r[0] * v.cluster; off >= s && off < s+r[2]*v.cluster {
			return r[1]*v.cluster + off - s, nil
		}
	}
	return 0, fmt.Errorf("mft record %d is outside the $MFT", n)
}

// unfix applies a multi-sector record's update sequence in place: the
// last two bytes of each sector go back to the values saved in the array.
func unfix(rec []byte) error {
	usa := int(binary.LittleEndian.Uint16(rec[4:]))
	n := int(binary.LittleEndian.Uint16(rec[6:]))
	if n < 2 || usa+2*n > len(rec) || (n-1)*512 != len(rec) {
		return errors.New("bad update sequence array")
	}
	usn := rec[usa : usa+2]
	for i := 1; i < n; i++ {
		end := i*512 - 2
		if !bytes.Equal(rec[end:end+2], usn) {
			return fmt.Errorf("update sequence mismatch in sector %d", i-1)
		}
		copy(rec[end:end+2], rec[usa+2*i:usa+2*i+2])
	}
	return nil
}

// refix is unfix's inverse: save each sector's last two bytes in the
// array and put the sequence number there.
func refix(rec []byte) {
	usa := int(binary.LittleEndian.Uint16(rec[4:]))
	n := int(binary.LittleEndian.Uint16(rec[6:]))
	for i := 1; i < n; i++ {
		end := i*512 - 2
		copy(rec[usa+2*i:usa+2*i+2], rec[end:end+2])
		copy(rec[end:end+2], rec[usa:usa+2])
	}
}

// normalizeNTFSTimes rewrites to ntfsZeroTime every 8-aligned FILETIME
// inside [t0-2s, t1+2s] in the FILE records of the $MFT and the INDX
// records of the root directory. A random 8-byte value falls in a
// 4-second window with probability about 2^-39 per slot.
func normalizeNTFSTimes(path string, t0, t1 time.Time) error {
	ft := func(t time.Time) uint64 { return uint64(t.UnixNano()/100) + ntfsZeroTime }
	lo, hi := ft(t0.Add(-2*time.Second)), ft(t1.Add(2*time.Second))
	v, err := openNTFS(path)
	if err != nil {
		return err
	}
	defer v.f.Close()
	root, _, err := ntfsRuns(path, "<5>")
	if err != nil {
		return err
	}
	type region struct {
		runs  [][3]int64
		size  int64
		magic string
	}
	for _, rg := range []region{{v.mft, v.recSize, "FILE"}, {root["$INDEX_ALLOCATION"], 4096, "INDX"}} {
		for _, r := range rg.runs {
			for off := r[1] * v.cluster; off+rg.size <= (r[1]+r[2])*v.cluster; off += rg.size {
				rec := make([]byte, rg.size)
				if _, err := v.f.ReadAt(rec, off); err != nil {
					return err
				}
				if string(rec[:4]) != rg.magic || unfix(rec) != nil {
					continue
				}
				changed := false
				for i := 0; i+8 <= len(rec); i += 8 {
					if t := binary.LittleEndian.Uint64(rec[i:]); t >= lo && t <= hi {
						binary.LittleEndian.PutUint64(rec[i:], ntfsZeroTime)
						changed = true
					}
				}
				if !changed {
					continue
				}
				refix(rec)
				if _, err := v.f.WriteAt(rec, off); err != nil {
					return err
				}
			}
		}
	}
	return v.f.Close()
}

// encodeRuns encodes (lcn, length) runs as NTFS mapping pairs: per run a
// header byte (offset bytes << 4 | length bytes), the length, then the LCN
// delta from the previous run, both little-endian signed, minimal width;
// a zero byte ends the list.
func encodeRuns(runs [][2]int64) []byte {
	var out []byte
	prev := int64(0)
	for _, r := range runs {
		l, d := signedLE(r[1]), signedLE(r[0]-prev)
		out = append(out, byte(len(d)<<4|len(l)))
		out = append(out, l...)
		out = append(out, d...)
		prev = r[0]
	}
	return append(out, 0)
}

// signedLE is v in the fewest little-endian bytes that sign-extend back.
func signedLE(v int64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	n := 8
	for n > 1 {
		top, next := b[n-1], b[n-2]
		if (top == 0 && next&0x80 == 0) || (top == 0xff && next&0x80 != 0) {
			n--
			continue
		}
		break
	}
	return b[:n]
}

// fragmentNTFS moves every file into seeded pieces (see the file comment).
func fragmentNTFS(spec Spec, path string, files []hostFile) error {
	h := spec.Host
	v, err := openNTFS(path)
	if err != nil {
		return err
	}
	defer v.f.Close()
	C := v.cluster
	bmRuns, _, err := ntfsRuns(path, "<6>")
	if err != nil {
		return err
	}
	total := h.Size / C
	bitmap := make([]byte, (total+7)/8)
	if err := readRuns(v.f, bmRuns["$DATA"], C, bitmap); err != nil {
		return err
	}
	used := func(c int64) bool { return bitmap[c/8]&(1<<(c%8)) != 0 }
	set := func(c int64, on bool) {
		if on {
			bitmap[c/8] |= 1 << (c % 8)
		} else {
			bitmap[c/8] &^= 1 << (c % 8)
		}
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x6e746673)) // "ntfs"
	buf := make([]byte, C)
	for _, f := range files {
		if f.frags < 2 {
			continue
		}
		runs, recNo, err := ntfsRuns(path, f.path)
		if err != nil {
			return err
		}
		old := runs["$DATA"]
		var n int64
		for _, r := range old {
			n += r[2]
		}
		sizes := splitSeeded(rng, n, f.frags)
		order := make([]int, len(sizes)) // disk order of the pieces
		for i := range order {
			order[i] = i
		}
		if h.OutOfOrder {
			for len(order) > 1 {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				if !slices.IsSorted(order) {
					break
				}
			}
		}
		// Place the pieces in disk order from a seeded start, each after
		// a free gap of 1..8 clusters so no two pieces touch.
		lcn := make([]int64, len(sizes))
		cur := rng.Int64N(total / 2)
		for _, p := range order {
			gap := 1 + rng.Int64N(8)
			at, ok := findFree(used, total, cur, gap, sizes[p])
			if !ok {
				if at, ok = findFree(used, total, 0, gap, sizes[p]); !ok {
					return specErr("%s: no room for a %d-cluster piece on the %d-byte ntfs volume", f.path, sizes[p], h.Size)
				}
			}
			lcn[p] = at
			for c := at; c < at+sizes[p]; c++ {
				set(c, true)
			}
			cur = at + sizes[p]
		}
		// Copy the clusters, file order, then free and zero the old ones.
		src := func(vcn int64) int64 {
			for _, r := range old {
				if vcn >= r[0] && vcn < r[0]+r[2] {
					return r[1] + vcn - r[0]
				}
			}
			return -1
		}
		vcn := int64(0)
		var newRuns [][2]int64
		for p, sz := range sizes {
			for i := int64(0); i < sz; i++ {
				if _, err := v.f.ReadAt(buf, src(vcn+i)*C); err != nil {
					return err
				}
				if _, err := v.f.WriteAt(buf, (lcn[p]+i)*C); err != nil {
					return err
				}
			}
			newRuns = append(newRuns, [2]int64{lcn[p], sz})
			vcn += sz
		}
		clear(buf)
		for _, r := range old {
			for c := r[1]; c < r[1]+r[2]; c++ {
				if !inRuns(newRuns, c) {
					set(c, false)
					if _, err := v.f.WriteAt(buf, c*C); err != nil {
						return err
					}
				}
			}
		}
		if err := v.setRunlist(recNo, newRuns); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		// The tool must read back what we wrote.
		back, _, err := ntfsRuns(path, f.path)
		if err != nil {
			return err
		}
		var got [][2]int64
		for _, r := range back["$DATA"] {
			got = append(got, [2]int64{r[1], r[2]})
		}
		if !slices.Equal(got, newRuns) {
			return fmt.Errorf("%s: ntfsinfo reads runlist %v, we wrote %v", f.path, got, newRuns)
		}
	}
	if err := writeRuns(v.f, bmRuns["$DATA"], C, bitmap); err != nil {
		return err
	}
	return v.f.Close()
}

func inRuns(runs [][2]int64, c int64) bool {
	for _, r := range runs {
		if c >= r[0] && c < r[0]+r[1] {
			return true
		}
	}
	return false
}

// findFree returns the first cluster at or after from with gap free
// clusters before it and n free clusters from it.
func findFree(used func(int64) bool, total, from, gap, n int64) (int64, bool) {
	run := int64(0)
	for c := from; c < total; c++ {
		if used(c) {
			run = 0
			continue
		}
		run++
		if run == gap+n {
			return c - n + 1, true
		}
	}
	return 0, false
}

// readRuns reads the bytes of a non-resident attribute into buf.
func readRuns(f *os.File, runs [][3]int64, C int64, buf []byte) error {
	for _, r := range runs {
		s := r[0] * C
		if s >= int64(len(buf)) {
			break
		}
		e := min(int64(len(buf)), s+r[2]*C)
		if _, err := f.ReadAt(buf[s:e], r[1]*C); err != nil {
			return err
		}
	}
	return nil
}

func writeRuns(f *os.File, runs [][3]int64, C int64, buf []byte) error {
	for _, r := range runs {
		s := r[0] * C
		if s >= int64(len(buf)) {
			break
		}
		e := min(int64(len(buf)), s+r[2]*C)
		if _, err := f.WriteAt(buf[s:e], r[1]*C); err != nil {
			return err
		}
	}
	return nil
}

// MFT record and attribute header offsets (NTFS on-disk layout).
const (
	recBytesInUse  = 0x18
	recBytesAlloc  = 0x1c
	recFirstAttr   = 0x14
	attrTypeData   = 0x80
	attrEnd        = 0xffffffff
	attrNonRes     = 0x08
	attrNameLen    = 0x09
	attrLength     = 0x04
	attrPairsOff   = 0x20
	attrHighestVCN = 0x18
	attrValueLen   = 0x10 // resident: u32 value length
	attrValueOff   = 0x14 // resident: u16 value offset in the attribute
)

// findData returns the record offset of the unnamed $DATA attribute of a
// fixed-up MFT record, resident or not as asked.
func findData(rec []byte, recNo int64, resident bool) (int, error) {
	inUse := min(int(binary.LittleEndian.Uint32(rec[recBytesInUse:])), len(rec))
	a := int(binary.LittleEndian.Uint16(rec[recFirstAttr:]))
	for a+24 <= inUse {
		typ := binary.LittleEndian.Uint32(rec[a:])
		alen := int(binary.LittleEndian.Uint32(rec[a+attrLength:]))
		if typ == attrEnd || alen < 16 || a+alen > inUse {
			break
		}
		if typ == attrTypeData && rec[a+attrNameLen] == 0 && (rec[a+attrNonRes] == 0) == resident {
			return a, nil
		}
		a += alen
	}
	kind := "non-resident"
	if resident {
		kind = "resident"
	}
	return 0, fmt.Errorf("mft record %d: no %s $DATA", recNo, kind)
}

// residentData locates the value of a resident unnamed $DATA attribute of
// MFT record recNo: the volume range holding it and the update-sequence
// slots (the last two bytes of each 512-byte sector of the record) that
// overlap it, where the volume holds the sequence number instead.
func residentData(path string, recNo, size int64) (Fragment, []int64, error) {
	v, err := openNTFS(path)
	if err != nil {
		return Fragment{}, nil, err
	}
	defer v.f.Close()
	off, err := v.recordOffset(recNo)
	if err != nil {
		return Fragment{}, nil, err
	}
	rec := make([]byte, v.recSize)
	if _, err := v.f.ReadAt(rec, off); err != nil {
		return Fragment{}, nil, err
	}
	if string(rec[:4]) != "FILE" {
		return Fragment{}, nil, fmt.Errorf("mft record %d: no FILE magic", recNo)
	}
	if err := unfix(rec); err != nil {
		return Fragment{}, nil, fmt.Errorf("mft record %d: %w", recNo, err)
	}
	a, err := findData(rec, recNo, true)
	if err != nil {
		return Fragment{}, nil, err
	}
	n := int64(binary.LittleEndian.Uint32(rec[a+attrValueLen:]))
	start := int64(a) + int64(binary.LittleEndian.Uint16(rec[a+attrValueOff:]))
	if n != size || start+n > int64(len(rec)) {
		return Fragment{}, nil, fmt.Errorf("mft record %d: resident $DATA of %d bytes at %d, the file has %d", recNo, n, start, size)
	}
	fix := []int64{} // non-nil: resident
	for end := int64(510); end < int64(len(rec)); end += 512 {
		if end+2 > start && end < start+n {
			fix = append(fix, off+end)
		}
	}
	return Fragment{FileOffset: 0, ImageOffset: off + start, Length: n}, fix, nil
}

// setRunlist replaces the mapping pairs of the unnamed $DATA attribute of
// MFT record recNo, moving the attributes after it.
func (v *ntfsVol) setRunlist(recNo int64, runs [][2]int64) error {
	off, err := v.recordOffset(recNo)
	if err != nil {
		return err
	}
	rec := make([]byte, v.recSize)
	if _, err := v.f.ReadAt(rec, off); err != nil {
		return err
	}
	if string(rec[:4]) != "FILE" {
		return fmt.Errorf("mft record %d: no FILE magic", recNo)
	}
	if err := unfix(rec); err != nil {
		return fmt.Errorf("mft record %d: %w", recNo, err)
	}
	inUse := int(binary.LittleEndian.Uint32(rec[recBytesInUse:]))
	alloc := int(binary.LittleEndian.Uint32(rec[recBytesAlloc:]))
	a := int(binary.LittleEndian.Uint16(rec[recFirstAttr:]))
	for {
		if a+16 > inUse {
			return fmt.Errorf("mft record %d: no non-resident $DATA", recNo)
		}
		typ := binary.LittleEndian.Uint32(rec[a:])
		alen := int(binary.LittleEndian.Uint32(rec[a+attrLength:]))
		if typ == attrEnd || alen < 16 || a+alen > inUse {
			return fmt.Errorf("mft record %d: no non-resident $DATA", recNo)
		}
		if typ == attrTypeData && rec[a+attrNameLen] == 0 && rec[a+attrNonRes] == 1 {
			break
		}
		a += alen
	}
	alen := int(binary.LittleEndian.Uint32(rec[a+attrLength:]))
	po := int(binary.LittleEndian.Uint16(rec[a+attrPairsOff:]))
	pairs := encodeRuns(runs)
	newLen := (po + len(pairs) + 7) &^ 7
	delta := newLen - alen
	if inUse+delta > alloc {
		return fmt.Errorf("mft record %d: %d-byte runlist does not fit", recNo, len(pairs))
	}
	var vcns int64
	for _, r := range runs {
		vcns += r[1]
	}
	if hi := int64(binary.LittleEndian.Uint64(rec[a+attrHighestVCN:])); hi != vcns-1 {
		return fmt.Errorf("mft record %d: highest vcn %d, runs cover %d clusters", recNo, hi, vcns)
	}
	tail := slices.Clone(rec[a+alen : inUse])
	copy(rec[a+newLen:], tail)
	clear(rec[a+po : a+newLen])
	copy(rec[a+po:], pairs)
	if delta < 0 {
		clear(rec[inUse+delta : inUse])
	}
	binary.LittleEndian.PutUint32(rec[a+attrLength:], uint32(newLen))
	binary.LittleEndian.PutUint32(rec[recBytesInUse:], uint32(inUse+delta))
	refix(rec)
	_, err = v.f.WriteAt(rec, off)
	return err
}
