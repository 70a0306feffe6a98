package vmdk

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"vmdkcarve/internal/tooltest"
)

// streamTestImage writes a sparse raw image whose capacity is not a
// multiple of the grain size and spans three 512-grain groups, the middle
// one empty (so the GD_AT_END layout must leave a GDE of 0). It has text
// grains, zero grains, an incompressible random grain and a short last
// grain.
func streamTestImage(t *testing.T, dir string) (path string, capSectors uint64) {
	t.Helper()
	const grain = 128 * SectorSize
	capSectors = 2*GTEsPerGT*128 + 48*128 + 3 // 3 sectors into a last, short grain
	path = filepath.Join(dir, "src.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(capSectors) * SectorSize); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, grain)
	put := func(g uint64, random bool) {
		if random {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
		} else {
			for s := 0; s < len(buf); s += SectorSize {
				copy(buf[s:s+SectorSize], bytes.Repeat([]byte{byte('a' + g%26), byte(s / SectorSize)}, SectorSize/2))
			}
		}
		off := int64(g) * grain
		n := min(int64(len(buf)), int64(capSectors)*SectorSize-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []uint64{0, 1, 2, 5, 6, 100, 511, 1024, 1030, 1071} {
		put(g, false)
	}
	put(7, true)               // incompressible
	put(capSectors/128, false) // the short last grain
	return path, capSectors
}

func rawReader(t *testing.T, path string) (func(uint64, []byte) (bool, error), func()) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return func(g uint64, buf []byte) (bool, error) {
		_, err := f.ReadAt(buf, int64(g)*128*SectorSize)
		if err == io.EOF {
			err = nil
		}
		return true, err
	}, func() { f.Close() }
}

// onlyWriter hides the Seek method of a file to force the two-pass path.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

func TestWriteStreamOptimized(t *testing.T) {
	dir := t.TempDir()
	src, capSectors := streamTestImage(t, dir)
	for _, layout := range []StreamLayout{StreamGDFront, StreamGDAtEnd} {
		t.Run(layout.String(), func(t *testing.T) {
			sub := t.TempDir()
			name := "out.vmdk"
			out := filepath.Join(sub, name)
			read, done := rawReader(t, src)
			defer done()
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			opts := StreamWriterOptions{Capacity: capSectors, FileName: name, Layout: layout}
			n, err := WriteStreamOptimized(f, opts, read)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != n || n%SectorSize != 0 {
				t.Fatalf("returned size %d, file %d bytes", n, len(got))
			}

			// A non-seekable writer must give the same bytes.
			var buf bytes.Buffer
			if _, err := WriteStreamOptimized(onlyWriter{&buf}, opts, read); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), got) {
				t.Fatal("non-seekable output differs from seekable output")
			}

			checkStreamStructure(t, got, layout, src)
			t.Run("qemu-img", func(t *testing.T) { qemuCompare(t, out, src) })
			t.Run("vmdkinfo", func(t *testing.T) { vmdkInfo(t, out) })
		})
	}
}

