package reassemble

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

func TestReasonString(t *testing.T) {
	for _, tc := range []struct {
		r    Reason
		want string
	}{
		{Reason{}, ""},
		{Reason{Code: ReasonUnallocated}, "unallocated in the grain table"},
		{Reason{Code: ReasonTablesDisagree, Offset: 128, Other: 256}, "primary table says sector 128, redundant says 256"},
		{Reason{Code: ReasonTableLost, Detail: "zeros", Redundant: "bad magic"}, "grain table lost: primary: zeros; redundant: bad magic"},
		{Reason{Code: ReasonSelfLocated, Detail: "an ext4 superblock"}, "its own guest structures say where it lies: an ext4 superblock"},
		{Reason{Code: ReasonSelfLocated, Detail: "an ext4 superblock", Other: 2}, "its own guest structures say where it lies: an ext4 superblock (2 identical slots claim it)"},
		{Reason{Code: ReasonZeroEntriesOrphans, Detail: "only one copy of its table is readable", Other: 12},
			"zero in a grain table not shown intact (only one copy of its table is readable) while 12 grain slots hold data no table entry names: the entry may be one the table lost"},
		{Reason{Code: ReasonNoEvidence, Instance: 3}, "instance 3: no evidence for this grain in any copy"},
		{Reason{Code: "from-a-later-build"}, "from-a-later-build"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

// TestEveryReasonCodeWorded reads the ReasonCode constants from reason.go
// and checks that String words each of them, and that no two share a
// value: a code added without its words, or a copied value, fails here.
func TestEveryReasonCodeWorded(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[ReasonCode]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "ReasonCode" {
				continue
			}
			lit := v.Values[0].(*ast.BasicLit)
			val, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			code, name := ReasonCode(val), v.Names[0].Name
			if prev, dup := seen[code]; dup {
				t.Errorf("%s and %s share the code %q", prev, name, code)
			}
			seen[code] = name
			if w := (Reason{Code: code}).String(); w == val {
				t.Errorf("%s (%q) has no words", name, code)
			}
		}
	}
	if len(seen) < 40 {
		t.Errorf("found %d reason codes in reason.go; the parse missed some", len(seen))
	}
}
