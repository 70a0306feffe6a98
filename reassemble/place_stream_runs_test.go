package reassemble

import (
	"testing"

	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// TestHeldRuns: a run of incompressible records (all one length) no
// stream attaches is held surely for the one stream nothing excludes, and
// for none when two could hold it, even when one of them lost all its
// own records.
func TestHeldRuns(t *testing.T) {
	const gb = 128 * vmdk.SectorSize
	rec := int64(gb + vmdk.SectorSize) // an incompressible grain's record
	stream := func(offset int64, capacity uint64, lbas ...uint64) *Instance {
		inst := &Instance{HeaderOffset: offset, Header: &vmdk.SparseHeader{Capacity: capacity, GrainSize: 128, CompressAlgorithm: vmdk.CompressDeflate}}
		for i, l := range lbas {
			inst.markers = append(inst.markers, &signatures.Hit{Offset: offset + 1<<20 + int64(i)*rec, Verdict: signatures.Valid,
				Grain: &signatures.GrainInfo{LBA: l, DataBytes: gb, Hash: uint64(l) + 1}})
		}
		return inst
	}
	run := func(at int64, lbas ...uint64) []signatures.Hit {
		var out []signatures.Hit
		for i, l := range lbas {
			out = append(out, signatures.Hit{Kind: signatures.KindGrainMarker, Offset: at + int64(i)*rec, Length: rec, Verdict: signatures.Valid,
				Grain: &signatures.GrainInfo{LBA: l, DataBytes: gb, Hash: uint64(l) + 7}})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		streams []*Instance
		held    int // index of the stream holding the run, -1 for none
	}{
		{"one stream of the geometry", []*Instance{stream(0, 1<<15, 0, 128), stream(1<<24, 1<<10, 0)}, 0},
		{"two streams could hold it", []*Instance{stream(0, 1<<15, 0, 128), stream(1<<24, 1<<15, 0)}, -1},
		{"the other lost all its records", []*Instance{stream(0, 1<<15, 0, 128), stream(1<<24, 1<<15)}, -1},
		{"its own records inside the run", []*Instance{stream(0, 1<<15, 0, 128, 1024)}, -1},
		{"it does not continue the stream", []*Instance{stream(0, 1<<15)}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits []signatures.Hit
			for _, s := range tc.streams {
				for _, m := range s.markers {
					h := *m
					h.Kind = signatures.KindGrainMarker
					h.Length = rec
					hits = append(hits, h)
				}
			}
			hits = append(hits, run(1<<26, 512, 640, 768, 896, 1280)...)
			x := indexHits(hits)
			got := heldRuns(tc.streams, x)
			for i, s := range tc.streams {
				sure := len(got[s]) == 1 && got[s][0].sure
				if (i == tc.held) != sure {
					t.Errorf("stream %d holds %v, want the run held surely by stream %d", i, got[s], tc.held)
				}
			}
		})
	}
}

// TestCopyAgrees: a table-less stream's run is vouched for by one copy of
// the disk that holds some of its grains with the same bytes and none with
// other bytes; grains the copy lost are neutral; a file of another
// geometry says nothing.
func TestCopyAgrees(t *testing.T) {
	run := []*signatures.Hit{}
	for g := uint64(10); g < 14; g++ {
		run = append(run, &signatures.Hit{Grain: &signatures.GrainInfo{LBA: g * 128, DataBytes: 64 << 10, Hash: g}})
	}
	stream := &Instance{Header: &vmdk.SparseHeader{Capacity: 1 << 15, GrainSize: 128, CompressAlgorithm: vmdk.CompressDeflate}, grains: newDecisions()}
	copyOf := func(capacity uint64, grains map[uint64]*Grain) *Instance {
		inst := &Instance{Header: &vmdk.SparseHeader{Capacity: capacity, GrainSize: 128}, grains: newDecisions()}
		for g, gr := range grains {
			inst.grains.set(g, gr)
		}
		return inst
	}
	placed := func(h uint64) *Grain { return &Grain{Status: Placed, Hash: h} }
	for _, tc := range []struct {
		name string
		peer *Instance
		want int
	}{
		{"a copy with three of them", copyOf(1<<15, map[uint64]*Grain{10: placed(10), 11: placed(11), 13: placed(13)}), 3},
		{"a copy that lost one", copyOf(1<<15, map[uint64]*Grain{10: placed(10), 11: {Status: Damaged}, 12: placed(12)}), 2},
		{"one grain of other bytes", copyOf(1<<15, map[uint64]*Grain{10: placed(10), 11: placed(99), 12: placed(12)}), 0},
		{"another geometry", copyOf(1<<16, map[uint64]*Grain{10: placed(10), 11: placed(11)}), 0},
	} {
		if got := copyAgrees(stream, run, []*Instance{stream, tc.peer}); got != tc.want {
			t.Errorf("%s: %d records vouched for, want %d", tc.name, got, tc.want)
		}
	}
}
