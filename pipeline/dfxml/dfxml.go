// Package dfxml writes a Digital Forensics XML report (DFXML, schema
// 2.0.0-beta.0, github.com/dfxml-working-group/dfxml_schema): who wrote
// it and how (creator), what it read (source and a diskimageobject with
// the image's size and digests) and one fileobject per file it rebuilt,
// whose byte runs say where in the image each of its bytes came from, as
// carvers (PhotoRec's report.xml) and bulk_extractor's report.xml do.
//
// The package has its own plain model (Document and the types below); the
// caller fills it, Write orders it as the schema's sequences require.
// Whatever the schema has no element for is written as an element or
// attribute of the Ext namespace, in the places the schema leaves open to
// other namespaces (xs:any and xs:anyAttribute namespace="##other",
// validated laxly: a DFXML reader that does not know them skips them).
package dfxml

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Namespaces and the schema version written.
const (
	Namespace     = "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"
	DCNamespace   = "http://purl.org/dc/elements/1.1/"
	SchemaVersion = "2.0.0-beta.0"
	// Ext names vmdkcarve's extension elements and attributes. It is an
	// identifier, not a locator: nothing is fetched from it.
	Ext       = "urn:vmdkcarve:dfxml"
	extPrefix = "vmdkcarve"
)

// Document is one DFXML report.
type Document struct {
	// Type is the Dublin Core type of the report (metadata/dc:type), e.g.
	// "Carve Report" as PhotoRec writes it.
	Type    string
	Creator Creator
	Source  Source
	Files   []FileObject
	// Findings are the report's findings that belong to no one file.
	Findings []Finding
}

// Creator is the program that wrote the report, how it was built and
// where and how it ran.
type Creator struct {
	Program   string
	Version   string
	Build     BuildEnvironment
	Execution ExecutionEnvironment
}

// BuildEnvironment is how the program was built.
type BuildEnvironment struct {
	Compiler string // e.g. "go1.26.8"
	// Target is the GOOS/GOARCH built for.
	Target string
	// Module and ModuleVersion name the main module; VCS, VCSRevision,
	// VCSTime and VCSModified are the version control state it was built
	// from (Go's build info), empty when not recorded.
	Module, ModuleVersion     string
	VCS, VCSRevision, VCSTime string
	VCSModified               string // "true" or "false"; empty when not recorded
	Libraries                 []Library
}

// Library is a dependency the program was built with.
type Library struct {
	Name, Version string
}

// ExecutionEnvironment is where and how the program ran. Empty fields are
// left out.
type ExecutionEnvironment struct {
	OSSysname, OSRelease, OSVersion string // uname -s, -r, -v
	Host                            string
	Arch                            string // uname -m, or GOARCH
	CommandLine                     string
	UID                             string
	Username                        string
	StartTime                       time.Time
}

// Source is the evidence image the report is about.
type Source struct {
	ImageFilename string
	Size          int64
	Hashes        []Hash
	// Unreadable are areas of the image whose bytes are unknown (not
	// rescued, a ddrescue mapfile says).
	Unreadable []Range
	// Error, when set, says what went wrong processing the image (disks
	// that could not be written).
	Error string
}

// Range is Length bytes at Offset.
type Range struct {
	Offset, Length int64
}

// Hash is a digest, Type one of the schema's names ("md5", "sha1",
// "sha256", ...), Value in hex.
type Hash struct {
	Type, Value string
}

// FileObject is one file written, and where its content came from.
type FileObject struct {
	Filename string // relative to the report's directory
	ID       int    // 1-based; 0 is left out
	// Size and Hashes are the file's as the file system holds it.
	Size   int64
	Hashes []Hash
	// Error, when set, says what the byte runs do not vouch for.
	Error string
	// Runs map the file's content to the image, in file offset order.
	// When the file is a container (a VMDK), the content is what it
	// stores (the virtual disk) and ContentSize is that content's size:
	// the runs' FileOffsets address it, not the container's bytes.
	Runs        []ByteRun
	ContentSize int64
	// Disk describes the virtual disk the file holds (nil: none).
	Disk *Disk
	// Also are other files holding the same content (a raw image).
	Also     []Output
	Findings []Finding
}

