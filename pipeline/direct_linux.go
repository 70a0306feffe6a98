package pipeline

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens f's file a second time for writing with O_DIRECT, and
// says what alignment of memory and of file offsets and lengths its direct
// writes need (statx STATX_DIOALIGN; the page size where the kernel does
// not say). It returns nil on filesystems other than directFilesystems,
// where O_DIRECT is refused or costs more than it saves, and where the
// second open reaches another file than f.
func openDirect(f *os.File) (direct *os.File, memAlign, offAlign int) {
	var fs unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &fs) != nil || !directFilesystems[int64(fs.Type)] {
		return nil, 0, 0
	}
	d, err := os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, 0, 0
	}
	a, err := f.Stat()
	b, err2 := d.Stat()
	if err != nil || err2 != nil || !os.SameFile(a, b) {
		d.Close()
		return nil, 0, 0
	}
	memAlign, offAlign = os.Getpagesize(), os.Getpagesize()
	var st unix.Statx_t
	if unix.Statx(int(d.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st) == nil && st.Mask&unix.STATX_DIOALIGN != 0 {
		if st.Dio_mem_align == 0 || st.Dio_offset_align == 0 {
			d.Close() // the kernel says this file takes no direct I/O
			return nil, 0, 0
		}
		memAlign, offAlign = int(st.Dio_mem_align), int(st.Dio_offset_align)
	}
	return d, memAlign, offAlign
}

// directFilesystems are the local disk filesystems a rebuilt disk is
// written to past the page cache. Elsewhere O_DIRECT is refused (tmpfs
// before Linux 6.6, many FUSE filesystems), copies anyway (tmpfs since),
// or sends each write to the server as it comes (NFS, SMB), which the page
// cache and one fsync do better.
var directFilesystems = map[int64]bool{
	unix.EXT4_SUPER_MAGIC: true, // ext2 and ext3 too
	unix.XFS_SUPER_MAGIC:  true,
}
