package damage

import (
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
