package fsprobe

// NTFSRecord is what the carver keeps of an NTFS structure found in the
// image (an MFT FILE record or a boot sector).
type NTFSRecord struct {
	Type string `json:"type"` // "mft-record" or "boot-sector"
}