// Disk is what a rebuilt virtual disk's fileobject says of the disk beyond
// its byte runs: its geometry and the counts of grains by status.
type Disk struct {
	ID                                      int
	CapacityBytes, GrainBytes               int64
	Grains, Placed, Zero, Missing, Conflict uint64
	Damaged                                 uint64
	Report                                  string // the disk's JSON report, relative to the report's directory
}

// Output is another file that holds a fileobject's content.
type Output struct {
	Path, Format string
	Size         int64
	SHA256       string
}

// ByteRun is Len bytes of a file's content at FileOffset, read from the
// image at ImgOffset.
type ByteRun struct {
	FileOffset int64
	// ImgOffset is where the bytes lie in the image; -1 when the run is
	// not read from the image but filled (Fill).
	ImgOffset int64
	Len       int64
	// Fill, with ImgOffset -1, is the byte the run's content is made of
	// (a hole of a sparse host file reads as zeros: "0").
	Fill string
	// UncompressedLen, when positive, says the Len bytes at ImgOffset are
	// compressed and decode to UncompressedLen bytes of content; Record
	// names their encoding (e.g. "vmdk-stream-grain": a streamOptimized
	// grain marker, its 12-byte header and the deflate stream). A record
	// split across host fragments is several runs of one FileOffset;
	// RecordOffset is each piece's offset within the record.
	UncompressedLen int64
	Record          string
	RecordOffset    int64
}

// plain reports whether the run is uncompressed bytes read from the image,
// the kind consecutive runs of which merge.
func (r ByteRun) plain() bool { return r.ImgOffset >= 0 && r.UncompressedLen == 0 && r.Fill == "" }

// AddRun appends r to the file's runs, merging it into the last one when
// both are plain and r continues it in the file and in the image, so a
// contiguous stretch is one run however it was decided.
func (f *FileObject) AddRun(r ByteRun) {
	if n := len(f.Runs); n > 0 && r.plain() {
		p := &f.Runs[n-1]
		if p.plain() && p.FileOffset+p.Len == r.FileOffset && p.ImgOffset+p.Len == r.ImgOffset {
			p.Len += r.Len
			return
		}
	}
	f.Runs = append(f.Runs, r)
}

// Finding is a statement about the evidence or a rebuilt file, with a
// stable code a script can switch on: Text says what it means, Action
// what was done; Instance, ImageOffset (nil: none), Length and Grains
// locate it when set.
type Finding struct {
	Code, Severity, Text, Action string
	Instance                     int
	ImageOffset                  *int64
	Length                       int64
	Grains                       uint64
}

// Write writes d as a DFXML document. Strings are escaped as XML requires;
// bytes that XML cannot hold (control characters, invalid UTF-8) are
// written as U+FFFD, so the document is always well formed.
//
// A document the schema would reject (a negative offset or length, a run
// that is neither read from the image nor filled, an unknown digest type)
// is an error, and nothing is written.
func Write(w io.Writer, d *Document) error {
	if err := d.validate(); err != nil {
		return err
	}
	e := xml.NewEncoder(w)
	e.Indent("", " ")
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	root := xml.StartElement{Name: xml.Name{Local: "dfxml"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "xmlns"}, Value: Namespace},
		{Name: xml.Name{Local: "xmlns:dc"}, Value: DCNamespace},
		{Name: xml.Name{Local: "xmlns:" + extPrefix}, Value: Ext},
		{Name: xml.Name{Local: "version"}, Value: SchemaVersion},
	}}
	if err := e.EncodeToken(root); err != nil {
		return err
	}
	// The root's children in the order of the schema's sequence:
	// metadata, creator, source, diskimageobject*, fileobject*, then
	// elements of other namespaces.
	parts := []any{xMetadata{Type: d.Type}, newCreator(d.Creator), xSource{ImageFilename: d.Source.ImageFilename}, newImage(d.Source)}
	for i := range d.Files {
		parts = append(parts, newFile(&d.Files[i]))
	}
	if len(d.Findings) > 0 {
		parts = append(parts, xFindings{Findings: newFindings(d.Findings)})
	}
	for _, p := range parts {
		if err := e.Encode(p); err != nil {
			return fmt.Errorf("dfxml: %w", err)
		}
	}
	if err := e.EncodeToken(root.End()); err != nil {
		return err
	}
	if err := e.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// hashTypes are the digest names the schema's hashDigestType allows (it
