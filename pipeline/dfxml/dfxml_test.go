package dfxml

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vmdkcarve/internal/tooltest"
)

// schema is the vendored DFXML schema (testdata/schema/README.md).
const schema = "testdata/schema/dfxml.xsd"

// ValidateSchema asserts with xmllint that doc is valid DFXML, offline.
func validateSchema(t *testing.T, doc []byte) {
	t.Helper()
	tooltest.Need(t, "xmllint")
	p := filepath.Join(t.TempDir(), "report.dfxml")
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", schema, p).CombinedOutput(); err != nil {
		t.Fatalf("xmllint --schema: %v\n%s\n%s", err, out, doc)
	}
}

func sample() *Document {
	at := int64(0) // an image offset of 0 is written, not left out
	return &Document{
		Type: "Carve Report",
		Creator: Creator{Program: "vmdkcarve", Version: "0.1.0",
			Build: BuildEnvironment{Compiler: "go1.26.8", Target: "linux/amd64", Module: "vmdkcarve", ModuleVersion: "(devel)",
				VCS: "git", VCSRevision: "0123abcd", VCSTime: "2026-12-01T10:00:00Z", VCSModified: "true",
				Libraries: []Library{{"github.com/cespare/xxhash/v2", "v2.3.0"}}},
			Execution: ExecutionEnvironment{OSSysname: "Linux", Host: "h", Arch: "x86_64", CommandLine: "rebuild /tmp/c",
				UID: "0", Username: "root", StartTime: time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)}},
		Source: Source{ImageFilename: "/evidence/img.dd", Size: 1 << 30,
			Hashes:     []Hash{{"md5", "d41d8cd98f00b204e9800998ecf8427e"}, {"sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}},
			Unreadable: []Range{{4096, 512}}},
		Files: []FileObject{{Filename: "disks/disk-01.vmdk", ID: 1, Size: 327680, ContentSize: 1 << 24,
			Hashes: []Hash{{"sha256", "00ff"}},
			Runs: []ByteRun{
				{FileOffset: 0, ImgOffset: 1 << 20, Len: 65536},
				{FileOffset: 65536, ImgOffset: 5 << 20, Len: 512, UncompressedLen: 65536, Record: "vmdk-stream-grain"},
				{FileOffset: 131072, ImgOffset: -1, Len: 4096, Fill: "0"},
			},
			Disk:     &Disk{ID: 1, CapacityBytes: 1 << 24, GrainBytes: 65536, Grains: 256, Placed: 3, Zero: 250, Missing: 3, Report: "disks/disk-01.json"},
			Also:     []Output{{Path: "disks/disk-01.raw", Format: "raw", Size: 1 << 24, SHA256: "ab"}},
			Findings: []Finding{{Code: "GRAIN_MISSING", Severity: "warning", Text: "3 grains missing", Action: "left as holes", Instance: 2, ImageOffset: &at, Length: 4096, Grains: 3}}}},
		Findings: []Finding{{Code: "EVIDENCE_NOT_HASHED", Severity: "info", Text: "the evidence was carved in shards"}},
	}
}

func write(t *testing.T, d *Document) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, d); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

// TestWriteValidates: the writer's output is valid against the published
// schema, extension elements and attributes included.
func TestWriteValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  *Document
	}{
		{"full", sample()},
		{"empty", &Document{}},
		{"no hashes, no runs", &Document{Source: Source{ImageFilename: "x", Size: 10}, Files: []FileObject{{Filename: "disks/disk-01.vmdk", Size: 1}}}},
		{"hostile strings", hostile()},
	} {
		t.Run(tc.name, func(t *testing.T) { validateSchema(t, write(t, tc.doc)) })
	}
}

// hostile has every string the writer takes full of XML's special
// characters and bytes XML cannot hold.
func hostile() *Document {
	const s = `a&b<c>d"e'f]]>g` + "\x00\x01\xff\ufffe tab\tnl\n"
	d := sample()
	d.Type = s
	d.Creator.Program, d.Creator.Version, d.Creator.Build.Compiler = s, s, s
	d.Creator.Build.Target, d.Creator.Build.VCSRevision = s, s
	d.Creator.Build.Libraries = []Library{{s, s}}
	d.Creator.Execution.CommandLine, d.Creator.Execution.Host, d.Creator.Execution.Username = s, s, s
	d.Source.ImageFilename, d.Source.Error = s, s
	f := &d.Files[0]
	f.Filename, f.Error = "disks/"+s+".vmdk", s
	f.Runs[1].Record = s
	f.Disk.Report = s
	f.Also[0].Path, f.Also[0].Format = s, s
	f.Findings = []Finding{{Code: s, Severity: s, Text: s, Action: s}}
	d.Findings = f.Findings
	return d
}

