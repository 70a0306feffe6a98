package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vmdkcarve/signatures"
)

// Hit lines as the recognizers write them, one of every kind the planner
// reads (from real carves: the demo scenario, mkntfs and mkfs.ext4).
var storedHits = map[string]string{
	"sparse":     `{"offset":5816320,"kind":"sparse-header","verdict":"valid","length":512,"sparse":{"version":1,"flags":3,"capacity":131072,"grain_size":128,"descriptor_offset":1,"descriptor_size":20,"num_gtes_per_gt":512,"rgd_offset":21,"gd_offset":30,"overhead":128,"compress_algorithm":0}}`,
	"descriptor": `{"offset":5816832,"kind":"descriptor","verdict":"valid","length":356,"descriptor":{"version":1,"cid":2488299554,"parent_cid":4294967295,"has_cid":true,"create_type":"monolithicSparse","extents":[{"access":"RW","sectors":131072,"type":"SPARSE","file_name":"disk-01-qemu-sparse.vmdk"}],"ddb":{"ddb.adapterType":"ide","ddb.uuid":"60 00"}}}`,
	"grain":      `{"offset":236453888,"kind":"grain-marker","verdict":"valid","length":2560,"grain":{"lba":0,"size":2234,"data_bytes":65536,"hash":17151926318144491644}}`,
	"mbr":        `{"offset":5881856,"kind":"partition-table","verdict":"valid","length":512,"mbr":{"partitions":[{"type":218,"start":2048,"sectors":129024}]}}`,
	"meta":       `{"offset":237561856,"kind":"meta-marker","verdict":"valid","length":512,"meta":{"num_sectors":4,"type":1}}`,
	"gt":         `{"offset":5827584,"kind":"grain-table","verdict":"valid","length":2048,"table":{"entries":329,"first":128,"last":42112}}`,
	"gd":         `{"offset":5827072,"kind":"grain-directory","verdict":"valid","length":512,"table":{"entries":2,"first":22}}`,
	"ext4":       `{"offset":1049600,"kind":"ext4","verdict":"valid","length":1024,"ext4":{"type":"superblock","sb":{"bs":4096,"bpg":32768,"ipg":8192,"isz":256,"fdb":0,"blocks":262144,"inodes":65536,"group":0,"uuid":"0123456789abcdef0123456789abcdef"}}}`,
	"inode":      `{"offset":2097152,"kind":"ext4","verdict":"valid","length":512,"ext4":{"type":"inodes","inodes":[{"at":0,"links":1,"size":5000,"gen":1,"root":{"depth":0,"max":4,"e":[{"l":0,"p":100,"n":2}]},"csum_lo":0,"crc128":0}]}}`,
	"mft":        `{"offset":3145728,"kind":"ntfs","verdict":"valid","length":1024,"ntfs":{"type":"mft-record","mft":{"number":67,"seq":1,"in_use":true,"record_size":1024,"names":[{"name":"guest.vmdk","parent":5}],"data":[{"size":400004,"allocated":401408,"initialized":400004,"last_vcn":97,"runs":[{"vcn":0,"lcn":768,"len":49},{"vcn":49,"lcn":77,"len":49}]}]}}}`,
	"boot":       `{"offset":1048576,"kind":"ntfs","verdict":"valid","length":512,"ntfs":{"type":"boot-sector","boot":{"sector_size":512,"cluster_size":4096,"total_sectors":204800,"mft_lcn":4,"mftmirr_lcn":2,"record_size":1024,"serial":"00"}}}`,
}

