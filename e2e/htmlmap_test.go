package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vmdkcarve/corpus"
	"vmdkcarve/internal/tooltest"
	"vmdkcarve/pipeline"
	"vmdkcarve/pipeline/htmlmap"
	"vmdkcarve/reassemble"
)

// chromiumPath is Debian's chromium.
const chromiumPath = "/usr/bin/chromium"

// pageFacts is what the browser reads off the loaded report.
type pageFacts struct {
	Title        string        `json:"title"`
	StripSVG     bool          `json:"stripSVG"`
	StripPieces  int           `json:"stripPieces"`
	StripCells   int           `json:"stripCells"`
	StripRects   int           `json:"stripRects"`
	StripWidth   float64       `json:"stripWidth"`
	StripLegend  []string      `json:"stripLegend"`
	PieceRows    int           `json:"pieceRows"`
	Maps         []diskMapFact `json:"maps"`
	TableRows    int           `json:"tableRows"`
	TableDisks   []int         `json:"tableDisks"`
	Findings     []string      `json:"findings"`
	FindingsH2   bool          `json:"findingsH2"`
	Scripts      int           `json:"scripts"`
	OutLinks     int           `json:"outLinks"`
	DamagedFill  string        `json:"damagedFill"`
	AnchoredFill string        `json:"anchoredFill"`
}

type diskMapFact struct {
	Disk   int      `json:"disk"`
	Cells  int      `json:"cells"`
	Rects  int      `json:"rects"`
	Width  float64  `json:"width"`
	Legend []string `json:"legend"`
}

// readPage is the script that reads the facts: plain DOM queries, the
// same an examiner's tools would make.
const readPage = `(() => {
	const q = s => document.querySelector(s), qa = (s, e) => [...(e || document).querySelectorAll(s)];
	const legend = e => qa('ul.legend li', e).map(li => li.textContent.replace(/\s+/g, ' ').trim());
	const fill = cls => { const r = q('rect.' + cls); return r ? getComputedStyle(r).fill : ''; };
	const strip = q('#evidence-strip');
	return {
		title: document.title,
		stripSVG: !!q('#evidence-strip svg'),
		stripPieces: +strip.dataset.pieces,
		stripCells: +strip.dataset.cells,
		stripRects: qa('#evidence-strip svg rect').length,
		stripWidth: q('#evidence-strip svg').getBoundingClientRect().width,
		stripLegend: legend(strip),
		pieceRows: qa('#pieces tbody tr').length,
		maps: qa('.disk-map').map(e => ({disk: +e.dataset.disk, cells: +e.dataset.cells, rects: qa('svg rect', e).length,
			width: e.querySelector('svg').getBoundingClientRect().width, legend: legend(e)})),
		tableRows: qa('#disk-table tbody tr').length,
		tableDisks: qa('#disk-table tbody tr').map(tr => +tr.dataset.disk),
		findings: qa('#findings li.finding').map(li => li.dataset.code),
		findingsH2: !!q('#findings h2'),
		scripts: document.scripts.length,
		outLinks: qa('[src], [href]').filter(e => !(e.getAttribute('href') || '').startsWith('#')).length,
		damagedFill: fill('c-damaged'),
		anchoredFill: fill('c-anchored'),
	};
})()`

