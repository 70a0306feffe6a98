package fsprobe

import (
	"encoding/binary"
	"testing"
	"vmdkcarve/internal/tooltest"
)

// mkfs makes a real filesystem image with the named tool (a missing tool
// skips, or fails when CI=true).
func mkfs(t testing.TB, size int64, tool string, args ...string) []byte {
	return tooltest.MakeFS(t, size, tool, args...)
}

// walkExpectations checks every expectation a disk's bytes yield, the way
// a rebuild does (each match may add more), and counts matches and misses.
func walkExpectations(disk []byte) (matched, missed int, misses []string) {
	queue := ExpectFromMBR(disk[:min(len(disk), 64<<10)], int64(len(disk)))
	for len(queue) > 0 && matched+missed < 1<<20 {
		e := queue[0]
		queue = queue[1:]
		if e.Offset < 0 || e.Offset+int64(e.Len) > int64(len(disk)) {
			continue
		}
		b := disk[e.Offset : e.Offset+int64(e.Len)]
		if !e.Match(b) {
			if !e.Soft {
				missed++
				misses = append(misses, e.Desc)
			}
			continue
		}
		matched++
		if e.Then != nil {
			queue = append(queue, e.Then(b)...)
		}
	}
	return matched, missed, misses
}

// TestExpectationsRealGuests: the structures a real mkntfs / mkfs.ext4
// volume predicts about itself all hold, and a damaged MFT record or
// superblock backup is noticed.
func TestExpectationsRealGuests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tool    string
		args    []string
		typ     byte
		damage  func(vol []byte)
		atLeast int
	}{
		{"ntfs", "mkntfs", []string{"-q", "-F", "-f", "-s", "512", "-p", "2048", "-H", "16", "-S", "63"}, 0x07,
			func(vol []byte) { // record 20 of the MFT (at LCN from the boot sector)
				c := int64(vol[13]) * int64(binary.LittleEndian.Uint16(vol[11:]))
				off := int64(binary.LittleEndian.Uint64(vol[48:]))*c + 20*1024
				copy(vol[off:], "not a record")
			}, 20},
		{"ext4", "mkfs.ext4", []string{"-q", "-F", "-b", "1024", "-g", "1024"}, 0x83,
			func(vol []byte) { clear(vol[1024*1024+1024 : 1024*1024+2048]) }, 3}, // the backup of group 1
		{"ext4 group descriptors", "mkfs.ext4", []string{"-q", "-F", "-b", "1024", "-O", "metadata_csum"}, 0x83,
			func(vol []byte) { vol[2048+8] ^= 1 }, 10}, // a bit of group 0's inode table location
		{"ext4 inode", "mkfs.ext4", []string{"-q", "-F", "-b", "4096", "-O", "metadata_csum"}, 0x83,
			func(vol []byte) { // root's inode (2) in group 0's inode table
				table := int64(binary.LittleEndian.Uint32(vol[4096+8:]))
				vol[table*4096+256+4] ^= 1
			}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := mkfs(t, 16<<20, tc.tool, tc.args...)
			disk := make([]byte, 1<<20+len(vol))
			e := disk[446:]
			e[4] = tc.typ
			binary.LittleEndian.PutUint32(e[8:], 2048)
			binary.LittleEndian.PutUint32(e[12:], uint32(len(vol)/512))
			binary.LittleEndian.PutUint16(disk[510:], 0xAA55)
			copy(disk[1<<20:], vol)
			matched, missed, misses := walkExpectations(disk)
			if missed != 0 || matched < tc.atLeast {
				t.Fatalf("fresh volume: %d matched, %d missed %v", matched, missed, misses)
			}
			tc.damage(disk[1<<20:])
			if _, missed, _ := walkExpectations(disk); missed == 0 {
				t.Fatal("damage not noticed")
			}
			t.Logf("%d expectations hold on the fresh volume", matched)
		})
	}
}

// FuzzExpectations: predictions are built from bytes of a guest disk that
// may be anything; whatever they say, building and checking them must not
// panic or grow without bound.
func FuzzExpectations(f *testing.F) {
	seed := make([]byte, 1<<16)
	binary.LittleEndian.PutUint16(seed[510:], 0xAA55)
	seed[446+4], seed[446+8], seed[446+12] = 0x83, 8, 100
	binary.LittleEndian.PutUint16(seed[8*512+1024+56:], 0xEF53)
	f.Add(seed)
	ntfs := append([]byte(nil), seed...)
	ntfs[446+4] = 0x07
	copy(ntfs[8*512+3:], "NTFS    ")
	binary.LittleEndian.PutUint16(ntfs[8*512+510:], 0xAA55)
	f.Add(ntfs)
	f.Fuzz(func(t *testing.T, disk []byte) {
		if len(disk) < 512 {
			return
		}
		walkExpectations(disk)
	})
}

// TestGPTGuest: a volume in a GPT partition predicts its own structures
// (the partition's predictions are soft).
func TestGPTGuest(t *testing.T) {
	disk := gptDisk(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256", "-O", "metadata_csum,64bit", "-E", "lazy_itable_init=0,lazy_journal_init=0")
	matched, missed, misses := walkExpectations(disk)
	if missed != 0 || matched < 3 {
		t.Fatalf("%d matched, %d missed %v", matched, missed, misses)
	}
	// Without the GPT's checksums right, nothing is predicted from it.
	disk[1024+40]++
	if m, _, _ := walkExpectations(disk); m > 1 {
		t.Errorf("%d predictions matched from a GPT whose entries' checksum fails", m)
	}
}