// allows their upper-case forms too).
var hashTypes = map[string]bool{"md5": true, "md6": true, "sha1": true, "sha224": true, "sha256": true, "sha384": true, "sha512": true, "other": true}

// validate checks what the schema types say of the values: offsets and
// lengths are xs:nonNegativeInteger.
func (d *Document) validate() error {
	checkHashes := func(where string, hs []Hash) error {
		for _, h := range hs {
			if !hashTypes[h.Type] {
				return fmt.Errorf("dfxml: %s: digest type %q is not one the schema allows", where, h.Type)
			}
		}
		return nil
	}
	if d.Source.Size < 0 {
		return fmt.Errorf("dfxml: source %s: negative size %d", d.Source.ImageFilename, d.Source.Size)
	}
	if err := checkHashes("source", d.Source.Hashes); err != nil {
		return err
	}
	for _, r := range d.Source.Unreadable {
		if r.Offset < 0 || r.Length < 0 {
			return fmt.Errorf("dfxml: source: unreadable area at %d of %d bytes", r.Offset, r.Length)
		}
	}
	for i := range d.Files {
		f := &d.Files[i]
		if err := checkHashes(f.Filename, f.Hashes); err != nil {
			return err
		}
		for j, r := range f.Runs {
			switch {
			case r.FileOffset < 0 || r.Len < 0 || r.UncompressedLen < 0 || r.RecordOffset < 0:
				return fmt.Errorf("dfxml: %s: byte run %d: negative offset or length (%+v)", f.Filename, j, r)
			case r.ImgOffset < 0 && r.Fill == "":
				return fmt.Errorf("dfxml: %s: byte run %d at file offset %d: neither an image offset nor a fill", f.Filename, j, r.FileOffset)
			}
		}
	}
	return nil
}

// The XML shapes of the model. Field order is the schema's sequence order;
// ext is the prefix of the Ext namespace, declared on the root.

type xMetadata struct {
	XMLName xml.Name `xml:"metadata"`
	Type    string   `xml:"dc:type,omitempty"`
}

type xCreator struct {
	XMLName   xml.Name   `xml:"creator"`
	Program   string     `xml:"program,omitempty"`
	Version   string     `xml:"version,omitempty"`
	Build     xBuild     `xml:"build_environment"`
	Execution xExecution `xml:"execution_environment"`
}

type xBuild struct {
	Target        string     `xml:"vmdkcarve:target,attr,omitempty"`
	Module        string     `xml:"vmdkcarve:module,attr,omitempty"`
	ModuleVersion string     `xml:"vmdkcarve:module_version,attr,omitempty"`
	VCS           string     `xml:"vmdkcarve:vcs,attr,omitempty"`
	VCSRevision   string     `xml:"vmdkcarve:vcs_revision,attr,omitempty"`
	VCSTime       string     `xml:"vmdkcarve:vcs_time,attr,omitempty"`
	VCSModified   string     `xml:"vmdkcarve:vcs_modified,attr,omitempty"`
	Compiler      string     `xml:"compiler,omitempty"`
	Libraries     []xLibrary `xml:"library"`
}

type xLibrary struct {
	Name    string `xml:"name,attr"`
	Version string `xml:"version,attr,omitempty"`
}

