// Package units formats byte counts for people: the carve's and the
// rebuild's summaries and progress lines share one form.
package units

import "fmt"

// Bytes formats n in binary units with one decimal ("1.5 MiB"), or in
// bytes below 1 KiB ("512 B").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}
