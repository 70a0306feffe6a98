package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"vmdkcarve/corpus"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
)

// followCase is one row of the fragment-following table: a scenario and
// the recall each sparse file's own grains must reach.
type followCase struct {
	scenario string
	size     int64
	// minRecall is the share of a file's intact grains its own instance
	// must place, by guest filesystem and "sparse" or "stream" ("ext4
	// sparse"). The synthetic disk's pieces hold no guest structure and
	// are not followed: it is logged only.
	minRecall map[string]float64
}

// TestFollowFragments rebuilds VMDKs cut into 6..19 pieces laid at places
// of their own, in and out of order, with other files' pieces and a
// headerless decoy piece of another sparse file of the same guest
// between them, and no host metadata at all (corpus "fragmented"); then
// the same with every 8th MiB of each file encrypted. No grain may be
// wrong, the decoy's bytes are never a source, and each real-guest file
// places the recall its anchors reach: a sparse file's pieces by their
// anchors, a stream's runs of records by its markers, where the two
// copies' blocks corroborate each other. It logs the table the closing
// note quotes.
func TestFollowFragments(t *testing.T) {
	if testing.Short() {
		t.Skip("fragment following generates real guests: skipped with -short")
	}
	var rows []string
	for _, fc := range []followCase{
		{"fragmented", 256 << 20, map[string]float64{"ext4 sparse": 0.98, "ntfs sparse": 0.98, "ext4 stream": 0.97, "ntfs stream": 0.95}},
		{"fragmented-encrypted", 256 << 20, map[string]float64{"ext4 sparse": 0.93, "ntfs sparse": 0.98, "ext4 stream": 0.96, "ntfs stream": 0.88}},
	} {
		t.Run(fc.scenario, func(t *testing.T) {
			spec, err := corpus.Scenario(fc.scenario, 3, fc.size, corpus.HaveQemu())
			if err != nil {
				t.Fatal(err)
			}
			truth := generate(t, spec)
			start := time.Now()
			run := carveAndRebuild(t, truth.Image)
			seconds := time.Since(start).Seconds()
			if run.err != nil && !errors.Is(run.err, pipeline.ErrNothingRecovered) {
				t.Fatalf("rebuild: %v", run.err)
			}
			var decoys []corpus.FileTruth
			for _, f := range truth.Files {
				if f.Decoy != nil {
					decoys = append(decoys, f)
				}
			}
			for _, rep := range run.reports {
				s := scoreDisk(t, run, truth, rep)
				if s.wrong != 0 {
					t.Errorf("disk %d: %d wrong grains", s.disk, s.wrong)
				}
				for _, d := range decoys {
					if used := decoyUsed(rep, d); used != "" {
						t.Errorf("disk %d: the decoy piece is a source: %s", s.disk, used)
					}
				}
				for _, f := range truth.Files {
					if f.Decoy != nil || !instanceAt(rep, f.ImageOffset) {
						continue
					}
					placed, intact := intactPlaced(statuses(rep.Disk), f)
					recall := 1.0
					if intact > 0 {
						recall = float64(placed) / float64(intact)
					}
					anchors, anchored := anchorsOf(rep, f.ImageOffset)
					fs := truth.Disk(f.Disk).FS
					kind := "synthetic"
					if fs != nil {
						kind = fs.FS
					}
					rows = append(rows, fmt.Sprintf("%-22s %-24s %-9s pieces %2d  anchors %5d  anchored fragments %2d  recall %5.1f%% (%d/%d)  wrong %d  unplaced %d  rebuild %.1fs",
						fc.scenario, f.Variant, kind, max(len(f.Fragments), 1), anchors, anchored, 100*recall, placed, intact, s.wrong, intact-placed, seconds))
					if fs == nil {
						continue
					}
					layout := "stream"
					if strings.Contains(string(f.Variant), "sparse") {
						layout = "sparse"
					}
					if want := fc.minRecall[fs.FS+" "+layout]; recall < want {
						t.Errorf("%s (%s guest): placed %d of %d intact grains (%.1f%%), want at least %.0f%%", f.Variant, fs.FS, placed, intact, 100*recall, 100*want)
					}
				}
			}
		})
	}
	t.Logf("fragment-following table:\n%s", strings.Join(rows, "\n"))
}

// anchorsOf sums the anchors of the anchored fragments of the instance
// found at a file's image offset.
func anchorsOf(rep *pipeline.DiskReport, imageOffset int64) (anchors, fragments int) {
	for _, inst := range rep.Disk.Instances {
		if inst.HeaderOffset != imageOffset {
			continue
		}
		for _, fr := range inst.Fragments {
			if fr.Link == reassemble.LinkAnchored {
				anchors += fr.Anchors
				fragments++
			}
		}
	}
	return anchors, fragments
}

// decoyUsed says which placed run reads from the decoy's image range, or
// "".
func decoyUsed(rep *pipeline.DiskReport, d corpus.FileTruth) string {
	inDecoy := func(off, n int64) bool {
		for _, fr := range d.Fragments {
			if off < fr.ImageOffset+fr.Length && fr.ImageOffset < off+n {
				return true
			}
		}
		return false
	}
	gb := int64(rep.Disk.GrainSize) * 512
	for _, r := range rep.Disk.Runs {
		if r.Status != reassemble.Placed {
			continue
		}
		for _, p := range r.Pieces {
			if p.ImageOffset >= 0 && inDecoy(p.ImageOffset, p.Length) {
				return fmt.Sprintf("grain %d piece at image offset %d", r.FirstGrain, p.ImageOffset)
			}
		}
		for i := uint64(0); i < r.Count && len(r.Pieces) == 0; i++ {
			off := r.ImageOffset + int64(i)*r.Stride
			n := gb
			if r.Compressed {
				n = r.RecordBytes
			}
			if inDecoy(off, n) {
				return fmt.Sprintf("grain %d at image offset %d", r.FirstGrain+i, off)
			}
		}
	}
	return ""
}