// TestEscaping: paths with &, <, quotes and bytes XML cannot hold read
// back as written (the unrepresentable bytes as U+FFFD), in elements and
// in attributes.
func TestEscaping(t *testing.T) {
	doc := write(t, hostile())
	var got struct {
		Source struct {
			Image string `xml:"image_filename"`
		} `xml:"source"`
		File struct {
			Name string `xml:"filename"`
			Also struct {
				Path string `xml:"path,attr"`
			} `xml:"output"`
			Runs []struct {
				Record string `xml:"record,attr"`
			} `xml:"byte_runs>byte_run"`
		} `xml:"fileobject"`
		Findings []struct {
			Code string `xml:"code,attr"`
			Text string `xml:",chardata"`
		} `xml:"findings>finding"`
	}
	if err := xml.Unmarshal(doc, &got); err != nil {
		t.Fatalf("the document does not parse: %v\n%s", err, doc)
	}
	// XML cannot hold NUL, U+0001 or U+FFFE, nor invalid UTF-8: each
	// becomes U+FFFD; everything else survives, \n in attributes too.
	want := "a&b<c>d\"e'f]]>g\ufffd\ufffd\ufffd\ufffd tab\tnl\n"
	for _, c := range []struct{ what, got, want string }{
		{"image_filename", got.Source.Image, want},
		{"filename", got.File.Name, "disks/" + want + ".vmdk"},
		{"output path attribute", got.File.Also.Path, want},
		{"record attribute", got.File.Runs[1].Record, want},
		{"finding code attribute", got.Findings[0].Code, want},
		{"finding text", got.Findings[0].Text, want},
	} {
		if c.got != c.want {
			t.Errorf("%s reads back %q, want %q", c.what, c.got, c.want)
		}
	}
	if bytes.Contains(doc, []byte("a&b")) || bytes.Contains(doc, []byte("<c>")) {
		t.Errorf("unescaped special characters in the document:\n%s", doc)
	}
}

// TestWriteShape: each model turns into the elements and attributes the
// schema places it in.
func TestWriteShape(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  func() *Document
		want []string // substrings of the document, in order
		not  []string
	}{
		{"creator", sample, []string{
			`<creator>`, `<program>vmdkcarve</program>`, `<version>0.1.0</version>`,
			`<build_environment vmdkcarve:target="linux/amd64" vmdkcarve:module="vmdkcarve" vmdkcarve:module_version="(devel)" vmdkcarve:vcs="git" vmdkcarve:vcs_revision="0123abcd" vmdkcarve:vcs_time="2026-12-01T10:00:00Z" vmdkcarve:vcs_modified="true">`,
			`<compiler>go1.26.8</compiler>`, `<library name="github.com/cespare/xxhash/v2" version="v2.3.0"></library>`,
			`<execution_environment>`, `<os_sysname>Linux</os_sysname>`, `<command_line>rebuild /tmp/c</command_line>`,
			`<uid>0</uid>`, `<start_time>2026-12-01T17:00:00Z</start_time>`}, nil},
		{"source: name in source, size and digests on the image's byte run", sample, []string{
			`<source>`, `<image_filename>/evidence/img.dd</image_filename>`, `</source>`,
			`<diskimageobject>`, `<vmdkcarve:unreadable offset="4096" length="512">`,
			`<byte_run img_offset="0" len="1073741824">`, `<hashdigest type="md5">d41d8cd98f00b204e9800998ecf8427e</hashdigest>`,
			`<hashdigest type="sha256">e3b0`, `</diskimageobject>`}, []string{`file_offset="0" img_offset="0"`}},
		{"fileobject", sample, []string{
			`<fileobject>`, `<filename>disks/disk-01.vmdk</filename>`, `<id>1</id>`, `<name_type>r</name_type>`, `<filesize>327680</filesize>`,
			`<byte_runs vmdkcarve:content_size="16777216">`,
			`<byte_run file_offset="0" img_offset="1048576" len="65536">`,
			`<byte_run file_offset="65536" img_offset="5242880" len="512" uncompressed_len="65536" vmdkcarve:record="vmdk-stream-grain" vmdkcarve:record_offset="0">`,
			`<byte_run file_offset="131072" len="4096" fill="0">`,
			`</byte_runs>`, `<hashdigest type="sha256">00ff</hashdigest>`,
			`<vmdkcarve:disk id="1" capacity_bytes="16777216" grain_bytes="65536" grains="256" placed="3" zero="250" missing="3" conflicting="0" damaged="0" report="disks/disk-01.json">`,
			`<vmdkcarve:output path="disks/disk-01.raw" format="raw" size="16777216" sha256="ab">`,
			`<vmdkcarve:finding code="GRAIN_MISSING" severity="warning" action="left as holes" instance="2" image_offset="0" length="4096" grains="3">3 grains missing</vmdkcarve:finding>`,
			`</fileobject>`, `<vmdkcarve:findings>`, `<vmdkcarve:finding code="EVIDENCE_NOT_HASHED" severity="info">`, `</dfxml>`}, nil},
		{"empty hashes and error left out", func() *Document {
			return &Document{Source: Source{ImageFilename: "i", Hashes: []Hash{{"md5", ""}}}}
		}, []string{`<byte_run img_offset="0" len="0"></byte_run>`}, []string{"hashdigest", "<error>", "fileobject", "findings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := string(write(t, tc.doc()))
			rest := doc
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("missing (or out of order) %s in\n%s", w, doc)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(doc, n) {
					t.Errorf("unexpected %s in\n%s", n, doc)
				}
			}
		})
	}
}

