package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a fake clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)} }

const gib = 1 << 30

// step is one call on a Reporter, after the clock moved by after.
type step struct {
	after time.Duration
	stage string
	unit  Unit // Bytes with hits: through a Scanner
	done  int64
	total int64
	hits  int64
	note  string // a Notef instead of an update
	end   bool   // a Finish instead of an update
}

func play(r *Reporter, c *clock, steps []step) {
	for _, s := range steps {
		c.advance(s.after)
		switch {
		case s.end:
			r.Finish()
		case s.note != "":
			r.Notef("%s", s.note)
		case s.unit == Bytes:
			r.Scanner(s.stage).Scanned(s.done, s.total, s.hits)
		default:
			r.Update(s.stage, s.unit, s.done, s.total)
		}
	}
}

var carveSteps = []step{
	{stage: "carve", unit: Bytes, done: 0, total: 4 * gib},
	{after: time.Second, stage: "carve", unit: Bytes, done: gib / 2, total: 4 * gib, hits: 1},     // within 5 s: no line
	{after: 4 * time.Second, stage: "carve", unit: Bytes, done: 2 * gib, total: 4 * gib, hits: 3}, // 5 s in
	{after: 2 * time.Second, stage: "carve", unit: Bytes, done: 3 * gib, total: 4 * gib, hits: 5}, // 2 s after the last line: none
	{after: 3 * time.Second, stage: "carve", unit: Bytes, done: 4 * gib, total: 4 * gib, hits: 7},
	{end: true},
}

func TestPlainLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command string
		steps   []step
		want    []string
	}{
		{"carve", "carve", carveSteps, []string{
			"carve: 0 B of 4.0 GiB (0.0%), 0 hits",
			"carve: 2.0 GiB of 4.0 GiB (50.0%), 429 MB/s, ETA 5s, 3 hits",
			"carve: 4.0 GiB of 4.0 GiB (100.0%), 429 MB/s, 7 hits, done in 10s",
		}},
		{"resumed carve: the rate counts this run's bytes only", "carve", []step{
			{stage: "carve", unit: Bytes, done: 3 * gib, total: 4 * gib, hits: 40},
			{after: 10 * time.Second, stage: "carve", unit: Bytes, done: 3*gib + gib/2, total: 4 * gib, hits: 41},
			{end: true},
		}, []string{
			"carve: 3.0 GiB of 4.0 GiB (75.0%), 40 hits",
			"carve: 3.5 GiB of 4.0 GiB (87.5%), 54 MB/s, ETA 10s, 41 hits",
			"carve: 3.5 GiB of 4.0 GiB (87.5%), 54 MB/s, 41 hits, done in 10s",
		}},
		{"rebuild: notes, two stages, crossed reports", "rebuild", []step{
			{note: "planning from 120 hits"},
			{stage: "plan", unit: "instances", done: 1, total: 4},
			{after: 6 * time.Second, stage: "plan", unit: "instances", done: 4, total: 4},
			{stage: "plan", unit: "instances", done: 3, total: 4}, // late: dropped
			{note: "disk-01: writing 30 grains placed"},
			{stage: "emit", unit: "grains", done: 0, total: 400},
			{after: 5 * time.Second, stage: "emit", unit: "grains", done: 100, total: 400},
			{after: time.Second, stage: "emit", unit: "grains", done: 90, total: 400}, // another goroutine's older count
			{after: 4 * time.Second, stage: "emit", unit: "grains", done: 95, total: 400},
			{end: true},
		}, []string{
			"rebuild: planning from 120 hits",
			"rebuild plan: 1 of 4 instances (25.0%)",
			"rebuild plan: 4 of 4 instances (100.0%), 0.5 instances/s, done in 6s",
			"rebuild: disk-01: writing 30 grains placed",
			"rebuild emit: 0 of 400 grains (0.0%)",
			"rebuild emit: 100 of 400 grains (25.0%), 20 grains/s, ETA 15s",
			"rebuild emit: 100 of 400 grains (25.0%), 10 grains/s, ETA 30s",
			"rebuild emit: 100 of 400 grains (25.0%), 10 grains/s, done in 10s",
		}},
		{"no command", "", []step{{stage: "emit", unit: "grains", total: 2}, {note: "hello"}, {end: true}}, []string{
			"emit: 0 of 2 grains (0.0%)", "hello", "emit: 0 of 2 grains (0.0%), done in 0s",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := newClock()
			r := New(&buf, Plain, Options{Command: tc.command, Now: c.now})
			play(r, c, tc.steps)
			got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := New(&buf, JSON, Options{Command: "carve", Now: c.now})
	play(r, c, carveSteps)
	want := []string{
		`{"time":"2026-12-01T17:00:00Z","command":"carve","stage":"carve","unit":"bytes","done":0,"total":4294967296,"elapsed_s":0,"hits":0}`,
		`{"time":"2026-12-01T17:00:05Z","command":"carve","stage":"carve","unit":"bytes","done":2147483648,"total":4294967296,"rate_bytes_per_s":429496730,"eta_s":5,"elapsed_s":5,"hits":3}`,
		`{"time":"2026-12-01T17:00:10Z","command":"carve","stage":"carve","unit":"bytes","done":4294967296,"total":4294967296,"rate_bytes_per_s":429496730,"elapsed_s":10,"hits":7,"finished":true}`,
	}
	if got := strings.TrimSuffix(buf.String(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("json lines:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestJSONMonotonic: under reports that cross (the goroutines writing
// disks side by side), every line parses, time and done never go back,
// and each stage ends with one finished line at its last figures.
func TestJSONMonotonic(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := New(&buf, JSON, Options{Command: "rebuild", Every: time.Second, Now: c.now})
	r.Notef("planning from %d hits", 9)
	for i := int64(1); i <= 5; i++ {
		c.advance(700 * time.Millisecond)
		r.Update("plan", "instances", i, 5)
	}
	done := int64(0)
	for i := range int64(200) {
		c.advance(90 * time.Millisecond)
		// Out of order by up to 7: goroutine k reports k behind.
		r.Update("emit", "grains", done+i%7, 2000)
		done += 10
	}
	r.Update("emit", "grains", 2000, 2000)
	r.Finish()

	sc := bufio.NewScanner(&buf)
	var last time.Time
	lastDone := map[string]int64{}
	finished := map[string]int{}
	lines := 0
	for sc.Scan() {
		lines++
		var ev Event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("line %d does not parse: %v: %s", lines, err, sc.Text())
		}
		if ev.Time.Before(last) {
			t.Errorf("line %d: time %v before %v", lines, ev.Time, last)
		}
		last = ev.Time
		if ev.Command != "rebuild" {
			t.Errorf("line %d: command %q", lines, ev.Command)
		}
		if ev.Message != "" {
			continue
		}
		if ev.Done == nil || ev.Total == nil {
			t.Fatalf("line %d: no done or total: %s", lines, sc.Text())
		}
		if *ev.Done < lastDone[ev.Stage] {
			t.Errorf("line %d: %s done %d after %d", lines, ev.Stage, *ev.Done, lastDone[ev.Stage])
		}
		lastDone[ev.Stage] = *ev.Done
		if finished[ev.Stage] > 0 {
			t.Errorf("line %d: %s reported after its finished line", lines, ev.Stage)
		}
		if ev.Finished {
			finished[ev.Stage]++
			if *ev.Done != *ev.Total {
				t.Errorf("%s finished at %d of %d", ev.Stage, *ev.Done, *ev.Total)
			}
		}
		if ev.Hits != nil || ev.RateBytesPerS != nil {
			t.Errorf("line %d: hits or a byte rate for %s: %s", lines, ev.Unit, sc.Text())
		}
	}
	if finished["plan"] != 1 || finished["emit"] != 1 {
		t.Errorf("finished lines: %v, want one per stage", finished)
	}
	if lines < 15 {
		t.Errorf("only %d lines for 19 s of progress at one a second", lines)
	}
}

// TestAutoOnAFileOrPipe: auto writes plain lines when stderr is not a
// terminal (a file, a pipe, a buffer).
func TestAutoOnAFileOrPipe(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for name, w := range map[string]interface {
		Write([]byte) (int, error)
	}{"file": f, "pipe": pw, "buffer": &bytes.Buffer{}} {
		if r := New(w, Auto, Options{}); r.Mode() != Plain {
			t.Errorf("auto on a %s: mode %s, want plain", name, r.Mode())
		}
	}
	c := newClock()
	r := New(f, Auto, Options{Command: "carve", Now: c.now})
	play(r, c, carveSteps)
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if want := "carve: 0 B of 4.0 GiB (0.0%), 0 hits\n"; !strings.HasPrefix(string(b), want) || strings.Contains(string(b), "\r") {
		t.Errorf("auto on a file wrote %q, want plain lines from %q", b, want)
	}
}

// TestBar: the terminal form draws the library's bar with the same
// figures as the plain lines after it, puts notes on lines of their own,
// and ends the stage with a newline.
func TestBar(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := New(&buf, Bar, Options{Command: "carve", Now: c.now})
	play(r, c, append(carveSteps[:3:3], step{note: "a note"}, step{end: true}))
	out := buf.String()
	for _, want := range []string{
		"|", "50%", "carve 2.0 GiB/4.0 GiB, 429 MB/s, ETA 5s, 3 hits",
		"carve: a note\n", "carve 2.0 GiB/4.0 GiB, 429 MB/s, 3 hits, done in 5s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bar output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") || !strings.Contains(out, "\r") {
		t.Errorf("bar output does not redraw with \\r and end with a newline: %q", out)
	}
}

func TestNoneAndModes(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	play(New(&buf, None, Options{Now: c.now}), c, append(carveSteps, step{note: "x"}))
	if buf.Len() != 0 {
		t.Errorf("none wrote %q", buf.String())
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{{"auto", true}, {"plain", true}, {"json", true}, {"none", true}, {"bar", false}, {"", false}, {"JSON", false}} {
		if _, err := ParseMode(tc.in); (err == nil) != tc.ok {
			t.Errorf("ParseMode(%q): %v", tc.in, err)
		}
	}
}

// TestConcurrentReports: goroutines reporting at once (rebuild's disks
// written side by side) share one Reporter; run with -race.
func TestConcurrentReports(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, JSON, Options{Command: "rebuild", Every: time.Nanosecond})
	var wg sync.WaitGroup
	var done atomic.Int64
	for range 4 {
		wg.Go(func() {
			for range 250 {
				r.Update("emit", "grains", done.Add(1), 1000)
			}
			r.Notef("a disk written")
		})
	}
	wg.Wait()
	r.Finish()
	last := int64(-1)
	sc := bufio.NewScanner(&buf)
	finished := 0
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if ev.Done != nil {
			if *ev.Done < last {
				t.Errorf("done %d after %d", *ev.Done, last)
			}
			last = *ev.Done
		}
		if ev.Finished {
			finished++
		}
	}
	if last != 1000 || finished != 1 {
		t.Errorf("ended at %d with %d finished lines, want 1000 and 1", last, finished)
	}
}
