package guestcheck

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"vmdkcarve/internal/tooltest"
)

func mkfs(t testing.TB, size int64, tool string, args ...string) []byte {
	return tooltest.MakeFS(t, size, tool, args...)
}

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

func TestIdentifyRealFilesystems(t *testing.T) {
	for _, tc := range []struct {
		name string
		tool string
		args []string
		want string
	}{
		{"ext4", "mkfs.ext4", []string{"-q", "-F", "-L", "guest"}, "ext"},
		{"ntfs", "mkntfs", []string{"-q", "-F", "-f", "-s", "512", "-p", "2048", "-H", "16", "-S", "63"}, "ntfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := mkfs(t, 16<<20, tc.tool, tc.args...)
			// Bare volume at offset 0.
			got := Identify(bytes.NewReader(vol), int64(len(vol)))
			if len(got) == 0 || got[0].Kind != tc.want {
				t.Fatalf("bare volume: %+v", got)
			}
			t.Logf("%+v", got[0])
			// The same volume behind an MBR partition at sector 2048.
			disk := make([]byte, 1<<20+len(vol))
			copy(disk[1<<20:], vol)
			e := disk[446:]
			e[4] = 0x83
			binary.LittleEndian.PutUint32(e[8:], 2048)
			binary.LittleEndian.PutUint32(e[12:], uint32(len(vol)/512))
			binary.LittleEndian.PutUint16(disk[510:], 0xAA55)
			got = Identify(bytes.NewReader(disk), int64(len(disk)))
			if k := kinds(got); len(k) != 3 || k[0] != "mbr" || k[1] != "partition" || k[2] != tc.want || got[2].Offset != 1<<20 {
				t.Fatalf("partitioned: %+v", got)
			}
		})
	}
}

func FuzzIdentify(f *testing.F) {
	seed := make([]byte, 4096)
	binary.LittleEndian.PutUint16(seed[510:], 0xAA55)
	seed[446+4], seed[446+8] = 0x07, 1
	copy(seed[512+3:], "NTFS    ")
	f.Add(seed)
	ext := make([]byte, 4096)
	binary.LittleEndian.PutUint16(ext[1024+56:], 0xEF53)
	f.Add(ext)
	f.Fuzz(func(t *testing.T, b []byte) {
		Identify(bytes.NewReader(b), int64(len(b)))
	})
}

func TestCheckRealFilesystems(t *testing.T) {
	for _, tc := range []struct {
		tool string
		args []string
		kind string
	}{
		{"mkfs.ext4", []string{"-q", "-F", "-O", "metadata_csum"}, "ext"},
		{"mkntfs", []string{"-q", "-F", "-f"}, "ntfs"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			vol := mkfs(t, 16<<20, tc.tool, tc.args...)
			res := Check(bytes.NewReader(vol), int64(len(vol)), Finding{Kind: tc.kind})
			if !res.Walked || res.Entries == 0 {
				t.Fatalf("fresh volume: %+v", res)
			}
			// Damage the volume's metadata: the walk must fail, not panic.
			clear(vol[:1<<20])
			if res := Check(bytes.NewReader(vol), int64(len(vol)), Finding{Kind: tc.kind}); res.Walked {
				t.Fatalf("damaged volume walked: %+v", res)
			}
		})
	}
}

// TestGPTGuest: a volume in a GPT partition is identified behind the
// protective MBR and the GPT.
func TestGPTGuest(t *testing.T) {
	disk := tooltest.GPTDisk(mkfs(t, 24<<20, "mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256", "-O", "metadata_csum,64bit", "-E", "lazy_itable_init=0,lazy_journal_init=0"))
	fs := Identify(bytes.NewReader(disk), int64(len(disk)))
	if got := fmt.Sprint(kinds(fs)); got != "[mbr partition gpt partition ext]" {
		t.Fatalf("findings %s, want mbr, the protective partition, gpt, partition, ext", got)
	}
}
