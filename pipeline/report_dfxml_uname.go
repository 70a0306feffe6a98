//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos

package pipeline

import (
	"golang.org/x/sys/unix"

	"vmdkcarve/pipeline/dfxml"
)

// uname fills the operating system's name, release, version and machine
// as uname(1) reports them (-s, -r, -v, -m).
func uname(ex *dfxml.ExecutionEnvironment) {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return
	}
	ex.OSSysname = unix.ByteSliceToString(u.Sysname[:])
	ex.OSRelease = unix.ByteSliceToString(u.Release[:])
	ex.OSVersion = unix.ByteSliceToString(u.Version[:])
	ex.Arch = unix.ByteSliceToString(u.Machine[:])
}
