package guestcheck

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
	// Files and FilesRecovered count regular files and those whose every
	// byte was read from recovered data, when the reader can tell
	// (MissingReporter); FilesRecovered is then the fraction of the
	// guest's files the rebuild gives back whole.
	Files          int `json:"files,omitempty"`
	FilesRecovered int `json:"files_recovered,omitempty"`
}

// MissingReporter is implemented by readers of partly rebuilt disks: it
// says whether a byte range touches data that was not recovered (which
// reads as zeros, not as the guest's bytes).
type MissingReporter interface {
	MissingIn(off, n int64) bool
}

// maxFileCheckBytes bounds how much file data a check reads: a file
// check over a multi-terabyte guest would be a second full read.
const maxFileCheckBytes = 1 << 30

// tracker wraps a reader to notice reads of unrecovered data.
type tracker struct {
	r    io.ReaderAt
	m    MissingReporter
	hit  bool
	read int64
}

func (t *tracker) ReadAt(p []byte, off int64) (int, error) {
	if t.m != nil && t.m.MissingIn(off, int64(len(p))) {
		t.hit = true
	}
	t.read += int64(len(p))
	return t.r.ReadAt(p, off)
}

// file reads one file through read (which reads it whole into io.Discard)
// and counts it, recovered if no read touched missing data.
func (t *tracker) file(res *CheckResult, read func() error) {
	if t.m == nil || t.read > maxFileCheckBytes {
		return
	}
	t.hit = false
	err := func() (err error) {
		defer func() {
			// The libraries panic on some damaged files; that file is
			// not recovered, the walk goes on.
			if p := recover(); p != nil {
				err = fmt.Errorf("reader gave up: %v", p)
			}
		}()
		return read()
	}()
	res.Files++
	if err == nil && !t.hit {
		res.FilesRecovered++
	}
}

// maxWalkEntries bounds a walk: a damaged directory tree must not loop or
// grow without end.
const maxWalkEntries = 200000

// Check walks the directory tree of the filesystem a Finding names.
func Check(r io.ReaderAt, size int64, f Finding) (res CheckResult) {
	m, _ := r.(MissingReporter)
	t := &tracker{r: r, m: m}
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
		return checkNTFS(t, size, f.Offset)
	case "ext":
		return checkExt(t, size, f.Offset)
	}
	return CheckResult{Problems: []string{"no checker for " + f.Kind}}
}

func checkNTFS(t *tracker, size, off int64) CheckResult {
	var res CheckResult
	// go-ntfs takes the volume's offset but reads $MFT at the boot
	// sector's cluster number from the reader's start: it is given a
	// reader that starts at the volume instead.
	ctx, err := ntfs.GetNTFSContext(io.NewSectionReader(t, off, size-off), 0)
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
			if !fi.IsDir {
				var id int64
				if _, err := fmt.Sscan(fi.MFTId, &id); err == nil && id > 11 {
					t.file(&res, func() error {
						e, err := ctx.GetMFT(id)
						if err != nil {
							return err
						}
						data, err := ntfs.OpenStream(ctx, e, 128, ntfs.WILDCARD_STREAM_ID, ntfs.WILDCARD_STREAM_NAME)
						if err != nil {
							return err
						}
						_, err = io.Copy(io.Discard, io.NewSectionReader(data, 0, min(fi.Size, maxFileCheckBytes)))
						return err
					})
				}
			}
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

func checkExt(t *tracker, size, off int64) CheckResult {
	var res CheckResult
	rs := io.NewSectionReader(t, off, size-off)
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
		_, de, err := dw.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.Problems = append(res.Problems, "walking the tree: "+err.Error())
			break
		}
		res.Entries++
		if de.IsRegular() {
			n := int(de.Data().Inode)
			t.file(&res, func() error {
				bgd, err := bgdl.GetWithAbsoluteInode(n)
				if err != nil {
					return err
				}
				inode, err := ext4.NewInodeWithReadSeeker(bgd, rs, n)
				if err != nil {
					return err
				}
				r := ext4.NewInodeReader(ext4.NewExtentNavigatorWithReadSeeker(rs, inode))
				_, err = io.CopyN(io.Discard, r, min(int64(inode.Size()), maxFileCheckBytes))
				return err
			})
		}
	}
	res.Walked = len(res.Problems) == 0 && res.Entries > 0
	return res
}
