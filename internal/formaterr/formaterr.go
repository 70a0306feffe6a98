// Package formaterr words a format package's errors one way: every codec
// (vmdk, fs/ntfs, fs/ext4) has a FormatError of the same fields, and its
// message is Message's.
package formaterr

import "fmt"

// Message is "pkg: structure: field = value at byte offset", then
// ": reason" when there is one.
func Message(pkg, structure, field string, value any, offset int64, reason string) string {
	msg := fmt.Sprintf("%s: %s: %s = %v at byte %d", pkg, structure, field, value, offset)
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}
