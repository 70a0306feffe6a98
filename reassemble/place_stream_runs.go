package reassemble

import (
	"fmt"
	"slices"
	"sort"

	"vmdkcarve/signatures"
	"vmdkcarve/vmdk"
)

// A stream whose file is fragmented leaves runs of grain records outside
// the fragment that starts at its header. Records carry their LBA but not
// their stream, so a run is attached to a stream only when that is the
// only explanation that fits:
//
//   - the run is a chain of records that follow each other (each record
//     ends where the next begins, GT markers and tables aside), so its
//     records are one file's;
//   - exactly one stream instance can hold every LBA of the run (grain
//     size, capacity) and has none of them already, and the run's whole
//     LBA range falls between two records the instance already has (a
//     stream is written in LBA order, so a missing fragment fills a gap);
//   - the instance's grain table survives and allocates every grain of
//     the run at file offsets spaced exactly as the records are, on the
//     file's host cluster grid, and at least minInformativeRecords of the
//     records are compressed (incompressible grains' records all have one
//     length, so their spacing tells no stream from another) or hold the
//     very grain another file of the disk's geometry placed (xxhash).
//
// Anything else stays unattached and is reported as orphan records.
func attachOrphanRuns(instances []*Instance, x *hitIndex) (attached, orphans int) {
	streams, owned := streamsOf(instances)
	if len(streams) == 0 {
		return 0, 0
	}
	for _, run := range orphanRuns(x, owned) {
		run, cut := trimRun(run)
		orphans += cut
		if len(run) == 0 {
			continue
		}
		var fit *Instance
		ambiguous := false
		for _, s := range streams {
			if runFits(s, run, instances) {
				if fit != nil {
					ambiguous = true
				}
				fit = s
			}
		}
		if fit == nil || ambiguous {
			orphans += len(run)
			continue
		}
		for _, m := range run {
			g := m.Grain.LBA / fit.Header.GrainSize
			gr := markerGrain(fit, m)
			gr.Reason = Reason{Code: ReasonOrphanRun, Other: int64(len(run))}
			if gr.Source != nil {
				gr.Source.FileOffset = -1 // unknown: the run's place in the file is not mapped
			}
			fit.grains.set(g, gr)
			fit.markers = append(fit.markers, m)
		}
		// The run's LBAs are the instance's now; they all fall in one gap
		// of the sorted list, so they go in with one insertion.
		lbas := fit.knownLBAs()
		at := sort.Search(len(lbas), func(i int) bool { return lbas[i] > run[0].Grain.LBA })
		ins := make([]uint64, 0, len(run))
		for _, m := range run {
			ins = append(ins, m.Grain.LBA)
		}
		fit.lbas = slices.Insert(lbas, at, ins...)
		fit.Notes = append(fit.Notes, fmt.Sprintf("attached a run of %d grain records at image offset %d (LBA %d..%d): it fills a gap of this stream's LBAs and fits no other stream",
			len(run), run[0].Offset, run[0].Grain.LBA, run[len(run)-1].Grain.LBA))
		attached += len(run)
	}
	return attached, orphans
}

// streamsOf returns the stream instances and the image offsets of the
// records they own.
func streamsOf(instances []*Instance) (streams []*Instance, owned map[int64]bool) {
	owned = make(map[int64]bool)
	for _, inst := range instances {
		if inst.Header.Compressed() {
			streams = append(streams, inst)
			for _, m := range inst.markers {
				owned[m.Offset] = true
			}
		}
	}
	return streams, owned
}

// trimRun drops the records at a run's ends that decode to another length
// than most of its records (a grain's): a record cut where its piece of
// the file ends decodes, if at all, to the bytes that follow. It returns
// the rest and how many it dropped.
func trimRun(run []*signatures.Hit) ([]*signatures.Hit, int) {
	count := map[int]int{}
	usual := 0
	for _, m := range run {
		count[m.Grain.DataBytes]++
		if count[m.Grain.DataBytes] > count[usual] {
			usual = m.Grain.DataBytes
		}
	}
	lo, hi := 0, len(run)
	for lo < hi && run[lo].Grain.DataBytes != usual {
		lo++
	}
	for hi > lo && run[hi-1].Grain.DataBytes != usual {
		hi--
	}
	return run[lo:hi], len(run) - (hi - lo)
}

// orphanRuns groups valid grain records no instance owns into chains of
// records that follow each other.
func orphanRuns(x *hitIndex, owned map[int64]bool) [][]*signatures.Hit {
	var runs [][]*signatures.Hit
	var cur []*signatures.Hit
	next := int64(-1)
	for _, m := range x.markers {
		if m.Verdict != signatures.Valid || owned[m.Offset] {
			continue
		}
		for next >= 0 && next < m.Offset && x.isMetaGT(next) {
			next += 5 * vmdk.SectorSize
		}
		if len(cur) > 0 && (m.Offset != next || m.Grain.LBA <= cur[len(cur)-1].Grain.LBA) {
			runs = append(runs, cur)
			cur = nil
		}
		cur = append(cur, m)
		next = m.Offset + m.Length
	}
	if len(cur) > 0 {
		runs = append(runs, cur)
	}
	return runs
}

// runFits reports whether a run of records can only be the missing piece
// of stream s (see attachOrphanRuns).
func runFits(s *Instance, run []*signatures.Hit, instances []*Instance) bool {
	if s.table == nil && corroborated(s, run, instances) < max(len(run), minInformativeRecords) && copyAgrees(s, run, instances) < minInformativeRecords {
		// Without the stream's own table, a run of another stream whose
		// LBAs happen to fall in a gap is indistinguishable from ours,
		// unless its records hold what another file of this disk placed
		// for their grains: every one, or enough of them with none
		// differing in one copy (the copy's other grains may be lost:
		// destroyed by a locker at its own file offsets).
		return false
	}
	if !couldHold(s, run, true) {
		return false
	}
	// Records of incompressible grains all have one length, in every
	// stream: spacing the table agrees with says nothing unless enough
	// records were compressed, each to a length of its own.
	informative := 0
	for _, m := range run {
		if m.Length < s.Header.GrainBytes() {
			informative++
		}
	}
	return informative >= minInformativeRecords || corroborated(s, run, instances) >= minInformativeRecords
}

