package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	ntfsparser "www.velocidex.com/golang/go-ntfs/parser"
)

// testdata/ntfs-record-guest.bin is MFT record 67 of a 4 MiB mkntfs volume
// (4 KiB clusters) after ntfscp copied guest.vmdk (400004 bytes) into a
// hole left by a truncated file: two runs. ntfs-boot.bin is that volume's
// boot sector.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFileRecordReal(t *testing.T) {
	rec, err := ParseFileRecord(readTestdata(t, "ntfs-record-guest.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f := rec.MFT
	if rec.Type != TypeMFTRecord || f.Number != 67 || !f.InUse || f.Dir || f.Base != 0 || f.RecordSize != 1024 || f.AttrList {
		t.Fatalf("header: %+v", f)
	}
	if name, parent := f.FileName(); name != "guest.vmdk" || parent != 5 {
		t.Fatalf("name %q parent %d", name, parent)
	}
	want := []Data{{Size: 400004, Allocated: 401408, Initialized: 400004, LastVCN: 97,
		Runs: []Run{{VCN: 0, LCN: 0x300, Len: 0x31}, {VCN: 0x31, LCN: 0x4d, Len: 0x31}}}}
	if !reflect.DeepEqual(f.Data, want) {
		t.Fatalf("data %+v, want %+v", f.Data, want)
	}
}

// setAt returns a copy of rec with v written little-endian at off.
func setAt(rec []byte, off int, v uint64, n int) []byte {
	b := append([]byte(nil), rec...)
	var tmp [8]byte
	binary.LittleEndian.PutUint64(tmp[:], v)
	copy(b[off:off+n], tmp[:n])
	return b
}

func TestParseFileRecordBad(t *testing.T) {
	real := readTestdata(t, "ntfs-record-guest.bin")
	const dataAttr = 0x158 // the $DATA attribute of the test record
	const runs = dataAttr + 0x40
	tests := []struct {
		name    string
		rec     []byte
		noRec   bool   // not a record at all
		damaged string // substring of the Damaged reason
	}{
		{"not FILE", setAt(real, 0, 0x454c4946+1, 4), true, ""},
		{"record size 512", setAt(real, 0x1C, 512, 4), true, ""},
		{"record size huge", setAt(real, 0x1C, 1<<31, 4), true, ""},
		{"usa offset odd", setAt(real, 0x04, 0x31, 2), true, ""},
		{"usa count", setAt(real, 0x06, 4, 2), true, ""},
		{"first attribute inside the usa", setAt(real, 0x14, 0x30, 2), true, ""},
		{"first attribute past the record", setAt(real, 0x14, 0x400, 2), true, ""},
		{"used size past the record", setAt(real, 0x18, 0x408, 4), true, ""},
		{"unknown flags", setAt(real, 0x16, 0x101, 2), true, ""},
		{"torn stride 0", setAt(real, 510, 0xBEEF, 2), false, "stride 0"},
		{"torn stride 1", setAt(real, 1022, 0xBEEF, 2), false, "stride 1"},
		{"attribute length 0", setAt(real, 0x38+4, 0, 4), false, "attribute length"},
		{"attribute length odd", setAt(real, 0x38+4, 0x61, 4), false, "attribute length"},
		{"attribute length past used", setAt(real, 0x38+4, 0x400, 4), false, "attribute length"},
		{"attribute length 2^32-8", setAt(real, 0x38+4, 1<<32-8, 4), false, "attribute length"},
		{"no end marker", setAt(real, 0x1a8, 0x10, 4), false, "attribute"},
		{"file name too long", setAt(real, 0x98+0x40, 200, 1), false, "$FILE_NAME"},
		{"resident value past attribute", setAt(real, 0x98-8, 0x400, 4), false, "resident value"},
		{"run list offset past attribute", setAt(real, dataAttr+0x20, 0x60, 2), false, "run list offset"},
		{"run nibble 9", setAt(real, runs, 0x29, 1), false, "run header"},
		{"run length 0", setAt(real, runs, 0x10, 1), false, "run header"},
		{"run before LCN 0", setAt(real, runs+7, 0xF0, 1), false, "run LCN"},
		{"runs disagree with last VCN", setAt(real, dataAttr+0x18, 96, 8), false, "last VCN"},
		{"size above allocated", setAt(real, dataAttr+0x30, 1<<40, 8), false, "stream sizes"},
		{"negative VCN", setAt(real, dataAttr+0x10, 1<<63, 8), false, "VCN range"},
		{"no run terminator", func() []byte {
			b := setAt(real, runs+8, 0x11, 1) // a third run whose bytes fill the attribute
			for i := runs + 9; i < dataAttr+0x50; i++ {
				b[i] = 0x11
			}
			return b
		}(), false, "run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseFileRecord(tt.rec)
			if err == nil {
				t.Fatalf("accepted: %+v", rec.MFT)
			}
			if !errors.Is(err, ErrRecord) {
				t.Errorf("error %v does not wrap ErrRecord", err)
			}
			if tt.noRec {
				if rec != nil {
					t.Fatalf("kept as a record: %+v (%v)", rec, err)
				}
				return
			}
			if rec == nil || !strings.Contains(rec.Damaged, tt.damaged) {
				t.Fatalf("got %+v (%v), want damaged with %q", rec, err, tt.damaged)
			}
			if rec.MFT.Data != nil || rec.MFT.Names != nil {
				t.Errorf("damaged record kept attributes: %+v", rec.MFT)
			}
		})
	}
}

