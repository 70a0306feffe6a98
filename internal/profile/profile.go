// Package profile writes a CPU profile (runtime/pprof) for the commands'
// --cpuprofile flag: how the speed figures of scripts/bench.sh are
// explained (go tool pprof -top BINARY FILE).
package profile

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// StartCPU starts a CPU profile written to path; stop ends it and closes
// the file. An empty path profiles nothing and stop does nothing.
func StartCPU(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
