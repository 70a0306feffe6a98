package corpus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"vmdkcarve/vmdk"
)

// Truth is what Generate did: the ground truth a carver's output is scored
// against. In memory the paths are absolute; truth.json stores base names
// (every file lives beside it), so a corpus directory can be moved.
type Truth struct {
	Seed      uint64      `json:"seed"`
	Image     string      `json:"image"`
	ImageSize int64       `json:"image_size"`
	Fill      string      `json:"fill"` // "noise" or "zero"
	Disks     []DiskTruth `json:"disks"`
	Files     []FileTruth `json:"files"`
	Host      *HostTruth  `json:"host,omitempty"`
}

// DiskTruth describes one guest disk.
type DiskTruth struct {
	ID            int      `json:"id"`
	Raw           string   `json:"raw"`        // the disk as it should be recovered
	Capacity      int64    `json:"capacity"`   // bytes
	GrainSize     uint64   `json:"grain_size"` // sectors (128)
	Grains        uint64   `json:"grains"`
	NonZeroGrains uint64   `json:"non_zero_grains"`
	RandomGrains  []uint64 `json:"random_grains"` // incompressible grains, those of RandomMiBs too
	// RandomMiBs are the virtual offsets of DiskSpec.RandomMiBs' 1 MiB
	// regions of random-looking bytes, sorted.
	RandomMiBs []int64 `json:"random_mibs,omitempty"`
	// FS is the guest filesystem of a DiskSpec with FS set; nil for a
	// synthetic disk.
	FS *GuestFSTruth `json:"fs,omitempty"`
}

// FileTruth describes one VMDK file laid into the image.
type FileTruth struct {
	Index   int     `json:"index"` // position in Spec.Files
	Disk    int     `json:"disk"`
	Variant Variant `json:"variant"`
	Name    string  `json:"name"` // file name in its descriptor's extent line
	// ImageOffset is where the file's first byte (its header) lies; for
	// a Decoy, whose header is not laid, where its piece starts.
	ImageOffset int64 `json:"image_offset"`
	Length      int64 `json:"length"`
	// HostPath is the file's path on the host volume (Spec.Host only).
	HostPath string `json:"host_path,omitempty"`
	// Fragments maps the file to the image, sorted by file offset: as the
	// host filesystem's tools report it (Spec.Host), or the seeded
	// pieces of FileSpec.Pieces, or a Decoy's one piece; nil when the
	// file is one run at ImageOffset. On a host, file bytes in no
	// fragment are holes of a sparse host file and read as zeros; of a
	// Decoy, they were not laid at all.
	Fragments []Fragment `json:"fragments,omitempty"`
	// Decoy is FileSpec.Decoy: only file bytes [At, At+Length) were laid
	// (Fragments holds their one run), so the file's other grains are
	// not intact.
	Decoy *DecoyPiece `json:"decoy,omitempty"`
	// Header is the effective header of the undamaged file (for a
	// GD_AT_END stream, the footer, which holds the real gdOffset); nil
	// for a flat extent, which has none.
	Header *vmdk.SparseHeader `json:"header"`
	// Descriptor is the separate text descriptor file of a flat extent
	// (Variant.Flat), nil for every other variant.
	Descriptor *DescriptorTruth `json:"descriptor,omitempty"`
	Damage     []DamageTruth    `json:"damage,omitempty"`
	// Grains lists every allocated grain of the undamaged file, in virtual
	// order, from vmdk.GrainMap; for a flat extent, every non-zero grain g
	// at file offset g*65536 (its zero grains are zeros in the file).
	// A grain only partly laid (a Decoy's beyond its piece) is not intact;
	// one not laid at all has ImageOffset -1 and no Pieces.
	Grains       []GrainTruth `json:"grains"`
	IntactGrains int          `json:"intact_grains"`
}

