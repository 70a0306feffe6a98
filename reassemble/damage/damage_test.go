package damage

import (
	"fmt"
	"strings"
	"testing"
)

// policyOf builds a damage policy from a chunk pattern: '.' plain, 'R'
// random with plain edges inside, '?' unknown, ' ' empty (host holes).
// Random chunks have random first and last blocks, so a chunk is sharp
// exactly when its neighbours are plain.
func policyOf(pattern string, flat bool) *Policy {
	n := len(pattern)
	p := &Policy{class: make([]Class, n), damaged: make([]bool, n), proofs: map[int][]string{},
		first: make([]Class, n), last: make([]Class, n), flat: flat}
	for k, c := range pattern {
		switch c {
		case '.':
			p.class[k] = Plain
		case 'R':
			p.class[k] = Random
		case ' ':
			p.class[k] = Empty
		}
		p.first[k], p.last[k] = p.class[k], p.class[k]
	}
	return p
}

// lattice draws a planted pattern: width chunks every stride from phase,
// plus a head, over n chunks, on top of the background.
func lattice(background string, head, phase, stride, width, until int) string {
	b := []byte(background)
	for k := range head {
		b[k] = 'R'
	}
	if until == 0 {
		until = len(b)
	}
	for k := phase; k < until; k += stride {
		for w := 0; w < width && k+w < len(b); w++ {
			b[k+w] = 'R'
		}
	}
	return string(b)
}

// content is a background with guest random regions: runs of random chunks
// at the given positions and lengths.
func content(n int, runs ...[2]int) string {
	b := []byte(strings.Repeat(".", n))
	for _, r := range runs {
		for k := r[0]; k < r[0]+r[1] && k < n; k++ {
			b[k] = 'R'
		}
	}
	return string(b)
}

// set overwrites the given chunks of a pattern.
func set(pattern string, at map[int]byte) string {
	b := []byte(pattern)
	for k, c := range at {
		b[k] = c
	}
	return string(b)
}

func TestDamagePolicyLattices(t *testing.T) {
	plain := strings.Repeat(".", 96)
	mixed := content(96, [2]int{10, 5}, [2]int{30, 8}, [2]int{61, 3}, [2]int{80, 6}) // ~23% random, in runs
	for _, tc := range []struct {
		name    string
		pattern string
		flat    bool
		// want: the lattice (phase, stride, chunk width, head) in chunks,
		// or nil for none.
		want *[4]int
	}{
		{"clean", plain, false, nil},
		{"random throughout", strings.Repeat("R", 96), false, nil},
		{"guest random regions", mixed, false, nil},
		{"guest random regions, flat", mixed, true, nil},
		{"every 2nd MiB", lattice(plain, 0, 1, 2, 1, 0), false, &[4]int{1, 2, 1, 0}},
		{"every 4th MiB, phase 3", lattice(plain, 0, 3, 4, 1, 0), false, &[4]int{3, 4, 1, 0}},
		{"every 8th MiB, phase 4", lattice(plain, 0, 4, 8, 1, 0), false, &[4]int{4, 8, 1, 0}},
		{"every 16th MiB, phase 7", lattice(plain, 0, 7, 16, 1, 0), false, &[4]int{7, 16, 1, 0}},
		{"every 16th MiB on a flat extent", lattice(plain, 0, 5, 16, 1, 0), true, &[4]int{5, 16, 1, 0}},
		{"head plus every 8th", lattice(plain, 1, 4, 8, 1, 0), false, &[4]int{4, 8, 1, 1}},
		{"2 MiB every 10", lattice(plain, 0, 3, 10, 2, 0), false, &[4]int{3, 10, 2, 0}},
		{"size step 7, first half only", lattice(plain, 0, 2, 7, 1, 48), false, &[4]int{2, 7, 1, 0}},
		{"every 8th over guest random regions", lattice(mixed, 0, 4, 8, 1, 0), false, &[4]int{4, 8, 1, 0}},
		{"sharp pair in a small sparse file", lattice(strings.Repeat(".", 19), 0, 4, 8, 1, 0), false, &[4]int{4, 8, 1, 0}},
		{"sharp pair on a flat extent: not enough", lattice(strings.Repeat(".", 19), 0, 4, 8, 1, 0), true, nil},
		{"two random chunks among guest regions", content(40, [2]int{4, 1}, [2]int{12, 1}, [2]int{20, 4}), false, nil},
		// Chunk 20 (on the lattice) has no fingerprints, 60..62 are host
		// holes: neither breaks the lattice.
		{"holes and unknowns are neutral", set(lattice(plain, 0, 4, 8, 1, 0), map[int]byte{20: '?', 60: ' ', 61: ' ', 62: ' '}), false, &[4]int{4, 8, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policyOf(tc.pattern, tc.flat)
			p.Decide()
			r := p.Report(0)
			if tc.want == nil {
				if len(p.lattices) != 0 {
					t.Fatalf("accepted %+v on %q", p.lattices, tc.pattern)
				}
				return
			}
			if len(p.lattices) == 0 {
				t.Fatalf("no lattice on %q; best rejected %+v", tc.pattern, r.Rejected)
			}
			l := p.lattices[0]
			got := [4]int{int(l.Phase >> 20), int(l.Stride >> 20), int(l.Chunk >> 20), int(l.Head >> 20)}
			if got != *tc.want {
				t.Errorf("lattice %v (phase, stride, width, head), want %v: %+v", got, *tc.want, l)
			}
			// Every random chunk the pattern plants is damaged (the
			// backgrounds' own random runs are not), no other one is.
			planted := policyOf(lattice(strings.Repeat(".", len(tc.pattern)), got[3], got[0], got[1], got[2], 0), tc.flat)
			for k, c := range p.class {
				if p.damaged[k] && c != Random {
					t.Errorf("chunk %d is damaged but reads %v", k, c)
				}
				if c == Random && planted.class[k] == Random && !p.damaged[k] && k < int(l.End>>20) {
					t.Errorf("chunk %d lies on the lattice and reads random, but is not damaged", k)
				}
			}
		})
	}
}

