package reassemble

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"vmdkcarve/vmdk"
)

// newTestFollower is a follower over an image, for the header at 0 with
// 64 KiB grains, without tables (runs and contests need none).
func newTestFollower(img []byte) *follower {
	return &follower{inst: &Instance{HeaderOffset: 0, Header: &vmdk.SparseHeader{GrainSize: 128}}, image: bytes.NewReader(img),
		imageSize: int64(len(img)), x: &hitIndex{}, gb: 64 << 10}
}

// TestFollowRuns: pieces from anchors, in file order; copies elsewhere do
// not split a piece; a rival with as many anchors of its own takes
// nothing, and neither does the piece there.
func TestFollowRuns(t *testing.T) {
	const mib = 1 << 20
	at := func(file, shift int64) anchor { return anchor{file: file, img: file + shift, n: 512, kind: "test"} }
	grains := func(shift int64, files ...int64) []anchor {
		var out []anchor
		for _, f := range files {
			out = append(out, at(f, shift))
		}
		return out
	}
	weak := func(as []anchor) []anchor {
		for i := range as {
			as[i].weak, as[i].kind = true, "guest file tail"
		}
		return as
	}
	for _, tc := range []struct {
		name    string
		copyOf  [3]int64 // copy n bytes from image offset [0] to [1]: [0], [1], [2]=n
		anchors []anchor
		want    []string // "shift lo..hi" per run
	}{
		{
			name:    "two pieces",
			anchors: append(grains(8*mib, 0, 64<<10, 128<<10), grains(20*mib, 1*mib, 1*mib+64<<10)...),
			want:    []string{"8388608 0..131584", "20971520 1048576..1114624"},
		},
		{
			name:    "a lone structure of another shift splits a piece",
			anchors: append(grains(8*mib, 0, 64<<10, 512<<10, 576<<10), grains(12*mib, 256<<10, 320<<10)...),
			want:    []string{"8388608 0..66048", "12582912 262144..328192", "8388608 524288..590336"},
		},
		{
			name:    "a copy with the same bytes is not a rival",
			copyOf:  [3]int64{8 * mib, 24 * mib, mib},
			anchors: append(grains(8*mib, 0, 64<<10, 128<<10, 192<<10), grains(24*mib, 64<<10, 128<<10)...),
			want:    []string{"8388608 0..197120"},
		},
		{
			// Interleaved rivals split each other: each structure keeps
			// only its own cluster, nothing between is taken as either's.
			name:    "interleaved rivals",
			anchors: append(grains(8*mib, 0, 64<<10, 128<<10), grains(24*mib, 64<<10+4096, 128<<10+4096)...),
			want:    []string{"8388608 0..66048", "25165824 69632..70144", "8388608 131072..131584", "25165824 135168..135680"},
		},
		{
			name:    "two tails elsewhere do not split a piece",
			anchors: append(grains(8*mib, 0, 64<<10, 128<<10, 192<<10), weak(grains(24*mib, 100<<10, 170<<10))...),
			want:    []string{"8388608 0..197120"},
		},
		{
			name: "a rival backed by a few tails loses to a well-anchored piece",
			anchors: append(grains(8*mib, 0, 64<<10, 128<<10, 192<<10, 256<<10, 320<<10, 384<<10, 448<<10, 512<<10, 576<<10, 640<<10, 704<<10),
				weak(grains(24*mib+4096, 600<<10, 900<<10, 1000<<10))...),
			// (The rival's two tails past the piece are no piece alone.)
			want: []string{"8388608 0..721408"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := make([]byte, 32*mib)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range img {
				img[i] = byte(r.Uint32())
			}
			if c := tc.copyOf; c[2] > 0 {
				copy(img[c[1]:c[1]+c[2]], img[c[0]:c[0]+c[2]])
			}
			f := newTestFollower(img)
			f.setHypotheses(tc.anchors)
			var got []string
			for _, r := range f.runs(tc.anchors) {
				got = append(got, fmt.Sprintf("%d %d..%d", r.shift, r.lo(), r.hi()))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("runs %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkFollowRuns plans pieces from anchors: n pieces of 16 anchors
// each, in shuffled file order, with a copy's anchors interleaved. The
// cost per op must grow no worse than n log n: compare the ns/op of the
// sub-benchmarks (10x pieces should cost about 10-13x).
func BenchmarkFollowRuns(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pieces=%d", n), func(b *testing.B) {
			img := make([]byte, 1<<20)
			f := newTestFollower(img)
			f.imageSize = 1 << 50 // anchors point past the bytes: reads fail, so no pair reads alike
			r := rand.New(rand.NewPCG(3, 4))
			var anchors []anchor
			const piece = 4 << 20
			for i := range n {
				shift := int64(r.IntN(1<<30)) * 4096
				for k := range 16 {
					file := int64(i)*piece + int64(k)*(piece/16)
					anchors = append(anchors, anchor{file: file, img: file + shift, n: 512, kind: "test"})
				}
			}
			r.Shuffle(len(anchors), func(i, j int) { anchors[i], anchors[j] = anchors[j], anchors[i] })
			b.ResetTimer()
			for b.Loop() {
				f.setHypotheses(anchors)
				if got := f.runs(anchors); len(got) != n {
					b.Fatalf("%d runs, want %d", len(got), n)
				}
			}
		})
	}
}

// TestFollowBoundaries: between two pieces of one shift with nothing
// between that contradicts it, the file is mapped whole; between pieces of
// two shifts nothing is mapped (a piece with no anchors may lie there),
// nor a cluster both have anchors in.
func TestFollowBoundaries(t *testing.T) {
	const mib = 1 << 20
	piece := func(shift int64, files ...int64) *run {
		r := &run{shift: shift}
		for _, f := range files {
			r.anchors = append(r.anchors, anchor{file: f, img: f + shift, n: 512, kind: "test"})
		}
		return r
	}
	for _, tc := range []struct {
		name string
		runs []*run
		want string // "file..end@shift" per fragment
	}{
		{"one shift", []*run{piece(8*mib, 0, 64<<10), piece(8*mib, 512<<10, 576<<10)},
			"[0K..512K@8388608 512K..580K@8388608]"},
		{"two shifts", []*run{piece(8*mib, 0, 64<<10), piece(20*mib, 512<<10, 576<<10)},
			"[0K..68K@8388608 512K..580K@20971520]"},
		// Anchors of two shifts in one cluster: it lies at one place, so
		// neither piece maps it.
		{"two shifts in one cluster", []*run{piece(8*mib, 64<<10, 128<<10+512), piece(20*mib, 128<<10+2048, 256<<10)},
			"[64K..128K@8388608 132K..260K@20971520]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFollower(make([]byte, 32*mib))
			var all []anchor
			for _, r := range tc.runs {
				all = append(all, r.anchors...)
			}
			f.setHypotheses(all)
			var got []string
			for _, fr := range f.fragments(tc.runs) {
				got = append(got, fmt.Sprintf("%dK..%dK@%d", fr.FileOffset>>10, (fr.FileOffset+fr.Length)>>10, fr.ImageOffset-fr.FileOffset))
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Errorf("fragments %s, want %s", s, tc.want)
			}
		})
	}
}

// failingAt is an image whose reads fail where they meet bad.
type failingAt struct {
	*bytes.Reader
	bad int64
}

func (r failingAt) ReadAt(p []byte, off int64) (int, error) {
	if off <= r.bad && r.bad < off+int64(len(p)) {
		return 0, fmt.Errorf("unreadable byte %d", r.bad)
	}
	return r.Reader.ReadAt(p, off)
}

// TestScanChunks: the chunks scanned several at a time give what one loop
// over them gives, in order: each residue's chunks from its start, a
// residue's scan ending at its first read error, at most maxFollowAnchors
// anchors.
func TestScanChunks(t *testing.T) {
	const chunks = 9
	img := make([]byte, chunks*tailScanChunk-12345) // the last chunk short
	residues := []int64{0, 512, 1536}
	// scan gives an anchor per chunk naming it, then perChunk more, and
	// its bytes' length: whatever it is given shows in its output.
	scanWith := func(perChunk int) func(b []byte, off int64, out []anchor, limit int) []anchor {
		return func(b []byte, off int64, out []anchor, limit int) []anchor {
			for i := 0; i <= perChunk && len(out) < limit; i++ {
				out = append(out, anchor{file: int64(i), img: off, n: int64(len(b))})
			}
			return out
		}
	}
	// want is the loop scanChunks stands for.
	want := func(image io.ReaderAt, perChunk int) []anchor {
		var out []anchor
		buf := make([]byte, tailScanChunk)
		for _, r := range residues {
			for off := r; off < int64(len(img)); off += tailScanChunk {
				n, err := image.ReadAt(buf[:min(tailScanChunk, int64(len(img))-off)], off)
				if err != nil && err != io.EOF {
					break
				}
				for _, a := range scanWith(perChunk)(buf[:n], off, nil, maxFollowAnchors) {
					if len(out) < maxFollowAnchors {
						out = append(out, a)
					}
				}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		bad      int64 // -1: none
		perChunk int
	}{
		{"every chunk", -1, 3},
		{"a read error ends each residue's scan there", 4*tailScanChunk + 1000, 3},
		{"capped", -1, maxFollowAnchors / 20},
	} {
		for _, workers := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/workers=%d", tc.name, workers), func(t *testing.T) {
				var image io.ReaderAt = bytes.NewReader(img)
				if tc.bad >= 0 {
					image = failingAt{bytes.NewReader(img), tc.bad}
				}
				f := &follower{image: image, imageSize: int64(len(img)), workers: workers}
				got := f.scanChunks(residues, scanWith(tc.perChunk))
				w := want(image, tc.perChunk)
				if len(w) < 4 || (tc.perChunk > chunks && len(w) != maxFollowAnchors) {
					t.Fatalf("the test's reference gives %d anchors", len(w))
				}
				if !slices.Equal(got, w) {
					t.Fatalf("%d anchors, want %d (first difference at %d)", len(got), len(w), firstDiff(got, w))
				}
			})
		}
	}
}

func firstDiff(a, b []anchor) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