// DescriptorTruth places the text descriptor file of a flat extent.
type DescriptorTruth struct {
	Name string `json:"name"` // NAME.vmdk, beside the extent NAME-flat.vmdk
	// ImageOffset is where the descriptor's first byte lies; -1 when it
	// was not laid (FileSpec.NoDescriptor). Without a host it is a seeded
	// 4096-aligned offset of its own, overlapping nothing.
	ImageOffset int64 `json:"image_offset"`
	Length      int64 `json:"length"` // bytes of the file (qemu pads its text with NULs to 512)
	// HostPath is the descriptor's path on the host volume (Spec.Host
	// only), beside the extent's.
	HostPath string `json:"host_path,omitempty"`
	// Fragments maps the descriptor to the image (Spec.Host only), as
	// FileTruth.Fragments does the extent.
	Fragments []Fragment `json:"fragments,omitempty"`
	// Resident says the descriptor is resident in its MFT record (NTFS
	// hosts keep a file this small inside the record). Fixups then lists
	// the image offsets of the 2-byte update-sequence slots that fall
	// inside its bytes: there the image holds the record's update
	// sequence number, not the text (ReadDescriptor returns the image's
	// bytes as they are).
	Resident bool    `json:"resident,omitempty"`
	Fixups   []int64 `json:"fixups,omitempty"`
	// Intact says the descriptor was laid and no damage (host damage)
	// touches its bytes.
	Intact bool `json:"intact"`
	// Parsed is the descriptor as written.
	Parsed *vmdk.Descriptor `json:"parsed"`
}

// Laid reports whether the descriptor was laid into the image.
func (d *DescriptorTruth) Laid() bool { return d != nil && d.ImageOffset >= 0 }

// DamageTruth is one applied damage and the image ranges it changed.
type DamageTruth struct {
	Damage
	Ranges []Range `json:"ranges"`
}

// Range is a byte range of the image and what was written over it.
type Range struct {
	ImageOffset int64  `json:"image_offset"`
	Length      int64  `json:"length"`
	Fill        string `json:"fill"` // "zero" or "noise"
}

// End is the image offset just past r.
func (r Range) End() int64 { return r.ImageOffset + r.Length }

// GrainTruth places one allocated grain of a laid file.
//
// On a fragmented host file a grain may straddle fragments or hold host
// holes (zero blocks the host did not store). Then Pieces lists where each
// stored run of its bytes lies, in file order, and ImageOffset is the
// first piece's; bytes of [FileOffset, FileOffset+Length) in no piece read
// as zeros. Pieces is empty when the grain is one contiguous image run at
// ImageOffset. FileTruth.ReadGrain reads a grain either way.
type GrainTruth struct {
	Grain       uint64     `json:"grain"`
	FileOffset  int64      `json:"file_offset"`
	ImageOffset int64      `json:"image_offset"` // grain data (sparse) or grain record (stream)
	Length      int64      `json:"length"`       // bytes of data or of the whole record, sector-padded
	Pieces      []Fragment `json:"pieces,omitempty"`
	Intact      bool       `json:"intact"` // every byte laid (host holes aside) and no damage touches them
}

// Disk returns the disk with the given ID, or nil.
func (t *Truth) Disk(id int) *DiskTruth {
	for i := range t.Disks {
		if t.Disks[i].ID == id {
			return &t.Disks[i]
		}
	}
	return nil
}

// Surviving returns the grains of a disk that are non-zero and intact in
// at least one laid copy: the most a perfect carver can recover from table
// or marker evidence, and the denominator of recall in tests.
func (t *Truth) Surviving(diskID int) map[uint64]bool {
	out := make(map[uint64]bool)
	for _, f := range t.Files {
		if f.Disk != diskID {
			continue
		}
		for _, g := range f.Grains {
			if g.Intact {
				out[g.Grain] = true
			}
		}
	}
	return out
}

// Save writes t as JSON to path, with base names for the paths.
func (t *Truth) Save(path string) error {
	c := *t
	c.Image = filepath.Base(c.Image)
	c.Disks = append([]DiskTruth(nil), t.Disks...)
	for i := range c.Disks {
		c.Disks[i].Raw = filepath.Base(c.Disks[i].Raw)
	}
	b, err := json.MarshalIndent(&c, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadTruth reads a truth.json written by Generate; the paths in the
// result are joined with the file's directory.
func LoadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t := new(Truth)
	if err := json.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("corpus: %s: %w", path, err)
	}
	t.resolve(filepath.Dir(path))
	return t, nil
}

func (t *Truth) resolve(dir string) {
	t.Image = filepath.Join(dir, filepath.Base(t.Image))
	for i := range t.Disks {
		t.Disks[i].Raw = filepath.Join(dir, filepath.Base(t.Disks[i].Raw))
	}
}
