package pipeline

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// The evidence hashes a carve can compute, in the order they are listed:
// MD5 and SHA-1 are what E01 files and most lab reports carry, SHA-256
// what we default to.
var evidenceHashes = []struct {
	name string
	new  func() hash.Hash
}{
	{"md5", md5.New},
	{"sha1", sha1.New},
	{"sha256", sha256.New},
}

// HashNames lists the hashes --hash accepts.
func HashNames() []string {
	out := make([]string, len(evidenceHashes))
	for i, h := range evidenceHashes {
		out[i] = h.name
	}
	return out
}

// ParseHashes reads a --hash value: "none", or a comma-separated list of
// HashNames ("" is sha256). It returns the names in their canonical order
// without repeats (nil for none).
func ParseHashes(s string) ([]string, error) {
	switch s {
	case "":
		return []string{"sha256"}, nil
	case "none":
		return nil, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		if !slices.Contains(HashNames(), n) {
			return nil, fmt.Errorf("pipeline: unknown hash %q (want none or a list of %s)", n, strings.Join(HashNames(), ", "))
		}
		want[n] = true
	}
	var out []string
	for _, h := range evidenceHashes {
		if want[h.name] {
			out = append(out, h.name)
		}
	}
	return out, nil
}

// hashSet is the named hashes of one shard run.
type hashSet struct {
	names []string
	hs    []hash.Hash
}

func newHashSet(names []string) *hashSet {
	return &hashSet{names: names, hs: NewHashes(names)}
}

// NewHashes makes the named hashes (names from ParseHashes; an unknown
// name is left out).
func NewHashes(names []string) []hash.Hash {
	var hs []hash.Hash
	for _, n := range names {
		for _, h := range evidenceHashes {
			if h.name == n {
				hs = append(hs, h.new())
			}
		}
	}
	return hs
}

// states returns every hash's state (MarshalBinary), by name.
func (s *hashSet) states() (map[string][]byte, error) {
	if len(s.hs) == 0 {
		return nil, nil
	}
	out := map[string][]byte{}
	for i, h := range s.hs {
		m, ok := h.(encoding.BinaryMarshaler)
		if !ok {
			return nil, fmt.Errorf("pipeline: the %s hash cannot save its state", s.names[i])
		}
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("pipeline: saving the %s state: %w", s.names[i], err)
		}
		out[s.names[i]] = b
	}
	return out, nil
}

// restore sets every hash to its saved state; an error when one is missing
// or unreadable (the shard then starts over).
func (s *hashSet) restore(states map[string][]byte) error {
	for i, h := range s.hs {
		u, ok := h.(encoding.BinaryUnmarshaler)
		b := states[s.names[i]]
		if !ok || len(b) == 0 {
			return errors.New("no " + s.names[i] + " state")
		}
		if err := u.UnmarshalBinary(b); err != nil {
			return err
		}
	}
	return nil
}

func (s *hashSet) reset() {
	for _, h := range s.hs {
		h.Reset()
	}
}

// digests returns every hash's digest in hex, by name.
func (s *hashSet) digests() map[string]string {
	if len(s.hs) == 0 {
		return nil
	}
	out := map[string]string{}
	for i, h := range s.hs {
		out[s.names[i]] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}
