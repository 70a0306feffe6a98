package corpus

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Files in pieces without a host (FileSpec.Pieces, InOrder, Decoy): the
// fragments a host filesystem would have left, with its metadata gone.

// firstPiece is the least length of a file's first piece: the header, the
// descriptor and the front grain directories and tables of any file the
// corpus makes lie in its first MiB.
const firstPiece = 1 << 20

// Piece lengths are drawn as weights of 1..maxPieceWeight units, log-
// uniform, then scaled to the file.
const maxPieceWeight = 64

// pieceRand is the seeded source of one file's piece lengths and gaps.
func pieceRand(seed uint64, index int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, mix(uint64(index)^0x7069656365))) // "piece"
}

// pieceLengths splits a file of length bytes into n >= 2 pieces, in file
// order: multiples of fileAlign but the last, which ends at the file's
// end; the first at least firstPiece, every other at least half its fair
// share of the rest, at most firstPiece (so a large file's pieces are
// 1 MiB at least). A file with fewer clusters than a first piece and one
// per other piece is an error.
func pieceLengths(rng *rand.Rand, length int64, n int) ([]int64, error) {
	clusters := (length + fileAlign - 1) / fileAlign
	firstMin := int64(firstPiece / fileAlign)
	if n < 2 || clusters < firstMin+int64(n-1) {
		return nil, fmt.Errorf("a %d-byte file cannot make %d pieces: the first needs %d bytes, every other %d", length, n, firstPiece, fileAlign)
	}
	w := make([]float64, n)
	var sum float64
	for i := range w {
		w[i] = math.Exp2(math.Log2(maxPieceWeight) * rng.Float64())
		sum += w[i]
	}
	c := make([]int64, n)
	var total int64
	othersMin := min(max((clusters-firstMin)/int64(n-1)/2, 1), firstMin)
	least := func(i int) int64 {
		if i == 0 {
			return firstMin
		}
		return othersMin
	}
	for i := range c {
		c[i] = max(int64(w[i]/sum*float64(clusters)), least(i))
		total += c[i]
	}
	// The minimums may have added clusters: take them back from the
	// pieces with the most to spare (each pass empties one piece's spare
	// or ends, so at most n passes). Rounding down left a shortfall for
	// the last piece.
	for total > clusters {
		j := 0
		for i := range c {
			if c[i]-least(i) > c[j]-least(j) {
				j = i
			}
		}
		d := min(c[j]-least(j), total-clusters)
		c[j] -= d
		total -= d
	}
	c[n-1] += clusters - total
	out := make([]int64, n)
	var laid int64
	for i := range n - 1 {
		out[i] = c[i] * fileAlign
		laid += out[i]
	}
	out[n-1] = length - laid
	return out, nil
}

// pieceItems returns the place items of file index's pieces (lengths in
// file order) and, per item, the file offset each lays. An in-order file
// is one item whose parts are its pieces, with seeded gaps of 1 cluster
// to twice the mean piece between them; an out-of-order file is one item
// per piece, grouped so that place breaks their order.
func pieceItems(rng *rand.Rand, index int, lengths []int64, inOrder bool) ([]placeItem, [][]int64) {
	var fileOffs []int64
	var off int64
	for _, n := range lengths {
		fileOffs = append(fileOffs, off)
		off += n
	}
	if !inOrder {
		items := make([]placeItem, len(lengths))
		offs := make([][]int64, len(lengths))
		for k, n := range lengths {
			items[k] = placeItem{what: fmt.Sprintf("file %d's piece %d", index, k), length: n, group: index + 1, seq: k}
			offs[k] = fileOffs[k : k+1]
		}
		return items, offs
	}
	meanClusters := max(off/int64(len(lengths))/fileAlign, 1)
	it := placeItem{what: fmt.Sprintf("file %d's pieces", index)}
	var rel int64
	for k, n := range lengths {
		if k > 0 {
			rel += (1 + rng.Int64N(2*meanClusters)) * fileAlign
		}
		it.parts = append(it.parts, [2]int64{rel, n})
		rel += n
	}
	it.length = rel
	return []placeItem{it}, [][]int64{fileOffs}
}

// layNoise places the files of a spec without a host, and the
// descriptors still to be placed (descAt[i] == 0), into the image. It
// returns each file's fragments in file order (nil for a file laid in one
// run) and its image offset, and sets descAt.
func layNoise(spec Spec, files map[fileKey]*made, descAt []int64) (frags [][]Fragment, at []int64, err error) {
	var items []placeItem
	// owner[j] and fileOff[j] say which file item j lays, and from which
	// file offsets (one per part; a single run for a plain item).
	var owner []int
	var fileOff [][]int64
	add := func(i int, its []placeItem, offs [][]int64) {
		for k := range its {
			items = append(items, its[k])
			owner = append(owner, i)
			fileOff = append(fileOff, offs[k])
		}
	}
	for i, f := range spec.Files {
		m := files[fileKey{f.Disk, f.Variant}]
		switch {
		case f.Decoy != nil:
			d := f.Decoy
			if d.At+d.Length > m.length {
				return nil, nil, specErr("file %d: decoy [%d, %d) runs past the %d-byte file", i, d.At, d.At+d.Length, m.length)
			}
			add(i, []placeItem{{what: fmt.Sprintf("file %d's decoy", i), offset: f.Offset, length: d.Length}}, [][]int64{{d.At}})
		case f.Pieces > 1:
			rng := pieceRand(spec.Seed, i)
			lengths, err := pieceLengths(rng, m.length, f.Pieces)
			if err != nil {
				return nil, nil, specErr("file %d: %v", i, err)
			}
			its, offs := pieceItems(rng, i, lengths, f.InOrder)
			add(i, its, offs)
		default:
			add(i, []placeItem{{what: fmt.Sprintf("file %d", i), offset: f.Offset, length: m.length}}, [][]int64{{0}})
		}
	}
	nFileItems := len(items)
	for i, f := range spec.Files {
		if descAt[i] == 0 {
			items = append(items, placeItem{what: fmt.Sprintf("file %d's descriptor", i), length: files[fileKey{f.Disk, f.Variant}].descLen})
		}
	}
	offs, err := place(spec.Seed, spec.ImageSize, items)
	if err != nil {
		return nil, nil, err
	}
	frags = make([][]Fragment, len(spec.Files))
	at = make([]int64, len(spec.Files))
	for j := range nFileItems {
		i, it := owner[j], items[j]
		if it.parts == nil {
			frags[i] = append(frags[i], Fragment{FileOffset: fileOff[j][0], ImageOffset: offs[j], Length: it.length})
			continue
		}
		for k, p := range it.parts {
			frags[i] = append(frags[i], Fragment{FileOffset: fileOff[j][k], ImageOffset: offs[j] + p[0], Length: p[1]})
		}
	}
	for i, f := range spec.Files {
		// Out-of-order pieces were added in file order, so every
		// fragment list is sorted by file offset.
		at[i] = frags[i][0].ImageOffset
		if f.Pieces < 2 && f.Decoy == nil {
			frags[i] = nil
		}
	}
	offs = offs[nFileItems:]
	for i := range descAt {
		if descAt[i] == 0 {
			descAt[i], offs = offs[0], offs[1:]
		}
	}
	return frags, at, nil
}
