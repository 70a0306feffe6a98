package signatures

import "vmdkcarve/fs/ntfs"

// NTFS host structures: MFT FILE records (which say where every fragment
// of a host file lies) and boot sectors (which give the volume's start and
// cluster size). The parsing lives in fsprobe (ntfs_record.go), next to
// the resolver that uses the records; these recognizers grade the result.

func init() {
	register(Recognizer{
		// Records are 1024-aligned in an MFT that is cluster aligned in a
		// volume that is sector aligned: every record starts on a 512-byte
		// boundary of the image. The window covers a 4 KiB record (4Kn).
		Name: "ntfs-mft-record", Kind: KindNTFS, Align: 512, Window: ntfs.MaxRecordSize,
		Doc:       `NTFS MFT "FILE" record (fixups applied): number, flags, names, $DATA run list, a resident VMDK descriptor`,
		Recognize: recognizeNTFSRecord,
		Magics:    []Magic{bytesAt(0, "FILE")},
	})
	register(Recognizer{
		Name: "ntfs-boot-sector", Kind: KindNTFS, Align: 512, Window: 512,
		Doc:       "NTFS boot sector, primary or backup: sector and cluster size, total sectors, $MFT and $MFTMirr LCNs",
		Recognize: recognizeNTFSBoot,
		Magics:    []Magic{bytesAt(3, "NTFS    ")},
	})
}

func recognizeNTFSRecord(w, _ []byte) (Hit, bool) {
	if !ntfs.IsFileMagic(w) {
		return Hit{}, false
	}
	rec, err := ntfs.ParseFileRecord(w)
	if rec == nil {
		// "FILE" plus a header that fails the size, USA and attribute
		// offset rules: text that happens to say FILE, not a record.
		return Hit{}, false
	}
	h := Hit{Kind: KindNTFS, Verdict: Valid, Length: int64(rec.MFT.RecordSize), NTFS: rec}
	if err != nil {
		// The header passed: a torn or cut record is still evidence (its
		// number and position), but its runs are not trusted.
		h.Verdict, h.Reason = Damaged, rec.Damaged
	}
	return h, true
}

func recognizeNTFSBoot(w, _ []byte) (Hit, bool) {
	if !ntfs.IsBootMagic(w) {
		return Hit{}, false
	}
	rec, err := ntfs.ParseBootSector(w)
	if err != nil {
		// The OEM id and the signature are 2^-80 by chance: a bad BPB is
		// a damaged boot sector worth reporting, never used for geometry.
		return Hit{Kind: KindNTFS, Verdict: Damaged, Reason: err.Error(), Length: 512,
			NTFS: &ntfs.Record{Type: ntfs.TypeBootSector, Damaged: err.Error()}}, true
	}
	return Hit{Kind: KindNTFS, Verdict: Valid, Length: 512, NTFS: rec}, true
}
