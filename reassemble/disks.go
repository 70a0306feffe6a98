package reassemble

import (
	"fmt"
	"io"
	"slices"
	"sort"

	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Options tunes reassembly. The zero value is the default.
type Options struct {
	// Progress, if set, is told how many instances are done.
	Progress func(done, total int)
}

// Plan groups hits into VMDK instances, decides every grain of each, and
// merges instances that are copies of one virtual disk. image is the
// evidence, read-only; hits must be sorted by offset.
func Plan(image io.ReaderAt, imageSize int64, hits []signatures.Hit, opts Options) ([]*Disk, error) {
	x := indexHits(hits)
	instances := findInstances(x, imageSize)
	for i, inst := range instances {
		if inst.Header.Compressed() {
			placeStream(inst, image, x)
		} else {
			placeSparse(inst, image)
		}
		inst.Counts = countInstance(inst)
		if opts.Progress != nil {
			opts.Progress(i+1, len(instances))
		}
	}
	return mergeCopies(instances), nil
}

func countInstance(inst *Instance) Counts {
	c := Counts{Grains: inst.Header.Grains(), ByEvidence: map[string]uint64{}}
	for g := uint64(0); g < c.Grains; g++ {
		gr := inst.grains[g]
		if gr == nil {
			c.Missing++
			continue
		}
		c.add(gr)
	}
	return c
}

func (c *Counts) add(g *Grain) {
	switch g.Status {
	case Placed:
		c.Placed++
	case Zero:
		c.Zero++
	case Missing:
		c.Missing++
	case Conflict:
		c.Conflict++
	}
	// Evidence counts cover every decided grain, placed or proven zero.
	for _, e := range g.Evidence {
		c.ByEvidence[e]++
	}
}

// sameDisk decides whether two instances are copies of one virtual disk
// (one version of it): the same capacity and grain size, and at least one
// placed grain in common. Descriptors carry a CID that changes on every
// write session, so two copies with the same CID are one version and any
// grain they disagree on is damage in one of them (merged as a conflict,
// never chosen). Without a CID on both sides, every common grain must be
// identical: different versions of a disk differ in some grain and must
// not be mixed.
func sameDisk(a, b *Instance) bool {
	if a.Header.Capacity != b.Header.Capacity || a.Header.GrainSize != b.Header.GrainSize {
		return false
	}
	bothCID := a.Descriptor != nil && b.Descriptor != nil && a.Descriptor.HasCID && b.Descriptor.HasCID
	if bothCID && a.Descriptor.CID != b.Descriptor.CID {
		return false
	}
	common, differ := 0, 0
	for g, ga := range a.grains {
		gb := b.grains[g]
		if ga.Status != Placed || gb == nil || gb.Status != Placed {
			continue
		}
		common++
		if ga.Hash != gb.Hash {
			differ++
		}
	}
	if bothCID {
		// Same version: most grains must still agree, or the CID match
		// is a coincidence (CIDs are 32-bit random).
		return common > 0 && differ*2 < common
	}
	return common > 0 && differ == 0
}

// mergeCopies groups instances that are copies of one disk and makes one
// Disk of each group, in order of the group's first header offset.
func mergeCopies(instances []*Instance) []*Disk {
	parent := make([]int, len(instances))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for i := range instances {
		for j := i + 1; j < len(instances); j++ {
			if find(i) != find(j) && sameDisk(instances[i], instances[j]) {
				parent[find(j)] = find(i)
			}
		}
	}
	groups := make(map[int][]*Instance)
	var roots []int
	for i, inst := range instances {
		r := find(i)
		if groups[r] == nil {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], inst)
	}
	var disks []*Disk
	for _, r := range roots {
		disks = append(disks, mergeGroup(len(disks)+1, groups[r]))
	}
	return disks
}

