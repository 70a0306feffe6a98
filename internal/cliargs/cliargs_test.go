package cliargs

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		positional []string
		o          string
		force      bool
		err        bool
	}{
		{args: []string{"-o", "case", "image"}, positional: []string{"image"}, o: "case"},
		{args: []string{"image", "-o", "case"}, positional: []string{"image"}, o: "case"},
		{args: []string{"in", "--force", "out", "-o", "c"}, positional: []string{"in", "out"}, o: "c", force: true},
		{args: []string{"a", "b"}, positional: []string{"a", "b"}},
		{args: nil, positional: nil},
		{args: []string{"image", "-nope"}, err: true},
		{args: []string{"image", "-o"}, err: true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o := fs.String("o", "", "")
		force := fs.Bool("force", false, "")
		positional, err := Parse(fs, tc.args)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v, want error %v", tc.args, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if !slices.Equal(positional, tc.positional) || *o != tc.o || *force != tc.force {
			t.Errorf("%q: positional %q, -o %q, --force %v; want %q, %q, %v", tc.args, positional, *o, *force, tc.positional, tc.o, tc.force)
		}
	}
}
