package fsprobe

import (
	"fmt"
	"io"

	ext4 "github.com/dsoprea/go-ext4"
	ntfs "www.velocidex.com/golang/go-ntfs/parser"
)

// CheckResult is what a walk of a guest filesystem found: whether every
// directory read back and how many entries it listed. It is a reader's
// check (go-ntfs, go-ext4), not a full fsck: the tests hold rebuilt disks
// to e2fsck -fn and ntfsfix -n as well.
type CheckResult struct {
	Walked   bool     `json:"walked"` // the whole directory tree was read without error
	Entries  int      `json:"entries"`
	Problems []string `json:"problems,omitempty"`
}

// maxWalkEntries bounds a walk: a damaged directory tree must not loop or
// grow without end.
const maxWalkEntries = 200000

// Check walks the directory tree of the filesystem a Finding names.
func Check(r io.ReaderAt, size int64, f Finding) (res CheckResult) {
	defer func() {
		// Both libraries panic on some damaged structures; a damaged
		// guest is a finding, not a crash.
		if p := recover(); p != nil {
			res.Walked = false
			res.Problems = append(res.Problems, fmt.Sprintf("reader gave up: %v", p))
		}
	}()
	switch f.Kind {
	case "ntfs":
		return checkNTFS(r, f.Offset)
	case "ext":
		return checkExt(r, size, f.Offset)
	}
	return CheckResult{Problems: []string{"no checker for " + f.Kind}}
}

func checkNTFS(r io.ReaderAt, off int64) CheckResult {
	var res CheckResult
	ctx, err := ntfs.GetNTFSContext(r, off)
	if err != nil {
		res.Problems = append(res.Problems, "opening the volume: "+err.Error())
		return res
	}
	root, err := ctx.GetMFT(5) // the root directory's MFT record
	if err != nil {
		res.Problems = append(res.Problems, "reading the root directory: "+err.Error())
		return res
	}
	seen := map[string]bool{}
	queue := []*ntfs.MFT_ENTRY{root}
	for len(queue) > 0 && res.Entries < maxWalkEntries {
		dir := queue[0]
		queue = queue[1:]
		for _, fi := range ntfs.ListDir(ctx, dir) {
			if seen[fi.MFTId] || fi.Name == "." {
				continue
			}
			seen[fi.MFTId] = true
			res.Entries++
			if fi.IsDir {
				var id int64
				if _, err := fmt.Sscan(fi.MFTId, &id); err == nil && id > 11 {
					if e, err := ctx.GetMFT(id); err == nil {
						queue = append(queue, e)
					} else {
						res.Problems = append(res.Problems, fmt.Sprintf("directory %s (MFT %d): %v", fi.Name, id, err))
					}
				}
			}
		}
	}
	res.Walked = len(res.Problems) == 0 && res.Entries > 0
	return res
}

func checkExt(r io.ReaderAt, size, off int64) CheckResult {
	var res CheckResult
	rs := io.NewSectionReader(r, off, size-off)
	if _, err := rs.Seek(1024, io.SeekStart); err != nil {
		res.Problems = append(res.Problems, err.Error())
		return res
	}
	sb, err := ext4.NewSuperblockWithReader(rs)
	if err != nil {
		res.Problems = append(res.Problems, "superblock: "+err.Error())
		return res
	}
	bgdl, err := ext4.NewBlockGroupDescriptorListWithReadSeeker(rs, sb)
	if err != nil {
		res.Problems = append(res.Problems, "group descriptors: "+err.Error())
		return res
	}
	const rootInode = 2
	bgd, err := bgdl.GetWithAbsoluteInode(rootInode)
	if err != nil {
		res.Problems = append(res.Problems, "root inode's group: "+err.Error())
		return res
	}
	dw, err := ext4.NewDirectoryWalk(rs, bgd, rootInode)
	if err != nil {
		res.Problems = append(res.Problems, "root directory: "+err.Error())
		return res
	}
	for res.Entries < maxWalkEntries {
		_, _, err := dw.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.Problems = append(res.Problems, "walking the tree: "+err.Error())
			break
		}
		res.Entries++
	}
	res.Walked = len(res.Problems) == 0 && res.Entries > 0
	return res
}
