package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// dfxmlSchema is the vendored DFXML schema (pipeline/dfxml/testdata/schema).
const dfxmlSchema = "../pipeline/dfxml/testdata/schema/dfxml.xsd"

// dfxmlDoc is what the test reads back of CASE/report.dfxml, by local
// names (encoding/xml matches a tag without a namespace to any).
type dfxmlDoc struct {
	Source struct {
		Image string `xml:"image_filename"`
	} `xml:"source"`
	Image struct {
		Runs []struct {
			Img    int64       `xml:"img_offset,attr"`
			Len    int64       `xml:"len,attr"`
			Hashes []dfxmlHash `xml:"hashdigest"`
		} `xml:"byte_runs>byte_run"`
		Error string `xml:"error"`
	} `xml:"diskimageobject"`
	Files []struct {
		Name   string      `xml:"filename"`
		Error  string      `xml:"error"`
		Size   int64       `xml:"filesize"`
		Hashes []dfxmlHash `xml:"hashdigest"`
		Also   []struct {
			Path   string `xml:"path,attr"`
			Size   int64  `xml:"size,attr"`
			SHA256 string `xml:"sha256,attr"`
		} `xml:"output"`
		Runs struct {
			ContentSize int64      `xml:"content_size,attr"`
			Runs        []dfxmlRun `xml:"byte_run"`
		} `xml:"byte_runs"`
	} `xml:"fileobject"`
}

type dfxmlHash struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type dfxmlRun struct {
	File         int64  `xml:"file_offset,attr"`
	Img          *int64 `xml:"img_offset,attr"`
	Len          int64  `xml:"len,attr"`
	Uncompressed int64  `xml:"uncompressed_len,attr"`
	Fill         string `xml:"fill,attr"`
	Record       string `xml:"record,attr"`
	RecordOffset int64  `xml:"record_offset,attr"`
}

// TestDFXMLReport rebuilds evidence holding every kind of byte run (grain
// runs of sparse files, a sparse file laid in pieces, compressed stream
// grains, grains split across an NTFS host's fragments) from an image
// whose path holds XML's special characters, validates CASE/report.dfxml
// against the published schema with xmllint, and checks that every byte
// run maps back: the image's bytes at img_offset are the rebuilt disk's
// (read by qemu-img) at file_offset, a compressed record decodes to them,
// a fill reads as zeros; every run lies in a placed grain and every placed
// grain has a run; each fileobject's size and digest are its file's.
func TestDFXMLReport(t *testing.T) {
	tooltest.Need(t, "xmllint")
	for _, tc := range []struct {
		name  string
		truth func(t *testing.T) *corpus.Truth
		// kinds of byte run the case must have
		compressed, split bool
	}{
		{"sparse, pieces and streams", func(t *testing.T) *corpus.Truth {
			return generate(t, corpus.Spec{Seed: 31, ImageSize: 128 << 20,
				Disks: []corpus.DiskSpec{disk(1, 24<<20), disk(2, 16<<20+4096)},
				Files: []corpus.FileSpec{
					{Disk: 1, Variant: corpus.OursSparse, Pieces: 3, InOrder: true},
					{Disk: 2, Variant: corpus.VMwareStream, Damage: []corpus.Damage{{Kind: corpus.CutTail, Bytes: 128 << 10}}},
				}})
		}, true, false},
		{"ntfs-host", func(t *testing.T) *corpus.Truth { return generateHost(t, "ntfs-host", 96<<20) }, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := tc.truth(t)
			// The evidence's path holds every character XML escapes.
			dir := filepath.Join(t.TempDir(), `ev &<b> "q" 'a'`)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			image := filepath.Join(dir, "image&.dd")
			if err := os.Rename(truth.Image, image); err != nil {
				t.Fatal(err)
			}
			run := carveAndRebuild(t, image)
			if run.err != nil {
				t.Fatalf("rebuild: %v", run.err)
			}
			report := filepath.Join(run.caseDir, pipeline.ReportDFXMLName)
			tooltest.Run(t, "xmllint", "--noout", "--nonet", "--schema", dfxmlSchema, report)
			raw, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var doc dfxmlDoc
			if err := xml.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			checkDFXMLSource(t, run, &doc, image)
			checkDFXMLFindings(t, run, raw)
			img, err := os.Open(image)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if len(doc.Files) != len(run.reports) {
				t.Fatalf("%d fileobjects, %d disks rebuilt", len(doc.Files), len(run.reports))
			}
			var compressed, split, runs int
			for i, rep := range run.reports {
				f := doc.Files[i]
				if f.Name != filepath.ToSlash(rep.Output[0].Path) {
					t.Fatalf("fileobject %d is %s, disk report %s", i, f.Name, rep.Output[0].Path)
				}
				checkFileDigest(t, filepath.Join(run.caseDir, f.Name), f.Size, f.Hashes)
				if len(f.Also) != len(rep.Output)-1 {
					t.Errorf("%s: %d other outputs listed, the report has %d", f.Name, len(f.Also), len(rep.Output)-1)
				}
				for _, o := range f.Also {
					checkFileDigest(t, filepath.Join(run.caseDir, o.Path), o.Size, []dfxmlHash{{"sha256", o.SHA256}})
				}
				d := rep.Disk
				size, gb := int64(d.Capacity)*512, int64(d.GrainSize)*512
				if f.Runs.ContentSize != size {
					t.Errorf("%s: content_size %d, the disk has %d bytes", f.Name, f.Runs.ContentSize, size)
				}
				if f.Error != "" {
					t.Errorf("%s: error %q", f.Name, f.Error)
				}
				disk := rebuiltRaw(t, run.caseDir, rep)
				c, s := checkByteRuns(t, f.Name, img, disk, d, f.Runs.Runs, gb)
				compressed, split, runs = compressed+c, split+s, runs+len(f.Runs.Runs)
			}
			t.Logf("%d disks, %d byte runs: %d compressed, %d of split grains; report %d bytes", len(run.reports), runs, compressed, split, len(raw))
			if tc.compressed && compressed == 0 {
				t.Error("no compressed byte run: the case does not test them")
			}
			if tc.split && split == 0 {
				t.Error("no byte run of a split grain: the case does not test them")
			}
		})
	}
}

// checkDFXMLSource: the source names the image as the case recorded it
// and the image's byte run carries its size and digest.
func checkDFXMLSource(t *testing.T, run *caseRun, doc *dfxmlDoc, image string) {
	t.Helper()
	c, err := pipeline.OpenCase(run.caseDir)
	if err != nil {
		t.Fatal(err)
	}
	ev := c.Manifest.Evidence
	if abs, _ := filepath.Abs(image); doc.Source.Image != ev.Path || ev.Path != abs {
		t.Errorf("image_filename %q, case evidence %q, image %q", doc.Source.Image, ev.Path, abs)
	}
	r := doc.Image.Runs
	if len(r) != 1 || r[0].Img != 0 || r[0].Len != ev.Size {
		t.Fatalf("diskimageobject runs %+v, want one of %d bytes", r, ev.Size)
	}
	if ev.SHA256 == "" || len(r[0].Hashes) != 1 || r[0].Hashes[0] != (dfxmlHash{"sha256", ev.SHA256}) {
		t.Errorf("image digests %+v, case sha256 %q", r[0].Hashes, ev.SHA256)
	}
	if doc.Image.Error != "" {
		t.Errorf("diskimageobject error %q", doc.Image.Error)
	}
}

// checkFileDigest: filesize and the sha256 digest are the file's.
func checkFileDigest(t *testing.T, path string, size int64, hashes []dfxmlHash) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (dfxmlHash{"sha256", hex.EncodeToString(h.Sum(nil))}); n != size || len(hashes) != 1 || hashes[0] != want {
		t.Errorf("%s: filesize %d digests %+v; the file has %d bytes, %s", path, size, hashes, n, want.Value)
	}
}

// checkByteRuns checks every byte run of one disk against the image and
// the rebuilt disk; it returns how many runs were compressed and how many
// were pieces of a split grain (not aligned on grains, or filled).
func checkByteRuns(t *testing.T, name string, img io.ReaderAt, disk []byte, d *reassemble.Disk, runs []dfxmlRun, gb int64) (compressed, split int) {
	t.Helper()
	size := int64(len(disk))
	touched := map[uint64]bool{}
	end := int64(0) // plain runs and fills do not overlap and come in order
	for i := 0; i < len(runs); i++ {
		r := runs[i]
		if r.File < 0 || r.Len <= 0 || r.File >= size || (r.Uncompressed == 0 && r.File+r.Len > size) {
			t.Fatalf("%s: byte run %s outside the disk's %d bytes", name, r, size)
		}
		n := r.Len
		if r.Uncompressed > 0 {
			n = r.Uncompressed
		}
		for g := uint64(r.File / gb); int64(g)*gb < r.File+n; g++ {
			if run, ok := d.RunOf(g); !ok || run.Status != reassemble.Placed {
				t.Fatalf("%s: byte run %s covers grain %d, which is %s", name, r, g, run.Status)
			}
			touched[g] = true
		}
		want := disk[r.File : r.File+n]
		switch {
		case r.Uncompressed > 0:
			compressed++
			if n != min(gb, size-r.File) || r.File%gb != 0 {
				t.Fatalf("%s: compressed byte run %s: a record holds one whole grain (%d bytes at %d)", name, r, min(gb, size-r.File), r.File/gb*gb)
			}
			// A record split across host fragments is several runs
			// of one file offset: gather its pieces.
			rec := make([]byte, 0, r.Len)
			j := i
			for ; j < len(runs) && runs[j].File == r.File && runs[j].Uncompressed > 0; j++ {
				p := runs[j]
				if p.RecordOffset != int64(len(rec)) {
					t.Fatalf("%s: record at %d: piece at record offset %d after %d bytes", name, r.File, p.RecordOffset, len(rec))
				}
				rec = append(rec, readImage(t, img, p)...)
			}
			if j-i > 1 {
				split += j - i
			}
			i = j - 1
			grain := make([]byte, gb)
			_, k, err := vmdk.DecodeGrain(rec, grain)
			if err != nil || int64(k) < n || !bytes.Equal(grain[:n], want) {
				t.Fatalf("%s: compressed byte run %s: decodes to %d bytes (%v), not the disk's bytes at %d", name, r, k, err, r.File)
			}
		case r.Fill == "0":
			split++
			if r.Img != nil || !bytes.Equal(want, make([]byte, n)) {
				t.Fatalf("%s: fill run %s: the disk does not read zeros there", name, r)
			}
		default:
			if r.File%gb != 0 || r.Len%gb != 0 && r.File+r.Len != size {
				split++
			}
			if got := readImage(t, img, r); !bytes.Equal(got, want) {
				t.Fatalf("%s: byte run %s: the image's bytes are not the disk's at file offset %d", name, r, r.File)
			}
		}
		if r.Uncompressed == 0 {
			if r.File < end {
				t.Fatalf("%s: byte run %s overlaps or precedes the one before (ends at %d)", name, r, end)
			}
			end = r.File + r.Len
		}
	}
	if uint64(len(touched)) != d.Counts.Placed {
		t.Errorf("%s: byte runs touch %d grains, %d are placed", name, len(touched), d.Counts.Placed)
	}
	return compressed, split
}

func (r dfxmlRun) String() string {
	img := "none"
	if r.Img != nil {
		img = fmt.Sprint(*r.Img)
	}
	return fmt.Sprintf("{file_offset %d img_offset %s len %d uncompressed_len %d fill %q record %q record_offset %d}",
		r.File, img, r.Len, r.Uncompressed, r.Fill, r.Record, r.RecordOffset)
}

func readImage(t *testing.T, img io.ReaderAt, r dfxmlRun) []byte {
	t.Helper()
	if r.Img == nil {
		t.Fatalf("byte run %s: no img_offset", r)
	}
	b := make([]byte, r.Len)
	if _, err := img.ReadAt(b, *r.Img); err != nil && err != io.EOF {
		t.Fatalf("byte run %s: reading the image: %v", r, err)
	}
	return b
}

// checkDFXMLFindings checks that the report carries every finding of the
// case (CASE/findings.json), each once, as a vmdkcarve:finding.
func checkDFXMLFindings(t *testing.T, run *caseRun, raw []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run.caseDir, pipeline.FindingsName))
	if err != nil {
		t.Fatal(err)
	}
	var ff pipeline.FindingsFile
	if err := json.Unmarshal(b, &ff); err != nil {
		t.Fatalf("findings.json: %v", err)
	}
	all := ff.Findings
	if len(all) == 0 {
		t.Fatal("findings.json lists no finding: the case is damaged, some are expected")
	}
	got := bytes.Count(raw, []byte("<vmdkcarve:finding "))
	if got != len(all) {
		t.Errorf("report.dfxml holds %d findings, findings.json %d", got, len(all))
	}
	for _, f := range all {
		if !bytes.Contains(raw, []byte(`code="`+string(f.Code)+`"`)) {
			t.Errorf("report.dfxml lacks finding %s", f.Code)
		}
	}
}
