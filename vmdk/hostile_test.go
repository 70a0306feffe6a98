package vmdk

import (
	"bytes"
	"strings"
	"testing"
)

// TestEncodeRefusesInjection: the descriptor format has no escapes, so a
// DDB key or value from evidence holding a line break or a quote could add
// a line of its own (an extent naming any file: issue 13). Encode refuses
// every field it cannot write as it is; the writers pass a carved DDB
// through WritableDDB, so the rebuilt disk's descriptor parses back to
// exactly the fields written.
func TestEncodeRefusesInjection(t *testing.T) {
	inject := "\nRW 1 FLAT \"x\" 0\nddb.a"
	for _, d := range []Descriptor{
		{CreateType: "monolithicSparse", DDB: map[string]string{"ddb.uuid" + inject: "1"}},
		{CreateType: "monolithicSparse", DDB: map[string]string{"ddb.uuid": "1\"" + inject}},
		{CreateType: "monolithicSparse", DDB: map[string]string{"ddb.x y": "1"}},
		{CreateType: "monolithicSparse", DDB: map[string]string{"ddb.x=y": "1"}},
		{CreateType: "monolithic\nSparse"},
		{CreateType: "monolithicSparse", Extents: []Extent{{Access: "RW", Sectors: 1, Type: "FLAT", FileName: "a\" 0\nRW 1 FLAT \"b"}}},
		{CreateType: "monolithicSparse", Extents: []Extent{{Access: "RW\n", Sectors: 1, Type: "FLAT"}}},
	} {
		if text, err := d.Encode(); err == nil {
			t.Errorf("%+v encoded:\n%s", d, text)
		}
	}

	ddb := map[string]string{"ddb.uuid": "60 00 C2 9a", "ddb.adapterType": "lsilogic",
		"ddb.evil" + inject: "1", "ddb.quote": `a"b`, "ddb.nl": "a\nb"}
	w := newMemFile()
	if _, err := WriteMonolithicSparse(w, SparseWriterOptions{Capacity: 128, FileName: "d.vmdk",
		Descriptor: &Descriptor{CID: 7, ParentCID: 0xffffffff, DDB: ddb}}, func(uint64, []byte) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	text := w.data[SectorSize : 21*SectorSize]
	d, err := ParseDescriptor(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Extents) != 1 || d.Extents[0].FileName != "d.vmdk" || len(d.DDB) != 2 || d.DDB["ddb.uuid"] != "60 00 C2 9a" {
		t.Errorf("written descriptor parses to %+v:\n%s", d, bytes.TrimRight(text, "\x00"))
	}
	if bytes.Contains(text, []byte("FLAT")) {
		t.Errorf("an extent line was injected:\n%s", text)
	}

	// A DDB of a thousand long keys still gives a disk: the entries that
	// fit the 20 sectors, in key order.
	big := map[string]string{}
	for i := range 1000 {
		big["ddb.k"+strings.Repeat("x", 40)+string(rune('a'+i%26))+strings.Repeat("y", i%7)] = strings.Repeat("v", 100)
	}
	w = newMemFile()
	if _, err := WriteMonolithicSparse(w, SparseWriterOptions{Capacity: 128, FileName: "d.vmdk",
		Descriptor: &Descriptor{DDB: big}}, func(uint64, []byte) (bool, error) { return false, nil }); err != nil {
		t.Fatalf("a large DDB cost the disk: %v", err)
	}
}

// TestCapacityOverflow: extent sizes whose sum wraps around 2^64 give an
// unknown capacity (0), not a small plausible one.
func TestCapacityOverflow(t *testing.T) {
	d := Descriptor{Extents: []Extent{{Sectors: 1<<64 - 1}, {Sectors: 2}}}
	if c := d.Capacity(); c != 0 {
		t.Errorf("capacity %d, want 0", c)
	}
	d = Descriptor{Extents: []Extent{{Sectors: 1 << 20}, {Sectors: 1 << 20}}}
	if c := d.Capacity(); c != 2<<20 {
		t.Errorf("capacity %d", c)
	}
}