// TestReportHTMLInBrowser rebuilds a fragmented, partly encrypted case
// (corpus "fragmented-encrypted": anchored pieces, stream markers, zero,
// missing and damaged grains), loads its CASE/report.html in headless
// Chromium and checks the DOM against the disk reports: the strip with
// every piece, one map per disk whose legend counts the grains the report
// counts, the table, the findings; no script, no link out of the page, no
// console message of error level, no exception. It takes a full-page
// screenshot (to VMDKCARVE_SCREENSHOT as well, when set) and checks that
// the damaged colour was painted.
func TestReportHTMLInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("generates real guests: skipped with -short")
	}
	tooltest.Need(t, "chromium")
	spec, err := corpus.Scenario("fragmented-encrypted", 3, 256<<20, corpus.HaveQemu())
	if err != nil {
		t.Fatal(err)
	}
	truth := generate(t, spec)
	run := carveAndRebuild(t, truth.Image)
	if run.err != nil && !errors.Is(run.err, pipeline.ErrNothingRecovered) {
		t.Fatalf("rebuild: %v", run.err)
	}
	if len(run.reports) < 2 {
		t.Fatalf("%d disks rebuilt, want several", len(run.reports))
	}
	reportPath := filepath.Join(run.caseDir, pipeline.ReportHTMLName)
	if _, err := os.Stat(reportPath); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	br := startChromium(t)
	// A page that errors first: the console is read, or this test could
	// not fail on the report's errors.
	canary := filepath.Join(t.TempDir(), "canary.html")
	if err := os.WriteFile(canary, []byte(`<!DOCTYPE html><title>canary</title><script>console.error("canary error"); throw new Error("canary exception")</script>`), 0o644); err != nil {
		t.Fatal(err)
	}
	br.do(t, chromedp.Navigate("file://"+canary), chromedp.WaitReady("title"))
	if got := br.sync(t); !slices.ContainsFunc(got, func(m chromedp.ConsoleMessage) bool { return m.Type == chromedp.ConsoleError }) ||
		!slices.ContainsFunc(got, chromedp.ConsoleMessage.IsException) {
		t.Fatalf("the canary page's error and exception were not seen: %v", got)
	}

	br.do(t, chromedp.Navigate("file://"+reportPath), chromedp.WaitReady("#findings"))
	facts, err := chromedp.Run(br.ctx, chromedp.Evaluate[*pageFacts](readPage))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	shot, err := chromedp.Run(br.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	messages := br.sync(t)
	t.Logf("browser: %.1fs for the canary and the report", time.Since(started).Seconds())
	for _, m := range messages {
		t.Logf("console: %s", m)
		if m.Type == chromedp.ConsoleError || m.IsException() {
			t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
		}
	}

	// The strip: every piece of every disk's files, a cell per 64 KiB.
	pieces, damaged, damagedGrains := 0, false, false
	for _, rep := range run.reports {
		n, d := piecesOf(rep.Disk)
		pieces += n
		damaged = damaged || d
		damagedGrains = damagedGrains || rep.Disk.Counts.Damaged > 0
	}
	if !damaged {
		t.Error("no encryption lattice was accepted: the case should have one, or the strip's and the screenshot's damage checks test nothing")
	}
	if !facts.StripSVG || facts.StripPieces != pieces || facts.PieceRows != min(pieces, htmlmap.MaxListed) {
		t.Errorf("strip: svg %v, %d pieces (%d rows), want %d", facts.StripSVG, facts.StripPieces, facts.PieceRows, pieces)
	}
	if want := min(truth.ImageSize/512, htmlmap.MaxCells); facts.StripCells != int(want) || facts.StripRects == 0 || facts.StripRects > facts.StripCells {
		t.Errorf("strip: %d cells in %d rectangles, want %d cells", facts.StripCells, facts.StripRects, want)
	}
	if facts.StripWidth < 500 {
		t.Errorf("strip drawn %.0f px wide", facts.StripWidth)
	}
	if damaged != slices.ContainsFunc(facts.StripLegend, func(s string) bool { return strings.Contains(s, " damaged ") }) {
		t.Errorf("an encryption lattice was accepted: %v; the strip's legend: %q", damaged, facts.StripLegend)
	}

	// One map per disk, its legend counting the report's grains.
	if len(facts.Maps) != len(run.reports) {
		t.Fatalf("%d disk maps, %d disks", len(facts.Maps), len(run.reports))
	}
	classesSeen := map[string]bool{}
	for i, rep := range run.reports {
		d, m := rep.Disk, facts.Maps[i]
		if m.Disk != d.ID || m.Cells != int(min(d.Grains(), htmlmap.MaxCells)) || m.Rects == 0 || m.Rects > m.Cells || m.Width < 100 {
			t.Errorf("disk %d: map of disk %d, %d cells in %d rectangles, %.0f px wide; want %d cells", d.ID, m.Disk, m.Cells, m.Rects, m.Width, min(d.Grains(), htmlmap.MaxCells))
		}
		got := legendCounts(t, m.Legend)
		var placed uint64
		for class, n := range got {
			classesSeen[class] = true
			switch class {
			case "zero", "missing", "conflict", "damaged", "unlisted":
			default:
				placed += n
			}
		}
		c := d.Counts
		if placed != c.Placed || got["zero"] != c.Zero || got["missing"] != c.Missing || got["conflict"] != c.Conflict || got["damaged"] != c.Damaged || got["unlisted"] != 0 {
			t.Errorf("disk %d: legend %v, report counts %+v", d.ID, m.Legend, c)
		}
	}
	for _, class := range []string{"anchored", "marker", "zero", "missing", "damaged"} {
		if !classesSeen[class] {
			t.Errorf("no disk map shows %s grains: the case should have some", class)
		}
	}

	// The table, the findings, and nothing that reaches out.
	var ids []int
	for _, rep := range run.reports {
		ids = append(ids, rep.Disk.ID)
	}
	if facts.TableRows != len(run.reports) || !slices.Equal(facts.TableDisks, ids) {
		t.Errorf("disk table rows for disks %v, want %v", facts.TableDisks, ids)
	}
	if !facts.FindingsH2 || !slices.Contains(facts.Findings, "grains-missing") || damagedGrains != (slices.Contains(facts.Findings, "encryption-lattice") || slices.Contains(facts.Findings, "structure-destroyed")) {
		t.Errorf("findings %v", facts.Findings)
	}
	if facts.Scripts != 0 || facts.OutLinks != 0 {
		t.Errorf("%d scripts, %d links out of the page", facts.Scripts, facts.OutLinks)
	}
	if facts.DamagedFill != "rgb(192, 0, 0)" || facts.AnchoredFill == "" || facts.AnchoredFill == "rgb(0, 0, 0)" {
		t.Errorf("the style sheet is not applied: damaged fill %q, anchored fill %q", facts.DamagedFill, facts.AnchoredFill)
	}

	// The screenshot: a whole page, with damage painted in its colour.
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	red := countColour(img, 0xc0, 0, 0)
	t.Logf("screenshot %dx%d px, %d px of the damaged colour; report %d bytes", b.Dx(), b.Dy(), red, fileSize(t, reportPath))
	if b.Dx() < 800 || b.Dy() < 1000 || (damaged && red == 0) {
		t.Errorf("screenshot %dx%d px with %d damaged px", b.Dx(), b.Dy(), red)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "report.png"), os.Getenv("VMDKCARVE_SCREENSHOT")} {
		if path == "" {
			continue
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}
}

