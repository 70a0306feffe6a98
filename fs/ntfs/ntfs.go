// Package ntfs decodes the NTFS structures the carve and the probes read:
// the FILE record of the MFT (with its update-sequence fixups, attribute
// chain, $FILE_NAME and $DATA run lists) and the boot sector. It knows
// bytes and nothing else: where a structure lies, and what it means for a
// host or a guest, is fsprobe's.
package ntfs

// NTFS on-disk structures the host probe reads: the FILE record of the MFT
// (with its update-sequence fixups, attribute chain, $FILE_NAME and $DATA
// run lists) and the boot sector.
//
// References: the Linux ntfs-3g layout.h
// (https://github.com/tuxera/ntfs-3g/blob/edge/include/ntfs-3g/layout.h),
// Carrier, "File System Forensic Analysis", ch. 12-13, and go-ntfs's
// ntfs_profile.json (the layout this code agrees with).
//
// Why by hand and not through go-ntfs's MFT_ENTRY / NTFS_ATTRIBUTE: those
// types read every field through an io.ReaderAt with one allocation per
// field, their fixup (FixUpDiskMFTEntry) stops at the first torn stride
// without saying which, and NTFS_ATTRIBUTE.RunList (parser/runs.go and
// attribute.go) (a) reads the attribute's whole length starting at the run
// list offset, i.e. past the attribute's end into the next attribute when
// the terminator is missing, (b) accepts size nibbles above 8 silently
// (decoding them as 8 bytes), and (c) turns a sparse run (offset size 0)
// into a run at the previous LCN with a relative offset of 0, which cannot
// be told from a real zero delta. A carver must reject all three rather
// than place bytes from them, so the run list is decoded here with every
// length checked. The boot sector is checked as go-ntfs's
// NTFS_BOOT_SECTOR.IsValid checks it, by hand so that the carve does not
// link go-ntfs; IsValid is the tests' oracle.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"vmdkcarve/internal/formaterr"
	"vmdkcarve/vmdk"
)

// Record types.
const (
	TypeMFTRecord  = "mft-record"
	TypeBootSector = "boot-sector"
)

// Record is what the carver keeps of an NTFS structure found in the
// image (an MFT FILE record or a boot sector): exactly one of MFT and Boot
// is set, matching Type. It lands in hits.jsonl, so it holds decoded
// fields only, never raw bytes.
type Record struct {
	Type string `json:"type"` // "mft-record" or "boot-sector"
	// Damaged says why the structure is not trusted (torn by the update
	// sequence, attributes that do not parse, cut by the image end). A
	// damaged record keeps its header fields but no names or runs.
	Damaged string      `json:"damaged,omitempty"`
	MFT     *FileRecord `json:"mft,omitempty"`
	Boot    *Boot       `json:"boot,omitempty"`
}

// FileRecord is one MFT FILE record.
type FileRecord struct {
	Number     int64  `json:"number"` // record number; -1 when the record (NTFS 3.0) does not say
	Seq        uint16 `json:"seq"`
	InUse      bool   `json:"in_use,omitempty"`
	Dir        bool   `json:"dir,omitempty"`
	Base       int64  `json:"base,omitempty"` // base record number of an extension record
	RecordSize int    `json:"record_size"`
	AttrList   bool   `json:"attr_list,omitempty"` // has an $ATTRIBUTE_LIST: parts of the file may be in extension records
	Names      []Name `json:"names,omitempty"`
	Data       []Data `json:"data,omitempty"` // unnamed $DATA attributes (one per VCN range held here)
	// Streams are every non-resident attribute of the record (any type,
	// named or not): the clusters the record's file owns, which a guest
	// locator predicts to hold written bytes. Not kept in hits.
	Streams []Data `json:"-"`
	// Descriptor is a VMDK text descriptor held resident in the record.
	Descriptor *vmdk.Descriptor `json:"descriptor,omitempty"`
}

// Name is a $FILE_NAME attribute.
type Name struct {
	Name      string `json:"name"`
	Parent    int64  `json:"parent"`              // parent directory's record number
	Namespace uint8  `json:"namespace,omitempty"` // 0 POSIX, 1 Win32, 2 DOS, 3 Win32&DOS
}

