// Command hashpass reads a file once and prints its digests, with the
// hashes a carve computes (pipeline.NewHashes) and its read size: the bench
// script's baseline for what hashing the evidence costs by itself.
//
//	hashpass [-hash sha256] FILE
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"vmdkcarve/pipeline"
)

func main() {
	list := flag.String("hash", "sha256", "comma-separated hashes: md5, sha1, sha256")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: hashpass [-hash LIST] FILE")
		os.Exit(2)
	}
	names, err := pipeline.ParseHashes(*list)
	if err != nil || len(names) == 0 {
		fmt.Fprintf(os.Stderr, "hashpass: -hash %q: want a list of md5, sha1, sha256\n", *list)
		os.Exit(2)
	}
	hs := pipeline.NewHashes(names)
	ws := make([]io.Writer, len(hs))
	for i, h := range hs {
		ws[i] = h
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
		fmt.Printf("%s %x\n", names[i], h.Sum(nil))
	}
}
