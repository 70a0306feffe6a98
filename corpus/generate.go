package corpus

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"

	"vmdkcarve/vmdk"
)

// File names inside the output directory.
const (
	ImageName = "image.dd"
	TruthName = "truth.json"
)

// RawName is the file name of a guest disk's ground-truth raw image.
func RawName(id int) string { return fmt.Sprintf("disk-%02d.raw", id) }

// fileAlign is the alignment of seeded file offsets: a 4 KiB filesystem
// cluster, where NTFS and ext4 put the start of a file.
const fileAlign = 4096

// imageBlock is the unit the image is generated and written in; memory
// stays at one block whatever the image size.
const imageBlock = 4 << 20

// HaveQemu reports whether qemu-img is installed.
func HaveQemu() bool {
	_, err := exec.LookPath("qemu-img")
	return err == nil
}

// made is one VMDK file as its writer made it, before it is laid and damaged.
// Files with the same disk and variant are identical, so each is made once.
type made struct {
	key    fileKey
	name   string // base name, also in the descriptor's extent line
	path   string
	length int64
	header *vmdk.SparseHeader // nil for a flat extent
	grains []GrainTruth       // FileOffset set; ImageOffset set when laid
	// A flat variant's text descriptor, the second file of the pair
	// (name and path above are the extent's, NAME-flat.vmdk).
	descName string // NAME.vmdk
	descPath string // "" for other variants
	descLen  int64
	desc     *vmdk.Descriptor
}

type fileKey struct {
	disk    int
	variant Variant
}

// span is a damaged byte range of a file.
type span struct {
	off, n int64
	zero   bool // zeros, else noise
}

