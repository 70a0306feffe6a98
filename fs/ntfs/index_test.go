package ntfs

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vmdkcarve/internal/tooltest"
)

// TestParseIndexBlockReal reads the INDX blocks of a real mkntfs volume
// whose root directory holds enough files (copied in by ntfscp) for its
// index to leave the record: every block names the root (record 5) and
// its VCNs are the clusters its $INDEX_ALLOCATION holds, each once.
func TestParseIndexBlockReal(t *testing.T) {
	tooltest.Need(t, "mkntfs", "ntfscp")
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol.img")
	if err := os.WriteFile(vol, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "mkntfs", "-F", "-q", "-Q", "-c", "4096", vol)
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		tooltest.Run(t, "ntfscp", "-q", vol, src, fmt.Sprintf("a-file-with-a-long-enough-name-%03d.txt", i))
	}
	b, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	vcns := map[int64]bool{}
	for off := 0; off+IndexBlockSize <= len(b); off += 4096 {
		if !IsIndexMagic(b[off:]) {
			continue
		}
		ib, err := ParseIndexBlock(b[off:])
		if err != nil {
			t.Fatalf("INDX block at %d: %v", off, err)
		}
		if ib.Parent != 5 {
			t.Errorf("INDX block at %d: parent %d, want the root (5)", off, ib.Parent)
		}
		if vcns[ib.VCN] {
			t.Errorf("VCN %d twice", ib.VCN)
		}
		vcns[ib.VCN] = true
	}
	if len(vcns) < 2 {
		t.Fatalf("%d index blocks found; the test needs the root's index to span blocks", len(vcns))
	}
	for v := range int64(len(vcns)) {
		if !vcns[v] {
			t.Errorf("VCNs %v: %d missing", vcns, v)
		}
	}
}

// indexBlock builds a minimal valid INDX block: its update sequence and
// entries naming parent (one per 0x68 bytes, then the last entry).
func indexBlock(vcn int64, parents ...int64) []byte {
	b := make([]byte, IndexBlockSize)
	le := binary.LittleEndian
	copy(b, "INDX")
	le.PutUint16(b[indxOffUSAOffset:], 0x28)
	le.PutUint16(b[indxOffUSACount:], IndexBlockSize/FixupStride+1)
	le.PutUint64(b[indxOffVCN:], uint64(vcn))
	pos := 0x40
	le.PutUint32(b[indxOffHeader:], uint32(pos-indxOffHeader))
	for _, p := range parents {
		le.PutUint16(b[pos+8:], 0x68)
		le.PutUint16(b[pos+10:], 0x50)
		le.PutUint64(b[pos+indxEntryKey:], uint64(p)|7<<48) // sequence 7
		pos += 0x68
	}
	le.PutUint32(b[pos+12:], indxEntryLast)
	pos += 0x10
	le.PutUint32(b[indxOffHeader+4:], uint32(pos-indxOffHeader))
	// The USN is 0x0001; every stride's last two bytes hold it, the array
	// the bytes they stood for (zeros).
	b[0x28] = 1
	for i := 1; i <= IndexBlockSize/FixupStride; i++ {
		b[i*FixupStride-2] = 1
	}
	return b
}

func TestParseIndexBlock(t *testing.T) {
	torn := indexBlock(3, 9)
	torn[2*FixupStride-2] = 0xEE
	for _, tc := range []struct {
		name   string
		b      []byte
		vcn    int64
		parent int64
		err    bool
	}{
		{"one parent", indexBlock(3, 9, 9), 3, 9, false},
		{"parents disagree", indexBlock(3, 9, 10), 3, -1, false},
		{"no entries", indexBlock(0), 0, -1, false},
		{"torn stride", torn, 0, 0, true},
		{"short", indexBlock(3, 9)[:IndexBlockSize-1], 0, 0, true},
		{"not INDX", make([]byte, IndexBlockSize), 0, 0, true},
		{"VCN past MaxLCN", indexBlock(MaxLCN, 9), 0, 0, true},
		{"USA count", setAt(indexBlock(1, 9), indxOffUSACount, 3, 2), 0, 0, true},
		{"USA past block", setAt(indexBlock(1, 9), indxOffUSAOffset, IndexBlockSize-4, 2), 0, 0, true},
		{"entries past block", setAt(indexBlock(1, 9), indxOffHeader+4, IndexBlockSize, 4), 1, -1, false},
		{"entry shorter than its key", setAt(indexBlock(1, 9), 0x40+8, 0x10, 2), 1, -1, false},
	} {
		ib, err := ParseIndexBlock(tc.b)
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && (ib.VCN != tc.vcn || ib.Parent != tc.parent) {
			t.Errorf("%s: %+v, want VCN %d parent %d", tc.name, ib, tc.vcn, tc.parent)
		}
	}
}

// FuzzIndexBlock: an INDX block of any bytes is an error or a block, never
// a panic or a read outside it.
func FuzzIndexBlock(f *testing.F) {
	f.Add(indexBlock(3, 9, 9))
	f.Add(indexBlock(1, 9, 10))
	f.Fuzz(func(t *testing.T, w []byte) {
		if ib, err := ParseIndexBlock(w); err == nil && (ib.VCN < 0 || ib.VCN >= MaxLCN || ib.Parent < -1) {
			t.Fatalf("%+v", ib)
		}
	})
}
