package fsprobe

// This file holds the host level's result: what a host filesystem's
// surviving metadata (NTFS MFT records, ext4 inodes and extent blocks) says
// about where the pieces of a VMDK file lie in the image. The records are
// parsed by ntfs_record.go and ext4_format.go (the carve's recognizers in
// signatures call them); ntfs_host.go, ext4_host.go and ext4_leaves.go turn
// records found at image offsets into these file maps.

// MappedExtent links a range of a host file to a range of the image.
// Ranges of the file that no extent covers are holes (sparse host files:
// they read as zeros) when the map is complete.
type MappedExtent struct {
	FileOffset  int64 `json:"file_offset"`
	ImageOffset int64 `json:"image_offset"`
	Length      int64 `json:"length"`
}

// FileMap is where one host file's bytes lie in the image, as its host
// filesystem's metadata says.
type FileMap struct {
	FS       string         `json:"fs"`             // "ntfs" or "ext4"
	Name     string         `json:"name,omitempty"` // file name, when the metadata has it
	Record   string         `json:"record"`         // e.g. "MFT record 41 at image offset N", "inode 12"
	Size     int64          `json:"size"`           // file size in bytes
	Extents  []MappedExtent `json:"extents"`        // sorted by FileOffset
	Complete bool           `json:"complete"`       // every extent of the file is known (holes are real holes)
	Evidence string         `json:"evidence"`       // how the volume geometry and the records were tied to the image
	// OwnGeometry: the volume's start and block size come from its own
	// superblock or boot sector, not from files assumed to start at
	// anchors.
	OwnGeometry bool `json:"own_geometry,omitempty"`
	// Volume is the image offset the volume starts at, VolumeSize its
	// bytes (0 when unknown), and Structures the image offsets of the
	// structures the map rests on: the boot sectors, superblock copies and
	// $MFT record copies the volume's geometry was solved from (none for a
	// geometry solved from anchors alone), and the file's own MFT record
	// or inode. They let a caller tell a host volume from a guest volume
	// found inside a file of the host.
	Volume     int64   `json:"volume"`
	VolumeSize int64   `json:"volume_size,omitempty"`
	Structures []int64 `json:"structures,omitempty"`
}
