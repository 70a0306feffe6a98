//go:build !(unix || windows)

package interrupt

import "os"

// Signals are the requests to stop: only os.Interrupt where the platform
// has no SIGTERM (Plan 9, WASI, js).
var Signals = []os.Signal{os.Interrupt}
