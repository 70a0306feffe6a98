//go:build windows

package pipeline

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// caseLocking names the lock lockFile takes, for the tests and the README.
const caseLocking = "LockFileEx"

// lockFile takes LockFileEx's exclusive lock on the first byte of f (the
// lock file is empty; Windows locks byte ranges, and a range past the end
// is allowed). The lock belongs to the handle, so it ends with the process
// as flock's does on Unix, and a second handle, in this process or another,
// is refused it.
func lockFile(f *os.File, wait bool) error {
	flags := uint32(windows.LOCKFILE_EXCLUSIVE_LOCK)
	if !wait {
		flags |= windows.LOCKFILE_FAIL_IMMEDIATELY
	}
	err := windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errWouldBlock
	}
	return err
}

func unlockFile(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}
