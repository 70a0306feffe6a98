package reassemble

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// Options tunes reassembly. The zero value is the default.
type Options struct {
	// Progress, if set, is told how many instances are done: one call
	// at a time (never concurrently), done counting up by one to total.
	Progress func(done, total int)
	// Workers bounds the work planning does at once: instances placed,
	// ranges of a file classified (each level on its own), and chunks of
	// the image scanned for the tails of files (all files together); 0
	// means runtime.NumCPU(). The plans do not depend on it.
	Workers int
	// Fingerprints, if set, are the carve's block fingerprints: they tell
	// random-looking (encrypted) blocks. They must be safe for concurrent
	// use, as the image must be: files are placed several at a time.
	Fingerprints Fingerprints

	// scans bounds the chunks of the image scanned at once, by every file
	// followed during one PlanCase.
	scans *semaphore.Weighted
}

func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.NumCPU()
}

// Plan groups hits into VMDK instances, decides every grain of each, and
// merges instances that are copies of one virtual disk. image is the
// evidence, read-only; hits must be sorted by offset. Instances that own
// no grain are not disks (PlanCase lists them).
func Plan(image io.ReaderAt, imageSize int64, hits []signatures.Hit, opts Options) []*Disk {
	return PlanCase(image, imageSize, hits, opts).Disks
}

// Result is what PlanCase decided.
type Result struct {
	Disks []*Disk
	// NoGrain lists compactly the instances that own no grain: not one
	// of their grains is placed or proven damaged, and the image holds no
	// room for one in their file after its metadata (a header alone: the
	// next header follows it, or the image ends). A disk of zeros and holes
	// per header would tell nothing the list does not, and 10^6 headers in
	// a crafted image would each cost a file and a report.
	NoGrain []InstanceRun
	// NoGrainInstances counts them.
	NoGrainInstances int
	// HostNotes say what a host filesystem probe's work limit left
	// undone (crafted or overlapping structures): files it could have
	// mapped may be missing, with no map of theirs to say so.
	HostNotes []string
}

// InstanceRun is Count instances that own no grain, with headers at
// FirstOffset, FirstOffset+Stride, ..., alike in all the other fields.
type InstanceRun struct {
	FirstOffset int64  `json:"first_header_offset"`
	Count       int    `json:"count"`
	Stride      int64  `json:"stride,omitempty"`
	Variant     string `json:"variant"`
	Capacity    uint64 `json:"capacity_sectors"`
	GrainSize   uint64 `json:"grain_size_sectors"`
	HeaderLost  bool   `json:"header_lost,omitempty"`
	CID         string `json:"cid,omitempty"` // the descriptor's, hex
	UUID        string `json:"uuid,omitempty"`
	Tables      string `json:"tables"`
	// Zero and Missing count each instance's grains proven zero and
	// missing.
	Zero    uint64 `json:"zero"`
	Missing uint64 `json:"missing"`
}

// isDisk reports whether an instance is a disk: it places a grain or
// proves one damaged, or its file as the image holds it has room for a
// grain after its metadata (a file whose grains could not be placed is a
// disk: its report says where its grain slots lie and why each is
// missing). The metadata counted is the larger of what the header says
// (its overhead) and what the rebuilt disk's will be: a header that
// places nothing must not cost more output than the image bytes its file
// spans (a crafted 2 TiB header would cost 256 MiB of tables each).
func isDisk(inst *Instance) bool {
	if inst.Counts.Placed > 0 || inst.Counts.Damaged > 0 || inst.size <= 0 {
		return true
	}
	h := inst.Header
	grain := h.GrainBytes()
	if h.Compressed() {
		grain = vmdk.SectorSize // the smallest grain record
	}
	meta := int64(h.OverHead) * vmdk.SectorSize
	if l, err := vmdk.NewSparseLayout(h.Capacity, h.GrainSize, true); err == nil {
		meta = max(meta, int64(l.Header.OverHead)*vmdk.SectorSize)
	}
	return inst.size >= meta+grain
}