// checkStreamStructure decodes the file with our own codec: header and
// footer rules, tables, markers, and every grain against the source.
func checkStreamStructure(t *testing.T, b []byte, layout StreamLayout, src string) {
	t.Helper()
	h, err := ParseSparseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 3 || h.Flags != 0x30001 || h.CompressAlgorithm != 1 {
		t.Fatalf("header version %d flags %#x compress %d", h.Version, h.Flags, h.CompressAlgorithm)
	}
	d, err := ParseDescriptor(b[512 : 21*512])
	if err != nil || d.CreateType != "streamOptimized" || len(d.Extents) != 1 || d.Extents[0].FileName != "out.vmdk" || d.Extents[0].Sectors != h.Capacity {
		t.Fatalf("descriptor %+v, %v", d, err)
	}
	if !bytes.Equal(b[len(b)-512:], make([]byte, 512)) {
		t.Fatal("last sector is not an EOS marker")
	}
	gdOffset := h.GDOffset
	switch layout {
	case StreamGDFront:
		if gdOffset != 21 || h.OverHead != 21+h.GDSectors()+4*h.GDEntries() {
			t.Fatalf("gdOffset %d overHead %d", gdOffset, h.OverHead)
		}
	case StreamGDAtEnd:
		if gdOffset != GDAtEnd || h.OverHead != 128 {
			t.Fatalf("gdOffset %#x overHead %d", gdOffset, h.OverHead)
		}
		m, err := ParseMetaMarker(b[len(b)-1536:])
		if err != nil || m.Type != MarkerFooter || m.NumSectors != 1 {
			t.Fatalf("footer marker %+v, %v", m, err)
		}
		footer, err := ParseSparseHeader(b[len(b)-1024:])
		if err != nil {
			t.Fatal(err)
		}
		gdOffset = footer.GDOffset
		m, err = ParseMetaMarker(b[(gdOffset-1)*512:])
		if err != nil || m.Type != MarkerGD || m.NumSectors != h.GDSectors() {
			t.Fatalf("GD marker %+v, %v", m, err)
		}
		if want := uint64(len(b))/512 - 3 - h.GDSectors(); gdOffset != want {
			t.Fatalf("footer gdOffset %d, want %d", gdOffset, want)
		}
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	gd := DecodeEntries(b[gdOffset*512 : (gdOffset+h.GDSectors())*512])[:h.GDEntries()]
	allocated := 0
	grain := make([]byte, h.GrainBytes())
	for i, gde := range gd {
		if gde == 0 {
			if layout == StreamGDFront {
				t.Fatalf("GD-front layout must pre-allocate every GT; GDE %d is 0", i)
			}
			continue
		}
		if layout == StreamGDAtEnd {
			if m, err := ParseMetaMarker(b[(gde-1)*512:]); err != nil || m.Type != MarkerGT {
				t.Fatalf("no GT marker before GT %d: %v", i, err)
			}
		}
		gt := DecodeEntries(b[int(gde)*512 : int(gde)*512+2048])
		for j, gte := range gt {
			if gte == 0 {
				continue
			}
			g := uint64(i*GTEsPerGT + j)
			m, n, err := DecodeGrain(b[int(gte)*512:], grain)
			if err != nil {
				t.Fatalf("grain %d: %v", g, err)
			}
			if m.LBA != g*128 {
				t.Fatalf("grain %d has lba %d", g, m.LBA)
			}
			off := int(g) * len(grain)
			want := raw[off:min(off+len(grain), len(raw))]
			if !bytes.Equal(grain[:n], want) {
				t.Fatalf("grain %d decodes to different data (%d bytes, want %d)", g, n, len(want))
			}
			allocated++
		}
	}
	// Every non-zero grain of the source must be allocated, and nothing else.
	nonZero := 0
	for off := 0; off < len(raw); off += len(grain) {
		if !streamAllZero(raw[off:min(off+len(grain), len(raw))]) {
			nonZero++
		}
	}
	if allocated != nonZero {
		t.Fatalf("%d grains allocated, source has %d non-zero grains", allocated, nonZero)
	}
	// The shared reader sees the same map (through the footer for GD_AT_END).
	if _, gmap, err := GrainMap(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("GrainMap: %v", err)
	} else {
		n := 0
		for _, sec := range gmap {
			if sec != 0 {
				n++
			}
		}
		if n != allocated {
			t.Fatalf("GrainMap maps %d grains, the tables %d", n, allocated)
		}
	}
	if layout == StreamGDAtEnd && gd[1] != 0 {
		t.Fatalf("empty group 1 has GDE %d", gd[1])
	}
	// The incompressible grain's record must be longer than one grain.
	if gte := binary.LittleEndian.Uint32(b[gd[0]*512+7*4:]); gte == 0 {
		t.Fatal("random grain 7 not allocated")
	} else if m, ok := PeekGrainMarker(b[gte*512:], 128, 0); !ok || m.RecordBytes() <= h.GrainBytes() {
		t.Fatalf("random grain record %+v", m)
	}
}

func qemuCompare(t *testing.T, vmdkPath, raw string) {
	t.Helper()
	tooltest.Need(t, "qemu-img")
	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(qemu, "compare", "-f", "vmdk", "-F", "raw", vmdkPath, raw).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, out)
	}
}

func vmdkInfo(t *testing.T, vmdkPath string) {
	t.Helper()
	tooltest.Need(t, "vmdkinfo")
	tool, err := exec.LookPath("vmdkinfo")
	if err != nil {
		t.Fatal(err)
	}
	// libvmdk opens the extent by the descriptor's file name, relative to
	// the working directory's view of the descriptor: run it in place.
	cmd := exec.Command(tool, filepath.Base(vmdkPath))
	cmd.Dir = filepath.Dir(vmdkPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vmdkinfo: %v\n%s", err, out)
	}
}
