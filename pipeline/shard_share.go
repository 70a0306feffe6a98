package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// shareShardFiles makes a shard's hits.jsonl and fingerprints.bin one file
// each with the case's. It is for a case merged from that one shard alone,
// covering the whole image with nothing left out (mergeShards): a carve in
// one run. The case's hits are then the shard's bytes, and its
// fingerprints the shard's blocks (re-encoded: the merge joins the runs of
// zero blocks a checkpoint split), so the fingerprints, 8 bytes a 4 KiB
// block (2 GiB a TiB of image that is not zero), need not be kept twice.
// The case's file is the one kept; the shard's name becomes a second link
// to it, and shard.json says its new length. Nothing writes a case file in
// place (CreateAtomic), and a shard file is given a name of its own again
// before it is written (openTruncated), so neither can change the other.
// It is worth only space: where links are refused or unknown (a
// filesystem without them; platforms where linkCount cannot tell), both
// stay as they are.
func shareShardFiles(caseDir string, shard shardInfo) {
	for _, name := range []string{HitsName, FingerprintsName} {
		caseFile, shardFile := filepath.Join(caseDir, name), filepath.Join(shard.dir, name)
		fi, err := os.Stat(caseFile)
		if err != nil {
			return
		}
		if _, known := linkCount(fi); !known {
			return
		}
		if name == HitsName {
			// (Copied line by line: the same bytes, which is checked.)
			if same, err := sameBytes(caseFile, shardFile); err != nil || !same {
				continue
			}
		}
		tmp := shardFile + ".link"
		os.Remove(tmp)
		if err := os.Link(caseFile, tmp); err != nil {
			return
		}
		// Shared only where the filesystem counts the links (some network
		// filesystems say 1 whatever): unshare must see them.
		if li, err := os.Stat(tmp); err != nil || !os.SameFile(li, fi) {
			os.Remove(tmp)
			return
		} else if n, _ := linkCount(li); n < 2 {
			os.Remove(tmp)
			return
		}
		if err := os.Rename(tmp, shardFile); err != nil {
			os.Remove(tmp)
			return
		}
		if name == FingerprintsName {
			st := *shard.st
			st.FingerprintBytes = fi.Size()
			writeShardState(shard.dir, &st)
		}
	}
	syncDir(shard.dir)
}

// sameBytes says whether the files at a and b hold the same bytes (or are
// already one file).
func sameBytes(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return false, err
	}
	if os.SameFile(sa, sb) {
		return true, nil
	}
	if sa.Size() != sb.Size() {
		return false, nil
	}
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// unshare gives the file at path a name of its own again if it is linked
// elsewhere (shareShardFiles), keeping its first size bytes: a shard file
// about to be truncated and appended to must not change the case's copy.
func unshare(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // (absent: openTruncated creates it)
	}
	if n, ok := linkCount(fi); !ok || n <= 1 {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pipeline: unsharing %s: %w", path, err)
	}
	defer src.Close()
	dst, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	defer dst.Abort()
	if _, err := io.CopyN(dst, src, min(size, fi.Size())); err != nil {
		return fmt.Errorf("pipeline: unsharing %s: %w", path, err)
	}
	return dst.Commit()
}
