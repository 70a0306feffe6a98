package pipeline

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens f's file a second time for writing with O_DIRECT, and
// says what alignment of memory and of file offsets and lengths its direct
// writes need (statx STATX_DIOALIGN; the page size where the kernel does
// not say). It returns nil where the filesystem refuses O_DIRECT (tmpfs
// before Linux 6.6, some FUSE and network filesystems) or the second open
// reaches another file than f.
func openDirect(f *os.File) (direct *os.File, memAlign, offAlign int) {
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
