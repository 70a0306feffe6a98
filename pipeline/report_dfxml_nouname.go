//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos)

package pipeline

import "vmdkcarve/pipeline/dfxml"

// uname leaves the execution environment's GOOS and GOARCH where there is
// no uname(2) (Windows).
func uname(*dfxml.ExecutionEnvironment) {}
