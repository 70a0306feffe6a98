package corpus

// Intermittent encryption: ransomware (ESXiArgs, LockBit, BlackCat, Akira,
// Royal) encrypts a large file in place chunk by chunk, a chunk every
// stride bytes, often with the file's head as well, and leaves the bytes
// between as they were. Damage.Chunks gives the lattice of one file; the
// file damage EncryptChunks and the host damage EncryptEveryNthMiB both
// lay it.

// MaxChunks bounds the chunks one encryption makes in one file (a 64 GiB
// file at a 1 MiB stride): each is a range in the truth. A damage that
// would make more is a spec error when the file is laid.
const MaxChunks = 1 << 16

// defaultChunk is Damage.Chunk's default: ESXiArgs' and most others' MiB.
const defaultChunk = 1 << 20

func (d Damage) chunk() int64 {
	if d.Chunk == 0 {
		return defaultChunk
	}
	return d.Chunk
}

// EffectiveStride returns the stride of d's strided chunks in a file of
// fileLength bytes: d.Stride, or with d.SizeStep ESXiArgs' choice from the
// file's size, (1 + fileLength / 16 MiB) MiB, at least 2 MiB.
func EffectiveStride(d Damage, fileLength int64) int64 {
	if !d.SizeStep {
		return d.Stride
	}
	return max((1+max(fileLength, 0)/(16<<20))<<20, 2<<20)
}

// Chunks returns the file offset ranges [start, end) that d encrypts in a
// file of fileLength bytes, sorted and clipped to the file: the head
// [0, Head), and a chunk of Chunk bytes (default 1 MiB) at At, At+stride,
// ... while below Until (default: the file's end), each clipped to Until.
// Overlapping ranges are merged; ranges that merely touch are not (the
// host damage with a 1 MiB period encrypts MiB after MiB). At most
// MaxChunks+1 ranges are returned.
func (d Damage) Chunks(fileLength int64) [][2]int64 {
	if fileLength <= 0 {
		return nil
	}
	chunk := d.chunk()
	stride := EffectiveStride(d, fileLength)
	if stride <= 0 || chunk <= 0 {
		return nil // an invalid damage (validate refuses it); never loop forever
	}
	end := fileLength
	if d.Until > 0 {
		end = min(end, d.Until)
	}
	var out [][2]int64
	add := func(s, e int64) {
		if k := len(out); k > 0 && s < out[k-1][1] {
			out[k-1][1] = max(out[k-1][1], e)
			return
		}
		out = append(out, [2]int64{s, e})
	}
	if d.Head > 0 {
		add(0, min(d.Head, fileLength))
	}
	for o := d.At; o >= 0 && o < end && len(out) <= MaxChunks; o += stride {
		add(o, min(o+chunk, end))
	}
	return out
}

// fileDamage is the per-file lattice of an EncryptEveryNthMiB host damage.
func (h HostDamage) fileDamage() Damage {
	d := Damage{Kind: EncryptChunks, Chunk: 1 << 20, At: h.Offset, Head: h.Head, SizeStep: h.SizeStep}
	if !h.SizeStep {
		d.Stride = int64(h.N) << 20
	}
	return d
}
