// Package progress shows how far a long stage has come, in the form its
// reader needs: a bar on a terminal (github.com/schollz/progressbar/v3
// draws it), a plain line every few seconds in a log, one JSON object per
// line for a batch system, or nothing. Every form carries the same
// figures, computed here once: done and total, percent, rate, ETA and, for
// a carve, the hits so far.
//
// A Reporter is safe for concurrent use. The commands make one each
// (carve, rebuild, repair) and hand its methods to package pipeline, which
// knows nothing of terminals (DESIGN.md: progress and policy out of the
// core).
package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"vmdkcarve/internal/units"
)

// A Mode is a form of progress output (the --progress flag).
type Mode string

const (
	Auto  Mode = "auto"  // Bar on a terminal, else Plain
	Plain Mode = "plain" // a line every few seconds
	JSON  Mode = "json"  // one JSON object per line
	None  Mode = "none"  // nothing
	// Bar is what Auto becomes on a terminal; it is not a flag value.
	Bar Mode = "bar"
)

// FlagHelp describes the modes for a --progress flag's usage line.
const FlagHelp = "progress on stderr: auto (a bar with rate and ETA on a terminal, else plain), plain (a line every few seconds), json (one JSON object per line, each stage's last with \"finished\": true) or none"

// ParseMode checks a --progress value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Plain, JSON, None:
		return m, nil
	}
	return "", fmt.Errorf("--progress %q: want auto, plain, json or none", s)
}

// A Unit is what a stage counts. Bytes are shown in binary units with a
// rate in MB/s; any other unit ("grains", "instances") as plain counts.
type Unit string

// Bytes is the unit of a scan.
const Bytes Unit = "bytes"

// Defaults of Options.
const (
	DefaultEvery = 5 * time.Second        // between plain and JSON lines
	barEvery     = 200 * time.Millisecond // between redraws of a bar
	// minElapsed is how long a stage runs before its rate (and so its
	// ETA) is shown: the first chunks' rate says little.
	minElapsed = time.Second
)

// Options adjust a Reporter; the zero value is the default.
type Options struct {
	// Command names the program: plain lines and notes start with it
	// ("carve: ..."), JSON lines carry it as "command".
	Command string
	// Every is the time between two plain or JSON lines of one stage
	// (0 = DefaultEvery). The first and the last are always written.
	Every time.Duration
	// Now is the clock (nil = time.Now); tests give a fake one.
	Now func() time.Time
}

// A Reporter writes the progress of one stage at a time to w.
type Reporter struct {
	mu   sync.Mutex
	w    io.Writer
	mode Mode
	opts Options
	cur  *stage
	// ended is the stage that last ended by reaching its total: late
	// reports of it (crossed goroutines) are dropped, not taken as a
	// new stage.
	ended *stage
	bar   *progressbar.ProgressBar
	// barLine is the text after the bar, to redraw it after a note,
	// padded to barWidth, the longest yet of the stage, so that the bar
	// keeps its width as the figures change.
	barLine  string
	barWidth int
}

// stage is the state of the stage being reported.
type stage struct {
	name        string
	unit        Unit
	started     time.Time // at its first report
	base        int64     // done at its first report: a resumed run's rate counts only its own work
	done, total int64
	hits        int64
	countsHits  bool // reported through Scanned: hits are shown
	lastShown   time.Time
	shown       bool // a line (or the bar) was written for it
}

// New returns a Reporter writing to w in the given mode. Auto becomes Bar
// when w is a terminal and Plain otherwise (a pipe, a file, a batch job's
// log).
func New(w io.Writer, mode Mode, opts Options) *Reporter {
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if mode == Auto {
		mode = Plain
		if IsTerminal(w) {
			mode = Bar
		}
	}
	return &Reporter{w: w, mode: mode, opts: opts}
}

// IsTerminal says whether w is a terminal (a console on Windows).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Mode is the mode in effect (Auto resolved to Bar or Plain).
func (r *Reporter) Mode() Mode { return r.mode }

// Scanner returns the carver.Progress of a byte scan reported as stage.
func (r *Reporter) Scanner(stage string) Scanner { return Scanner{r, stage} }

// A Scanner reports a scan's bytes and hits: it implements carver.Progress.
type Scanner struct {
	r     *Reporter
	stage string
}

// Scanned reports done of total bytes scanned and the hits so far.
func (s Scanner) Scanned(done, total, hits int64) {
	s.r.update(s.stage, Bytes, done, total, hits, true)
}

// Update reports done of total units of stage. A stage other than the
// current one ends the current one first. A done below one already
// reported (reports from several goroutines crossing) is taken as the
// larger, so the figures never go back.
func (r *Reporter) Update(stage string, unit Unit, done, total int64) {
	r.update(stage, unit, done, total, 0, false)
}

