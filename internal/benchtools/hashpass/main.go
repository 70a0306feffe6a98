// Command hashpass reads a file once and prints its digests, with the
// same Go hash implementations and read size a carve uses: the bench
// script's baseline for what hashing the evidence costs by itself.
//
//	hashpass [-hash sha256] FILE
package main

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

func main() {
	names := flag.String("hash", "sha256", "comma-separated hashes: md5, sha1, sha256")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: hashpass [-hash LIST] FILE")
		os.Exit(2)
	}
	var hs []hash.Hash
	var ws []io.Writer
	for _, n := range strings.Split(*names, ",") {
		h := map[string]func() hash.Hash{"md5": md5.New, "sha1": sha1.New, "sha256": sha256.New}[n]
		if h == nil {
			fmt.Fprintf(os.Stderr, "hashpass: unknown hash %q\n", n)
			os.Exit(2)
		}
		hs = append(hs, h())
		ws = append(ws, hs[len(hs)-1])
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hashpass:", err)
		os.Exit(1)
	}
	defer f.Close()
	if _, err := io.CopyBuffer(io.MultiWriter(ws...), f, make([]byte, 8<<20)); err != nil {
		fmt.Fprintln(os.Stderr, "hashpass:", err)
		os.Exit(1)
	}
	for i, h := range hs {
		fmt.Printf("%s %x\n", strings.Split(*names, ",")[i], h.Sum(nil))
	}
}