// Generate writes the evidence image, the guest disks and truth.json into
// dir (created if needed) and returns the truth. Intermediate files go to a
// temporary directory inside dir, removed on return. It returns an error
// wrapping ErrNoQemu when spec needs qemu-img and it is absent, and one
// wrapping ErrSpec for an invalid spec or files that do not fit.
func Generate(spec Spec, dir string) (*Truth, error) {
	if _, err := spec.validate(); err != nil {
		return nil, err
	}
	var err error
	qemu := ""
	if spec.NeedsQemu() {
		if qemu, err = exec.LookPath("qemu-img"); err != nil {
			return nil, fmt.Errorf("%w (needed for qemu variants): %v", ErrNoQemu, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".corpus-tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	truth := &Truth{Seed: spec.Seed, Image: filepath.Join(dir, ImageName), ImageSize: spec.ImageSize, Fill: spec.NoiseFill.String()}
	disks := make(map[int]*disk, len(spec.Disks))
	for _, ds := range spec.Disks {
		raw := filepath.Join(dir, RawName(ds.ID))
		var d *disk
		var gfs *GuestFSTruth
		if ds.FS != "" {
			if gfs, err = buildGuest(spec.Seed, ds, raw, tmp); err != nil {
				return nil, err
			}
			if d, err = newDiskFromRaw(spec.Seed, ds, raw); err != nil {
				return nil, err
			}
			defer d.src.(io.Closer).Close()
		} else {
			d = newDisk(spec.Seed, ds)
			if err := d.writeRaw(raw); err != nil {
				return nil, err
			}
		}
		disks[ds.ID] = d
		truth.Disks = append(truth.Disks, DiskTruth{
			ID: ds.ID, Raw: raw, Capacity: ds.Capacity, GrainSize: GrainSectors,
			Grains: d.grains, NonZeroGrains: d.nonZero, RandomGrains: d.random, RandomMiBs: d.randMiBs, FS: gfs,
		})
	}

	files, err := makeFiles(spec, disks, dir, tmp, qemu)
	if err != nil {
		return nil, err
	}
	offsets := make([]int64, len(spec.Files))
	descOffsets := make([]int64, len(spec.Files)) // -1: no descriptor laid
	for i, f := range spec.Files {
		descOffsets[i] = -1
		if files[fileKey{f.Disk, f.Variant}].descPath != "" && !f.NoDescriptor && f.Decoy == nil {
			descOffsets[i] = 0 // to be placed
		}
	}
	var vol *volume
	var hostRanges []Range // host damage, image offsets
	var noiseFrags [][]Fragment
	if spec.Host != nil {
		if vol, err = buildHost(spec, files, tmp); err != nil {
			return nil, err
		}
		truth.Host = vol.truth(spec.Host)
		for _, d := range truth.Host.Damage {
			hostRanges = append(hostRanges, d.Ranges...)
		}
		for i := range spec.Files {
			fr := vol.frags[i]
			if len(fr) == 0 || fr[0].FileOffset != 0 {
				return nil, fmt.Errorf("corpus: file %d: the host stored no first block", i)
			}
			offsets[i] = fr[0].ImageOffset
			if descOffsets[i] < 0 {
				continue
			}
			if fr = vol.frags[descSlot(i)]; len(fr) == 0 || fr[0].FileOffset != 0 {
				return nil, fmt.Errorf("corpus: file %d: the host stored no descriptor", i)
			}
			descOffsets[i] = fr[0].ImageOffset
		}
	} else {
		// The files (or their pieces), then the descriptors, each at
		// its own place.
		if noiseFrags, offsets, err = layNoise(spec, files, descOffsets); err != nil {
			return nil, err
		}
	}

	var allRanges []Range
	hostPath := map[int]string{} // by hostFile.slot
	if spec.Host != nil {
		for _, f := range hostPaths(spec, files) {
			hostPath[f.slot()] = f.path
		}
	}
	for i, fs := range spec.Files {
		m := files[fileKey{fs.Disk, fs.Variant}]
		var frags []Fragment
		if vol != nil {
			frags = vol.frags[i]
		} else {
			frags = noiseFrags[i]
		}
		ft, err := layFile(i, fs, m, offsets[i], frags, hostRanges)
		if err != nil {
			return nil, err
		}
		ft.HostPath = hostPath[i]
		if m.descPath != "" {
			ft.Descriptor = layDescriptor(m, descOffsets[i], vol, descSlot(i), hostRanges)
			if ft.Descriptor.Laid() {
				ft.Descriptor.HostPath = hostPath[descSlot(i)]
			}
		}
		for _, d := range ft.Damage {
			allRanges = append(allRanges, d.Ranges...)
		}
		truth.Files = append(truth.Files, *ft)
	}

	if err := writeImage(spec, truth, files, vol, allRanges); err != nil {
		return nil, err
	}
	if err := truth.Save(filepath.Join(dir, TruthName)); err != nil {
		return nil, err
	}
	return truth, nil
}

// makeFiles makes each distinct (disk, variant) file once, in parallel:
// each file depends only on its own inputs, so the result does not depend
// on scheduling.
func makeFiles(spec Spec, disks map[int]*disk, dir, tmp, qemu string) (map[fileKey]*made, error) {
	var keys []fileKey
	out := make(map[fileKey]*made)
	for _, f := range spec.Files {
		k := fileKey{f.Disk, f.Variant}
		if out[k] == nil {
			base := fmt.Sprintf("disk-%02d-%s", k.disk, k.variant)
			m := &made{key: k, name: base + ".vmdk", path: filepath.Join(tmp, base+".vmdk")}
			if k.variant.Flat() {
				// NAME.vmdk is the descriptor naming NAME-flat.vmdk.
				m.descName, m.descPath = m.name, m.path
				m.name = base + "-flat.vmdk"
				m.path = filepath.Join(tmp, m.name)
			}
			out[k] = m
			keys = append(keys, k)
		}
	}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			m := out[k]
			errs[i] = makeFile(spec.Seed, disks[k.disk], m, filepath.Join(dir, RawName(k.disk)), qemu)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("corpus: making %s: %w", m.name, errs[i])
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func makeFile(seed uint64, d *disk, m *made, raw, qemu string) error {
	// A seeded CID: writers' own CIDs are random (qemu) or derived from
	// the name, and the corpus must be reproducible.
	cid := uint32(mix(seed ^ uint64(d.id)<<32 ^ uint64(slices.Index(Variants, m.key.variant))))
	tmpl := &vmdk.Descriptor{CID: cid, ParentCID: 0xffffffff, HasCID: true, DDB: map[string]string{
		"ddb.adapterType": "ide", "ddb.virtualHWVersion": "4",
	}}
	capSectors := uint64(d.capacity / 512)
	read := d.read

	switch v := m.key.variant; v {
	case QemuSparse, QemuStream, QemuFlat:
		args := []string{"convert", "-f", "raw", "-O", "vmdk"}
		target := m.path
		switch v {
		case QemuStream:
			args = append(args, "-o", "subformat=streamOptimized")
		case QemuFlat:
			// qemu writes the descriptor where told and the extent
			// beside it as NAME-flat.vmdk.
			args = append(args, "-o", "subformat=monolithicFlat")
			target = m.descPath
		}
		out, err := exec.Command(qemu, append(args, raw, target)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("qemu-img %v: %w: %s", args, err, bytes.TrimSpace(out))
		}
		if v == QemuFlat {
			err = patchDescriptorCID(m.descPath, cid)
		} else {
			err = patchCID(m.path, cid)
		}
		if err != nil {
			return err
		}
	case VMFSFlat:
		// The extent is the raw disk (kept sparse here; its content is
		// the whole disk), the descriptor ours.
		if err := copyFile(m.path, raw); err != nil {
			return err
		}
		text, err := vmfsDescriptor(seed, d, cid, m.name).Encode()
		if err != nil {
			return err
		}
		if err := os.WriteFile(m.descPath, text, 0o644); err != nil {
			return err
		}
	default:
		f, err := os.Create(m.path)
		if err != nil {
			return err
		}
		switch v {
		case OursSparse, OursSparseGuestOrder:
			opts := vmdk.SparseWriterOptions{Capacity: capSectors, GrainSize: GrainSectors, FileName: m.name, Descriptor: tmpl}
			if v == OursSparseGuestOrder {
				rng := rand.New(rand.NewPCG(seed, mix(uint64(d.id)^0x6f72646572))) // "order"
				opts.Order = make([]uint64, d.grains)
				for i, g := range rng.Perm(int(d.grains)) {
					opts.Order[i] = uint64(g)
				}
			}
			_, err = vmdk.WriteMonolithicSparse(f, opts, read)
		case OursStreamFront, VMwareStream:
			layout := vmdk.StreamGDFront
			if v == VMwareStream {
				layout = vmdk.StreamGDAtEnd
			}
			_, err = vmdk.WriteStreamOptimized(f, vmdk.StreamWriterOptions{
				Capacity: capSectors, GrainSize: GrainSectors, FileName: m.name, Descriptor: tmpl, Layout: layout,
			}, read)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if m.key.variant.Flat() {
		return mapFlat(d, m, raw)
	}
	return mapFile(d, m)
}

// vmfsDescriptor is the descriptor ESXi writes beside a thick disk's
// NAME-flat.vmdk (FORMAT.md §4.4), with a seeded CID and ddb.uuid.
func vmfsDescriptor(seed uint64, d *disk, cid uint32, extent string) *vmdk.Descriptor {
	sectors := uint64(d.capacity / 512)
	u := [2]uint64{mix(seed ^ uint64(d.id)<<32 ^ 0x75756964), mix(seed ^ uint64(d.id)<<32 ^ 0x64697575)} // "uuid", "diuu"
	// VMware's form: 16 hex bytes, spaces between, a dash in the middle.
	var uuid []byte
	for i := range 16 {
		switch {
		case i == 8:
			uuid = append(uuid, '-')
		case i > 0:
			uuid = append(uuid, ' ')
		}
		uuid = fmt.Appendf(uuid, "%02x", byte(u[i/8]>>(8*(i%8))))
	}
	return &vmdk.Descriptor{
		Version: 1, CID: cid, ParentCID: 0xffffffff, HasCID: true, CreateType: "vmfs",
		Extents: []vmdk.Extent{{Access: "RW", Sectors: sectors, Type: "VMFS", FileName: extent}},
		DDB: map[string]string{
			"ddb.adapterType":        "lsilogic",
			"ddb.virtualHWVersion":   "14",
			"ddb.uuid":               string(uuid),
			"ddb.geometry.cylinders": fmt.Sprint(max(sectors/(255*63), 1)),
			"ddb.geometry.heads":     "255",
			"ddb.geometry.sectors":   "63",
		},
	}
}

// patchCID replaces the random CID qemu-img writes with a seeded one.
// qemu prints the CID without zero padding, so its width varies from run
// to run: the descriptor text is rewritten with an 8-digit CID and
// re-padded with NULs to the same area, so nothing outside it moves.
func patchCID(path string, cid uint32) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	area := make([]byte, 20*512)
	if _, err := f.ReadAt(area, 512); err != nil {
		return err
	}
	out, err := replaceCID(area, cid)
	if err != nil {
		return err
	}
	if len(out) > len(area) {
		return errors.New("descriptor does not fit its area after the CID patch")
	}
	clear(area)
	copy(area, out)
	if _, err := f.WriteAt(area, 512); err != nil {
		return err
	}
	return f.Close()
}

// patchDescriptorCID is patchCID for a separate descriptor file (qemu's
// monolithicFlat): the text is rewritten the same way and re-padded with
// NULs to the file's size, growing it only if it must.
func patchDescriptorCID(path string, cid uint32) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceCID(b, cid)
	if err != nil {
		return err
	}
	if len(out) < len(b) {
		out = append(out, make([]byte, len(b)-len(out))...)
	}
	return os.WriteFile(path, out, 0o644)
}

// replaceCID returns the descriptor text of area (up to its first NUL)
// with its CID line rewritten as CID=%08x.
func replaceCID(area []byte, cid uint32) ([]byte, error) {
	text := area
	if n := bytes.IndexByte(area, 0); n >= 0 {
		text = area[:n]
	}
	i := bytes.Index(text, []byte("\nCID="))
	if i < 0 {
		return nil, errors.New("no CID line in the qemu-img descriptor")
	}
	end := bytes.IndexByte(text[i+1:], '\n')
	if end < 0 {
		return nil, errors.New("unterminated CID line in the qemu-img descriptor")
	}
	var out []byte
	out = append(out, text[:i]...)
	out = fmt.Appendf(out, "\nCID=%08x", cid)
	return append(out, text[i+1+end:]...), nil
}

// mapFlat records a flat extent's length and grain map (every non-zero
// grain g at file offset g*65536) and its descriptor, checking that the
// extent is the raw disk byte for byte and that the descriptor names it
// with the disk's size.
func mapFlat(d *disk, m *made, raw string) error {
	text, err := os.ReadFile(m.descPath)
	if err != nil {
		return err
	}
	m.descLen = int64(len(text))
	desc, err := vmdk.ParseDescriptor(text)
	if err != nil {
		return fmt.Errorf("descriptor %s: %w", m.descName, err)
	}
	typ := "FLAT"
	if m.key.variant == VMFSFlat {
		typ = "VMFS"
	}
	if len(desc.Extents) != 1 || desc.Extents[0] != (vmdk.Extent{Access: "RW", Sectors: uint64(d.capacity / 512), Type: typ, FileName: m.name}) {
		return fmt.Errorf("descriptor %s: extents %+v, want one RW %s extent of %d sectors named %s", m.descName, desc.Extents, typ, d.capacity/512, m.name)
	}
	m.desc = desc

	f, err := openMade(m)
	if err != nil {
		return err
	}
	defer f.Close()
	if m.length != d.capacity {
		return fmt.Errorf("extent is %d bytes, the disk %d", m.length, d.capacity)
	}
	r, err := os.Open(raw)
	if err != nil {
		return err
	}
	defer r.Close()
	a, b := make([]byte, grainBytes), make([]byte, grainBytes)
	for g := range d.grains {
		n := d.grainLen(g)
		off := int64(g) * grainBytes
		if _, err := f.ReadAt(a[:n], off); err != nil {
			return err
		}
		if _, err := r.ReadAt(b[:n], off); err != nil {
			return err
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return fmt.Errorf("grain %d of the extent differs from the raw disk", g)
		}
		if !d.zero[g] {
			m.grains = append(m.grains, GrainTruth{Grain: g, FileOffset: off, Length: int64(n)})
		}
	}
	return nil
}

// openMade opens a made file and records its length.
func openMade(m *made) (*os.File, error) {
	f, err := os.Open(m.path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	m.length = st.Size()
	return f, nil
}

// mapFile records the length, effective header and grain map of a made
// file, and checks that the writer allocated exactly the non-zero grains.
func mapFile(d *disk, m *made) error {
	f, err := openMade(m)
	if err != nil {
		return err
	}
	defer f.Close()
	h, gmap, err := vmdk.GrainMap(f, m.length)
	if err != nil {
		return fmt.Errorf("grain map: %w", err)
	}
	m.header = h
	if uint64(len(gmap)) != d.grains {
		return fmt.Errorf("grain map has %d grains, the disk %d", len(gmap), d.grains)
	}
	var marker [14]byte
	for g, sec := range gmap {
		if sec == 0 {
			if !d.zero[g] {
				return fmt.Errorf("non-zero grain %d not allocated", g)
			}
			continue
		}
		if d.zero[g] {
			return fmt.Errorf("zero grain %d allocated at sector %d", g, sec)
		}
		off := int64(sec) * 512
		n := min(int64(grainBytes), m.length-off)
		if h.Compressed() {
			if _, err := f.ReadAt(marker[:], off); err != nil {
				return fmt.Errorf("grain %d marker: %w", g, err)
			}
			gm, ok := vmdk.PeekGrainMarker(marker[:], h.GrainSize, h.Capacity)
			if !ok || gm.LBA != uint64(g)*h.GrainSize {
				return fmt.Errorf("grain %d: no valid grain marker at sector %d", g, sec)
			}
			n = gm.RecordBytes()
		}
		m.grains = append(m.grains, GrainTruth{Grain: uint64(g), FileOffset: off, Length: n})
	}
	return nil
}

// placeItem is one file or piece to place: a fixed offset, or 0 for a
// seeded one.
type placeItem struct {
	what           string // for errors: "file 2", "file 2's descriptor", "file 2's piece 3"
	offset, length int64
	// parts, when set, are the runs the item occupies, as offsets
	// relative to its start and lengths: the item is placed where all of
	// it is free, and the rest of it is left to later items (the gaps
	// between an in-order file's pieces).
	parts [][2]int64
	// group > 0 makes the item piece seq of an out-of-order file: when
	// all of a group's pieces come out in file order, one is moved so
	// that they are not.
	group, seq int
}

// place returns the image offset of every item: the given offset, or a
// seeded 4096-aligned offset drawn uniformly from all places where the
// item fits without overlapping another. Larger items are placed first so
// that a tight image still fits them (ties in the given order).
func place(seed uint64, imageSize int64, items []placeItem) ([]int64, error) {
	type iv struct{ start, end int64 }
	var used []iv
	overlaps := func(s, e int64) bool {
		for _, u := range used {
			if s < u.end && u.start < e {
				return true
			}
		}
		return false
	}
	occupy := func(it placeItem, at int64) {
		if it.parts == nil {
			used = append(used, iv{at, at + it.length})
		}
		for _, p := range it.parts {
			used = append(used, iv{at + p[0], at + p[0] + p[1]})
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x706c616365)) // "place"
	// seat draws a free aligned start s in [lo, hi-n].
	seat := func(n, lo, hi int64) (int64, bool) {
		slices.SortFunc(used, func(a, b iv) int { return cmp.Compare(a.start, b.start) })
		// Gaps between used intervals; candidate starts are aligned.
		type gap struct{ first, count int64 }
		var gaps []gap
		var total int64
		prev := lo
		for _, u := range append(used, iv{hi, hi}) {
			first := (prev + fileAlign - 1) / fileAlign * fileAlign
			if last := min(u.start, hi) - n; last >= first {
				c := (last-first)/fileAlign + 1
				gaps = append(gaps, gap{first, c})
				total += c
			}
			if prev = max(prev, u.end); prev >= hi {
				break
			}
		}
		if total == 0 {
			return 0, false
		}
		k := rng.Int64N(total)
		for _, g := range gaps {
			if k < g.count {
				return g.first + k*fileAlign, true
			}
			k -= g.count
		}
		panic("unreachable")
	}
	offsets := make([]int64, len(items))
	var free []int
	for i, it := range items {
		if it.offset == 0 {
			free = append(free, i)
			continue
		}
		end := it.offset + it.length
		if end > imageSize || overlaps(it.offset, end) {
			return nil, specErr("%s (%d bytes) at offset %d overlaps another or runs past the image", it.what, it.length, it.offset)
		}
		offsets[i] = it.offset
		occupy(it, it.offset)
	}
	slices.SortStableFunc(free, func(a, b int) int { return cmp.Compare(items[b].length, items[a].length) })
	for _, i := range free {
		at, ok := seat(items[i].length, 0, imageSize)
		if !ok {
			return nil, specErr("%s (%d bytes) does not fit in the %d-byte image", items[i].what, items[i].length, imageSize)
		}
		offsets[i] = at
		occupy(items[i], at)
	}

	// Out-of-order files that came out in order (by chance, as a file of
	// two pieces does half the time): the last piece moves before the
	// first, or else the first after the last.
	groups := map[int][]int{} // group -> item indexes by seq
	var ids []int
	for i, it := range items {
		if it.group > 0 {
			if groups[it.group] == nil {
				ids = append(ids, it.group)
			}
			groups[it.group] = append(groups[it.group], i)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		g := groups[id]
		slices.SortFunc(g, func(a, b int) int { return cmp.Compare(items[a].seq, items[b].seq) })
		if len(g) < 2 || !slices.IsSortedFunc(g, func(a, b int) int { return cmp.Compare(offsets[a], offsets[b]) }) {
			continue
		}
		first, last := g[0], g[len(g)-1]
		release := func(i int) {
			used = slices.DeleteFunc(used, func(u iv) bool { return u.start == offsets[i] })
		}
		release(last)
		if at, ok := seat(items[last].length, 0, offsets[first]); ok {
			offsets[last] = at
			occupy(items[last], at)
			continue
		}
		occupy(items[last], offsets[last])
		release(first)
		at, ok := seat(items[first].length, offsets[last]+items[last].length, imageSize)
		if !ok {
			return nil, specErr("%s: no room to lay its pieces out of order in the %d-byte image", items[first].what, imageSize)
		}
		offsets[first] = at
		occupy(items[first], at)
	}
	return offsets, nil
}

// layFile resolves the damage of one laid copy and places its grains.
// frags is the file's fragment map in image offsets (nil: one contiguous
// run at at): a host file's, or the pieces of one laid without a host;
// hostRanges is the host damage, which also breaks grains.
func layFile(index int, fs FileSpec, m *made, at int64, frags []Fragment, hostRanges []Range) (*FileTruth, error) {
	ft := &FileTruth{
		Index: index, Disk: fs.Disk, Variant: fs.Variant, Name: m.name,
		ImageOffset: at, Length: m.length, Header: m.header, Fragments: frags, Decoy: fs.Decoy,
	}
	if frags == nil {
		frags = []Fragment{{0, at, m.length}}
	}
	damaged := slices.Clone(hostRanges)
	for _, dmg := range fs.Damage {
		s, err := damageSpans(dmg, m)
		if err != nil {
			return nil, fmt.Errorf("%w: file %d: %v", ErrSpec, index, err)
		}
		dt := DamageTruth{Damage: dmg}
		if dmg.Kind == EncryptChunks && dmg.SizeStep {
			dt.Stride = EffectiveStride(dmg, m.length)
		}
		for _, sp := range s {
			fill := "noise"
			if sp.zero {
				fill = "zero"
			}
			// Through the fragment map: damage to a host hole changes
			// nothing on the disk.
			for _, p := range mapRange(frags, sp.off, sp.n) {
				dt.Ranges = append(dt.Ranges, Range{ImageOffset: p.ImageOffset, Length: p.Length, Fill: fill})
			}
		}
		ft.Damage = append(ft.Damage, dt)
		damaged = append(damaged, dt.Ranges...)
	}
	hit := newRangeSet(damaged)
	for _, g := range m.grains {
		pieces := mapRange(frags, g.FileOffset, g.Length)
		if len(pieces) == 1 && pieces[0].Length == g.Length {
			g.ImageOffset = pieces[0].ImageOffset
		} else {
			// Straddles fragments or holds host holes (see GrainTruth).
			g.Pieces = pieces
			g.ImageOffset = -1
			if len(pieces) > 0 {
				g.ImageOffset = pieces[0].ImageOffset
			}
		}
		// A decoy's bytes outside its piece were not laid at all (on a
		// host, bytes in no fragment are holes that read as zeros).
		var laid int64
		g.Intact = true
		for _, p := range pieces {
			laid += p.Length
			if hit.overlaps(p.ImageOffset, p.ImageOffset+p.Length) {
				g.Intact = false
			}
		}
		if fs.Decoy != nil && laid < g.Length {
			g.Intact = false
		}
		if g.Intact {
			ft.IntactGrains++
		}
		ft.Grains = append(ft.Grains, g)
	}
	return ft, nil
}

// layDescriptor places the descriptor of a flat file laid at image offset
// at (-1: not laid); vol, when set, holds its fragments under slot.
func layDescriptor(m *made, at int64, vol *volume, slot int, hostRanges []Range) *DescriptorTruth {
	d := &DescriptorTruth{Name: m.descName, ImageOffset: at, Length: m.descLen, Parsed: m.desc}
	if at < 0 {
		return d
	}
	frags := []Fragment{{0, at, m.descLen}}
	if vol != nil {
		d.Fragments = vol.frags[slot]
		d.Fixups, d.Resident = vol.fixups[slot]
		if len(d.Fixups) == 0 {
			d.Fixups = nil
		}
		frags = d.Fragments
	}
	d.Intact = true
	for _, p := range frags {
		if overlapsAny(hostRanges, p.ImageOffset, p.ImageOffset+p.Length) {
			d.Intact = false
		}
	}
	return d
}

// overlapsAny reports whether [s, e) overlaps a range of rs. A plain
// scan: a corpus has at most a few thousand ranges and grains.
func overlapsAny(rs []Range, s, e int64) bool {
	for _, r := range rs {
		if r.ImageOffset < e && s < r.End() {
			return true
		}
	}
	return false
}

// rangeSet answers overlap queries over many ranges (an encrypted file
// has a range per chunk, a disk up to a million grains): the ranges sorted
// by start, with the furthest end reached by each prefix.
type rangeSet struct {
	starts, reach []int64
}

func newRangeSet(rs []Range) *rangeSet {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.ImageOffset, b.ImageOffset) })
	s := &rangeSet{starts: make([]int64, len(rs)), reach: make([]int64, len(rs))}
	for i, r := range rs {
		s.starts[i], s.reach[i] = r.ImageOffset, r.End()
		if i > 0 {
			s.reach[i] = max(s.reach[i], s.reach[i-1])
		}
	}
	return s
}

// overlaps reports whether [start, end) overlaps a non-empty range of the set.
func (s *rangeSet) overlaps(start, end int64) bool {
	// The ranges starting before end; one of them reaches past start?
	n, _ := slices.BinarySearch(s.starts, end)
	return n > 0 && s.reach[n-1] > start
}

// damageSpans turns one damage into file byte ranges.
func damageSpans(d Damage, m *made) ([]span, error) {
	h := m.header
	switch d.Kind {
	case ZeroHeader:
		return []span{{0, 512, true}}, nil
	case CutTail:
		if d.Bytes > m.length {
			return nil, fmt.Errorf("cut-tail of %d bytes from a %d-byte file", d.Bytes, m.length)
		}
		return []span{{m.length - d.Bytes, d.Bytes, false}}, nil
	case Overwrite:
		if d.At+d.Bytes > m.length {
			return nil, fmt.Errorf("overwrite of %d bytes at %d runs past the %d-byte file", d.Bytes, d.At, m.length)
		}
		return []span{{d.At, d.Bytes, false}}, nil
	case EncryptChunks:
		chunks := d.Chunks(m.length)
		switch {
		case len(chunks) == 0:
			return nil, fmt.Errorf("%s encrypts nothing of the %d-byte file", d.Kind, m.length)
		case len(chunks) > MaxChunks:
			return nil, fmt.Errorf("%s makes more than %d chunks in the %d-byte file", d.Kind, MaxChunks, m.length)
		}
		spans := make([]span, len(chunks))
		for i, c := range chunks {
			spans[i] = span{c[0], c[1] - c[0], false}
		}
		return spans, nil
	case ZeroPrimaryTables, ZeroRedundantTables, ZeroGrainTables:
		gdSector := h.GDOffset
		if d.Kind == ZeroRedundantTables {
			if !h.HasRedundantGD() {
				return nil, fmt.Errorf("%s: a %s file has no redundant tables", d.Kind, m.key.variant)
			}
			gdSector = h.RGDOffset
		}
		f, err := os.Open(m.path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		gd, err := vmdk.ReadTable(f, m.length, gdSector, h.GDEntries())
		if err != nil {
			return nil, err
		}
		var spans []span
		if d.Kind != ZeroGrainTables {
			spans = append(spans, span{int64(gdSector) * 512, int64(h.GDSectors()) * 512, true})
		}
		if d.Kind == ZeroGrainTables && h.HasRedundantGD() {
			rgd, err := vmdk.ReadTable(f, m.length, h.RGDOffset, h.GDEntries())
			if err != nil {
				return nil, err
			}
			gd = append(gd, rgd...)
		}
		for _, gde := range gd {
			if gde != 0 {
				spans = append(spans, span{int64(gde) * 512, int64(h.GTSectors()) * 512, true})
			}
		}
		return spans, nil
	}
	return nil, fmt.Errorf("unknown damage %q", d.Kind)
}

// writeImage streams the image in blocks: background, then the laid files,
// then the damage over them.
func writeImage(spec Spec, truth *Truth, files map[fileKey]*made, vol *volume, damage []Range) error {
	type laid struct {
		start, end int64
		r          io.ReaderAt
		at         int64 // r's offset of the byte at start
	}
	var lays []laid
	if vol != nil {
		// The host volume (holding the files and its own damage) and the
		// MBR naming it; the files are not laid again.
		if spec.Host.Offset >= 512 {
			lays = append(lays, laid{0, 512, bytes.NewReader(mbrFor(spec.Host, spec.Seed)), 0})
		}
		f, err := os.Open(vol.path)
		if err != nil {
			return err
		}
		defer f.Close()
		lays = append(lays, laid{spec.Host.Offset, spec.Host.Offset + spec.Host.Size, f, 0})
	}
	for _, ft := range truth.Files {
		if vol != nil {
			break
		}
		m := files[fileKey{ft.Disk, ft.Variant}]
		f, err := os.Open(m.path)
		if err != nil {
			return err
		}
		defer f.Close()
		runs := ft.Fragments // pieces, or a decoy's one piece
		if runs == nil {
			runs = []Fragment{{0, ft.ImageOffset, ft.Length}}
		}
		for _, p := range runs {
			lays = append(lays, laid{p.ImageOffset, p.ImageOffset + p.Length, f, p.FileOffset})
		}
		if d := ft.Descriptor; d.Laid() {
			df, err := os.Open(m.descPath)
			if err != nil {
				return err
			}
			defer df.Close()
			lays = append(lays, laid{d.ImageOffset, d.ImageOffset + d.Length, df, 0})
		}
	}
	tmpPath := truth.Image + ".tmp"
	out, err := os.Create(tmpPath)
	if err != nil {
		return err
	}
	defer os.Remove(tmpPath) // a no-op after the rename
	buf := make([]byte, imageBlock)
	for off := int64(0); off < spec.ImageSize; off += imageBlock {
		b := buf[:min(imageBlock, spec.ImageSize-off)]
		end := off + int64(len(b))
		touched := false
		if spec.NoiseFill == Noise {
			fillNoise(spec.Seed, streamImage, off, b)
			touched = true
		} else {
			clear(b)
		}
		for _, l := range lays {
			s, e := max(off, l.start), min(end, l.end)
			if s >= e {
				continue
			}
			// ReadAt of a sparse (qemu) file reads its holes as zeros:
			// the file's logical bytes are what a copy would hold.
			if _, err := l.r.ReadAt(b[s-off:e-off], l.at+s-l.start); err != nil {
				out.Close()
				return err
			}
			touched = true
		}
		for _, r := range damage {
			s, e := max(off, r.ImageOffset), min(end, r.End())
			if s >= e {
				continue
			}
			if r.Fill == "zero" {
				clear(b[s-off : e-off])
			} else {
				fillNoise(spec.Seed, streamDamage, s, b[s-off:e-off])
			}
			touched = true
		}
		if !touched {
			continue // a zero-filled image stays sparse
		}
		if _, err := out.WriteAt(b, off); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Truncate(spec.ImageSize); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmpPath, truth.Image)
}
