//go:build unix || windows

package interrupt

import (
	"os"
	"syscall"
)

// Signals are the requests to stop: os.Interrupt (Ctrl-C; on Windows also
// Ctrl-Break) and SIGTERM, which Slurm (scancel, a time limit) and
// Kubernetes (a pod stopped) send before they kill, and which Go delivers
// on Windows for a console closed, a logoff or a shutdown.
var Signals = []os.Signal{os.Interrupt, syscall.SIGTERM}