// edit returns the stored hit line named base with the value at the
// dotted path (array indexes as numbers) replaced by v.
func edit(t *testing.T, base, path string, v any) string {
	t.Helper()
	var m any
	if err := json.Unmarshal([]byte(storedHits[base]), &m); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	cur := m
	for i, k := range keys {
		last := i == len(keys)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[k] = v
			} else {
				cur = c[k]
			}
		case []any:
			var n int
			json.Unmarshal([]byte(k), &n)
			if last {
				c[n] = v
			} else {
				cur = c[n]
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func loadLines(t *testing.T, size int64, lines ...string) ([]signatures.Hit, int, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, HitsName), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Case{Dir: dir, Manifest: &Manifest{Evidence: Evidence{Size: size}}}
	return c.loadHits()
}

// TestLoadHitsHostile: every field of every kind the planner reads is
// checked when hits.jsonl is loaded; a value no recognizer writes is an
// error "hits.jsonl:LINE: field: why", never a panic or a huge allocation
// later (issue 13).
func TestLoadHitsHostile(t *testing.T) {
	const size = 1 << 30
	var all []string
	for _, l := range storedHits {
		all = append(all, l)
	}
	if hits, _, err := loadLines(t, size, all...); err != nil || len(hits) != len(storedHits) {
		t.Fatalf("stored hits: %v (%d hits)", err, len(hits))
	}
	for _, tc := range []struct {
		name, line, want string
	}{
		{"ext4 block size 0", edit(t, "ext4", "ext4.sb.bs", 0), "block size"},
		{"ext4 blocks per group 0", edit(t, "ext4", "ext4.sb.bpg", 0), "s_blocks_per_group"},
		{"ext4 extent length 0", edit(t, "inode", "ext4.inodes.0.root.e.0.n", 0), "ee_len"},
		{"ext4 type and record disagree", edit(t, "ext4", "ext4.type", "inodes"), "ext4: "},
		{"NTFS MFT record size 0", edit(t, "mft", "ntfs.mft.record_size", 0), "record_size"},
		{"NTFS boot record size 0", edit(t, "boot", "ntfs.boot.record_size", 0), "MFT record size"},
		{"NTFS cluster size 0", edit(t, "boot", "ntfs.boot.cluster_size", 0), "cluster size"},
		{"NTFS LCN 2^47 (× 64 KiB overflows)", edit(t, "mft", "ntfs.mft.data.0.runs.0.lcn", 1<<47), "run LCN"},
		{"NTFS runs not chained", edit(t, "mft", "ntfs.mft.data.0.runs.1.vcn", 48), "run VCN"},
		{"DDB key with a newline", edit(t, "descriptor", "descriptor.ddb", map[string]string{"ddb.uuid\nRW 1 FLAT \"x\" 0\nddb.a": "1"}), "ddb key"},
		{"DDB value with a newline", edit(t, "descriptor", "descriptor.ddb", map[string]string{"ddb.uuid": "1\nRW 1 FLAT \"x\" 0"}), "ddb.uuid"},
		{"extent file name with a quote", edit(t, "descriptor", "descriptor.extents.0.file_name", "a\" 0\nRW 1 FLAT \"b"), "file name"},
		{"unknown extent type", edit(t, "descriptor", "descriptor.extents.0.type", "EVIL"), "extent 1"},
		{"grain marker claiming 4 GiB", edit(t, "grain", "grain.size", 1<<32-1), "size"},
		{"grain record length", edit(t, "grain", "length", 1<<30), "length"},
		{"grain data bytes", edit(t, "grain", "grain.data_bytes", 1<<40), "data_bytes"},
		{"valid sparse header that fails its rules", edit(t, "sparse", "sparse.grain_size", 0), "grainSize"},
		{"damaged sparse header", edit(t, "sparse", "verdict", "damaged"), ""},
		{"damaged sparse header claiming 2^40-sector grains (never planned from)", strings.Replace(edit(t, "sparse", "verdict", "damaged"), `"grain_size":128`, `"grain_size":1099511627776`, 1), ""},
		{"valid sparse header claiming 2^40-sector grains", strings.Replace(storedHits["sparse"], `"grain_size":128`, `"grain_size":1099511627776`, 1), "grainSize"},
		{"meta marker type", edit(t, "meta", "meta.type", 9), "meta-marker"},
		{"GT entries", edit(t, "gt", "table.entries", 1<<30), "entries"},
		{"MBR partitions", edit(t, "mbr", "mbr.partitions.0.sectors", 0), "partition"},
		{"offset past the image", edit(t, "grain", "offset", size), "offset"},
		{"negative offset", edit(t, "grain", "offset", -512), "offset"},
		{"offset off a sector", edit(t, "grain", "offset", 513), "sector boundary"},
		{"unknown kind", edit(t, "grain", "kind", "grain"), "kind"},
		{"unknown verdict", edit(t, "grain", "verdict", "maybe"), "verdict"},
		{"details of another kind", edit(t, "grain", "sparse", map[string]any{"version": 1}), "sparse-header: set in a grain-marker hit"},
		{"valid hit without details", edit(t, "grain", "grain", nil), "without its"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadLines(t, size, storedHits["sparse"], tc.line)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), HitsName+":2: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s:2: and %q", err, HitsName, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestLoadHitsDedup: 50 copies of each hit line (in any spacing or field
// order) load as one hit each, and a file edited out of order is sorted
// by offset, keeping the file's order within an offset.
func TestLoadHitsDedup(t *testing.T) {
	var lines []string
	for range 50 {
		lines = append(lines, storedHits["grain"], storedHits["sparse"], storedHits["descriptor"])
		// The same descriptor hit, spaced and ordered differently.
		var m map[string]any
		json.Unmarshal([]byte(storedHits["descriptor"]), &m)
		b, _ := json.MarshalIndent(m, "", "")
		lines = append(lines, strings.ReplaceAll(string(b), "\n", " "))
	}
	hits, dups, err := loadLines(t, 1<<30, lines...)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 3 || dups != 200-3 {
		t.Fatalf("%d hits, %d duplicates; want 3 and 197", len(hits), dups)
	}
	for i, want := range []int64{5816320, 5816832, 236453888} {
		if hits[i].Offset != want {
			t.Errorf("hit %d at %d, want %d", i, hits[i].Offset, want)
		}
	}
	// Two different hits at one offset are both kept, in file order.
	other := edit(t, "grain", "grain.hash", 1)
	hits, dups, err = loadLines(t, 1<<30, storedHits["grain"], other, storedHits["grain"])
	if err != nil || len(hits) != 2 || dups != 1 || hits[1].Grain.Hash != 1 {
		t.Fatalf("%v: %d hits, %d duplicates", err, len(hits), dups)
	}
}

// TestLoadHitsManyBatches: a file of many of readHits's batches loads
// every hit in order, and of several bad lines, in any batch, the first
// in the file is the one named, as it is when a line past them is too long
// to read.
func TestLoadHitsManyBatches(t *testing.T) {
	const size = 1 << 30
	var lines []string
	for i := range 20000 { // about 20 batches of hitBatchBytes
		lines = append(lines, edit(t, "grain", "offset", int64(i+1)*4096))
	}
	hits, _, err := loadLines(t, size, lines...)
	if err != nil || len(hits) != len(lines) {
		t.Fatalf("%d lines: %d hits, %v", len(lines), len(hits), err)
	}
	for i, h := range hits {
		if h.Offset != int64(i+1)*4096 {
			t.Fatalf("hit %d at offset %d, want %d", i, h.Offset, (i+1)*4096)
		}
	}
	bad := edit(t, "grain", "offset", 513)
	tooLong := strings.Repeat("x", MaxHitLine+1)
	for _, tc := range []struct {
		name  string
		edits map[int]string // line index: its text
		want  int            // the line number the error names
	}{
		{"one bad line late", map[int]string{17000: bad}, 17001},
		{"bad lines in two batches", map[int]string{15000: bad, 4000: "{not json"}, 4001},
		{"two in one batch", map[int]string{9001: bad, 9000: bad}, 9001},
		{"a bad line, then one too long", map[int]string{12000: bad, 18000: tooLong}, 12001},
		{"a line too long, then a bad one", map[int]string{3000: tooLong, 18000: bad}, 3001},
	} {
		ls := slices.Clone(lines)
		for i, l := range tc.edits {
			ls[i] = l
		}
		_, _, err := loadLines(t, size, ls...)
		if want := fmt.Sprintf("%s:%d: ", HitsName, tc.want); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, want)
		}
	}
}
