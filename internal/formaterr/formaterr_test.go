package formaterr

import "testing"

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		reason, want string
	}{
		{"", "vmdk: sparse header: capacity = 7 at byte 12"},
		{"not a multiple of the grain size", "vmdk: sparse header: capacity = 7 at byte 12: not a multiple of the grain size"},
	} {
		if got := Message("vmdk", "sparse header", "capacity", 7, 12, tc.reason); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}
