// Package mapfile reads a GNU ddrescue mapfile: which areas of an image
// were rescued and which were not. ddrescue fills the areas it could not
// read with zeros (or leaves them holes); to a carve those bytes are
// unknown, never zeros.
//
// The format (ddrescue manual, "Mapfile structure"): lines starting with
// '#' are comments; the first other line is the status line (current
// position, status character, optional pass); every further line is a
// block "pos size status", pos and size in hex (0x...) or decimal, status
// one of '+' (finished), '?' (non-tried), '*' (non-trimmed), '/'
// (non-scraped) and '-' (bad sector).
package mapfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Limits on what a mapfile may hold.
const (
	MaxLineBytes = 4096     // a longer line is not a mapfile's
	MaxBlocks    = 10000000 // blocks listed (ddrescue merges neighbours; millions is already a dying disk)
)

// ErrFormat is wrapped by every error about the mapfile's contents.
var ErrFormat = errors.New("mapfile: not a ddrescue mapfile")

// An Extent is the byte range [Start, End) of the image.
type Extent struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Unreadable returns the areas of a mapfile whose status is not finished
// ('+'), sorted and merged, and the size the mapfile covers (the end of
// its last block).
func Unreadable(r io.Reader) (areas []Extent, covered int64, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), MaxLineBytes)
	line, blocks := 0, 0
	status := false
	end := int64(0)
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Fields(t)
		if !status {
			// The status line: current position, status, optional pass.
			if len(f) < 2 || len(f) > 3 {
				return nil, 0, fmt.Errorf("%w: line %d: status line %q", ErrFormat, line, t)
			}
			if _, err := number(f[0]); err != nil {
				return nil, 0, fmt.Errorf("%w: line %d: %v", ErrFormat, line, err)
			}
			status = true
			continue
		}
		if len(f) != 3 || len(f[2]) != 1 || !strings.Contains("+?*/-", f[2]) {
			return nil, 0, fmt.Errorf("%w: line %d: block %q: want pos size status (+ ? * / -)", ErrFormat, line, t)
		}
		pos, err := number(f[0])
		if err != nil {
			return nil, 0, fmt.Errorf("%w: line %d: %v", ErrFormat, line, err)
		}
		size, err := number(f[1])
		if err != nil {
			return nil, 0, fmt.Errorf("%w: line %d: %v", ErrFormat, line, err)
		}
		switch {
		case pos != end:
			return nil, 0, fmt.Errorf("%w: line %d: block at %d, the previous one ended at %d (blocks must tile the image in order)", ErrFormat, line, pos, end)
		case size > math.MaxInt64-pos:
			return nil, 0, fmt.Errorf("%w: line %d: block of %d bytes at %d overflows", ErrFormat, line, size, pos)
		}
		if blocks++; blocks > MaxBlocks {
			return nil, 0, fmt.Errorf("%w: more than %d blocks", ErrFormat, MaxBlocks)
		}
		end = pos + size
		if f[2] == "+" || size == 0 {
			continue
		}
		if n := len(areas); n > 0 && areas[n-1].End == pos {
			areas[n-1].End = end
		} else {
			areas = append(areas, Extent{pos, end})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("%w: line %d: %v", ErrFormat, line+1, err)
	}
	if !status {
		return nil, 0, fmt.Errorf("%w: no status line", ErrFormat)
	}
	return areas, end, nil
}

// number parses a non-negative position or size: hex with 0x, else
// decimal.
func number(s string) (int64, error) {
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	v, err := strconv.ParseInt(s, base, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return v, nil
}
