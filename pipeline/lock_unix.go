//go:build unix && !aix

package pipeline

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// caseLocking names the lock lockFile takes, for the tests and the README.
const caseLocking = "flock"

// lockFile takes flock(2)'s exclusive lock on f, an advisory lock that
// every run of this tool honours (and, on shared storage, the nodes of a
// cluster whose filesystem passes flock on: NFSv4, CephFS, Lustre -o flock).
func lockFile(f *os.File, wait bool) error {
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	err := unix.Flock(int(f.Fd()), how)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errWouldBlock
	}
	return err
}

func unlockFile(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_UN) }
