package pipeline

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"vmdkcarve/findings"

	"vmdkcarve/pipeline/dfxml"
	"vmdkcarve/reassemble"
	"vmdkcarve/vmdk"
)

// ReportDFXMLName is the case's DFXML report, CASE/report.dfxml.
const ReportDFXMLName = "report.dfxml"

// recordEncoding names, in a byte run's vmdkcarve:record attribute, what
// the compressed bytes at its image offset are: a streamOptimized grain
// marker (its 12-byte header, LBA and size, then the deflate stream).
const recordEncoding = "vmdk-stream-grain"

// writeReportDFXML writes CASE/report.dfxml (atomically) for the disks
// this rebuild emitted (res.files), with the disks that failed named in the
// image's error.
func (c *Case) writeReportDFXML(res *RebuildResult, failed []string, started time.Time) error {
	doc := dfxmlDocument(c.Manifest.Evidence, creator(started))
	doc.Files = res.files
	// The findings of no emitted disk (the evidence's, a disk that failed)
	// belong to the document.
	emitted := map[int]bool{}
	for _, s := range res.Disks {
		emitted[s.ID] = true
	}
	for _, f := range res.Findings {
		if !emitted[f.Disk] {
			doc.Findings = append(doc.Findings, dfxmlFinding(f))
		}
	}
	if len(failed) > 0 {
		doc.Source.Error = strings.TrimPrefix(doc.Source.Error+"; ", "; ") + fmt.Sprintf("%d disks not emitted: %s", len(failed), strings.Join(failed, "; "))
	}
	f, err := CreateAtomic(filepath.Join(c.Dir, ReportDFXMLName))
	if err != nil {
		return err
	}
	defer f.Abort()
	w := bufio.NewWriterSize(f, 1<<20)
	if err := dfxml.Write(w, doc); err != nil {
		return fmt.Errorf("pipeline: %s: %w", ReportDFXMLName, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("pipeline: writing %s: %w", ReportDFXMLName, err)
	}
	return f.Commit()
}

// dfxmlDocument is the DFXML report of a case but its fileobjects (one per
// rebuilt disk, diskFileObject): its creator and the evidence as its
// source.
func dfxmlDocument(ev Evidence, cr dfxml.Creator) *dfxml.Document {
	doc := &dfxml.Document{Type: "Carve Report", Creator: cr,
		Source: dfxml.Source{ImageFilename: ev.Path, Size: ev.Size}}
	// Digests of media with damaged E01 chunks read as zeros are not the
	// media's: DFXML would state them as the image's, so they are left
	// out and the error says why (case.json keeps them, marked).
	if ev.DigestsZeroed {
		doc.Source.Error = "no digest of the image is given: some of its E01 chunks are damaged, and the carve's digests are of the media with those chunks read as zeros (case.json, evidence.digests_zeroed)"
	} else {
		for _, h := range []dfxml.Hash{{Type: "md5", Value: ev.MD5}, {Type: "sha1", Value: ev.SHA1}, {Type: "sha256", Value: ev.SHA256}} {
			if h.Value != "" {
				doc.Source.Hashes = append(doc.Source.Hashes, h)
			}
		}
	}
	for _, r := range ev.Unreadable {
		doc.Source.Unreadable = append(doc.Source.Unreadable, dfxml.Range{Offset: r.Start, Length: r.End - r.Start})
	}
	return doc
}

// diskFileObject is a rebuilt disk's fileobject. Its filename, filesize and
// hashdigest are the .vmdk file's, as the file system holds it (what an
// audit of the case checks: `ls -l`, `sha256sum`). Its byte runs are the
// disk's content, the virtual disk: each says which bytes of the virtual
// disk (file_offset) were read from where in the image (img_offset); the
// byte_runs element's vmdkcarve:content_size says so and gives the virtual
// disk's size, and vmdkcarve:disk its geometry and grain counts. A raw
// image of the disk (--format raw), which holds exactly that content, is
// listed as a vmdkcarve:output.
//
// Only placed grains have byte runs: zero, missing, conflicting and
// damaged grains read as zeros in the disk and come from no image byte.
func diskFileObject(rep *DiskReport) dfxml.FileObject {
	d := rep.Disk
	f := dfxml.FileObject{ID: d.ID}
	for _, o := range rep.Output {
		if o.Format == "vmdk" && f.Filename == "" {
			f.Filename, f.Size = filepath.ToSlash(o.Path), o.Size
			if o.SHA256 != "" {
				f.Hashes = []dfxml.Hash{{Type: "sha256", Value: o.SHA256}}
			}
			continue
		}
		f.Also = append(f.Also, dfxml.Output{Path: filepath.ToSlash(o.Path), Format: o.Format, Size: o.Size, SHA256: o.SHA256})
	}
	if f.Filename == "" {
		f.Filename = DisksDirName + "/" + diskName(d.ID) + ".vmdk"
	}
	if d.Capacity > math.MaxInt64/vmdk.SectorSize || d.GrainSize == 0 || d.GrainSize > math.MaxInt64/vmdk.SectorSize {
		f.Error = fmt.Sprintf("capacity %d sectors, grain size %d sectors: no byte run can be given", d.Capacity, d.GrainSize)
		return f
	}
	size, gb := int64(d.Capacity)*vmdk.SectorSize, int64(d.GrainSize)*vmdk.SectorSize
	f.ContentSize = size
	var problems []string
	c := d.Counts
	f.Disk = &dfxml.Disk{ID: d.ID, CapacityBytes: size, GrainBytes: gb, Grains: d.Grains(), Placed: c.Placed, Zero: c.Zero,
		Missing: c.Missing, Conflict: c.Conflict, Damaged: c.Damaged, Report: DisksDirName + "/" + diskName(d.ID) + ".json"}
	if unmapped := addRuns(&f, d.Runs, d.Grains(), size, gb); unmapped > 0 {
		problems = append(problems, fmt.Sprintf("%d placed grains have no byte run: their runs in the report do not give each grain's source", unmapped))
	}
	if v := rep.Verified; v.HashMismatch+v.DecodeFailure > 0 {
		// Which grains is not recorded: the runs cannot leave them out.
		problems = append(problems, fmt.Sprintf("placed grains failed their check when read to write the disk (%d hash mismatches, %d decode failures): they read as zeros in it, though their byte runs are listed",
			v.HashMismatch, v.DecodeFailure))
	}
	f.Error = strings.Join(problems, "; ")
	return f
}

// addRuns adds the byte runs of the placed runs of grains to f: a run of
// grains stored one after the other in the image is one byte run; grains
// at another stride, compressed grains (one byte run each, the record's
// bytes, with uncompressed_len) and grains split across host fragments
// (one byte run per piece, zeros of a host hole as fill="0") are each their
// own. The last grain is cut at the disk's size. It returns how many
// placed grains it could give no byte run (a run whose grains' sources the
// report does not give).
func addRuns(f *dfxml.FileObject, runs []reassemble.Run, grains uint64, size, gb int64) (unmapped uint64) {
	for _, r := range runs {
		if r.Status != reassemble.Placed || r.Count == 0 {
			continue
		}
		// Runs cover the disk's grains; one that does not (a report
		// edited by hand) gives no byte run rather than one past the disk.
		if r.FirstGrain >= grains || r.Count > grains-r.FirstGrain || r.ImageOffset < 0 {
			unmapped += r.Count
			continue
		}
		stride := r.Stride
		if r.Count == 1 {
			stride = gb
		}
		if r.Count > 1 && (stride <= 0 || r.Compressed || len(r.Pieces) > 0) {
			// The report gives one source per run: a run of several
			// compressed or split grains, or one without a stride,
			// does not say where the others lie.
			unmapped += r.Count
			continue
		}
		off := int64(r.FirstGrain) * gb
		if stride == gb && !r.Compressed && len(r.Pieces) == 0 {
			f.AddRun(dfxml.ByteRun{FileOffset: off, ImgOffset: r.ImageOffset, Len: min(int64(r.Count)*gb, size-off)})
			continue
		}
		for i := range int64(r.Count) {
			g := off + i*gb
			n := min(gb, size-g)
			img := r.ImageOffset + i*stride
			switch {
			case r.Compressed:
				if !addRecord(f, g, n, img, r.RecordBytes, r.Pieces) {
					unmapped++
				}
			case len(r.Pieces) > 0:
				for _, p := range r.Pieces {
					if p.Offset < 0 || p.Length <= 0 || p.Offset >= n {
						continue
					}
					br := dfxml.ByteRun{FileOffset: g + p.Offset, ImgOffset: p.ImageOffset, Len: min(p.Length, n-p.Offset)}
					if p.ImageOffset < 0 {
						br.ImgOffset, br.Fill = -1, "0"
					}
					f.AddRun(br)
				}
			default:
				f.AddRun(dfxml.ByteRun{FileOffset: g, ImgOffset: img, Len: n})
			}
		}
	}
	return unmapped
}

// addRecord adds the byte runs of one compressed grain: the record's bytes
// at img (record bytes long), or its pieces when the record is split
// across host fragments, each decoding (together) to the n bytes of the
// grain at g. It reports false, adding nothing, when the report does not
// give the record's length.
func addRecord(f *dfxml.FileObject, g, n, img, record int64, pieces []reassemble.Piece) bool {
	if record <= 0 {
		return false
	}
	if len(pieces) == 0 {
		f.AddRun(dfxml.ByteRun{FileOffset: g, ImgOffset: img, Len: record, UncompressedLen: n, Record: recordEncoding})
		return true
	}
	for _, p := range pieces {
		if p.Offset < 0 || p.Length <= 0 || p.Offset >= record {
			continue
		}
		br := dfxml.ByteRun{FileOffset: g, ImgOffset: p.ImageOffset, Len: min(p.Length, record-p.Offset),
			UncompressedLen: n, Record: recordEncoding, RecordOffset: p.Offset}
		if p.ImageOffset < 0 {
			br.ImgOffset, br.Fill = -1, "0"
		}
		f.AddRun(br)
	}
	return true
}

// creator is the DFXML creator of a rebuild started at start: this
// program, how it was built (Go's build info) and where and how it runs.
func creator(start time.Time) dfxml.Creator {
	c := dfxml.Creator{Program: Tool, Version: Version}
	c.Build = dfxml.BuildEnvironment{Compiler: runtime.Version(), Target: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		c.Build.Module, c.Build.ModuleVersion = bi.Main.Path, bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs":
				c.Build.VCS = s.Value
			case "vcs.revision":
				c.Build.VCSRevision = s.Value
			case "vcs.time":
				c.Build.VCSTime = s.Value
			case "vcs.modified":
				c.Build.VCSModified = s.Value
			}
		}
		for _, m := range bi.Deps {
			v := m.Version
			if r := m.Replace; r != nil {
				v += " => " + r.Path + " " + r.Version
			}
			c.Build.Libraries = append(c.Build.Libraries, dfxml.Library{Name: m.Path, Version: v})
		}
	}
	ex := dfxml.ExecutionEnvironment{OSSysname: runtime.GOOS, Arch: runtime.GOARCH, CommandLine: commandLine(os.Args), StartTime: start}
	uname(&ex)
	ex.Host, _ = os.Hostname()
	if uid := os.Getuid(); uid >= 0 {
		ex.UID = strconv.Itoa(uid)
	}
	if u, err := user.Current(); err == nil {
		ex.Username = u.Username
		if ex.UID == "" {
			ex.UID = u.Uid // Windows: the user's SID
		}
	}
	c.Execution = ex
	return c
}

// commandLine joins args as a POSIX shell would read them back: each
// argument that is not made only of characters a shell leaves alone is
// single-quoted, a quote inside it closed, escaped and reopened. Written here because the Go proxy
// serves no quoting library (google/shlex only splits).
func commandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// dfxmlFindings converts findings to the DFXML model's.
func dfxmlFindings(fs []findings.Finding) []dfxml.Finding {
	var out []dfxml.Finding
	for _, f := range fs {
		out = append(out, dfxmlFinding(f))
	}
	return out
}

func dfxmlFinding(f findings.Finding) dfxml.Finding {
	return dfxml.Finding{Code: string(f.Code), Severity: string(f.Severity), Text: f.Message, Action: f.Action,
		Instance: f.Instance, ImageOffset: f.ImageOffset, Length: f.Length, Grains: f.Grains}
}