func (r *Reporter) update(name string, unit Unit, done, total, hits int64, countsHits bool) {
	if r.mode == None {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	if e := r.ended; r.cur == nil && e != nil && e.name == name && e.unit == unit {
		return
	}
	if r.cur != nil && (r.cur.name != name || r.cur.unit != unit) {
		r.finishLocked(now)
	}
	r.ended = nil
	s := r.cur
	if s == nil {
		s = &stage{name: name, unit: unit, started: now, base: done}
		r.cur = s
	}
	s.done, s.total = max(s.done, done), total
	s.hits, s.countsHits = max(s.hits, hits), countsHits
	if s.total > 0 && s.done >= s.total {
		// Done: the stage's last line now, before whatever the
		// command says next.
		r.finishLocked(now)
		r.ended = s
		return
	}
	every := r.opts.Every
	if r.mode == Bar {
		every = barEvery
	}
	if s.shown && now.Sub(s.lastShown) < every {
		return
	}
	s.lastShown, s.shown = now, true
	r.showLocked(s, now, false)
}

// Notef writes one line about a step ("planning from 120 hits"): on its
// own line above a bar, as a plain line, or as a JSON line with
// "message".
func (r *Reporter) Notef(format string, args ...any) {
	if r.mode == None {
		return
	}
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	switch r.mode {
	case JSON:
		ev := Event{Time: now.UTC(), Command: r.opts.Command, Message: msg}
		if r.cur != nil {
			ev.Stage = r.cur.name
		}
		r.writeJSON(ev)
	case Bar:
		if r.bar != nil {
			r.bar.Clear()
		}
		fmt.Fprintln(r.w, r.prefix("")+msg)
		if r.bar != nil {
			r.bar.Describe(r.barLine)
		}
	default:
		fmt.Fprintln(r.w, r.prefix("")+msg)
	}
}

// Finish ends the current stage: a last plain line, the JSON line with
// "finished": true, or the bar's last state on a line of its own. Output
// after it starts on a new line. A stage whose done reached its total has
// ended already; Finish is for one that stops short (an interrupted carve)
// and costs nothing otherwise.
func (r *Reporter) Finish() {
	if r.mode == None {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishLocked(r.opts.Now())
}

func (r *Reporter) finishLocked(now time.Time) {
	if s := r.cur; s != nil {
		r.showLocked(s, now, true)
	}
	r.cur = nil
}

// showLocked writes stage s's figures in r's mode.
func (r *Reporter) showLocked(s *stage, now time.Time, finished bool) {
	f := s.figures(now)
	switch r.mode {
	case JSON:
		r.writeJSON(s.event(f, now, r.opts.Command, finished))
	case Plain:
		fmt.Fprintln(r.w, r.prefix(s.name)+f.line(s, finished))
	case Bar:
		r.drawBar(s, f, finished)
	}
}

// prefix is what a line of stage starts with: "carve: ", "rebuild emit: ".
func (r *Reporter) prefix(stage string) string {
	switch {
	case r.opts.Command == "" && stage == "":
		return ""
	case r.opts.Command == "":
		return stage + ": "
	case stage == "" || stage == r.opts.Command:
		return r.opts.Command + ": "
	}
	return r.opts.Command + " " + stage + ": "
}

// drawBar shows s on the terminal with the library's bar: the bar and its
// percent are the library's, the figures after it ours (the same as the
// plain lines', and right for a resumed run, whose bytes done before this
// run the library would count in its rate).
func (r *Reporter) drawBar(s *stage, f figures, finished bool) {
	if s.total <= 0 {
		return // nothing to draw a bar of
	}
	if r.bar == nil {
		// The library fits the bar to the terminal's width; where the
		// terminal gives none it would draw none: a fixed one there.
		width := progressbar.OptionSetWidth(20)
		if f, ok := r.w.(*os.File); ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols >= 60 {
				width = progressbar.OptionFullWidth()
			}
		}
		r.bar = progressbar.NewOptions64(s.total,
			progressbar.OptionSetWriter(r.w),
			width,
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionThrottle(0), // drawing is throttled here
			// Redraw over the line with ANSI codes (less to write, no
			// flicker), but for Windows consoles that may not know them.
			progressbar.OptionUseANSICodes(runtime.GOOS != "windows"),
		)
	}
	if r.bar.GetMax64() != s.total {
		r.bar.ChangeMax64(s.total)
	}
	line := strings.TrimSuffix(r.prefix(s.name), ": ") + " " + f.short(s, finished)
	r.barWidth = max(r.barWidth, len(line))
	r.barLine = line + strings.Repeat(" ", r.barWidth-len(line))
	// The figures first, then the bar's position: the library draws
	// no new figures once the bar is full.
	r.bar.Describe(r.barLine)
	r.bar.Set64(min(s.done, s.total))
	if finished {
		fmt.Fprintln(r.w)
		r.bar, r.barWidth = nil, 0
	}
}

func (r *Reporter) writeJSON(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		return // an Event always marshals
	}
	r.w.Write(append(b, '\n'))
}