// Data is an unnamed $DATA attribute: the file's content, resident or
// as runs of clusters. Sizes are set only in the piece starting at VCN 0.
type Data struct {
	Type        uint32 `json:"-"` // attribute type (0x80 $DATA, 0xA0 $INDEX_ALLOCATION, 0xB0 $BITMAP, ...)
	Resident    bool   `json:"resident,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Allocated   int64  `json:"allocated,omitempty"`
	Initialized int64  `json:"initialized,omitempty"`
	StartVCN    int64  `json:"start_vcn,omitempty"`
	LastVCN     int64  `json:"last_vcn,omitempty"`
	Compressed  bool   `json:"compressed,omitempty"`
	Encrypted   bool   `json:"encrypted,omitempty"`
	Sparse      bool   `json:"sparse,omitempty"`
	Runs        []Run  `json:"runs,omitempty"`
}

// Run is one run of a run list: Len clusters from VCN at LCN, or a
// hole when Sparse (LCN is then -1).
type Run struct {
	VCN    int64 `json:"vcn"`
	LCN    int64 `json:"lcn"`
	Len    int64 `json:"len"`
	Sparse bool  `json:"sparse,omitempty"`
}

// Boot is an NTFS boot sector's BPB. The same sector is the primary
// (at the volume start) or the backup (at volume start + TotalSectors ×
// SectorSize); which one it is comes from where it was found.
type Boot struct {
	SectorSize   int64  `json:"sector_size"`
	ClusterSize  int64  `json:"cluster_size"`
	TotalSectors int64  `json:"total_sectors"`
	MFTLCN       int64  `json:"mft_lcn"`
	MirrLCN      int64  `json:"mftmirr_lcn"`
	RecordSize   int64  `json:"record_size"`
	Serial       string `json:"serial"`
}

// FileName returns the record's preferred name (Win32 or Win32&DOS, then
// POSIX, then DOS) and its parent.
func (f *FileRecord) FileName() (string, int64) {
	best, rank := -1, -1
	for i, n := range f.Names {
		r := map[uint8]int{1: 3, 3: 3, 0: 2, 2: 1}[n.Namespace]
		if r > rank {
			best, rank = i, r
		}
	}
	if best < 0 {
		return "", -1
	}
	return f.Names[best].Name, f.Names[best].Parent
}

// FirstData returns the $DATA piece starting at VCN 0, if any.
func (f *FileRecord) FirstData() *Data {
	for i := range f.Data {
		if f.Data[i].StartVCN == 0 && !f.Data[i].Resident {
			return &f.Data[i]
		}
	}
	return nil
}

// FirstLCN is the LCN of VCN 0 of the record's $DATA, or -1.
func (f *FileRecord) FirstLCN() int64 {
	if d := f.FirstData(); d != nil && len(d.Runs) > 0 && !d.Runs[0].Sparse {
		return d.Runs[0].LCN
	}
	return -1
}

// VCNToLCN maps a VCN through runs, or returns -1.
func VCNToLCN(runs []Run, vcn int64) int64 {
	for _, r := range runs {
		if vcn >= r.VCN && vcn < r.VCN+r.Len {
			if r.Sparse {
				return -1
			}
			return r.LCN + vcn - r.VCN
		}
	}
	return -1
}

// FILE record header (NTFS 3.1; NTFS 3.0 records end the header at 0x2A and
// have no record number).
const (
	ntfsFileMagic      = "FILE"
	ntfsOffUSAOffset   = 0x04 // u16 offset of the update sequence array
	ntfsOffUSACount    = 0x06 // u16 entries in it (1 + strides)
	ntfsOffSeq         = 0x10 // u16 sequence number
	ntfsOffAttrOffset  = 0x14 // u16 first attribute
	ntfsOffFlags       = 0x16 // u16 flags
	ntfsOffUsed        = 0x18 // u32 bytes in use
	ntfsOffAllocated   = 0x1C // u32 record size
	ntfsOffBaseRef     = 0x20 // u64 base record reference (0 for a base record)
	OffRecordNum       = 0x2C // u32 record number (3.1 only: USA at 0x30)
	ntfsHeader31       = 0x30 // where the USA of a 3.1 record starts
	ntfsHeader30       = 0x2A // where the USA of a 3.0 record starts
	FixupStride        = 512  // the update sequence stride is 512 bytes whatever the sector size
	ntfsFlagInUse      = 0x0001
	ntfsFlagDirectory  = 0x0002
	ntfsKnownFlags     = 0x000F // in use, directory, $Extend, view index
	ntfsAttrEnd        = 0xFFFFFFFF
	RefRecordMask      = 1<<48 - 1 // a file reference is 48 bits of record number and 16 of sequence
	ntfsAttrHeaderMin  = 0x18      // resident header size
	ntfsNonResHeader   = 0x40      // non-resident header size (without the compressed-size field)
	ntfsAttrStdInfo    = 0x10
	ntfsAttrList       = 0x20
	ntfsAttrFileName   = 0x30
	AttrData           = 0x80
	ntfsFileNameMinLen = 0x42 // $FILE_NAME content before the name
	ntfsDataCompressed = 0x0001
	ntfsDataEncrypted  = 0x4000
	ntfsDataSparse     = 0x8000
)

// Limits on what one record may claim.
const (
	// MinRecordSize and MaxRecordSize bound the record size: 1024
	// is what every Windows writes; 4096 appears on 4Kn volumes. Anything
	// else is not a record we can trust.
	MinRecordSize = 1024
	MaxRecordSize = 4096
	// maxNTFSRuns bounds the runs kept per attribute: a run takes at least
	// two bytes, so a 4 KiB record cannot hold more; the cap keeps a hit
	// line bounded even so.
	maxNTFSRuns = MaxRecordSize / 2
	// maxNTFSNames bounds the $FILE_NAME attributes kept (hard links plus
	// the DOS alias): more is not a real file.
	maxNTFSNames = 8
	// maxNTFSDataPieces bounds the unnamed $DATA attributes kept per
	// record (an extension record may hold more than one VCN range).
	maxNTFSDataPieces = 8
	// maxNTFSStreams bounds the non-resident attributes kept per record:
	// each takes at least 0x48 bytes of a 4 KiB record.
	maxNTFSStreams = MaxRecordSize / 0x40
	// MaxLCN bounds cluster numbers (and VCNs, run lengths, total
	// sectors). Volumes stop at 2^32 clusters in Windows; 2^46 leaves
	// room and keeps LCN × the largest cluster (64 KiB) below 2^62, so
	// that adding an image offset cannot overflow int64 either. (2^48,
	// the bound before, overflowed with 64 KiB clusters.)
	MaxLCN = 1 << 46
)

// descriptorMagic starts a VMDK text descriptor.
const descriptorMagic = "# Disk DescriptorFile"

// ErrRecord is wrapped by every error from the NTFS record parsers.
var ErrRecord = errors.New("ntfs: bad structure")

// FormatError says which field of an NTFS structure is wrong and where,
// in the shape of every format package's (vmdk.FormatError): Offset is the
// field's byte offset within the record or sector; a caller that knows
// where the structure lies adds its image offset.
type FormatError struct {
	Struct string // "MFT record", "boot sector"
	Offset int64
	Field  string
	Value  any
	Reason string
}

func (e *FormatError) Error() string {
	return formaterr.Message("ntfs", e.Struct, e.Field, e.Value, e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return ErrRecord }

// ntfsBad is a bad field of an MFT FILE record (or of its attributes).
func ntfsBad(off int, field string, v int64) error {
	return &FormatError{Struct: "MFT record", Offset: int64(off), Field: field, Value: v}
}

// bootBad is a bad field of a boot sector.
func bootBad(off int, field string, v int64) error {
	return &FormatError{Struct: "boot sector", Offset: int64(off), Field: field, Value: v}
}

// IsFileMagic is the cheap first test: "FILE" at the window start.
func IsFileMagic(w []byte) bool {
	return len(w) >= 4 && w[0] == 'F' && w[1] == 'I' && w[2] == 'L' && w[3] == 'E'
}

// RecordNumber is the record number a FILE record header stores (3.1
// records; 0 for a w too short), unchecked: for callers that judge a
// record slot by its header alone. ParseFileRecord is the checked
// decoding.
func RecordNumber(w []byte) uint32 {
	if len(w) < OffRecordNum+4 {
		return 0
	}
	return binary.LittleEndian.Uint32(w[OffRecordNum:])
}

// RecordInUse reports whether a FILE record header's in-use flag is set,
// unchecked (false for a w too short).
func RecordInUse(w []byte) bool {
	return len(w) >= ntfsOffFlags+2 && binary.LittleEndian.Uint16(w[ntfsOffFlags:])&ntfsFlagInUse != 0
}

// ParseFileRecord parses the FILE record at the start of w. It returns
// (nil, err) when w is not a record; (rec, err) with rec.Damaged set when
// the header is sound but the record is torn or its attributes do not
// parse (the header fields are kept, the attributes are not trusted); and
// (rec, nil) for a valid record. w is not modified or retained.
func ParseFileRecord(w []byte) (*Record, error) {
	if !IsFileMagic(w) {
		return nil, ntfsBad(0, "magic", 0)
	}
	if len(w) < ntfsHeader31+2 {
		return nil, ntfsBad(0, "window length", int64(len(w)))
	}
	usaOff := int(binary.LittleEndian.Uint16(w[ntfsOffUSAOffset:]))
	usaCount := int(binary.LittleEndian.Uint16(w[ntfsOffUSACount:]))
	attrOff := int(binary.LittleEndian.Uint16(w[ntfsOffAttrOffset:]))
	flags := binary.LittleEndian.Uint16(w[ntfsOffFlags:])
	used := int64(binary.LittleEndian.Uint32(w[ntfsOffUsed:]))
	alloc := int64(binary.LittleEndian.Uint32(w[ntfsOffAllocated:]))

	// Plausibility of the header, cheapest first.
	if alloc != MinRecordSize && alloc != MaxRecordSize {
		return nil, ntfsBad(ntfsOffAllocated, "allocated size", alloc)
	}
	if usaOff != ntfsHeader31 && usaOff != ntfsHeader30 {
		return nil, ntfsBad(ntfsOffUSAOffset, "update sequence offset", int64(usaOff))
	}
	if usaCount != int(alloc)/FixupStride+1 {
		return nil, ntfsBad(ntfsOffUSACount, "update sequence count", int64(usaCount))
	}
	usaEnd := usaOff + 2*usaCount
	if attrOff < usaEnd || attrOff%8 != 0 || int64(attrOff) >= alloc {
		return nil, ntfsBad(ntfsOffAttrOffset, "first attribute offset", int64(attrOff))
	}
	if used < int64(attrOff)+4 || used > alloc || used%8 != 0 {
		return nil, ntfsBad(ntfsOffUsed, "used size", used)
	}
	if flags&^ntfsKnownFlags != 0 {
		return nil, ntfsBad(ntfsOffFlags, "flags", int64(flags))
	}

	rec := &Record{Type: TypeMFTRecord, MFT: &FileRecord{
		Number:     -1,
		Seq:        binary.LittleEndian.Uint16(w[ntfsOffSeq:]),
		InUse:      flags&ntfsFlagInUse != 0,
		Dir:        flags&ntfsFlagDirectory != 0,
		Base:       int64(binary.LittleEndian.Uint64(w[ntfsOffBaseRef:]) & RefRecordMask),
		RecordSize: int(alloc),
	}}
	f := rec.MFT
	if usaOff == ntfsHeader31 {
		f.Number = int64(binary.LittleEndian.Uint32(w[OffRecordNum:]))
	}
	if int64(len(w)) < alloc {
		rec.Damaged = fmt.Sprintf("window ends %d bytes into the %d-byte record", len(w), alloc)
		return rec, ntfsBad(len(w), "window length", int64(len(w)))
	}

	// Fixups, on a copy (w belongs to the carver). A stride whose last two
	// bytes differ from the USN was not written with the rest: the record
	// is torn and its contents cannot be trusted.
	var buf [MaxRecordSize]byte
	b := buf[:alloc]
	copy(b, w)
	if torn := applyFixups(b, usaOff, usaCount); len(torn) > 0 {
		strides := make([]string, len(torn))
		for i, k := range torn {
			strides[i] = strconv.Itoa(k)
		}
		rec.Damaged = "update sequence mismatch in stride " + strings.Join(strides, ",")
		return rec, ntfsBad(usaOff, "update sequence", int64(len(torn)))
	}
	if err := parseNTFSAttributes(b[:used], attrOff, f); err != nil {
		rec.Damaged = err.Error()
		f.Names, f.Data, f.AttrList = nil, nil, false
		return rec, err
	}
	return rec, nil
}

// parseNTFSAttributes walks the attribute chain of a fixed-up record b
// (cut to its used size) from off, filling f.
func parseNTFSAttributes(b []byte, off int, f *FileRecord) error {
	for {
		if off+4 > len(b) {
			return ntfsBad(off, "attribute chain end", int64(off))
		}
		typ := binary.LittleEndian.Uint32(b[off:])
		if typ == ntfsAttrEnd {
			return nil
		}
		if off+ntfsAttrHeaderMin > len(b) {
			return ntfsBad(off, "attribute header", int64(off))
		}
		alen := int(binary.LittleEndian.Uint32(b[off+4:]))
		// The length is a u32; comparing against the remaining bytes
		// first keeps off+alen from overflowing on 32-bit ints.
		if alen < ntfsAttrHeaderMin || alen > len(b)-off || alen%8 != 0 {
			return ntfsBad(off+4, "attribute length", int64(alen))
		}
		a := b[off : off+alen]
		nonRes := a[8]
		nameLen := int(a[9])
		nameOff := int(binary.LittleEndian.Uint16(a[10:]))
		if nonRes > 1 {
			return ntfsBad(off+8, "non-resident flag", int64(nonRes))
		}
		if nameLen > 0 && (nameOff < ntfsAttrHeaderMin || nameOff+2*nameLen > alen) {
			return ntfsBad(off+10, "attribute name offset", int64(nameOff))
		}
		switch {
		case typ == ntfsAttrList:
			f.AttrList = true
		case typ == ntfsAttrFileName && nonRes == 0:
			content, err := ntfsResidentContent(a, off)
			if err != nil {
				return err
			}
			if err := f.addName(content, off); err != nil {
				return err
			}
		case typ == AttrData && nameLen == 0:
			d, err := parseNTFSData(a, off)
			if err != nil {
				return err
			}
			if d.Resident {
				// A VMDK's text descriptor is small enough to live in its
				// MFT record, at no sector boundary the carver looks at,
				// and torn by the record's update sequence: it is read here,
				// after the fixups.
				if c, err := ntfsResidentContent(a, off); err == nil && bytes.HasPrefix(c, []byte(descriptorMagic)) {
					if desc, err := vmdk.ParseDescriptor(c); err == nil {
						f.Descriptor = desc
					}
				}
			}
			if len(f.Data) < maxNTFSDataPieces {
				f.Data = append(f.Data, d)
			}
			if !d.Resident && len(f.Streams) < maxNTFSStreams {
				d.Type = typ
				f.Streams = append(f.Streams, d)
			}
		case nonRes == 1:
			// Any other non-resident attribute ($INDEX_ALLOCATION, a
			// named stream, $BITMAP) also holds clusters of the volume.
			d, err := parseNTFSData(a, off)
			if err != nil {
				return err
			}
			if len(f.Streams) < maxNTFSStreams {
				d.Type = typ
				f.Streams = append(f.Streams, d)
			}
		}
		off += alen // alen >= 24: the walk always advances
	}
}

// ntfsResidentContent returns the value of a resident attribute a found
// at record offset off.
func ntfsResidentContent(a []byte, off int) ([]byte, error) {
	size := int64(binary.LittleEndian.Uint32(a[0x10:]))
	coff := int64(binary.LittleEndian.Uint16(a[0x14:]))
	if coff < ntfsAttrHeaderMin || coff+size > int64(len(a)) {
		return nil, ntfsBad(off+0x10, "resident value size", size)
	}
	return a[coff : coff+size], nil
}

func (f *FileRecord) addName(c []byte, off int) error {
	if len(c) < ntfsFileNameMinLen {
		return ntfsBad(off, "$FILE_NAME size", int64(len(c)))
	}
	n := int(c[0x40])
	ns := c[0x41]
	if ns > 3 || ntfsFileNameMinLen+2*n > len(c) {
		return ntfsBad(off, "$FILE_NAME name", int64(n))
	}
	if len(f.Names) >= maxNTFSNames {
		return nil
	}
	u := make([]uint16, n)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(c[ntfsFileNameMinLen+2*i:])
	}
	parent := binary.LittleEndian.Uint64(c)
	f.Names = append(f.Names, Name{
		Name:      string(utf16.Decode(u)),
		Parent:    int64(parent & RefRecordMask),
		Namespace: ns,
	})
	return nil
}

// parseNTFSData reads an unnamed $DATA attribute a found at record offset
// off.
func parseNTFSData(a []byte, off int) (Data, error) {
	if a[8] == 0 {
		v, err := ntfsResidentContent(a, off)
		return Data{Resident: true, Size: int64(len(v))}, err
	}
	if len(a) < ntfsNonResHeader {
		return Data{}, ntfsBad(off+4, "non-resident attribute length", int64(len(a)))
	}
	flags := binary.LittleEndian.Uint16(a[0x0C:])
	d := Data{
		StartVCN:    int64(binary.LittleEndian.Uint64(a[0x10:])),
		LastVCN:     int64(binary.LittleEndian.Uint64(a[0x18:])),
		Allocated:   int64(binary.LittleEndian.Uint64(a[0x28:])),
		Size:        int64(binary.LittleEndian.Uint64(a[0x30:])),
		Initialized: int64(binary.LittleEndian.Uint64(a[0x38:])),
		Compressed:  flags&ntfsDataCompressed != 0,
		Encrypted:   flags&ntfsDataEncrypted != 0,
		Sparse:      flags&ntfsDataSparse != 0,
	}
	// VCNs are u64 on disk; as int64 a value with the top bit set is
	// negative and rejected here, as are ranges no volume can hold.
	if d.StartVCN < 0 || d.StartVCN >= MaxLCN || d.LastVCN < d.StartVCN-1 || d.LastVCN >= MaxLCN {
		return d, ntfsBad(off+0x10, "VCN range", d.StartVCN)
	}
	if d.StartVCN == 0 {
		// Sizes are meaningful only in the first piece of a stream.
		if d.Allocated < 0 || d.Size < 0 || d.Initialized < 0 || d.Size > d.Allocated || d.Initialized > d.Size {
			return d, ntfsBad(off+0x28, "stream sizes", d.Size)
		}
	} else {
		d.Allocated, d.Size, d.Initialized = 0, 0, 0
	}
	roff := int(binary.LittleEndian.Uint16(a[0x20:]))
	if roff < ntfsNonResHeader || roff >= len(a) {
		return d, ntfsBad(off+0x20, "run list offset", int64(roff))
	}
	runs, err := decodeNTFSRuns(a[roff:], d.StartVCN)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Offset += int64(off + roff)
		}
		return d, err
	}
	var n int64
	for _, r := range runs {
		n += r.Len
	}
	if d.LastVCN-d.StartVCN+1 != n {
		return d, ntfsBad(off+0x18, "last VCN (runs cover a different count)", d.LastVCN)
	}
	d.Runs = runs
	return d, nil
}

// decodeNTFSRuns decodes a mapping-pairs array (run list) starting at VCN
// vcn. Each run is a header byte (low nibble: bytes of length, high
// nibble: bytes of the signed LCN delta; 0 delta bytes = sparse), then the
// two little-endian values; a 0 header ends the list. The list must end
// inside b.
func decodeNTFSRuns(b []byte, vcn int64) ([]Run, error) {
	var runs []Run
	var lcn int64
	for i := 0; ; {
		if i >= len(b) {
			return nil, ntfsBad(i, "run list terminator", int64(len(runs)))
		}
		h := b[i]
		if h == 0 {
			return runs, nil
		}
		ls, os := int(h&0x0F), int(h>>4)
		if ls == 0 || ls > 8 || os > 8 || i+1+ls+os > len(b) {
			return nil, ntfsBad(i, "run header", int64(h))
		}
		if len(runs) >= maxNTFSRuns {
			return nil, ntfsBad(i, "run count", int64(len(runs)))
		}
		length := int64(leUint(b[i+1 : i+1+ls]))
		if length <= 0 || length >= MaxLCN || vcn+length >= MaxLCN {
			return nil, ntfsBad(i+1, "run length", length)
		}
		r := Run{VCN: vcn, Len: length, LCN: -1}
		if os == 0 {
			r.Sparse = true
		} else {
			delta := leInt(b[i+1+ls : i+1+ls+os])
			// Both are below MaxLCN in magnitude here, so the sum cannot
			// overflow.
			if delta <= -MaxLCN || delta >= MaxLCN {
				return nil, ntfsBad(i+1+ls, "run LCN delta", delta)
			}
			lcn += delta
			if lcn < 0 || lcn+length > MaxLCN {
				return nil, ntfsBad(i+1+ls, "run LCN", lcn)
			}
			r.LCN = lcn
		}
		runs = append(runs, r)
		vcn += length
		i += 1 + ls + os
	}
}

// leUint reads up to 8 little-endian bytes as an unsigned value.
func leUint(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// leInt reads up to 8 little-endian bytes as a sign-extended value.
func leInt(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	v := leUint(b)
	if n := uint(len(b)) * 8; n < 64 && b[len(b)-1]&0x80 != 0 {
		v |= ^uint64(0) << n
	}
	return int64(v)
}

// NTFS boot sector (BPB) fields.
const (
	ntfsBootOEM        = "NTFS    "
	ntfsBootSize       = 512
	ntfsBootOffBPS     = 0x0B // u16 bytes per sector
	ntfsBootOffSPC     = 0x0D // u8 sectors per cluster
	ntfsBootOffHidden  = 0x1C // u32 hidden sectors (the volume's start on its disk)
	ntfsBootOffTotal   = 0x28 // u64 total sectors (the backup boot sector lies just past them)
	ntfsBootOffMFT     = 0x30 // u64 $MFT LCN
	ntfsBootOffMirr    = 0x38 // u64 $MFTMirr LCN
	ntfsBootOffRecSize = 0x40 // i8 clusters per MFT record (negative: 2^-n bytes)
	ntfsBootOffSerial  = 0x48 // u64 volume serial
	ntfsMaxCluster     = 64 << 10
)

// BPB is a boot sector's BIOS parameter block as stored, not checked: for
// callers that judge the fields by rules of their own (a guest's
// predictions); ParseBootSector is the checked decoding.
type BPB struct {
	BytesPerSector, SectorsPerCluster int64
	// HiddenSectors is the volume's start on its disk, in sectors: the
	// partition's start as the formatter knew it.
	HiddenSectors                 int64
	TotalSectors, MFTLCN, MirrLCN int64
}

// ReadBPB decodes the BPB of the boot sector at the start of w (at least
// 0x40 bytes; a shorter w gives zeros).
func ReadBPB(w []byte) BPB {
	if len(w) < ntfsBootOffRecSize {
		return BPB{}
	}
	le := binary.LittleEndian
	return BPB{BytesPerSector: int64(le.Uint16(w[ntfsBootOffBPS:])), SectorsPerCluster: int64(w[ntfsBootOffSPC]), HiddenSectors: int64(le.Uint32(w[ntfsBootOffHidden:])),
		TotalSectors: int64(le.Uint64(w[ntfsBootOffTotal:])), MFTLCN: int64(le.Uint64(w[ntfsBootOffMFT:])), MirrLCN: int64(le.Uint64(w[ntfsBootOffMirr:]))}
}

// IsBootMagic is the cheap first test: "NTFS    " at 3 and 0x55AA at
// 510.
func IsBootMagic(w []byte) bool {
	return len(w) >= ntfsBootSize && string(w[3:11]) == ntfsBootOEM && w[510] == 0x55 && w[511] == 0xAA
}

// ParseBootSector parses an NTFS boot sector at the start of w.
func ParseBootSector(w []byte) (*Record, error) {
	if !IsBootMagic(w) {
		return nil, bootBad(3, "boot sector magic", 0)
	}
	w = w[:ntfsBootSize]
	bpb := ReadBPB(w)
	bps, spc := bpb.BytesPerSector, bpb.SectorsPerCluster
	// What go-ntfs's NTFS_BOOT_SECTOR.IsValid asks (its test oracle in
	// ntfs_test.go), by hand so that the carve does not link go-ntfs: a
	// cluster of a power of two bytes up to 64 KiB, sectors of a multiple
	// of 512 bytes, a volume of at least one cluster's worth of sectors.
	if c := bps * spc; c <= 0 || c > 1<<16 || c&(c-1) != 0 {
		return nil, &FormatError{Struct: "boot sector", Offset: ntfsBootOffSPC, Field: "cluster size", Value: c, Reason: "not a power of two up to 64 KiB"}
	}
	if bps == 0 || bps%512 != 0 {
		return nil, &FormatError{Struct: "boot sector", Offset: ntfsBootOffBPS, Field: "bytes per sector", Value: bps, Reason: "not a multiple of 512"}
	}
	if bpb.TotalSectors/(bps*spc) == 0 {
		return nil, &FormatError{Struct: "boot sector", Offset: ntfsBootOffTotal, Field: "total sectors", Value: bpb.TotalSectors, Reason: "less than one cluster"}
	}
	b := &Boot{
		SectorSize:   bps,
		ClusterSize:  bps * spc,
		TotalSectors: bpb.TotalSectors,
		MFTLCN:       bpb.MFTLCN,
		MirrLCN:      bpb.MirrLCN,
		Serial:       fmt.Sprintf("%016x", binary.LittleEndian.Uint64(w[ntfsBootOffSerial:])),
	}
	// go-ntfs allows 512..64K-byte sectors and clusters from one byte; we
	// want what Windows and mkntfs write.
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 {
		return nil, bootBad(ntfsBootOffBPS, "bytes per sector", bps)
	}
	if b.ClusterSize < 512 || b.ClusterSize > ntfsMaxCluster {
		return nil, bootBad(ntfsBootOffSPC, "cluster size", b.ClusterSize)
	}
	// Totals stored as u64; bounding them by MaxLCN keeps products in int64.
	if b.TotalSectors <= 0 || b.TotalSectors >= MaxLCN {
		return nil, bootBad(ntfsBootOffTotal, "total sectors", b.TotalSectors)
	}
	clusters := b.TotalSectors * bps / b.ClusterSize
	if b.MFTLCN <= 0 || b.MFTLCN >= clusters {
		return nil, bootBad(ntfsBootOffMFT, "$MFT LCN", b.MFTLCN)
	}
	if b.MirrLCN <= 0 || b.MirrLCN >= clusters {
		return nil, bootBad(ntfsBootOffMirr, "$MFTMirr LCN", b.MirrLCN)
	}
	rs := int64(int8(w[ntfsBootOffRecSize]))
	switch {
	case rs > 0 && rs <= 64:
		b.RecordSize = rs * b.ClusterSize
	case rs < 0 && rs >= -31:
		b.RecordSize = 1 << uint(-rs)
	}
	if b.RecordSize != MinRecordSize && b.RecordSize != MaxRecordSize {
		return nil, bootBad(ntfsBootOffRecSize, "MFT record size", b.RecordSize)
	}
	return &Record{Type: TypeBootSector, Boot: b}, nil
}

// Validate checks a record read back from a case file (which a user may
// edit) against what ParseFileRecord and ParseBootSector could have made:
// the part its Type names, a record size of 1024 or 4096, record numbers,
// VCN ranges and runs within the parsers' bounds, and a boot sector's
// geometry by its rules. A damaged record keeps its header fields only.
func (r *Record) Validate() error {
	bad := func(field string, v any) error {
		return &FormatError{Struct: "record", Field: field, Value: v, Reason: "not what the parser makes"}
	}
	switch r.Type {
	case TypeBootSector:
		if r.MFT != nil {
			return bad("mft", "set in a boot sector")
		}
		if r.Boot == nil {
			if r.Damaged == "" {
				return bad("boot", "missing")
			}
			return nil
		}
		return r.Boot.validate()
	case TypeMFTRecord:
		if r.Boot != nil || r.MFT == nil {
			return bad("mft", "missing")
		}
		f := r.MFT
		switch {
		case f.RecordSize != MinRecordSize && f.RecordSize != MaxRecordSize:
			return bad("record_size", f.RecordSize)
		case f.Number < -1 || f.Number > 1<<32-1:
			return bad("number", f.Number)
		case f.Base < 0 || f.Base > RefRecordMask:
			return bad("base", f.Base)
		case r.Damaged != "" && (len(f.Names) > 0 || len(f.Data) > 0 || f.Descriptor != nil):
			return bad("damaged", "a damaged record with attributes")
		case len(f.Names) > maxNTFSNames:
			return bad("names", len(f.Names))
		case len(f.Data) > maxNTFSDataPieces:
			return bad("data", len(f.Data))
		}
		for _, n := range f.Names {
			if n.Parent < 0 || n.Parent > RefRecordMask || n.Namespace > 3 || len(n.Name) > 3*255 {
				return bad("names", n.Name)
			}
		}
		for i := range f.Data {
			if err := f.Data[i].validate(); err != nil {
				return err
			}
		}
		if f.Descriptor != nil {
			return f.Descriptor.Validate()
		}
		return nil
	}
	return bad("type", r.Type)
}

func (b *Boot) validate() error {
	bad := func(off int, field string, v int64) error { return bootBad(off, field, v) }
	bps := b.SectorSize
	switch {
	case bps < 512 || bps > 4096 || bps&(bps-1) != 0:
		return bad(ntfsBootOffBPS, "bytes per sector", bps)
	case b.ClusterSize < bps || b.ClusterSize > ntfsMaxCluster || b.ClusterSize&(b.ClusterSize-1) != 0:
		return bad(ntfsBootOffSPC, "cluster size", b.ClusterSize)
	case b.TotalSectors <= 0 || b.TotalSectors >= MaxLCN || b.TotalSectors*bps/b.ClusterSize == 0:
		return bad(ntfsBootOffTotal, "total sectors", b.TotalSectors)
	}
	clusters := b.TotalSectors * bps / b.ClusterSize
	switch {
	case b.MFTLCN <= 0 || b.MFTLCN >= clusters:
		return bad(ntfsBootOffMFT, "$MFT LCN", b.MFTLCN)
	case b.MirrLCN <= 0 || b.MirrLCN >= clusters:
		return bad(ntfsBootOffMirr, "$MFTMirr LCN", b.MirrLCN)
	case b.RecordSize != MinRecordSize && b.RecordSize != MaxRecordSize:
		return bad(ntfsBootOffRecSize, "MFT record size", b.RecordSize)
	}
	return nil
}

// validate applies parseNTFSData's and decodeNTFSRuns' bounds to a
// decoded piece: the VCN range, the sizes, and runs that chain from
// StartVCN to LastVCN with LCNs inside MaxLCN.
func (d *Data) validate() error {
	bad := func(field string, v int64) error { return ntfsBad(0, field, v) }
	if d.Resident {
		if d.Size < 0 || d.Size > MaxRecordSize || len(d.Runs) > 0 {
			return bad("resident size", d.Size)
		}
		return nil
	}
	switch {
	case d.StartVCN < 0 || d.StartVCN >= MaxLCN || d.LastVCN < d.StartVCN-1 || d.LastVCN >= MaxLCN:
		return bad("VCN range", d.StartVCN)
	case d.Allocated < 0 || d.Size < 0 || d.Initialized < 0 || d.Size > d.Allocated || d.Initialized > d.Size:
		return bad("stream sizes", d.Size)
	case d.StartVCN > 0 && (d.Allocated|d.Size|d.Initialized) != 0:
		return bad("stream sizes", d.Size)
	case len(d.Runs) > maxNTFSRuns:
		return bad("run count", int64(len(d.Runs)))
	}
	vcn := d.StartVCN
	for _, r := range d.Runs {
		switch {
		case r.VCN != vcn:
			return bad("run VCN", r.VCN)
		case r.Len <= 0 || r.Len >= MaxLCN || vcn+r.Len >= MaxLCN:
			return bad("run length", r.Len)
		case r.Sparse && r.LCN != -1:
			return bad("run LCN", r.LCN)
		case !r.Sparse && (r.LCN < 0 || r.LCN+r.Len > MaxLCN):
			return bad("run LCN", r.LCN)
		}
		vcn += r.Len
	}
	if d.LastVCN-d.StartVCN+1 != vcn-d.StartVCN {
		return bad("last VCN (runs cover a different count)", d.LastVCN)
	}
	return nil
}