// chromium is a headless Chromium with one tab, and the console
// messages of its pages.
type chromium struct {
	ctx     context.Context
	mu      sync.Mutex
	read    []chromedp.ConsoleMessage // read since the last sync
	markers chan string
	synced  int
}

// startChromium starts a fresh Chromium (its own profile, no network
// services) and reads its console from the first page on.
func startChromium(t *testing.T) *chromium {
	t.Helper()
	// A guard against a browser that hangs, not a timed assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		// Without these Chromium reaches for the network (QUIC, updates,
		// sync, safe browsing lists), which the test machine does not have.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	b := &chromium{ctx: bctx, markers: make(chan string, 16)}
	console := chromedp.Console(bctx) // starts the browser; subscribes before any page
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if strings.HasPrefix(m.Text, syncMarker) {
				b.markers <- m.Text
				continue
			}
			b.mu.Lock()
			b.read = append(b.read, m)
			b.mu.Unlock()
		}
	}()
	return b
}

const syncMarker = "vmdkcarve sync "

func (b *chromium) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// sync returns the console messages since the last sync: it logs a marker
// and waits for it, so every earlier message has been read.
func (b *chromium) sync(t *testing.T) []chromedp.ConsoleMessage {
	t.Helper()
	b.synced++
	marker := fmt.Sprintf("%s%d", syncMarker, b.synced)
	b.do(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("console.debug(%q)", marker)))
	for {
		select {
		case m := <-b.markers:
			if m != marker {
				continue
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			got := b.read
			b.read = nil
			return got
		case <-b.ctx.Done():
			t.Fatalf("the console never delivered %q: %v", marker, b.ctx.Err())
		}
	}
}

// piecesOf counts the fragments of a disk's files that lie in the image
// (holes of a host file do not), and says whether a lattice was accepted.
func piecesOf(d *reassemble.Disk) (pieces int, damaged bool) {
	seen := map[int]bool{}
	for _, inst := range slices.Concat(d.Instances, d.Parts) {
		if seen[inst.ID] {
			continue
		}
		seen[inst.ID] = true
		for _, f := range inst.Fragments {
			if f.ImageOffset >= 0 && f.Length > 0 && f.FileOffset >= 0 {
				pieces++
			}
		}
		if inst.Damage != nil && len(inst.Damage.Lattices) > 0 {
			damaged = true
		}
	}
	return pieces, damaged
}

// legendCounts reads "class N description" legend entries.
func legendCounts(t *testing.T, legend []string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, l := range legend {
		var class string
		var n uint64
		if _, err := fmt.Sscanf(l, "%s %d", &class, &n); err != nil {
			t.Errorf("legend entry %q: %v", l, err)
			continue
		}
		out[class] = n
	}
	return out
}

// countColour counts the pixels of one RGB colour.
func countColour(img image.Image, r, g, b uint8) int {
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if uint8(cr>>8) == r && uint8(cg>>8) == g && uint8(cb>>8) == b {
				n++
			}
		}
	}
	return n
}