// noGrainRuns lists instances (by header offset) as runs of alike ones
// at a constant stride.
func noGrainRuns(insts []*Instance) []InstanceRun {
	var out []InstanceRun
	for _, inst := range insts {
		r := InstanceRun{FirstOffset: inst.HeaderOffset, Count: 1, Variant: inst.Variant, Capacity: inst.Header.Capacity,
			GrainSize: inst.Header.GrainSize, HeaderLost: inst.HeaderLost, Tables: inst.Tables,
			Zero: inst.Counts.Zero, Missing: inst.Counts.Missing + inst.Counts.Conflict}
		if d := inst.Descriptor; d != nil {
			if d.HasCID {
				r.CID = fmt.Sprintf("%08x", d.CID)
			}
			r.UUID = d.UUID()
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			alike := *last
			alike.FirstOffset, alike.Count, alike.Stride = r.FirstOffset, 1, 0
			stride := r.FirstOffset - (last.FirstOffset + int64(last.Count-1)*last.Stride)
			if alike == r && stride > 0 && (last.Count == 1 || stride == last.Stride) {
				last.Stride = stride
				last.Count++
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// PlanCase is Plan, with the instances that own no grain (Result.NoGrain)
// listed instead of made into disks.
func PlanCase(image io.ReaderAt, imageSize int64, hits []signatures.Hit, opts Options) *Result {
	opts.scans = semaphore.NewWeighted(int64(opts.workers()))
	x := indexHits(hits)
	x.imageSize = imageSize
	var anchors []int64
	for _, h := range x.headers {
		if !x.isFooter(h) {
			anchors = append(anchors, h.Offset)
		}
	}
	maps, hostNotes := hostMaps(image, hits, anchors)
	instances := findInstances(x, image, imageSize, maps)
	placeInstances(instances, image, x, opts)
	// Flat extents last: a partition table inside the grains the other
	// files place is a guest's sector 0, not a flat extent's start.
	flats := maps
	if x.anyFlatDescriptor() {
		// The host probes are asked again, for files starting at a
		// partition table, only when a flat extent is described at all.
		flats = append(flats, flatMaps(image, hits, x)...)
	}
	for _, inst := range flatInstances(x, image, imageSize, flats, instances) {
		inst.ID = len(instances) + 1
		placeFlat(inst, image, x, opts)
		instances = append(instances, inst)
	}
	// A lattice proven on one file holds for the others a locker walked.
	inheritLattices(instances)
	// Files whose header, descriptor and tables are all gone, found from a
	// guest boot sector outside every file found so far.
	instances = append(instances, headlessInstances(x, image, imageSize, instances)...)
	attachOrphanRuns(instances, x)
	if inst := adoptOrphanStream(instances, x, image); inst != nil {
		inst.ID = len(instances) + 1
		instances = append(instances, inst)
	}
	// Files followed by their anchors, again with the blocks of their
	// copies' grains, now that every copy is placed.
	refollowWithCopies(instances, image, x, opts)
	// Stream runs the followed files now corroborate.
	attachOrphanRuns(instances, x)
	// Files followed again decided their damage afresh.
	inheritLattices(instances)
	// Files still taken as contiguous, against their proven copies.
	checkAgainstCopies(instances)
	instances = assembleSplit(instances, x, image)
	var whole []*Instance          // instances that are disks (or copies of one)
	var noGrain []*Instance        // instances that own no grain, by header offset
	parts := map[int][]*Instance{} // the extents of each split disk, by its ID
	for _, inst := range instances {
		inst.Counts = countInstance(inst)
		switch {
		case inst.partOf != 0:
			parts[inst.partOf] = append(parts[inst.partOf], inst)
		case isDisk(inst):
			whole = append(whole, inst)
		default:
			noGrain = append(noGrain, inst)
		}
	}
	disks := mergeCopies(whole, opts.workers())
	for _, d := range disks {
		for _, inst := range d.Instances {
			d.Parts = append(d.Parts, parts[inst.ID]...)
		}
	}
	linkVersions(disks, image)
	slices.SortStableFunc(noGrain, func(a, b *Instance) int { return cmp.Compare(a.HeaderOffset, b.HeaderOffset) })
	return &Result{Disks: disks, NoGrain: noGrainRuns(noGrain), NoGrainInstances: len(noGrain), HostNotes: hostNotes}
}

// placeInstances decides the grains of every instance findInstances found,
// several at a time. Each placement reads only its own instance, the hit
// index (complete before), the image and the fingerprints (both safe for
// concurrent use), so the plans are the same whatever the order the
// instances finish in; Progress is told of each in turn, done counting
// up by one from 1 to len(instances).
func placeInstances(instances []*Instance, image io.ReaderAt, x *hitIndex, opts Options) {
	var mu sync.Mutex // serialises Progress and counts the instances done
	done := 0
	// The largest files first, so that the last to finish is a small one.
	byWork := slices.Clone(instances)
	slices.SortStableFunc(byWork, func(a, b *Instance) int { return cmp.Compare(b.size, a.size) })
	var g errgroup.Group
	g.SetLimit(opts.workers())
	for _, inst := range byWork {
		g.Go(func() error {
			if inst.Header.Compressed() {
				placeStream(inst, image, x)
			} else {
				placeSparse(inst, image, x, opts)
				if inst.capacityBound {
					refineLostCapacity(inst, image)
				}
			}
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, len(instances))
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
}

func countInstance(inst *Instance) Counts {
	c := Counts{Grains: inst.Header.Grains(), ByEvidence: map[string]uint64{}}
	walk(c.Grains, []*decisions{inst.grains}, func(_, count uint64, per []*Grain) {
		if per[0] == nil {
			c.Missing += count
			return
		}
		c.add(per[0], count)
	})
	return c
}

func (c *Counts) add(g *Grain, n uint64) {
	switch g.Status {
	case Placed:
		c.Placed += n
	case Zero:
		c.Zero += n
	case Missing:
		c.Missing += n
	case Conflict:
		c.Conflict += n
	case Damaged:
		c.Damaged += n
	}
	// Evidence counts cover every decided grain, placed or proven zero.
	for _, e := range g.Evidence {
		c.ByEvidence[e] += n
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
	for g, ga := range a.grains.one {
		gb := b.grains.one[g]
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

// maxCopyCandidates bounds how many instances placing one grain (the
// same grain number and bytes, of disks of one size) the instances placing
// it after them are compared with. Real evidence holds a handful of copies
// of a disk; a crafted image can hold 10^5 streams each with the same
// grain, and comparing every pair of them would take hours. Past the bound,
// copies may stay unmerged (each is still a disk of its own: nothing is
// mixed), and the disk's notes say so.
const maxCopyCandidates = 64

// mergeCopies groups instances that are copies of one disk and makes one
// Disk of each group, in order of the group's first header offset. The
// groups are the connected components of sameDisk. Two instances can be
// copies only if they place one grain number with the same bytes (both
// sameDisk rules need a common grain that agrees), so each instance is
// compared only with the earlier ones that place one of its grains (the
// first maxCopyCandidates of each), not with every other instance: the
// work is linear in the placed grains, not quadratic in the instances.
func mergeCopies(instances []*Instance, workers int) []*Disk {
	sets := newUnionFind(len(instances))
	find := sets.find
	parent := sets.parent
	type grainKey struct{ capacity, grainSize, grain, hash uint64 }
	placing := map[grainKey][]int{} // the instances placing each grain, in order
	capped := map[int]bool{}        // instances some of whose candidates were not compared
	tested := map[int]bool{}
	for i, inst := range instances {
		clear(tested)
		for _, g := range placedGrains(inst) {
			k := grainKey{inst.Header.Capacity, inst.Header.GrainSize, g, inst.grains.one[g].Hash}
			earlier := placing[k]
			if len(earlier) < maxCopyCandidates {
				placing[k] = append(earlier, i)
			} else {
				capped[i] = true
			}
			for _, j := range earlier {
				if tested[j] {
					continue
				}
				tested[j] = true
				if find(i) != find(j) && sameDisk(instances[j], instances[i]) {
					parent[find(i)] = find(j)
				}
			}
		}
	}
	groups := make(map[int][]*Instance)
	var roots []int
	partial := map[int]bool{}
	for i, inst := range instances {
		r := find(i)
		if groups[r] == nil {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], inst)
		partial[r] = partial[r] || capped[i]
	}
	// Each group is merged from its own instances' decisions alone:
	// several at once.
	disks := make([]*Disk, len(roots))
	var g errgroup.Group
	g.SetLimit(workers)
	for i, r := range roots {
		g.Go(func() error {
			d := mergeGroup(i+1, groups[r])
			if partial[r] {
				d.Notes = append(d.Notes, fmt.Sprintf("more than %d instances place some grain of this disk with the same bytes: "+
					"it was compared with the first %d of them only, and other copies of it may be disks of their own", maxCopyCandidates, maxCopyCandidates))
			}
			disks[i] = d
			return nil
		})
	}
	g.Wait()
	return disks
}

// placedGrains lists the grains inst places, in order.
func placedGrains(inst *Instance) []uint64 {
	var gs []uint64
	for g, gr := range inst.grains.one {
		if gr.Status == Placed {
			gs = append(gs, g)
		}
	}
	slices.Sort(gs)
	return gs
}

// mergeGroup decides each grain of a disk from all its copies: identical
// placed copies corroborate ("copy"); a placed grain beats a zero or
// missing one from a damaged copy; placed copies that differ conflict.
func mergeGroup(id int, group []*Instance) *Disk {
	first := group[0]
	d := &Disk{ID: id, Capacity: first.Header.Capacity, GrainSize: first.Header.GrainSize, Instances: group, placed: make(map[uint64]*Grain)}
	for _, inst := range group {
		if inst.Descriptor != nil && d.Descriptor == nil {
			d.Descriptor = inst.Descriptor
		}
	}
	n := first.Header.Grains()
	d.Counts = Counts{Grains: n, ByEvidence: map[string]uint64{}}
	ds := make([]*decisions, len(group))
	for i, inst := range group {
		ds[i] = inst.grains
	}
	var rb runBuilder
	rb.stride = int64(d.GrainSize) * vmdk.SectorSize
	walk(n, ds, func(g, count uint64, per []*Grain) {
		out := mergeOne(group, per)
		if out.Status == Placed {
			d.placed[g] = out
		}
		d.Counts.add(out, count)
		rb.add(g, count, out)
	})
	d.Runs = rb.runs
	if len(group) > 1 {
		d.Notes = append(d.Notes, fmt.Sprintf("%d copies of this disk were found and merged", len(group)))
	}
	return d
}

// mergeOne decides one grain (or a range with one decision in every copy).
func mergeOne(group []*Instance, per []*Grain) *Grain {
	var best, conflict, damaged *Grain
	var placed []*Grain
	var first *Reason // the first copy's reason for wanting the grain
	for i, gr := range per {
		if gr == nil {
			continue
		}
		switch gr.Status {
		case Placed:
			placed = append(placed, gr)
		case Zero:
			if best == nil {
				best = gr
			}
		case Conflict:
			conflict = gr
			if first == nil {
				r := gr.Reason
				r.Instance = group[i].ID
				first = &r
			}
		case Damaged:
			if damaged == nil {
				damaged = gr
			}
		default:
			if first == nil {
				r := gr.Reason
				r.Instance = group[i].ID
				first = &r
			}
		}
	}
	switch {
	case len(placed) > 0 && !allSameHash(placed):
		return &Grain{Status: Conflict, Reason: Reason{Code: ReasonCopiesDisagree}}
	case len(placed) > 0:
		out := *placed[0]
		out.Copies = len(placed)
		out.Evidence = slices.Clone(out.Evidence)
		if len(placed) > 1 {
			out.Evidence = append(out.Evidence, EvCopy)
		}
		return &out
	case conflict != nil:
		// A copy whose own tables contradict themselves outweighs a zero
		// from another: the grain may hold data.
		return conflict
	case best != nil:
		return best
	case damaged != nil:
		// Destroyed in a copy, and no other copy has it.
		return damaged
	case first != nil:
		return &Grain{Status: Missing, Reason: *first}
	}
	return &Grain{Status: Missing, Reason: Reason{Code: ReasonNoEvidence}}
}

func allSameHash(gs []*Grain) bool {
	for _, g := range gs[1:] {
		if g.Hash != gs[0].Hash {
			return false
		}
	}
	return true
}

// runBuilder compresses decisions into runs: consecutive grains with the
// same status, evidence, copies and reason, whose sources (if any) are one
// instance's uncompressed grains at a constant stride.
type runBuilder struct {
	runs   []Run
	stride int64
}

func (b *runBuilder) add(g, count uint64, gr *Grain) {
	r := Run{FirstGrain: g, Count: count, Status: gr.Status, Evidence: gr.Evidence, Copies: gr.Copies, Code: gr.Reason.Code, Reason: gr.Reason.String()}
	if gr.Source != nil {
		r.Instance, r.ImageOffset, r.Compressed = gr.Source.Instance, gr.Source.ImageOffset, gr.Source.Compressed
		r.RecordBytes, r.Pieces = gr.Source.RecordBytes, gr.Source.Pieces
	}
	if n := len(b.runs); n > 0 {
		p := &b.runs[n-1]
		if p.FirstGrain+p.Count == g && p.Status == r.Status && slices.Equal(p.Evidence, r.Evidence) && p.Copies == r.Copies &&
			p.Reason == r.Reason && p.Instance == r.Instance && !p.Compressed && !r.Compressed && p.Pieces == nil && r.Pieces == nil {
			want := p.ImageOffset + int64(p.Count)*b.stride
			switch {
			case gr.Source == nil:
				p.Count += count
				return
			case count == 1 && r.ImageOffset == want && (p.Stride == b.stride || p.Count == 1):
				p.Stride = b.stride
				p.Count++
				return
			}
		}
	}
	b.runs = append(b.runs, r)
}

// unionFind groups items 0..n-1 into sets.
type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int, n)}
	for i := range u.parent {
		u.parent[i] = i
	}
	return u
}

// find returns the representative of i's set.
func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}
