package pipeline

import "vmdkcarve/carver"

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