// TestAddRun: contiguous plain runs merge; a gap in the file or the image,
// a compressed run or a filled one starts a new run.
func TestAddRun(t *testing.T) {
	const g = 65536
	for _, tc := range []struct {
		name string
		add  []ByteRun
		want []ByteRun
	}{
		{"contiguous grains", []ByteRun{{0, 1000, g, "", 0, "", 0}, {g, 1000 + g, g, "", 0, "", 0}, {2 * g, 1000 + 2*g, g, "", 0, "", 0}},
			[]ByteRun{{0, 1000, 3 * g, "", 0, "", 0}}},
		{"stride: image gap", []ByteRun{{0, 1000, g, "", 0, "", 0}, {g, 1000 + g + 512, g, "", 0, "", 0}},
			[]ByteRun{{0, 1000, g, "", 0, "", 0}, {g, 1000 + g + 512, g, "", 0, "", 0}}},
		{"file gap (a missing grain)", []ByteRun{{0, 1000, g, "", 0, "", 0}, {2 * g, 1000 + g, g, "", 0, "", 0}},
			[]ByteRun{{0, 1000, g, "", 0, "", 0}, {2 * g, 1000 + g, g, "", 0, "", 0}}},
		{"compressed never merge", []ByteRun{{0, 1000, 512, "", g, "r", 0}, {g, 1512, 512, "", g, "r", 0}},
			[]ByteRun{{0, 1000, 512, "", g, "r", 0}, {g, 1512, 512, "", g, "r", 0}}},
		{"plain after compressed", []ByteRun{{0, 1000, 512, "", g, "r", 0}, {g, 1512, g, "", 0, "", 0}},
			[]ByteRun{{0, 1000, 512, "", g, "r", 0}, {g, 1512, g, "", 0, "", 0}}},
		{"fill between pieces", []ByteRun{{0, 1000, 4096, "", 0, "", 0}, {4096, -1, 4096, "0", 0, "", 0}, {8192, 9192, 4096, "", 0, "", 0}},
			[]ByteRun{{0, 1000, 4096, "", 0, "", 0}, {4096, -1, 4096, "0", 0, "", 0}, {8192, 9192, 4096, "", 0, "", 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f FileObject
			for _, r := range tc.add {
				f.AddRun(r)
			}
			if len(f.Runs) != len(tc.want) {
				t.Fatalf("runs %+v, want %+v", f.Runs, tc.want)
			}
			for i := range f.Runs {
				if f.Runs[i] != tc.want[i] {
					t.Errorf("run %d = %+v, want %+v", i, f.Runs[i], tc.want[i])
				}
			}
		})
	}
}

// TestWriteRejects: values the schema would reject are errors, not an
// invalid document.
func TestWriteRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(d *Document)
		want string
	}{
		{"negative image size", func(d *Document) { d.Source.Size = -1 }, "negative size"},
		{"negative file offset", func(d *Document) { d.Files[0].Runs[0].FileOffset = -1 }, "negative offset"},
		{"negative len", func(d *Document) { d.Files[0].Runs[0].Len = -5 }, "negative offset or length"},
		{"no image offset, no fill", func(d *Document) { d.Files[0].Runs[2].Fill = "" }, "neither an image offset nor a fill"},
		{"unknown digest", func(d *Document) { d.Files[0].Hashes[0].Type = "xxh64" }, `digest type "xxh64"`},
		{"negative unreadable", func(d *Document) { d.Source.Unreadable[0].Offset = -1 }, "unreadable area"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := sample()
			tc.edit(d)
			var b bytes.Buffer
			err := Write(&b, d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want an error saying %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written before the error", b.Len())
			}
		})
	}
}

