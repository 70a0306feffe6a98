package pipeline

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline/dfxml"
	"vmdkcarve/reassemble"
)

// dfxmlSchema is the vendored DFXML schema (pipeline/dfxml/testdata/schema).
const dfxmlSchema = "dfxml/testdata/schema/dfxml.xsd"

// TestDiskByteRuns: each kind of placed run becomes the byte runs DFXML
// says it is; runs that are not placed give none.
func TestDiskByteRuns(t *testing.T) {
	const gb = 65536
	const grains = 16
	size := int64(grains * gb)
	pl := reassemble.Placed
	for _, tc := range []struct {
		name     string
		size     int64 // the disk's bytes, when not grains × gb
		runs     []reassemble.Run
		want     []dfxml.ByteRun
		unmapped uint64
	}{
		{"contiguous run", 0, []reassemble.Run{{FirstGrain: 2, Count: 3, Status: pl, ImageOffset: 1 << 20, Stride: gb}},
			[]dfxml.ByteRun{{FileOffset: 2 * gb, ImgOffset: 1 << 20, Len: 3 * gb}}, 0},
		{"not placed: none", 0, []reassemble.Run{
			{FirstGrain: 0, Count: 2, Status: reassemble.Zero},
			{FirstGrain: 2, Count: 2, Status: reassemble.Missing},
			{FirstGrain: 4, Count: 1, Status: reassemble.Conflict, ImageOffset: 4096},
			{FirstGrain: 5, Count: 1, Status: reassemble.Damaged, ImageOffset: 8192},
		}, nil, 0},
		{"runs that continue each other merge", 0, []reassemble.Run{
			{FirstGrain: 0, Count: 2, Status: pl, ImageOffset: 1 << 20, Stride: gb, Evidence: []string{"table"}},
			{FirstGrain: 2, Count: 1, Status: pl, ImageOffset: 1<<20 + 2*gb, Evidence: []string{"table", "copy"}},
		}, []dfxml.ByteRun{{FileOffset: 0, ImgOffset: 1 << 20, Len: 3 * gb}}, 0},
		{"a missing grain between splits", 0, []reassemble.Run{
			{FirstGrain: 0, Count: 1, Status: pl, ImageOffset: 1 << 20},
			{FirstGrain: 1, Count: 1, Status: reassemble.Missing},
			{FirstGrain: 2, Count: 1, Status: pl, ImageOffset: 1<<20 + 2*gb},
		}, []dfxml.ByteRun{{FileOffset: 0, ImgOffset: 1 << 20, Len: gb}, {FileOffset: 2 * gb, ImgOffset: 1<<20 + 2*gb, Len: gb}}, 0},
		{"stride other than the grain: one run per grain", 0, []reassemble.Run{{FirstGrain: 1, Count: 3, Status: pl, ImageOffset: 4096, Stride: gb + 512}},
			[]dfxml.ByteRun{{FileOffset: gb, ImgOffset: 4096, Len: gb}, {FileOffset: 2 * gb, ImgOffset: 4096 + gb + 512, Len: gb},
				{FileOffset: 3 * gb, ImgOffset: 4096 + 2*gb + 1024, Len: gb}}, 0},
		{"compressed grain", 0, []reassemble.Run{{FirstGrain: 7, Count: 1, Status: pl, ImageOffset: 9000 * 512, Compressed: true, RecordBytes: 1536}},
			[]dfxml.ByteRun{{FileOffset: 7 * gb, ImgOffset: 9000 * 512, Len: 1536, UncompressedLen: gb, Record: "vmdk-stream-grain"}}, 0},
		{"compressed grains never merge", 0, []reassemble.Run{
			{FirstGrain: 0, Count: 1, Status: pl, ImageOffset: 512, Compressed: true, RecordBytes: 512},
			{FirstGrain: 1, Count: 1, Status: pl, ImageOffset: 1024, Compressed: true, RecordBytes: 512},
		}, []dfxml.ByteRun{
			{FileOffset: 0, ImgOffset: 512, Len: 512, UncompressedLen: gb, Record: "vmdk-stream-grain"},
			{FileOffset: gb, ImgOffset: 1024, Len: 512, UncompressedLen: gb, Record: "vmdk-stream-grain"},
		}, 0},
		{"grain split across host fragments, with a hole", 0, []reassemble.Run{{FirstGrain: 3, Count: 1, Status: pl, ImageOffset: 1 << 20,
			Pieces: []reassemble.Piece{{Offset: 0, ImageOffset: 1 << 20, Length: 8192}, {Offset: 8192, ImageOffset: -1, Length: 4096},
				{Offset: 12288, ImageOffset: 5 << 20, Length: gb - 12288}}}},
			[]dfxml.ByteRun{{FileOffset: 3 * gb, ImgOffset: 1 << 20, Len: 8192}, {FileOffset: 3*gb + 8192, ImgOffset: -1, Len: 4096, Fill: "0"},
				{FileOffset: 3*gb + 12288, ImgOffset: 5 << 20, Len: gb - 12288}}, 0},
		{"a split grain's last piece continues the next grain", 0, []reassemble.Run{
			{FirstGrain: 0, Count: 1, Status: pl, ImageOffset: 1 << 20,
				Pieces: []reassemble.Piece{{Offset: 0, ImageOffset: 1 << 20, Length: 4096}, {Offset: 4096, ImageOffset: 3 << 20, Length: gb - 4096}}},
			{FirstGrain: 1, Count: 2, Status: pl, ImageOffset: 3<<20 + gb - 4096, Stride: gb},
		}, []dfxml.ByteRun{{FileOffset: 0, ImgOffset: 1 << 20, Len: 4096}, {FileOffset: 4096, ImgOffset: 3 << 20, Len: 3*gb - 4096}}, 0},
		{"compressed record split across host fragments", 0, []reassemble.Run{{FirstGrain: 2, Count: 1, Status: pl, ImageOffset: 7 << 20,
			Compressed: true, RecordBytes: 3072,
			Pieces: []reassemble.Piece{{Offset: 0, ImageOffset: 7 << 20, Length: 1024}, {Offset: 1024, ImageOffset: 9 << 20, Length: 4096}}}},
			[]dfxml.ByteRun{
				{FileOffset: 2 * gb, ImgOffset: 7 << 20, Len: 1024, UncompressedLen: gb, Record: "vmdk-stream-grain"},
				{FileOffset: 2 * gb, ImgOffset: 9 << 20, Len: 2048, UncompressedLen: gb, Record: "vmdk-stream-grain", RecordOffset: 1024},
			}, 0},
		{"last grain cut at the disk's end", size - gb + 4096, []reassemble.Run{{FirstGrain: 14, Count: 2, Status: pl, ImageOffset: 1 << 20, Stride: gb}},
			[]dfxml.ByteRun{{FileOffset: 14 * gb, ImgOffset: 1 << 20, Len: gb + 4096}}, 0},
		{"last compressed grain cut at the disk's end", size - gb + 4096, []reassemble.Run{{FirstGrain: 15, Count: 1, Status: pl, ImageOffset: 512, Compressed: true, RecordBytes: 1024}},
			[]dfxml.ByteRun{{FileOffset: 15 * gb, ImgOffset: 512, Len: 1024, UncompressedLen: 4096, Record: "vmdk-stream-grain"}}, 0},
		{"sources the report does not give", 0, []reassemble.Run{
			{FirstGrain: 0, Count: 2, Status: pl, ImageOffset: 512, Compressed: true, RecordBytes: 512},
			{FirstGrain: 2, Count: 2, Status: pl, ImageOffset: 512},
			{FirstGrain: 4, Count: 2, Status: pl, ImageOffset: 512, Pieces: []reassemble.Piece{{Offset: 0, ImageOffset: 512, Length: 512}}},
			{FirstGrain: 6, Count: 1, Status: pl, ImageOffset: 512, Compressed: true},
			{FirstGrain: 15, Count: 2, Status: pl, ImageOffset: 512, Stride: gb},
			{FirstGrain: 7, Count: 1, Status: pl, ImageOffset: -5},
		}, nil, 2 + 2 + 2 + 1 + 2 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sz := size
			if tc.size != 0 {
				sz = tc.size
			}
			var f dfxml.FileObject
			unmapped := addRuns(&f, tc.runs, grains, sz, gb)
			if unmapped != tc.unmapped {
				t.Errorf("unmapped %d, want %d", unmapped, tc.unmapped)
			}
			if !slices.Equal(f.Runs, tc.want) {
				t.Errorf("byte runs\n%+v\nwant\n%+v", f.Runs, tc.want)
			}
		})
	}
}

