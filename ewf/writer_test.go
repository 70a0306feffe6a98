package ewf

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/adler32"
)

// testSet is how writeSet lays out a synthetic set, in the EnCase 6 layout
// ewfacquire writes (sectors, table, table2 per segment; hash, digest and
// error2 in the last).
type testSet struct {
	sectorsPerChunk int
	chunksPerSeg    int
	compress        func(chunk int) bool // which chunks to deflate
	md5, sha1       []byte
	errors          []SectorRun
	noTable2        bool
}

// writeSet writes media (a whole number of 512-byte sectors) as EWF-E01
// segment files: the reader's tests and fuzz seeds need sets whose every
// byte they control, beside the ones ewfacquire writes.
func writeSet(media []byte, ts testSet) [][]byte {
	spc := max(ts.sectorsPerChunk, 1)
	cs := spc * 512
	nchunks := (len(media) + cs - 1) / cs
	per := max(ts.chunksPerSeg, 1)
	nsegs := max((nchunks+per-1)/per, 1)
	vol := make([]byte, volumeSizeE01)
	vol[0] = 1
	binary.LittleEndian.PutUint32(vol[volChunkCount:], uint32(nchunks))
	binary.LittleEndian.PutUint32(vol[volSectorsPerChunk:], uint32(spc))
	binary.LittleEndian.PutUint32(vol[volBytesPerSector:], 512)
	binary.LittleEndian.PutUint64(vol[volSectorCount:], uint64(len(media)/512))
	binary.LittleEndian.PutUint32(vol[volChecksumE01:], adler32.Checksum(vol[:volChecksumE01]))

	var out [][]byte
	for s := range nsegs {
		w := &segWriter{}
		w.b = append(w.b, Signature...)
		w.b = append(w.b, 1, 0, 0, 0, 0)
		binary.LittleEndian.PutUint16(w.b[fhSegment:], uint16(s+1))
		if s == 0 {
			w.section(secHeader, zlibBytes([]byte("1\r\nmain\r\n")))
			w.section(secVolume, vol)
		} else {
			w.section(secData, vol)
		}
		// sectors: the chunks, each deflated or raw with its Adler-32.
		sectorsAt := len(w.b)
		w.b = append(w.b, make([]byte, descriptorSize)...)
		var entries []uint32
		for c := s * per; c < min((s+1)*per, nchunks); c++ {
			data := media[c*cs : min((c+1)*cs, len(media))]
			e := uint32(len(w.b) - sectorsAt)
			if ts.compress != nil && ts.compress(c) {
				w.b = append(w.b, zlibBytes(data)...)
				e |= entryCompressed
			} else {
				w.b = append(w.b, data...)
				w.b = binary.LittleEndian.AppendUint32(w.b, adler32.Checksum(data))
			}
			entries = append(entries, e)
		}
		w.fill(sectorsAt, secSectors)
		tab := make([]byte, tableHeaderSize)
		binary.LittleEndian.PutUint32(tab[thCount:], uint32(len(entries)))
		binary.LittleEndian.PutUint64(tab[thBase:], uint64(sectorsAt))
		binary.LittleEndian.PutUint32(tab[thChecksum:], adler32.Checksum(tab[:thChecksum]))
		var eb []byte
		for _, e := range entries {
			eb = binary.LittleEndian.AppendUint32(eb, e)
		}
		tab = append(tab, eb...)
		tab = binary.LittleEndian.AppendUint32(tab, adler32.Checksum(eb))
		w.section(secTable, tab)
		if !ts.noTable2 {
			w.section(secTable2, tab)
		}
		if s < nsegs-1 {
			w.end(secNext)
			out = append(out, w.b)
			continue
		}
		if len(ts.errors) > 0 {
			e2 := make([]byte, error2HeaderSize)
			binary.LittleEndian.PutUint32(e2, uint32(len(ts.errors)))
			binary.LittleEndian.PutUint32(e2[error2Checksum:], adler32.Checksum(e2[:error2Checksum]))
			var eb []byte
			for _, r := range ts.errors {
				eb = binary.LittleEndian.AppendUint32(eb, uint32(r.First))
				eb = binary.LittleEndian.AppendUint32(eb, uint32(r.Count))
			}
			e2 = append(e2, eb...)
			e2 = binary.LittleEndian.AppendUint32(e2, adler32.Checksum(eb))
			w.section(secError2, e2)
		}
		if ts.sha1 != nil {
			d := make([]byte, digestSize)
			copy(d, ts.md5)
			copy(d[digestSHA1:], ts.sha1)
			binary.LittleEndian.PutUint32(d[digestChecksum:], adler32.Checksum(d[:digestChecksum]))
			w.section(secDigest, d)
		}
		if ts.md5 != nil {
			h := make([]byte, hashSize)
			copy(h, ts.md5)
			binary.LittleEndian.PutUint32(h[hashChecksum:], adler32.Checksum(h[:hashChecksum]))
			w.section(secHash, h)
		}
		w.end(secDone)
		out = append(out, w.b)
	}
	return out
}

type segWriter struct{ b []byte }

// section appends a section of the given data.
func (w *segWriter) section(typ string, data []byte) {
	at := len(w.b)
	w.b = append(w.b, make([]byte, descriptorSize)...)
	w.b = append(w.b, data...)
	w.fill(at, typ)
}

// fill writes the descriptor at at for a section running to the end of
// what is written so far.
func (w *segWriter) fill(at int, typ string) {
	d := w.b[at : at+descriptorSize]
	clear(d)
	copy(d, typ)
	binary.LittleEndian.PutUint64(d[sdNext:], uint64(len(w.b)))
	binary.LittleEndian.PutUint64(d[sdSize:], uint64(len(w.b)-at))
	binary.LittleEndian.PutUint32(d[sdChecksum:], adler32.Checksum(d[:sdChecksum]))
}

// end appends a next or done section, which names itself and has size 0.
func (w *segWriter) end(typ string) {
	at := len(w.b)
	w.b = append(w.b, make([]byte, descriptorSize)...)
	d := w.b[at:]
	copy(d, typ)
	binary.LittleEndian.PutUint64(d[sdNext:], uint64(at))
	binary.LittleEndian.PutUint32(d[sdChecksum:], adler32.Checksum(d[:sdChecksum]))
}

func zlibBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// segmentFiles wraps segments as NewImage's input.
func segmentFiles(segs [][]byte) []SegmentFile {
	out := make([]SegmentFile, len(segs))
	for i, s := range segs {
		out[i] = SegmentFile{Path: fmt.Sprintf("test.E%02d", i+1), R: bytes.NewReader(s), Size: int64(len(s))}
	}
	return out
}
