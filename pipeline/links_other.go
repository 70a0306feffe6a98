//go:build !unix

package pipeline

import "os"

// linkCount does not know a file's hard links here: shard files are never
// shared with the case's (shareShardFiles), so nothing needs to.
func linkCount(os.FileInfo) (uint64, bool) { return 0, false }
