package fsprobe

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"vmdkcarve/fs/part"
)

// TestPartitionStartVolumes: a partition typed NTFS or Linux holds some
// volume; BitLocker's boot sector and headerless cipher text are volumes,
// text or zeros at the start are not.
func TestPartitionStartVolumes(t *testing.T) {
	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	bitlocker := append([]byte(nil), random...)
	copy(bitlocker, "\xeb\x58\x90-FVE-FS-")
	binary.LittleEndian.PutUint16(bitlocker[510:], part.Signature)
	text := make([]byte, 4096)
	for i := range text {
		text[i] = "disk=0001 lba=000000002048 vmdkcarve\n"[i%37]
	}
	for _, tc := range []struct {
		name  string
		typ   byte
		block []byte
		want  bool
	}{
		{"BitLocker in an NTFS partition", mbrTypeNTFS, bitlocker, true},
		{"cipher text in a Linux partition (dm-crypt, VeraCrypt)", mbrTypeLinux, random, true},
		{"cipher text in an NTFS partition", mbrTypeNTFS, random, true},
		{"text in an NTFS partition", mbrTypeNTFS, text, false},
		{"zeros in a Linux partition", mbrTypeLinux, make([]byte, 4096), false},
	} {
		if got := partitionStartExpectation(1<<20, tc.typ).Match(tc.block); got != tc.want {
			t.Errorf("%s: match %v, want %v", tc.name, got, tc.want)
		}
	}
}
