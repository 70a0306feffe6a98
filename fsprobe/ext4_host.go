package fsprobe

// Ext4Record is what the carver keeps of an ext4 structure found in the
// image (a superblock, an inode, an extent tree block).
type Ext4Record struct {
	Type string `json:"type"` // "superblock", "inode", "extent-block", ...
}
