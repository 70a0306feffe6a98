//go:build unix

package pipeline

import (
	"os"
	"syscall"
)

// linkCount is how many names fi's file has (its hard links), and whether
// the platform says.
func linkCount(fi os.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}
