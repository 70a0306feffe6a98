// Package interrupt gives the commands one context that ends when the user
// or the system asks the process to stop, so that a carve checkpoints and
// a rebuild stops between disks instead of dying mid-write.
package interrupt

import (
	"context"
	"os/signal"
)

// Context returns a copy of parent that is cancelled on the first of
// Signals (a second one kills the process as usual, since stop restores
// the default handling once the caller is done).
func Context(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, Signals...)
}