// TestDamagePolicyStructuralProof: two chunks on a lattice that cover
// grain tables reading random fix it, with too few chunks for statistics.
func TestDamagePolicyStructuralProof(t *testing.T) {
	p := policyOf(content(24, [2]int{3, 1}, [2]int{11, 1}, [2]int{15, 3}), true)
	p.proofs[3] = []string{"primary grain table 0"}
	p.proofs[11] = []string{"primary grain table 9"}
	p.Decide()
	if len(p.lattices) != 1 || p.lattices[0].Phase != 3<<20 || p.lattices[0].Stride != 8<<20 || !strings.HasPrefix(p.lattices[0].Proof, "structure") {
		t.Fatalf("lattices %+v", p.lattices)
	}
	if p.damaged[15] || p.damaged[16] {
		t.Error("guest random chunks off the lattice were taken as damage")
	}
}

// halfRandom is a guest background of n chunks nearly 60% random, in runs
// of 1 to 6 chunks between plain runs of 1 to 4 (a seeded generator): a
// guest half of compressed files. Its random runs do not start or end on the
// file's MiB grid, so the plain chunks beside them hold some of their
// random blocks (spill): none is sharp, as guest content seldom is.
func halfRandom(n int, seed uint64) *Policy {
	b := []byte(strings.Repeat(".", n))
	x := seed
	next := func(m int) int {
		x = x*6364136223846793005 + 1442695040888963407
		return int(x>>33) % m
	}
	for k := next(4); k < n; {
		l := 1 + next(6)
		for j := k; j < k+l && j < n; j++ {
			b[j] = 'R'
		}
		k += l + 1 + next(4)
	}
	p := policyOf(string(b), false)
	for k := range p.class {
		if p.class[k] != Random {
			continue
		}
		if k > 0 && p.class[k-1] == Plain {
			p.last[k-1] = Random
		}
		if k+1 < n && p.class[k+1] == Plain {
			p.first[k+1] = Random
		}
	}
	return p
}

// plant encrypts chunks every stride from phase in a policy's file, as a
// locker does: whole chunks, their first and last blocks random.
func plant(p *Policy, phase, stride int) {
	for k := phase; k < len(p.class); k += stride {
		p.class[k], p.first[k], p.last[k] = Random, Random, Random
	}
}