// xExecution is an xs:all: any order, each at most once.
type xExecution struct {
	OSSysname   string `xml:"os_sysname,omitempty"`
	OSRelease   string `xml:"os_release,omitempty"`
	OSVersion   string `xml:"os_version,omitempty"`
	Host        string `xml:"host,omitempty"`
	Arch        string `xml:"arch,omitempty"`
	CommandLine string `xml:"command_line,omitempty"`
	UID         string `xml:"uid,omitempty"`
	Username    string `xml:"username,omitempty"`
	StartTime   string `xml:"start_time,omitempty"`
}

type xSource struct {
	XMLName       xml.Name `xml:"source"`
	ImageFilename string   `xml:"image_filename"`
}

// xImage is the diskimageobject: the schema's source holds only the image's
// name, so its size and digests are a byte run over the whole image whose
// hashdigest children are the digests of the run's content.
type xImage struct {
	XMLName    xml.Name `xml:"diskimageobject"`
	Unreadable []xRange `xml:"vmdkcarve:unreadable"`
	Runs       xRuns    `xml:"byte_runs"`
	Error      string   `xml:"error,omitempty"`
}

type xRange struct {
	Offset int64 `xml:"offset,attr"`
	Length int64 `xml:"length,attr"`
}

type xRuns struct {
	ContentSize string `xml:"vmdkcarve:content_size,attr,omitempty"`
	Runs        []xRun `xml:"byte_run"`
}

type xRun struct {
	FileOffset      string  `xml:"file_offset,attr,omitempty"`
	ImgOffset       string  `xml:"img_offset,attr,omitempty"`
	Len             int64   `xml:"len,attr"`
	UncompressedLen string  `xml:"uncompressed_len,attr,omitempty"`
	Fill            string  `xml:"fill,attr,omitempty"`
	Record          string  `xml:"vmdkcarve:record,attr,omitempty"`
	RecordOffset    string  `xml:"vmdkcarve:record_offset,attr,omitempty"`
	Hashes          []xHash `xml:"hashdigest"`
}

type xHash struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xFile struct {
	XMLName  xml.Name   `xml:"fileobject"`
	Filename string     `xml:"filename"`
	Error    string     `xml:"error,omitempty"`
	ID       string     `xml:"id,omitempty"`
	NameType string     `xml:"name_type"`
	Size     int64      `xml:"filesize"`
	Runs     xRuns      `xml:"byte_runs"`
	Hashes   []xHash    `xml:"hashdigest"`
	Disk     *xDisk     `xml:"vmdkcarve:disk"`
	Also     []xOutput  `xml:"vmdkcarve:output"`
	Findings []xFinding `xml:"vmdkcarve:finding"`
}

type xDisk struct {
	ID            int    `xml:"id,attr"`
	CapacityBytes int64  `xml:"capacity_bytes,attr"`
	GrainBytes    int64  `xml:"grain_bytes,attr"`
	Grains        uint64 `xml:"grains,attr"`
	Placed        uint64 `xml:"placed,attr"`
	Zero          uint64 `xml:"zero,attr"`
	Missing       uint64 `xml:"missing,attr"`
	Conflict      uint64 `xml:"conflicting,attr"`
	Damaged       uint64 `xml:"damaged,attr"`
	Report        string `xml:"report,attr,omitempty"`
}

type xOutput struct {
	Path   string `xml:"path,attr"`
	Format string `xml:"format,attr"`
	Size   int64  `xml:"size,attr"`
	SHA256 string `xml:"sha256,attr,omitempty"`
}

type xFindings struct {
	XMLName  xml.Name   `xml:"vmdkcarve:findings"`
	Findings []xFinding `xml:"vmdkcarve:finding"`
}

