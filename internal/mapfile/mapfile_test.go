package mapfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// A mapfile as GNU ddrescue 1.27 writes it.
const sample = `# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue -d /dev/sdb disk.img disk.map
# Start time:   2026-11-30 10:00:00
# Current time: 2026-11-30 11:00:00
# Finished
# current_pos  current_status  current_pass
0x04000000     +               1
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x00001000  -
0x00101000  0x00000200  /
0x00101200  0x00EFEE00  +
0x01000000  0x00010000  *
0x01010000  0x02FF0000  +
0x04000000  0x00100000  ?
`

func TestUnreadable(t *testing.T) {
	areas, covered, err := Unreadable(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Extent{{0x100000, 0x101200}, {0x1000000, 0x1010000}, {0x4000000, 0x4100000}}
	if !reflect.DeepEqual(areas, want) || covered != 0x4100000 {
		t.Errorf("areas %x covered %x, want %x %x", areas, covered, want, 0x4100000)
	}
	for _, tc := range []struct{ name, text string }{
		{"no status line", "# only comments\n"},
		{"gap between blocks", "0 +\n0 10 +\n20 10 -\n"},
		{"overlap", "0 +\n0 10 +\n5 10 -\n"},
		{"bad status", "0 +\n0 10 x\n"},
		{"negative", "0 +\n0 -10 +\n"},
		{"overflow", "0 +\n0 0x7fffffffffffffff +\n0x7fffffffffffffff 1 -\n"},
		{"garbage", "this is not a mapfile\n"},
		{"long line", "0 +\n" + strings.Repeat("0", MaxLineBytes+1) + "\n"},
	} {
		if _, _, err := Unreadable(strings.NewReader(tc.text)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", tc.name, err)
		}
	}
}

// FuzzUnreadable: any text is an error or sorted, disjoint, non-empty
// areas inside what the mapfile covers.
func FuzzUnreadable(f *testing.F) {
	f.Add(sample)
	f.Add("0 +\n0 10 -\n")
	f.Fuzz(func(t *testing.T, text string) {
		areas, covered, err := Unreadable(strings.NewReader(text))
		if err != nil {
			return
		}
		prev := int64(-1)
		for _, a := range areas {
			if a.Start < 0 || a.End <= a.Start || a.Start <= prev || a.End > covered {
				t.Fatalf("areas %v of %d", areas, covered)
			}
			prev = a.End
		}
	})
}