// TestDamagePolicyWithoutContrast: a locker's lattice through a guest
// whose chunks between read random more often than not has no contrast.
// With structures on it that read random and a chance by accident far
// below uncontrastedSignificance, it is accepted and every chunk on it is
// damaged; the two proofs also fit a sparser lattice through a few of its
// chunks, which must not take them first and leave the real one in runs
// too short to prove. Without the proofs the lattice is not accepted
// without contrast.
func TestDamagePolicyWithoutContrast(t *testing.T) {
	const n, phase, stride = 336, 1, 8
	for _, seed := range []uint64{1, 2, 3} {
		for _, tc := range []struct {
			name    string
			planted bool
			proofs  []int // chunks covering a predicted structure that reads random
			want    bool
		}{
			{"1 MiB every 8 MiB, no structure on it", true, nil, false},
			{"1 MiB every 8 MiB, two proofs 56 MiB apart", true, []int{phase + 7*stride, phase + 14*stride}, true},
		} {
			t.Run(fmt.Sprintf("%s, seed %d", tc.name, seed), func(t *testing.T) {
				p := halfRandom(n, seed)
				if tc.planted {
					plant(p, phase, stride)
				}
				for _, k := range tc.proofs {
					p.class[k] = Random
					p.proofs[k] = []string{"the last block of a file"}
				}
				off, rnd := 0, 0
				for k, c := range p.class {
					if (k-phase)%stride != 0 && c != Empty {
						off++
						if c == Random {
							rnd++
						}
					}
				}
				if 2*rnd <= off {
					t.Fatalf("background %d of %d chunks random: it contrasts", rnd, off)
				}
				p.Decide()
				if !tc.want {
					for _, l := range p.lattices {
						if l.Stride == stride<<20 && l.Phase%(stride<<20) == phase<<20 {
							t.Fatalf("accepted %+v without contrast or structure: %s", l, l.Proof)
						}
					}
					return
				}
				if len(p.lattices) == 0 {
					t.Fatalf("no lattice; best rejected %+v", p.Report(0).Rejected)
				}
				for k := phase; k < n; k += stride {
					if !p.damaged[k] {
						t.Errorf("chunk %d is on the lattice but not damaged; lattices %+v", k, p.lattices)
					}
				}
				if l := p.lattices[0]; l.Stride != stride<<20 || l.Phase != phase<<20 {
					t.Errorf("first lattice %+v, want 1 MiB every 8 MiB from 1 MiB", l)
				}
			})
		}
	}
}

// FuzzDamagePolicy feeds arbitrary chunk patterns (two bits a chunk:
// class; a third: a structural proof) to the lattice search: it must not
// panic, and it must never call a chunk damaged that does not read random.
func FuzzDamagePolicy(f *testing.F) {
	f.Add([]byte("..R...R...R...R...R.."), false)
	f.Add([]byte(lattice(strings.Repeat(".", 64), 2, 5, 9, 2, 50)), true)
	f.Fuzz(func(t *testing.T, pattern []byte, flat bool) {
		if len(pattern) > 4096 {
			pattern = pattern[:4096]
		}
		var b strings.Builder
		for _, c := range pattern {
			b.WriteByte(".R? "[c&3])
		}
		p := policyOf(b.String(), flat)
		for k, c := range pattern {
			if c&4 != 0 {
				p.Prove(int64(k)*ChunkSize, "a structure")
			}
		}
		p.Decide()
		r := p.Report(0)
		for k, d := range p.damaged {
			if d && p.class[k] != Random {
				t.Fatalf("chunk %d damaged but reads %v; lattices %+v", k, p.class[k], r.Lattices)
			}
		}
		for k := range p.class {
			if _, on := p.On(int64(k)*ChunkSize, 1); on != p.damaged[k] {
				t.Fatalf("chunk %d: on() says %v, damaged %v", k, on, p.damaged[k])
			}
		}
	})
}

// BenchmarkDamagePolicy runs the lattice search over a 40 GiB file whose
// guest holds about 30% random content in runs, encrypted every 16 MiB:
// the worst case, where every stride and phase is walked.
func BenchmarkDamagePolicy(b *testing.B) {
	const n = 40 << 10
	var runs [][2]int
	for k := 7; k < n; k += 23 {
		runs = append(runs, [2]int{k, 7})
	}
	pattern := lattice(content(n, runs...), 0, 5, 16, 1, 0)
	for b.Loop() {
		p := policyOf(pattern, false)
		p.Decide()
	}
}
