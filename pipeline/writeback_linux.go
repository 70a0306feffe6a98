package pipeline

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f's dirty pages out
// without waiting for them (sync_file_range SYNC_FILE_RANGE_WRITE, the
// whole file): durability is still Commit's fsync, which then has little
// left to wait for. Failure is harmless (the fsync reports real errors),
// so it is ignored.
func startWriteback(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	})
}
