//go:build !(unix && !aix) && !windows

package pipeline

import "os"

// caseLocking names the lock lockFile takes, for the tests and the README.
const caseLocking = "none"

// lockFile takes no lock where the platform offers none this package uses
// (AIX, Plan 9, WASI): parallel shard runs of one case must then be run one
// after the other, which the README says.
func lockFile(f *os.File, wait bool) error { return nil }

func unlockFile(f *os.File) error { return nil }
