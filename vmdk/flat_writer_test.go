package vmdk

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vmdkcarve/internal/tooltest"
)

func TestFlatName(t *testing.T) {
	for in, want := range map[string]string{
		"disk.vmdk":    "disk-flat.vmdk",
		"disk":         "disk-flat.vmdk",
		"a.b.vmdk":     "a.b-flat.vmdk",
		"x.VMDK":       "x.VMDK-flat.vmdk",
		"fixed-1.vmdk": "fixed-1-flat.vmdk",
	} {
		if got := FlatName(in); got != want {
			t.Errorf("FlatName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckExtentName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"disk-flat.vmdk", true},
		{"my disk (copy).vmdk", true},
		{"données.vmdk", true},
		{"", false},
		{".", false},
		{"..", false},
		{"dir/disk.vmdk", false},
		{`dir\disk.vmdk`, false},
		{`a"b.vmdk`, false},
		{"a\nb.vmdk", false},
		{"a\x00b.vmdk", false},
		{"a\x7fb.vmdk", false},
		{"a\u200bb.vmdk", false}, // zero-width space: %q would escape it
		{"a\xffb.vmdk", false},
		{strings.Repeat("a", 256), false},
	} {
		if err := CheckExtentName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckExtentName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestVMFSDescriptor(t *testing.T) {
	const sectors = 20 << 21 // 20 GiB
	for _, tc := range []struct {
		name     string
		template *Descriptor
		want     map[string]string // DDB keys and values
		absent   []string
		cid      uint32
	}{
		{"no template", nil, map[string]string{
			"ddb.adapterType": "lsilogic", "ddb.virtualHWVersion": "4",
			"ddb.geometry.cylinders": "2610", "ddb.geometry.heads": "255", "ddb.geometry.sectors": "63",
		}, nil, derivedCID("d-flat.vmdk", sectors)},
		{"template kept", &Descriptor{CID: 0x1234abcd, ParentCID: 0x5555aaaa, ParentFileNameHint: "base.vmdk", DDB: map[string]string{
			"ddb.adapterType": "pvscsi", "ddb.uuid": "60 00 c2 9a", "ddb.virtualHWVersion": "14",
			"ddb.geometry.cylinders": "16383", "ddb.geometry.heads": "16", "ddb.geometry.sectors": "63",
			"ddb.thinProvisioned": "1",
		}}, map[string]string{
			"ddb.adapterType": "pvscsi", "ddb.uuid": "60 00 c2 9a", "ddb.virtualHWVersion": "14",
			"ddb.geometry.cylinders": "16383", "ddb.geometry.heads": "16",
		}, []string{"ddb.thinProvisioned"}, 0x1234abcd},
		{"partial geometry recomputed", &Descriptor{CID: 7, ParentCID: 0xffffffff, DDB: map[string]string{
			"ddb.geometry.heads": "16",
		}}, map[string]string{"ddb.geometry.heads": "255", "ddb.geometry.cylinders": "2610", "ddb.adapterType": "lsilogic"}, nil, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, err := VMFSDescriptor(VMFSDescriptorOptions{Capacity: sectors, FlatName: "d-flat.vmdk", Descriptor: tc.template})
			if err != nil {
				t.Fatal(err)
			}
			d, err := ParseDescriptor(text)
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			if d.CreateType != "vmfs" || d.CID != tc.cid || d.ParentCID != 0xffffffff || d.ParentFileNameHint != "" {
				t.Errorf("createType %q CID %08x parentCID %08x", d.CreateType, d.CID, d.ParentCID)
			}
			if len(d.Extents) != 1 || d.Extents[0] != (Extent{Access: "RW", Sectors: sectors, Type: "VMFS", FileName: "d-flat.vmdk"}) {
				t.Errorf("extents %+v", d.Extents)
			}
			// qemu refuses an offset on a VMFS extent line.
			if !bytes.Contains(text, []byte("RW 41943040 VMFS \"d-flat.vmdk\"\n")) {
				t.Errorf("extent line:\n%s", text)
			}
			for k, v := range tc.want {
				if d.DDB[k] != v {
					t.Errorf("%s = %q, want %q", k, d.DDB[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := d.DDB[k]; ok {
					t.Errorf("%s kept", k)
				}
			}
			for _, k := range tc.absent {
				if tc.template.DDB[k] == "" {
					t.Errorf("the template lost %s", k)
				}
			}
		})
	}
	for _, bad := range []VMFSDescriptorOptions{
		{Capacity: 0, FlatName: "d-flat.vmdk"},
		{Capacity: MaxFlatSectors + 1, FlatName: "d-flat.vmdk"},
		{Capacity: 1, FlatName: `a"b`},
	} {
		if _, err := VMFSDescriptor(bad); err == nil {
			t.Errorf("VMFSDescriptor(%+v) accepted", bad)
		}
	}
}

// FuzzVMFSDescriptor: every extent name CheckExtentName accepts is read
// back unchanged from the descriptor written with it.
func FuzzVMFSDescriptor(f *testing.F) {
	f.Add("disk-flat.vmdk", uint64(2048))
	f.Add("my disk (copy)-flat.vmdk", uint64(1))
	f.Add("données-flat.vmdk", uint64(1<<30))
	f.Fuzz(func(t *testing.T, name string, capacity uint64) {
		if CheckExtentName(name) != nil {
			return
		}
		text, err := VMFSDescriptor(VMFSDescriptorOptions{Capacity: capacity, FlatName: name})
		if capacity == 0 || capacity > MaxFlatSectors {
			if err == nil {
				t.Fatalf("capacity %d accepted", capacity)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseDescriptor(text)
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		if len(d.Extents) != 1 || d.Extents[0].FileName != name || d.Extents[0].Sectors != capacity {
			t.Fatalf("extent %+v, want %q of %d sectors", d.Extents, name, capacity)
		}
	})
}

func TestWriteFlat(t *testing.T) {
	const sectors = 131069 // a short last grain
	img := testImage(sectors)
	for _, bad := range [][2]uint64{{0, 128}, {MaxFlatSectors + 1, 128}, {sectors, 100}, {sectors, 8}} {
		var f memTruncFile
		if _, err := WriteFlat(&f, bad[0], bad[1], readFrom(img)); err == nil {
			t.Errorf("WriteFlat(capacity %d, grain %d) accepted", bad[0], bad[1])
		}
	}
	var f memTruncFile
	size, err := WriteFlat(&f, sectors, 0, readFrom(img))
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(img)) || !bytes.Equal(f.b, img) {
		t.Fatalf("flat extent of %d bytes differs from the %d-byte image", size, len(img))
	}
	// An absent grain is zeros, whatever the reader left in the buffer.
	var g memTruncFile
	if _, err := WriteFlat(&g, sectors, 128, func(n uint64, buf []byte) (bool, error) {
		copy(buf, img[n*65536:])
		return n != 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.b[65536:], img[65536:]) || !bytes.Equal(g.b[:65536], make([]byte, 65536)) {
		t.Fatal("an absent grain was written")
	}
}

// TestESXiPairInterop writes an ESXi descriptor and flat extent and has
// qemu-img check and compare them and vmdkinfo open them.
func TestESXiPairInterop(t *testing.T) {
	dir := t.TempDir()
	const sectors = 4096*3 + 5
	img := testImage(sectors)
	raw := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(raw, img, 0o644); err != nil {
		t.Fatal(err)
	}
	desc := filepath.Join(dir, "fixed.vmdk")
	flat := filepath.Join(dir, FlatName("fixed.vmdk"))
	f, err := os.Create(flat)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFlat(f, sectors, 128, readFrom(img)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	text, err := VMFSDescriptor(VMFSDescriptorOptions{Capacity: sectors, FlatName: filepath.Base(flat)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(desc, text, 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Compare(t, desc, raw)
	vmdkInfo(t, desc)
}

// memTruncFile is an in-memory FlatFile.
type memTruncFile struct{ b []byte }

func (m *memTruncFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memTruncFile) Truncate(n int64) error {
	if int(n) < len(m.b) {
		m.b = m.b[:n]
	} else {
		m.b = append(m.b, make([]byte, int(n)-len(m.b))...)
	}
	return nil
}