// figures are a stage's numbers at one moment.
type figures struct {
	percent float64
	rate    float64 // units per second of this run; 0 = not known yet
	eta     time.Duration
	etaOK   bool
	elapsed time.Duration
}

func (s *stage) figures(now time.Time) figures {
	f := figures{percent: 100, elapsed: now.Sub(s.started)}
	if s.total > 0 {
		f.percent = 100 * float64(min(s.done, s.total)) / float64(s.total)
	}
	if f.elapsed >= minElapsed && s.done > s.base {
		f.rate = float64(s.done-s.base) / f.elapsed.Seconds()
	}
	switch left := s.total - s.done; {
	case left <= 0:
		f.etaOK = true
	case f.rate > 0:
		f.eta = time.Duration(float64(left) / f.rate * float64(time.Second)).Round(time.Second)
		f.etaOK = true
	}
	return f
}

// line is the figures in words: "1.0 GiB of 4.0 GiB (25.0%), 412 MB/s,
// ETA 8s, 12 hits"; the last line of a stage ends "done in 10s" instead
// of an ETA.
func (f figures) line(s *stage, finished bool) string {
	var b strings.Builder
	if s.unit == Bytes {
		fmt.Fprintf(&b, "%s of %s", units.Bytes(s.done), units.Bytes(s.total))
	} else {
		fmt.Fprintf(&b, "%d of %d %s", s.done, s.total, s.unit)
	}
	fmt.Fprintf(&b, " (%.1f%%)", f.percent)
	if f.rate > 0 {
		if s.unit == Bytes {
			fmt.Fprintf(&b, ", %.0f MB/s", f.rate/1e6)
		} else {
			fmt.Fprintf(&b, ", %s %s/s", count(f.rate), s.unit)
		}
	}
	if !finished && f.etaOK {
		fmt.Fprintf(&b, ", ETA %s", f.eta)
	}
	if s.countsHits {
		fmt.Fprintf(&b, ", %d hits", s.hits)
	}
	if finished {
		fmt.Fprintf(&b, ", done in %s", f.elapsed.Round(time.Second))
	}
	return b.String()
}

// short is line without the percent (the bar shows it), for the room the
// bar needs: "carve 1.0 GiB/4.0 GiB, 412 MB/s, ETA 8s, 12 hits".
func (f figures) short(s *stage, finished bool) string {
	full := f.line(s, finished)
	i, j := strings.Index(full, " ("), strings.Index(full, "%)")
	if i < 0 || j < i {
		return full
	}
	amounts := strings.Replace(full[:i], " of ", "/", 1)
	return amounts + full[j+2:]
}

// Event is one JSON line of --progress json. Figures not known yet (the
// rate in a stage's first second, an ETA without a rate) are left out.
type Event struct {
	Time    time.Time `json:"time"`
	Command string    `json:"command,omitempty"`
	Stage   string    `json:"stage,omitempty"`
	// Message is a note about a step; a note has no figures.
	Message string `json:"message,omitempty"`
	Unit    Unit   `json:"unit,omitempty"`
	Done    *int64 `json:"done,omitempty"`
	Total   *int64 `json:"total,omitempty"`
	// RateBytesPerS is a byte stage's rate, RatePerS any other's (in
	// Unit per second).
	RateBytesPerS *float64 `json:"rate_bytes_per_s,omitempty"`
	RatePerS      *float64 `json:"rate_per_s,omitempty"`
	ETAS          *float64 `json:"eta_s,omitempty"`
	ElapsedS      *float64 `json:"elapsed_s,omitempty"`
	Hits          *int64   `json:"hits,omitempty"`
	// Finished marks a stage's last line.
	Finished bool `json:"finished,omitempty"`
}

func (s *stage) event(f figures, now time.Time, command string, finished bool) Event {
	ev := Event{Time: now.UTC(), Command: command, Stage: s.name, Unit: s.unit,
		Done: ptr(s.done), Total: ptr(s.total), ElapsedS: ptr(round1(f.elapsed.Seconds())), Finished: finished}
	if f.rate > 0 {
		if s.unit == Bytes {
			ev.RateBytesPerS = ptr(math.Round(f.rate))
		} else {
			ev.RatePerS = ptr(round1(f.rate))
		}
	}
	if f.etaOK && !finished {
		ev.ETAS = ptr(f.eta.Seconds())
	}
	if s.countsHits {
		ev.Hits = ptr(s.hits)
	}
	return ev
}

// count formats a rate of things: one decimal below 10 ("0.5"), none above.
func count(rate float64) string {
	if rate < 10 {
		return fmt.Sprintf("%.1f", rate)
	}
	return fmt.Sprintf("%.0f", rate)
}

func ptr[T any](v T) *T { return &v }

func round1(x float64) float64 { return math.Round(x*10) / 10 }