// couldHold reports whether nothing in stream s excludes the run as its
// missing piece: its LBAs are grains of s, fill one gap of its records,
// and (where its table survives) lie at file offsets spaced as the
// records are, on its host cluster grid. With continues, s must also
// hold a record below the run's LBAs (the run continues the stream, it
// does not start it: the start is the header's fragment); without, a
// stream whose own records were all lost is not excluded.
func couldHold(s *Instance, run []*signatures.Hit, continues bool) bool {
	h := s.Header
	for _, m := range run {
		if m.Grain.LBA%h.GrainSize != 0 || m.Grain.LBA/h.GrainSize >= h.Grains() {
			return false
		}
		if g := m.Grain.LBA / h.GrainSize; int64(m.Grain.DataBytes) != grainLength(h, g) && int64(m.Grain.DataBytes) != h.GrainBytes() {
			return false // decodes to more or less than a grain of this disk
		}
	}
	lo, hi := run[0].Grain.LBA, run[len(run)-1].Grain.LBA
	// The instance's own records, by LBA: none may fall inside [lo, hi].
	lbas := s.knownLBAs()
	i := sort.Search(len(lbas), func(i int) bool { return lbas[i] >= lo })
	if (continues && i == 0) || (i < len(lbas) && lbas[i] <= hi) {
		return false
	}
	if s.table != nil {
		base := int64(-1)
		for _, m := range run {
			g := m.Grain.LBA / h.GrainSize
			e := s.table(g)
			if e == 0 {
				return false
			}
			rel := int64(e)*vmdk.SectorSize - (m.Offset - run[0].Offset)
			if base < 0 {
				base = rel
			} else if rel != base {
				return false
			}
		}
		// The run's place must be on the file's host cluster grid.
		if (run[0].Offset-base-s.HeaderOffset)%clusterBytes != 0 {
			return false
		}
	}
	return true
}

// heldRun is a run of records no stream attached, for one stream that
// could hold it: sure when that stream alone could.
type heldRun struct {
	records []*signatures.Hit
	sure    bool
}

// heldRuns returns the runs of records no stream owns, by each stream that
// could hold them (couldHold, even one whose own records were all lost)
// and that they continue: not attached, as their lengths do not tell their
// stream, but candidates for the blocks of the stream's disk (copy
// anchors, map_copies.go), sure when exactly one stream could.
func heldRuns(instances []*Instance, x *hitIndex) map[*Instance][]heldRun {
	streams, owned := streamsOf(instances)
	out := map[*Instance][]heldRun{}
	if len(streams) == 0 {
		return out
	}
	for _, run := range orphanRuns(x, owned) {
		run, _ = trimRun(run)
		if len(run) == 0 {
			continue
		}
		var holders []*Instance
		for _, s := range streams {
			if couldHold(s, run, false) {
				holders = append(holders, s)
			}
		}
		for _, s := range holders {
			if couldHold(s, run, true) {
				out[s] = append(out[s], heldRun{run, len(holders) == 1})
			}
		}
	}
	return out
}

// corroborated counts the records of a run whose data another file of the
// same disk geometry holds, placed, as the same grain with the same
// xxhash: the run carries this disk's content where its lengths say
// nothing.
func corroborated(s *Instance, run []*signatures.Hit, instances []*Instance) int {
	n := 0
	for _, m := range run {
		if m.Grain.Zero {
			continue
		}
		peerGrain(instances, s, m.Grain.LBA/s.Header.GrainSize, func(_ *Instance, gr *Grain) bool {
			if gr.Status == Placed && gr.Hash == m.Grain.Hash {
				n++
				return true
			}
			return false
		})
	}
	return n
}

// copyAgrees is the most records of a run one other file of the disk's
// geometry holds, placed, with the same xxhash, among files that place
// none of the run's grains with other bytes (0 if none).
func copyAgrees(s *Instance, run []*signatures.Hit, instances []*Instance) int {
	best := 0
	for _, p := range instances {
		if p == s || p.Header.Capacity != s.Header.Capacity || p.Header.GrainSize != s.Header.GrainSize {
			continue
		}
		agree, differ := 0, false
		for _, m := range run {
			gr := p.grains.at(m.Grain.LBA / s.Header.GrainSize)
			if gr == nil || m.Grain.Zero {
				continue
			}
			switch {
			case gr.Status == Placed && gr.Hash == m.Grain.Hash:
				agree++
			case gr.Status == Placed || gr.Status == Zero:
				differ = true
			}
		}
		if !differ {
			best = max(best, agree)
		}
	}
	return best
}

// minInformativeRecords is the compressed records (shorter than a grain)
// a run must hold for its spacing to tell its stream.
const minInformativeRecords = 2

// knownLBAs returns the sorted LBAs of the instance's valid records,
// computed once per change (runFits asks for every orphan run).
func (inst *Instance) knownLBAs() []uint64 {
	if inst.lbas == nil {
		inst.lbas = make([]uint64, 0, len(inst.markers))
		for _, m := range inst.markers {
			if m.Verdict == signatures.Valid {
				inst.lbas = append(inst.lbas, m.Grain.LBA)
			}
		}
		sort.Slice(inst.lbas, func(i, j int) bool { return inst.lbas[i] < inst.lbas[j] })
	}
	return inst.lbas
}
