package signatures

import (
	"encoding/binary"
	"os"
	"testing"

	"vmdkcarve/fsprobe"
)

// ntfsTestdata reads the NTFS codec's testdata: MFT record 67
// (guest.vmdk, two runs) of a 4 MiB mkntfs volume, and its boot sector.
const ntfsTestdataDir = "../fs/ntfs/testdata/"

func ntfsTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(ntfsTestdataDir + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNTFSRecognizers(t *testing.T) {
	rec := ntfsTestdata(t, "ntfs-record-guest.bin")
	boot := ntfsTestdata(t, "ntfs-boot.bin")
	r, b := find("ntfs-mft-record"), find("ntfs-boot-sector")
	if r == nil || b == nil {
		t.Fatal("NTFS recognizers are not registered")
	}

	window4K := append(append([]byte(nil), rec...), make([]byte, 3072)...)
	h, ok := window(r, window4K)
	if !ok || h.Verdict != Valid || h.Kind != KindNTFS || h.Length != 1024 || h.NTFS.MFT.Number != 67 || len(h.NTFS.MFT.Data[0].Runs) != 2 {
		t.Fatalf("record: %+v %v", h, ok)
	}

	torn := append([]byte(nil), window4K...)
	binary.LittleEndian.PutUint16(torn[510:], 0xBEEF)
	if h, ok := window(r, torn); !ok || h.Verdict != Damaged || h.Reason == "" || h.NTFS.MFT.Data != nil {
		t.Fatalf("torn record: %+v %v", h, ok)
	}
	if h, ok := window(r, rec[:700]); !ok || h.Verdict != Damaged {
		t.Fatalf("cut record: %+v %v", h, ok)
	}
	if _, ok := window(r, []byte("FILE is not a record")); ok {
		t.Fatal("text starting with FILE matched")
	}

	if h, ok := window(b, boot); !ok || h.Verdict != Valid || h.NTFS.Boot.ClusterSize != 4096 {
		t.Fatalf("boot: %+v %v", h, ok)
	}
	bad := append([]byte(nil), boot...)
	bad[0x0D] = 3 // sectors per cluster
	if h, ok := window(b, bad); !ok || h.Verdict != Damaged || h.NTFS.Damaged == "" {
		t.Fatalf("bad BPB: %+v %v", h, ok)
	}
}

// FuzzNTFSRecord feeds crafted windows to both NTFS recognizers (called
// directly: Run's recover would hide a panic) and checks what a valid hit
// promises the resolver.
func FuzzNTFSRecord(f *testing.F) {
	rec, err := os.ReadFile(ntfsTestdataDir + "ntfs-record-guest.bin")
	if err != nil {
		f.Fatal(err)
	}
	boot, err := os.ReadFile(ntfsTestdataDir + "ntfs-boot.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec)
	f.Add(boot)
	f.Add(rec[:100])
	f.Fuzz(func(t *testing.T, w []byte) {
		if h, ok := recognizeNTFSBoot(w, nil); ok && h.Verdict == Valid {
			bs := h.NTFS.Boot
			if bs.ClusterSize < 512 || bs.ClusterSize > 64<<10 || bs.TotalSectors <= 0 || bs.MFTLCN <= 0 {
				t.Fatalf("valid boot sector with %+v", bs)
			}
		}
		h, ok := recognizeNTFSRecord(w, nil)
		if !ok {
			return
		}
		if h.NTFS == nil || h.NTFS.MFT == nil {
			t.Fatalf("hit without a record: %+v", h)
		}
		if h.Verdict == Damaged {
			if h.NTFS.Damaged == "" || h.NTFS.MFT.Data != nil {
				t.Fatalf("damaged hit %+v", h.NTFS)
			}
			return
		}
		for _, d := range h.NTFS.MFT.Data {
			next := d.StartVCN
			for _, r := range d.Runs {
				if r.VCN != next || r.Len <= 0 || (!r.Sparse && r.LCN < 0) || r.LCN+r.Len > 1<<48 {
					t.Fatalf("bad run %+v in %+v", r, d)
				}
				next += r.Len
			}
			if !d.Resident && next != d.LastVCN+1 {
				t.Fatalf("runs end at %d, last VCN %d", next, d.LastVCN)
			}
		}
		// The resolver must not panic on whatever a valid record says.
		fsprobe.NTFSMaps([]fsprobe.LocatedNTFS{{Offset: 1 << 20, Record: h.NTFS}}, []int64{1 << 20, 0})
	})
}