// TestParseNTFSFileRecordTruncated cuts the record at every length: no
// panic, and nothing short of the whole record is valid.
func TestParseFileRecordTruncated(t *testing.T) {
	real := readTestdata(t, "ntfs-record-guest.bin")
	for n := 0; n < len(real); n++ {
		rec, err := ParseFileRecord(real[:n])
		if err == nil {
			t.Fatalf("%d bytes: accepted", n)
		}
		if rec != nil && rec.Damaged == "" {
			t.Fatalf("%d bytes: kept without a reason", n)
		}
	}
	// Longer windows (the carver hands 4 KiB) parse the same.
	long := append(append([]byte(nil), real...), make([]byte, 3072)...)
	if _, err := ParseFileRecord(long); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRuns(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []Run
		ok   bool
	}{
		{"empty list", []byte{0}, nil, true},
		{"one run", []byte{0x21, 0x10, 0x00, 0x01, 0}, []Run{{0, 0x100, 0x10, false}}, true},
		{"sparse then data", []byte{0x01, 0x08, 0x11, 0x04, 0x20, 0}, []Run{{0, -1, 8, true}, {8, 0x20, 4, false}}, true},
		{"negative delta", []byte{0x11, 0x02, 0x40, 0x11, 0x02, 0xF0, 0}, []Run{{0, 0x40, 2, false}, {2, 0x30, 2, false}}, true},
		{"eight-byte fields", []byte{0x88, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, []Run{{0, 1, 1, false}}, true},
		{"no terminator", []byte{0x11, 0x02, 0x40}, nil, false},
		{"cut inside a run", []byte{0x21, 0x10, 0x00}, nil, false},
		{"length nibble 0", []byte{0x10, 0x05, 0}, nil, false},
		{"offset nibble 9", []byte{0x91, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}, nil, false},
		{"negative length", []byte{0x11, 0xFF, 0x01, 0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0}, nil, false},
		{"LCN below 0", []byte{0x11, 0x02, 0xF0, 0}, nil, false},
		{"LCN 2^48", []byte{0x81, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0}, nil, false},
		// 2^46 clusters of 64 KiB are 2^62 bytes: beyond, LCN × cluster
		// size overflows int64 (issue 13).
		{"LCN 2^46", []byte{0x61, 1, 0, 0, 0, 0, 0, 0x40, 0}, nil, false},
		{"LCN just below 2^46", []byte{0x61, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0}, []Run{{0, 1<<46 - 1, 1, false}}, true},
	}
	for _, tt := range tests {
		got, err := decodeNTFSRuns(tt.in, 0)
		if (err == nil) != tt.ok || (tt.ok && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("%s: got %+v, %v; want %+v ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseBootSector(t *testing.T) {
	boot := readTestdata(t, "ntfs-boot.bin")
	rec, err := ParseBootSector(boot)
	if err != nil {
		t.Fatal(err)
	}
	b := rec.Boot
	if b.SectorSize != 512 || b.ClusterSize != 4096 || b.TotalSectors != 8191 || b.MFTLCN != 4 || b.MirrLCN != 511 || b.RecordSize != 1024 {
		t.Fatalf("%+v", b)
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"no signature", setAt(boot, 510, 0, 2)},
		{"sector size 0", setAt(boot, 0x0B, 0, 2)},
		{"sector size 520", setAt(boot, 0x0B, 520, 2)},
		{"sectors per cluster 0", setAt(boot, 0x0D, 0, 1)},
		{"sectors per cluster 3", setAt(boot, 0x0D, 3, 1)},
		{"cluster 128K", setAt(boot, 0x0D, 0x80, 1)}, // 128 × 512 = 64K is fine; with 4K sectors below it is not
		{"total sectors 0", setAt(boot, 0x28, 0, 8)},
		{"total sectors 2^63", setAt(boot, 0x28, 1<<63, 8)},
		{"MFT past the end", setAt(boot, 0x30, 5000, 8)},
		{"mirror 0", setAt(boot, 0x38, 0, 8)},
		{"record size 512", setAt(boot, 0x40, 0xF7, 1)},
		{"record size 2^-128", setAt(boot, 0x40, 0x80, 1)},
	}
	bad[5].b = setAt(setAt(boot, 0x0B, 4096, 2), 0x0D, 0x20, 1)
	for _, tt := range bad {
		if rec, err := ParseBootSector(tt.b); err == nil {
			t.Errorf("%s: accepted %+v", tt.name, rec.Boot)
		}
	}
	for n := 0; n < len(boot); n++ {
		if _, err := ParseBootSector(boot[:n]); err == nil {
			t.Fatalf("%d bytes accepted", n)
		}
	}
}

// TestBootSectorAsGoNTFS: every boot sector ParseBootSector accepts,
// go-ntfs's NTFS_BOOT_SECTOR.IsValid accepts too (its checks are done by
// hand here so that the carve does not link go-ntfs), over the real one
// with each BPB field varied.
func TestBootSectorAsGoNTFS(t *testing.T) {
	real := readTestdata(t, "ntfs-boot.bin")
	r := rand.New(rand.NewPCG(7, 8))
	accepted := 0
	for i := 0; i < 20000; i++ {
		w := append([]byte(nil), real...)
		switch i % 4 {
		case 0:
			binary.LittleEndian.PutUint16(w[ntfsBootOffBPS:], uint16(r.IntN(1<<13)))
		case 1:
			w[ntfsBootOffSPC] = byte(r.Uint32())
		case 2:
			binary.LittleEndian.PutUint64(w[ntfsBootOffTotal:], r.Uint64()>>uint(r.IntN(64)))
		case 3:
			binary.LittleEndian.PutUint16(w[ntfsBootOffBPS:], uint16(512<<r.IntN(4)))
			w[ntfsBootOffSPC] = byte(1 << r.IntN(8))
		}
		_, err := ParseBootSector(w)
		bs := ntfsparser.NewNTFSProfile().NTFS_BOOT_SECTOR(bytes.NewReader(w), 0)
		if err == nil {
			accepted++
			if verr := bs.IsValid(); verr != nil {
				t.Fatalf("accepted a boot sector go-ntfs rejects (%v): bps %d spc %d", verr, binary.LittleEndian.Uint16(w[ntfsBootOffBPS:]), w[ntfsBootOffSPC])
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no variant accepted: the test proves nothing")
	}
}

// FuzzParse feeds crafted bytes to both parsers: an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add(readTestdata(f, "ntfs-record-guest.bin"))
	f.Add(readTestdata(f, "ntfs-boot.bin"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if rec, err := ParseFileRecord(b); err == nil && rec.MFT == nil {
			t.Fatal("a record without its MFT fields")
		}
		if rec, err := ParseBootSector(b); err == nil && rec.Boot == nil {
			t.Fatal("a boot sector without its BPB")
		}
	})
}
