package pipeline

import (
	"sync/atomic"

	"vmdkcarve/carver"
	"vmdkcarve/reassemble"
)

// The steps RebuildOptions.Meter is told about.
const (
	StepPlan = "plan" // VMDK instances placed, of those found
	StepEmit = "emit" // grains written, of every emitted disk's
)

// resumedProgress reports a resumed shard's progress as progress through the
// whole shard: the carver counts only what this run scans, but a user
// watching a resumed run wants to see it continue from where it stopped.
type resumedProgress struct {
	next        carver.Progress
	doneAlready int64 // bytes of the shard scanned by earlier runs
	total       int64 // bytes in the shard
	hitsAlready int64
}

func (p resumedProgress) Scanned(done, _ int64, hits int64) {
	p.next.Scanned(p.doneAlready+done, p.total, p.hitsAlready+hits)
}

// grainMeter counts the grains the emit step writes, over every disk, for
// RebuildOptions.Meter. A nil *grainMeter (no Meter) counts nothing.
type grainMeter struct {
	meter       func(step, unit string, done, total int64)
	passes      int64 // times each grain is read: the VMDK and each extra format
	done, total atomic.Int64
}

func newGrainMeter(opts RebuildOptions) *grainMeter {
	if opts.Meter == nil {
		return nil
	}
	return &grainMeter{meter: opts.Meter, passes: 1 + int64(len(extraFormats(opts)))}
}

// add counts the grains of a disk about to be written: every grain of the
// VMDK, and again for each extra format (writeExtraFormats).
func (m *grainMeter) add(d *reassemble.Disk) {
	if m == nil || d.GrainSize == 0 {
		return
	}
	m.total.Add(m.passes * int64((d.Capacity+d.GrainSize-1)/d.GrainSize))
}

// counting wraps a disk's grain reader so that each grain read for
// writing is counted and metered.
func (m *grainMeter) counting(read func(uint64, []byte) (bool, error)) func(uint64, []byte) (bool, error) {
	if m == nil {
		return read
	}
	return func(g uint64, buf []byte) (bool, error) {
		m.meter(StepEmit, "grains", m.done.Add(1), m.total.Load())
		return read(g, buf)
	}
}
