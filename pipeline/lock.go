package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// errCaseLocked is tryLockCase's answer when another run holds the lock.
var errCaseLocked = errors.New("pipeline: the case is locked by another run")

// errWouldBlock is what lockFile returns, without waiting, for a lock held
// elsewhere (each platform's own error mapped onto one).
var errWouldBlock = errors.New("lock held elsewhere")

// lockCase takes an exclusive lock on CASE/.lock, waiting for it, so that
// shard runs of the same case in parallel processes update case.json and
// merge one at a time. The lock is the operating system's (lockFile: flock
// on Unix, LockFileEx on Windows), held by the open file, so it goes away
// with the process and a killed run never leaves the case locked.
func lockCase(dir string) (unlock func(), err error) { return lockCaseFile(dir, true) }

// tryLockCase is lockCase without the wait: errCaseLocked if another
// run holds the lock.
func tryLockCase(dir string) (unlock func(), err error) { return lockCaseFile(dir, false) }

func lockCaseFile(dir string, wait bool) (unlock func(), err error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pipeline: opening case lock %s: %w", path, err)
	}
	if err := lockFile(f, wait); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, errCaseLocked
		}
		return nil, fmt.Errorf("pipeline: locking %s: %w", path, err)
	}
	return func() {
		unlockFile(f)
		f.Close()
	}, nil
}
