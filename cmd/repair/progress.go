package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"vmdkcarve/internal/units"
)

// progress shows repair's progress on stderr: the carve's scan
// (carver.Progress) as a live line on a terminal or a line every few
// seconds, and each step of the rebuild as a line of its own.
type progress struct {
	mu      sync.Mutex // the rebuild may report from its workers
	w       io.Writer
	mode    string
	live    bool
	every   time.Duration
	last    time.Time
	printed bool // a live line is on screen
}

func newProgress(mode string, w io.Writer) *progress {
	p := &progress{w: w, mode: mode}
	switch mode {
	case "plain":
		p.every = 5 * time.Second
	case "auto":
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			p.live, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Scanned implements carver.Progress.
func (p *progress) Scanned(done, total, hits int64) {
	if p.mode == "none" || p.every == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every && done < total {
		return
	}
	p.last = now
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	line := fmt.Sprintf("repair: scanned %s of %s (%.1f%%), %d structures", units.Bytes(done), units.Bytes(total), pct, hits)
	if p.live {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.printed = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// step prints one step of the rebuild on a line of its own.
func (p *progress) step(format string, args ...any) {
	if p.mode == "none" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLine()
	fmt.Fprintf(p.w, "repair: "+format+"\n", args...)
}

// finish ends a live line so that later output starts on a new one.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLine()
}

func (p *progress) endLine() {
	if p.printed {
		fmt.Fprintln(p.w)
		p.printed = false
	}
}
