//go:build unix

package pipeline

import (
	"fmt"
	"os"
	"syscall"
)

// lockCase takes an exclusive advisory lock on CASE/.lock, so that shard runs
// of the same case in parallel processes update case.json and merge one at a
// time. The lock goes away with the process, so a killed run never leaves
// the case locked.
func lockCase(dir string) (unlock func(), err error) {
	path := dir + string(os.PathSeparator) + lockName
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening case lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("pipeline: locking %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
