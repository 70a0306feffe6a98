package formaterr

import (
	"errors"
	"testing"
)

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		reason, want string
	}{
		{"", "vmdk: sparse header: capacity = 7 at byte 12"},
		{"not a multiple of the grain", "vmdk: sparse header: capacity = 7 at byte 12: not a multiple of the grain"},
	} {
		if got := Message("vmdk", "sparse header", "capacity", 7, 12, tc.reason); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestAtImage(t *testing.T) {
	if AtImage(5, nil) != nil {
		t.Fatal("AtImage(nil) is not nil")
	}
	base := errors.New("vmdk: grain marker: bad")
	err := AtImage(1<<20, base)
	if !errors.Is(err, base) {
		t.Error("the wrapped error is lost")
	}
	var ie *ImageError
	if !errors.As(err, &ie) || ie.ImageOffset != 1<<20 {
		t.Errorf("%v: no image offset", err)
	}
	if want := "vmdk: grain marker: bad (structure at image offset 1048576)"; err.Error() != want {
		t.Errorf("%q, want %q", err.Error(), want)
	}
}