// mergeGroup decides each grain of a disk from all its copies: identical
// placed copies corroborate ("copy"); a placed grain beats a zero or
// missing one from a damaged copy; placed copies that differ conflict.
func mergeGroup(id int, group []*Instance) *Disk {
	first := group[0]
	d := &Disk{ID: id, Capacity: first.Header.Capacity, GrainSize: first.Header.GrainSize, Instances: group}
	for _, inst := range group {
		if inst.Descriptor != nil && d.Descriptor == nil {
			d.Descriptor = inst.Descriptor
		}
	}
	n := first.Header.Grains()
	d.Grains = make([]Grain, n)
	d.Counts = Counts{Grains: n, ByEvidence: map[string]uint64{}}
	for g := uint64(0); g < n; g++ {
		var best *Grain
		var placed []*Grain
		var reasons []string
		for _, inst := range group {
			gr := inst.grains[g]
			if gr == nil {
				continue
			}
			switch gr.Status {
			case Placed:
				placed = append(placed, gr)
			case Zero:
				if best == nil || best.Status != Zero {
					best = gr
				}
			default:
				reasons = append(reasons, fmt.Sprintf("instance %d: %s", inst.ID, gr.Reason))
			}
		}
		var out Grain
		switch {
		case len(placed) > 0 && !allSameHash(placed):
			out = Grain{Status: Conflict, Reason: "copies hold different data for this grain"}
		case len(placed) > 0:
			out = *placed[0]
			out.Copies = len(placed)
			out.Evidence = slices.Clone(out.Evidence)
			if len(placed) > 1 {
				out.Evidence = append(out.Evidence, EvCopy)
			}
		case best != nil:
			out = *best
		default:
			out = Grain{Status: Missing, Reason: "no copy has this grain"}
			if len(reasons) > 0 {
				out.Reason = reasons[0]
			}
		}
		d.Grains[g] = out
		d.Counts.add(&out)
	}
	if len(group) > 1 {
		d.Notes = append(d.Notes, fmt.Sprintf("%d copies of this disk were found and merged", len(group)))
	}
	d.Runs = runsOf(d.Grains, d.GrainSize)
	return d
}

func allSameHash(gs []*Grain) bool {
	for _, g := range gs[1:] {
		if g.Hash != gs[0].Hash {
			return false
		}
	}
	return true
}

// runsOf compresses per-grain decisions into runs: consecutive grains with
// the same status, evidence, copies and reason, whose sources (if any) are
// one instance's grains at a constant stride.
func runsOf(grains []Grain, grainSize uint64) []Run {
	var runs []Run
	stride := int64(grainSize) * vmdk.SectorSize
	for g := range grains {
		gr := &grains[g]
		r := Run{FirstGrain: uint64(g), Count: 1, Status: gr.Status, Evidence: gr.Evidence, Copies: gr.Copies, Reason: gr.Reason}
		if gr.Source != nil {
			r.Instance, r.ImageOffset, r.Compressed = gr.Source.Instance, gr.Source.ImageOffset, gr.Source.Compressed
		}
		if n := len(runs); n > 0 {
			p := &runs[n-1]
			if p.Status == r.Status && slices.Equal(p.Evidence, r.Evidence) && p.Copies == r.Copies && p.Reason == r.Reason &&
				p.Instance == r.Instance && p.Compressed == r.Compressed && !r.Compressed {
				want := p.ImageOffset + int64(p.Count)*stride
				if gr.Source == nil || (p.Stride == stride && r.ImageOffset == want) || (p.Count == 1 && r.ImageOffset == want) {
					if gr.Source != nil {
						p.Stride = stride
					}
					p.Count++
					continue
				}
			}
		}
		runs = append(runs, r)
	}
	return runs
}

// SourceOf expands a run back to the source image offset of grain g.
func (r Run) SourceOf(g uint64) int64 {
	return r.ImageOffset + int64(g-r.FirstGrain)*r.Stride
}

// SortDisks orders disks by their first instance's header offset (already
// the order Plan returns; exported for callers that combine plans).
func SortDisks(ds []*Disk) {
	sort.SliceStable(ds, func(i, j int) bool {
		return ds[i].Instances[0].HeaderOffset < ds[j].Instances[0].HeaderOffset
	})
}