type xFinding struct {
	Code        string `xml:"code,attr"`
	Severity    string `xml:"severity,attr,omitempty"`
	Action      string `xml:"action,attr,omitempty"`
	Instance    int    `xml:"instance,attr,omitempty"`
	ImageOffset *int64 `xml:"image_offset,attr"`
	Length      int64  `xml:"length,attr,omitempty"`
	Grains      uint64 `xml:"grains,attr,omitempty"`
	Text        string `xml:",chardata"`
}

func newCreator(c Creator) xCreator {
	b := c.Build
	x := xCreator{Program: c.Program, Version: c.Version,
		Build: xBuild{Target: b.Target, Module: b.Module, ModuleVersion: b.ModuleVersion, VCS: b.VCS,
			VCSRevision: b.VCSRevision, VCSTime: b.VCSTime, VCSModified: b.VCSModified, Compiler: b.Compiler}}
	for _, l := range b.Libraries {
		x.Build.Libraries = append(x.Build.Libraries, xLibrary(l))
	}
	ex := c.Execution
	x.Execution = xExecution{OSSysname: ex.OSSysname, OSRelease: ex.OSRelease, OSVersion: ex.OSVersion, Host: ex.Host,
		Arch: ex.Arch, CommandLine: ex.CommandLine, UID: ex.UID, Username: ex.Username}
	if !ex.StartTime.IsZero() {
		x.Execution.StartTime = ex.StartTime.Format(time.RFC3339Nano)
	}
	return x
}

func newImage(s Source) xImage {
	x := xImage{Error: s.Error}
	for _, r := range s.Unreadable {
		x.Unreadable = append(x.Unreadable, xRange(r))
	}
	x.Runs.Runs = []xRun{{ImgOffset: "0", Len: s.Size, Hashes: newHashes(s.Hashes)}}
	return x
}

func newFile(f *FileObject) xFile {
	x := xFile{Filename: f.Filename, Error: f.Error, NameType: "r", Size: f.Size, Hashes: newHashes(f.Hashes), Findings: newFindings(f.Findings)}
	if f.ID > 0 {
		x.ID = strconv.Itoa(f.ID)
	}
	if f.ContentSize > 0 {
		x.Runs.ContentSize = strconv.FormatInt(f.ContentSize, 10)
	}
	x.Runs.Runs = make([]xRun, 0, len(f.Runs))
	for _, r := range f.Runs {
		x.Runs.Runs = append(x.Runs.Runs, newRun(r))
	}
	if d := f.Disk; d != nil {
		x.Disk = &xDisk{ID: d.ID, CapacityBytes: d.CapacityBytes, GrainBytes: d.GrainBytes, Grains: d.Grains, Placed: d.Placed,
			Zero: d.Zero, Missing: d.Missing, Conflict: d.Conflict, Damaged: d.Damaged, Report: d.Report}
	}
	for _, o := range f.Also {
		x.Also = append(x.Also, xOutput(o))
	}
	return x
}

func newRun(r ByteRun) xRun {
	x := xRun{FileOffset: strconv.FormatInt(r.FileOffset, 10), Len: r.Len, Fill: r.Fill, Record: r.Record}
	if r.ImgOffset >= 0 {
		x.ImgOffset = strconv.FormatInt(r.ImgOffset, 10)
	}
	if r.UncompressedLen > 0 {
		x.UncompressedLen = strconv.FormatInt(r.UncompressedLen, 10)
	}
	if r.Record != "" {
		x.RecordOffset = strconv.FormatInt(r.RecordOffset, 10)
	}
	return x
}

func newHashes(hs []Hash) []xHash {
	var x []xHash
	for _, h := range hs {
		if h.Value != "" {
			x = append(x, xHash(h))
		}
	}
	return x
}

func newFindings(fs []Finding) []xFinding {
	var x []xFinding
	for _, f := range fs {
		x = append(x, xFinding{Code: f.Code, Severity: f.Severity, Action: f.Action, Instance: f.Instance, ImageOffset: f.ImageOffset,
			Length: f.Length, Grains: f.Grains, Text: f.Text})
	}
	return x
}
