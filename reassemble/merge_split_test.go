package reassemble

import (
	"bytes"
	"fmt"
	"testing"

	"vmdkcarve/fsprobe"
	"vmdkcarve/vmdk"
)

// TestMatchExtents: which file is which extent of a split disk, by host
// name, unique size or elimination; ambiguous ones are left unsure.
func TestMatchExtents(t *testing.T) {
	const big, last = 4192256, 819200
	exts := []vmdk.Extent{
		{Type: "SPARSE", Sectors: big, FileName: "d-s001.vmdk"},
		{Type: "SPARSE", Sectors: big, FileName: "d-s002.vmdk"},
		{Type: "SPARSE", Sectors: last, FileName: "d-s003.vmdk"},
	}
	part := func(id int, sectors uint64, name string) *Instance {
		inst := &Instance{ID: id, Header: &vmdk.SparseHeader{Capacity: sectors, GrainSize: 128, NumGTEsPerGT: 512}, grains: newDecisions()}
		if name != "" {
			inst.HostMap = &fsprobe.FileMap{Name: name}
		}
		return inst
	}
	for _, tc := range []struct {
		name      string
		instances []*Instance
		want      string // extent → instance ID
		unsure    int
	}{
		{"named", []*Instance{part(1, big, "D-S002.VMDK"), part(2, big, "d-s001.vmdk"), part(3, last, "d-s003.vmdk")}, "map[0:2 1:1 2:3]", 0},
		{"unnamed: the last by size, the rest unsure", []*Instance{part(1, big, ""), part(2, big, ""), part(3, last, "")}, "map[2:3]", 2},
		{"one named, one by elimination", []*Instance{part(1, big, ""), part(2, big, "d-s001.vmdk"), part(3, last, "")}, "map[0:2 1:1 2:3]", 0},
		{"a file of no extent's size is not a part", []*Instance{part(1, 1234, ""), part(3, last, "")}, "map[2:3]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts, _, unsure := matchExtents(exts, tc.instances, bytes.NewReader(nil))
			got := map[int]int{}
			for k, inst := range parts {
				got[k] = inst.ID
			}
			if fmt.Sprint(got) != tc.want || len(unsure) != tc.unsure {
				t.Errorf("parts %v, %d unsure; want %s, %d", got, len(unsure), tc.want, tc.unsure)
			}
		})
	}
}

// TestSplitExtentsBounds: extent sizes read from a descriptor are bounded
// one by one and in sum (their sum must not wrap).
func TestSplitExtentsBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []uint64
		ok    bool
	}{
		{"two extents", []uint64{4192256, 1000}, true},
		{"one extent", []uint64{4192256}, false},
		{"a huge extent", []uint64{4192256, 1 << 62}, false},
		{"a sum that would wrap", []uint64{1<<64 - 128, 256}, false},
		{"a first extent of part grains", []uint64{1000, 1000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &vmdk.Descriptor{}
			for _, n := range tc.sizes {
				d.Extents = append(d.Extents, vmdk.Extent{Type: "SPARSE", Sectors: n})
			}
			if _, ok := splitExtents(d); ok != tc.ok {
				t.Errorf("accepted %v, want %v", ok, tc.ok)
			}
		})
	}
}