// TestDiskFileObject: the fileobject describes the .vmdk file as written
// (name, size, digest), the virtual disk by its byte runs' content size,
// other outputs as vmdkcarve:output, and says what its byte runs do not
// vouch for.
func TestDiskFileObject(t *testing.T) {
	d := &reassemble.Disk{ID: 3, Capacity: 2048, GrainSize: 128, Counts: reassemble.Counts{Grains: 16, Placed: 1, Zero: 14, Missing: 1},
		Runs: []reassemble.Run{{FirstGrain: 0, Count: 1, Status: reassemble.Placed, ImageOffset: 4096}, {FirstGrain: 1, Count: 15, Status: reassemble.Zero}}}
	rep := &DiskReport{Disk: d, Output: []OutputFile{
		{Path: filepath.Join("disks", "disk-03.vmdk"), Format: "vmdk", Size: 200704, SHA256: "aa"},
		{Path: filepath.Join("disks", "disk-03.raw"), Format: "raw", Size: 1 << 20, SHA256: "bb"},
	}, Verified: VerifySummary{GrainsRead: 1, HashMismatch: 1}}
	f := diskFileObject(rep)
	if f.Filename != "disks/disk-03.vmdk" || f.Size != 200704 || f.ID != 3 || !slices.Equal(f.Hashes, []dfxml.Hash{{Type: "sha256", Value: "aa"}}) {
		t.Errorf("fileobject %q size %d id %d hashes %v: want the .vmdk's", f.Filename, f.Size, f.ID, f.Hashes)
	}
	if f.ContentSize != 1<<20 || f.Disk == nil || f.Disk.GrainBytes != 65536 || f.Disk.Placed != 1 || f.Disk.Report != "disks/disk-03.json" {
		t.Errorf("content size %d, disk %+v", f.ContentSize, f.Disk)
	}
	if len(f.Also) != 1 || f.Also[0].Format != "raw" || f.Also[0].SHA256 != "bb" {
		t.Errorf("other outputs %+v, want the raw image", f.Also)
	}
	if !strings.Contains(f.Error, "placed grains failed their check when read to write the disk (1 hash mismatches") {
		t.Errorf("error %q does not say a grain failed its check", f.Error)
	}
	if len(f.Runs) != 1 || f.Runs[0] != (dfxml.ByteRun{FileOffset: 0, ImgOffset: 4096, Len: 65536}) {
		t.Errorf("runs %+v", f.Runs)
	}
	d.Capacity = 1 << 62
	if f := diskFileObject(rep); f.Runs != nil || !strings.Contains(f.Error, "no byte run can be given") {
		t.Errorf("capacity beyond int64 bytes: runs %v, error %q", f.Runs, f.Error)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bin/rebuild", "--force", "/tmp/case"}, "bin/rebuild --force /tmp/case"},
		{[]string{"rebuild", "my case", ""}, "rebuild 'my case' ''"},
		{[]string{"rebuild", "it's", "a&b", "$HOME", "x;y"}, `rebuild 'it'\''s' 'a&b' '$HOME' 'x;y'`},
	} {
		if got := commandLine(tc.args); got != tc.want {
			t.Errorf("commandLine(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}

// TestReportDFXMLOfConstructedCase: the document built from an evidence
// record with every digest and a hostile path, and disks of every kind of
// run, is valid DFXML.
func TestReportDFXMLOfConstructedCase(t *testing.T) {
	tooltest.Need(t, "xmllint")
	ev := Evidence{Path: `/ev/a&b<c>"d'e.dd`, Size: 1 << 30, MD5: "00", SHA1: "11", SHA256: "22", Unreadable: []Range{{Start: 512, End: 4096}}}
	pl := reassemble.Placed
	d := &reassemble.Disk{ID: 1, Capacity: 4096, GrainSize: 128, Runs: []reassemble.Run{
		{FirstGrain: 0, Count: 2, Status: pl, ImageOffset: 1 << 20, Stride: 65536},
		{FirstGrain: 2, Count: 1, Status: pl, ImageOffset: 1 << 21, Compressed: true, RecordBytes: 4096},
		{FirstGrain: 3, Count: 1, Status: pl, ImageOffset: 1 << 22, Pieces: []reassemble.Piece{{Offset: 0, ImageOffset: 1 << 22, Length: 4096}, {Offset: 4096, ImageOffset: -1, Length: 61440}}},
		{FirstGrain: 4, Count: 28, Status: reassemble.Missing},
	}}
	rep := &DiskReport{Disk: d, Output: []OutputFile{{Path: "disks/disk-01.vmdk", Format: "vmdk", Size: 1, SHA256: "33"}}}
	doc := dfxmlDocument(ev, creator(time.Now()))
	doc.Files = []dfxml.FileObject{diskFileObject(rep)}
	doc.Source.Error = `1 disks not emitted: disk-02: capacity > 2 TiB & "more"`
	var b bytes.Buffer
	if err := dfxml.Write(&b, doc); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), ReportDFXMLName)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", dfxmlSchema, p).CombinedOutput(); err != nil {
		t.Fatalf("xmllint: %v\n%s\n%s", err, out, b.Bytes())
	}
	for _, want := range []string{
		`<image_filename>/ev/a&amp;b&lt;c&gt;&#34;d&#39;e.dd</image_filename>`,
		`<hashdigest type="md5">00</hashdigest>`, `<hashdigest type="sha1">11</hashdigest>`, `<hashdigest type="sha256">22</hashdigest>`,
		`<vmdkcarve:unreadable offset="512" length="3584">`,
		`<error>1 disks not emitted: disk-02: capacity &gt; 2 TiB &amp; &#34;more&#34;</error>`,
		`<byte_run file_offset="0" img_offset="1048576" len="131072">`,
		`<command_line>`, `<compiler>go`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}

// TestDFXMLDigestsZeroed: digests of media whose damaged E01 chunks were
// read as zeros are not given as the image's; the error says why.
func TestDFXMLDigestsZeroed(t *testing.T) {
	ev := Evidence{Path: "/ev/a.E01", Size: 1 << 20, MD5: "aa", SHA256: "bb"}
	if doc := dfxmlDocument(ev, dfxml.Creator{}); len(doc.Source.Hashes) != 2 || doc.Source.Error != "" {
		t.Errorf("intact: hashes %v, error %q", doc.Source.Hashes, doc.Source.Error)
	}
	ev.DigestsZeroed = true
	if doc := dfxmlDocument(ev, dfxml.Creator{}); len(doc.Source.Hashes) != 0 || !strings.Contains(doc.Source.Error, "damaged") {
		t.Errorf("damaged chunks: hashes %v, error %q", doc.Source.Hashes, doc.Source.Error)
	}
}