// TestSchemaCheckIsLive: the schema check above rejects what the schema
// forbids (PhotoRec's DFXML 1.0 source with image_size, a fileobject
// before the source), so its passing means something.
func TestSchemaCheckIsLive(t *testing.T) {
	tooltest.Need(t, "xmllint")
	for _, doc := range []string{
		`<dfxml xmlns="` + Namespace + `" version="x"><metadata/><source><image_filename>i</image_filename><image_size>1</image_size></source></dfxml>`,
		`<dfxml xmlns="` + Namespace + `" version="x"><metadata/><fileobject/><source/></dfxml>`,
		`<dfxml xmlns="` + Namespace + `" version="x"><metadata/><fileobject><byte_runs><byte_run img_offset="-1"/></byte_runs></fileobject></dfxml>`,
	} {
		p := filepath.Join(t.TempDir(), "bad.dfxml")
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", schema, p).CombinedOutput(); err == nil {
			t.Errorf("xmllint accepts a document the schema forbids:\n%s\n%s", doc, out)
		}
	}
}

// xmlSafe is s as the writer promises to write it: every rune XML cannot
// hold (outside its Char production, or invalid UTF-8) as U+FFFD.
func xmlSafe(s string) string {
	var b strings.Builder
	for _, r := range s { // invalid UTF-8 ranges as U+FFFD already
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			r = 0xFFFD
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FuzzWrite: whatever the strings and numbers, Write either refuses the
// document or writes one that parses, with its strings read back as
// written.
func FuzzWrite(f *testing.F) {
	f.Add("disks/disk-01.vmdk", int64(0), int64(65536))
	f.Add(`a&b<c>"d'e]]>`+"\x00\xff\r\n", int64(-1), int64(1))
	f.Fuzz(func(t *testing.T, s string, off, n int64) {
		d := hostile()
		d.Source.ImageFilename, d.Files[0].Filename, d.Findings = s, s, []Finding{{Code: s, Severity: s, Text: s}}
		d.Creator.Execution.CommandLine = s
		d.Files[0].Runs = append(d.Files[0].Runs, ByteRun{FileOffset: off, ImgOffset: off, Len: n})
		var b bytes.Buffer
		if err := Write(&b, d); err != nil {
			if off >= 0 && n >= 0 {
				t.Fatalf("Write refuses a valid document: %v", err)
			}
			return
		}
		var got struct {
			Image    string `xml:"source>image_filename"`
			File     string `xml:"fileobject>filename"`
			Command  string `xml:"creator>execution_environment>command_line"`
			Findings []struct {
				Code string `xml:"code,attr"`
				Text string `xml:",chardata"`
			} `xml:"findings>finding"`
		}
		if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
			t.Fatalf("the document does not parse: %v\n%s", err, b.Bytes())
		}
		want := xmlSafe(s)
		if got.Image != want || got.File != want || got.Command != want || len(got.Findings) != 1 || got.Findings[0].Code != want || got.Findings[0].Text != want {
			t.Fatalf("strings read back %q %q %q %+v, want %q", got.Image, got.File, got.Command, got.Findings, want)
		}
	})
}

// BenchmarkWrite writes a fileobject of 100,000 byte runs, half of them
// compressed records (a streamOptimized disk of 6 GiB in 64 KiB grains
// with every other grain stored), as a rebuild of such a disk does.
func BenchmarkWrite(b *testing.B) {
	d := sample()
	f := &d.Files[0]
	f.Runs = nil
	for i := range int64(100_000) {
		if i%2 == 0 {
			f.Runs = append(f.Runs, ByteRun{FileOffset: i * 65536, ImgOffset: i * 8192, Len: 4096, UncompressedLen: 65536, Record: "vmdk-stream-grain"})
		} else {
			f.Runs = append(f.Runs, ByteRun{FileOffset: i * 65536, ImgOffset: 1<<40 + i*65536*2, Len: 65536})
		}
	}
	var n int
	for b.Loop() {
		var w countWriter
		if err := Write(&w, d); err != nil {
			b.Fatal(err)
		}
		n = int(w)
	}
	b.ReportMetric(float64(n), "bytes/doc")
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }
