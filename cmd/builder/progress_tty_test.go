package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/builder-project/builder/builder"
	"github.com/creack/pty"
	"golang.org/x/term"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// ttyHarness is a tty view drawing on a real pseudo-terminal, whose
// output a vtScreen replays, with a clock the test moves.
type ttyHarness struct {
	t      *testing.T
	ptmx   *os.File
	tty    *os.File
	scr    *vtScreen
	w      *lineCounter
	clock  time.Time
	v      *ttyView
	labels []string // step labels in the order they first appeared
	shots  []string // screens the test took, for the golden file
}

// shot keeps the screen as it is now for the golden file.
func (h *ttyHarness) shot(title string) {
	h.shots = append(h.shots, "--- "+title+" ---")
	h.shots = append(h.shots, h.scr.screen()...)
}

// golden compares the screens taken and the final terminal with its
// scrollback to testdata/progress/NAME.golden.
func (h *ttyHarness) golden(name string) {
	h.t.Helper()
	golden(h.t, name, append(h.shots, append([]string{"--- final terminal and scrollback ---"}, h.scr.transcript()...)...))
}

// lineCounter counts what is written to the terminal, and the newlines
// the terminal turns into CR LF.
type lineCounter struct {
	w             io.Writer
	mu            sync.Mutex
	n, nl, writes int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	c.n += len(p)
	c.nl += strings.Count(string(p), "\n")
	return c.w.Write(p)
}

// sent is how many bytes the terminal sends for what was written: it
// sends "\n" as "\r\n".
func (c *lineCounter) sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n + c.nl
}

// newTTYHarness draws on a cols×rows terminal at the test's pace: frames
// come when the test asks, at the time the test says.
func newTTYHarness(t *testing.T, cols, rows int) *ttyHarness {
	return newTTYHarnessAt(t, cols, rows, true)
}

// newTTYHarnessAt draws on a cols×rows terminal, at the test's pace if
// manual, else at the view's own pace on the real clock.
func newTTYHarnessAt(t *testing.T, cols, rows int, manual bool) *ttyHarness {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	h := &ttyHarness{t: t, ptmx: ptmx, tty: tty, scr: newVTScreen(cols, rows), w: &lineCounter{w: tty}, clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.setsize(cols, rows)
	go func() { _, _ = io.Copy(h.scr, ptmx) }()
	size := func() (int, int) {
		c, r, err := term.GetSize(int(tty.Fd()))
		if err != nil {
			t.Errorf("reading the terminal's size: %v", err)
		}
		return c, r
	}
	opts := ttyOptions{size: size, color: true}
	if manual {
		opts.now, opts.manual = func() time.Time { return h.clock }, true
	}
	h.v = newTTYView(h.w, opts)
	return h
}

func (h *ttyHarness) setsize(cols, rows int) {
	if err := pty.Setsize(h.ptmx, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		h.t.Fatal(err)
	}
}

// resize resizes the terminal, as a user dragging its window.
func (h *ttyHarness) resize(cols, rows int) {
	h.setsize(cols, rows)
	h.scr.resize(cols, rows)
}

// ev sends a step event of stage at the clock's time.
func (h *ttyHarness) ev(kind builder.EventKind, stage string, step, steps int, name string) builder.Event {
	ev := builder.Event{Kind: kind, Stage: stage, Step: step, Steps: steps, Name: name, Time: h.clock}
	h.v.event(ev)
	return ev
}

func (h *ttyHarness) log(stage string, step, steps int, text string) {
	h.v.event(builder.Event{Kind: builder.StepLog, Stage: stage, Step: step, Steps: steps, Log: []byte(text), Time: h.clock})
}

func (h *ttyHarness) done(stage string, step, steps int, name string, took time.Duration, err error) {
	h.v.event(builder.Event{Kind: builder.StepDone, Stage: stage, Step: step, Steps: steps, Name: name, Time: h.clock, Duration: took, Err: err})
}

// frame advances the clock by d, draws a frame, waits until the screen
// shows all of it and checks the screen.
func (h *ttyHarness) frame(d time.Duration) {
	h.t.Helper()
	h.clock = h.clock.Add(d)
	h.v.flush()
	h.check()
}

// close ends the view as the build returned err.
func (h *ttyHarness) close(d time.Duration, err error) {
	h.t.Helper()
	h.clock = h.clock.Add(d)
	h.v.close(err)
	h.check()
}

var stepLabel = regexp.MustCompile(`\[\S+ \d+/\d+\]`)

// check waits for the terminal to show what the view wrote, then checks
// that no line wrapped, that every step has at most one line on the
// terminal and its scrollback, and that steps kept their order.
func (h *ttyHarness) check() {
	h.t.Helper()
	want := h.w.sent()
	deadline := time.Now().Add(10 * time.Second)
	for h.scr.received() < want {
		if time.Now().After(deadline) {
			h.t.Fatalf("the terminal showed %d of %d bytes", h.scr.received(), want)
		}
		time.Sleep(time.Millisecond)
	}
	h.invariants()
}

// invariants checks the terminal as it is now.
func (h *ttyHarness) invariants() {
	h.t.Helper()
	if p := h.scr.errors(); len(p) > 0 {
		h.t.Fatalf("terminal problems: %q\n%s", p, strings.Join(h.scr.transcript(), "\n"))
	}
	seen := map[string]bool{}
	last := -1
	for _, l := range h.scr.transcript() {
		if !strings.HasPrefix(l, "=> ") {
			continue
		}
		label := stepLabel.FindString(l)
		if label == "" {
			continue // "=> ... N more steps"
		}
		if seen[label] {
			h.t.Fatalf("step %s has two lines:\n%s", label, strings.Join(h.scr.transcript(), "\n"))
		}
		seen[label] = true
		i := slices.Index(h.labels, label)
		if i < 0 {
			h.labels = append(h.labels, label)
			i = len(h.labels) - 1
		}
		if i < last {
			h.t.Fatalf("step %s moved above %s:\n%s", label, h.labels[last], strings.Join(h.scr.transcript(), "\n"))
		}
		last = i
	}
}

// golden compares lines with testdata/progress/NAME.golden.
func golden(t *testing.T, name string, lines []string) {
	t.Helper()
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "progress", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("terminal differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// The steps of TestTTYView's build: two stages built in parallel, then a
// final one copying from both.
const (
	longRun = "RUN apk add --no-cache build-base linux-headers && make -j4 all && make install DESTDIR=/out PREFIX=/usr/local CFLAGS=\"-O2 -pipe\""
	docsRun = "RUN echo 'ドキュメントを生成しています' && mkdocs build --strict --site-dir /site"
)

// TestTTYView draws a build on an 80×24 pseudo-terminal: two steps that
// run at once, output under the running ones (escape sequences, carriage
// returns, lines wider than the terminal, double-width characters), a
// resize to 60 columns and back, a warning, and a summary. Every frame
// keeps each step on one line, in the order the steps started, within
// the width; the final terminal is the golden one.
func TestTTYView(t *testing.T) {
	h := newTTYHarness(t, 80, 24)
	h.ev(builder.StepCached, "build", 1, 4, "FROM alpine:3.19")
	h.ev(builder.StepCached, "docs", 1, 2, "FROM alpine:3.19")
	h.done("build", 2, 4, "WORKDIR /src", 0, nil)
	h.ev(builder.StepStarted, "build", 3, 4, "COPY --chown=app:app . .")
	h.frame(100 * time.Millisecond)
	h.done("build", 3, 4, "COPY --chown=app:app . .", 120*time.Millisecond, nil)
	h.ev(builder.StepStarted, "build", 4, 4, longRun)
	h.ev(builder.StepStarted, "docs", 2, 2, docsRun)
	h.frame(100 * time.Millisecond)
	for i := range 8 {
		h.log("build", 4, 4, "cc -O2 -pipe -c src/module"+strings.Repeat("x", i)+".c -o obj/module.o\n")
	}
	h.log("build", 4, 4, "\x1b[32mok\x1b[0m   linking "+strings.Repeat("obj/very/long/path/to/an/object/file.o ", 4)+"\r\n")
	h.log("docs", 2, 2, "INFO    -  Building documentation...\nINFO    -  生成中: 一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十\n")
	h.log("docs", 2, 2, "\r 10%\r 50%")
	h.frame(400 * time.Millisecond)
	h.shot("two steps running, 80 columns")
	h.resize(60, 24)
	h.frame(100 * time.Millisecond)
	h.shot("resized to 60 columns")
	h.log("docs", 2, 2, "\r100%\n")
	h.done("docs", 2, 2, docsRun, 800*time.Millisecond, nil)
	h.v.event(builder.Event{Kind: builder.Warning, Message: "the build context has 1200 files ignored by .dockerignore"})
	h.frame(300 * time.Millisecond)
	h.shot("docs done below the running build step, a warning above")
	h.resize(80, 24)
	h.log("build", 4, 4, "install -m 755 app /out/usr/local/bin/app\n")
	h.frame(100 * time.Millisecond)
	h.done("build", 4, 4, longRun, 1700*time.Millisecond, nil)
	h.done("stage-2", 1, 3, "FROM scratch", 0, nil)
	h.ev(builder.StepStarted, "stage-2", 2, 3, "COPY --from=build /out /")
	h.frame(1300 * time.Millisecond)
	h.done("stage-2", 2, 3, "COPY --from=build /out /", 50*time.Millisecond, nil)
	h.ev(builder.StepStarted, "stage-2", 3, 3, "COPY --from=docs /site /srv/www")
	h.done("stage-2", 3, 3, "COPY --from=docs /site /srv/www", 30*time.Millisecond, nil)
	h.v.event(builder.Event{Kind: builder.BuildDone, Message: "built 0123456789ab in 2.60s: 9 steps, 2 cached"})
	h.close(100*time.Millisecond, nil)
	h.golden("tty")
}

// TestTTYViewFailed draws a failing build on a small terminal (50×10):
// more running steps than rows, so their output is left out and the last
// ones are counted; the failed step is named in the summary, and the
// steps the failure interrupted are canceled.
func TestTTYViewFailed(t *testing.T) {
	h := newTTYHarness(t, 50, 10)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	for _, n := range names {
		h.ev(builder.StepStarted, n, 2, 2, "RUN ./test.sh --suite "+n)
		h.log(n, 2, 2, "running suite "+n+"\n")
	}
	h.frame(100 * time.Millisecond)
	h.shot("more running steps than rows")
	h.log("c", 2, 2, "FAIL: TestSomething (0.00s)\n")
	h.done("c", 2, 2, "RUN ./test.sh --suite c", 900*time.Millisecond, &builder.StepError{Code: 1, Msg: "exit code: 1"})
	for _, n := range names[1:] {
		if n != "c" {
			h.done(n, 2, 2, "RUN ./test.sh --suite "+n, 900*time.Millisecond, context.Canceled)
		}
	}
	h.frame(900 * time.Millisecond)
	h.close(0, errors.New("RUN ./test.sh --suite c: exit code: 1"))
	h.golden("tty-failed")
}

// TestTTYViewCanceled: a build interrupted (^C) ends with its running
// steps CANCELED and says so.
func TestTTYViewCanceled(t *testing.T) {
	h := newTTYHarness(t, 80, 24)
	h.ev(builder.StepStarted, "stage-0", 2, 3, "RUN sleep 100")
	h.log("stage-0", 2, 3, "sleeping")
	h.frame(2 * time.Second)
	h.close(time.Second, context.Canceled)
	got := strings.Join(h.scr.transcript(), "\n")
	if want := "=> CANCELED [stage-0 2/3] RUN sleep 100" + strings.Repeat(" ", 36) + "3.0s\nCanceled after 3.0s"; got != want {
		t.Errorf("terminal:\n%s\nwant\n%s", got, want)
	}
}

// TestTTYViewPull: while a FROM pulls its image, the layers moving show
// below the steps with their progress, and the lines about the image
// print above them; a layer that is done leaves the view.
func TestTTYViewPull(t *testing.T) {
	h := newTTYHarness(t, 80, 24)
	transfer := func(id, status string, current, total int64) {
		h.v.event(builder.Event{Kind: builder.Transfer, ID: id, Message: status, Current: current, Total: total, Time: h.clock})
	}
	h.ev(builder.StepStarted, "stage-0", 1, 2, "FROM alpine:3.19")
	transfer("", "Pulling from library/alpine", 0, 0)
	transfer("4abcf2066143", "Pulling fs layer", 0, 0)
	transfer("c6a83fedfae6", "Pulling fs layer", 0, 0)
	transfer("4abcf2066143", "Downloading", 1<<20, 3<<20)
	transfer("c6a83fedfae6", "Downloading", 512<<10, 40<<20)
	h.frame(300 * time.Millisecond)
	h.shot("pulling")
	transfer("4abcf2066143", "Download complete", 3<<20, 3<<20)
	transfer("4abcf2066143", "Pull complete", 0, 0)
	transfer("c6a83fedfae6", "Downloading", 30<<20, 40<<20)
	h.frame(200 * time.Millisecond)
	h.shot("one layer done")
	transfer("c6a83fedfae6", "Pull complete", 0, 0)
	transfer("", "Digest: sha256:c5b1261d6d3e43071626931fc004f70149baeba2c8ec672bd4f27761f8e1ad6b", 0, 0)
	transfer("", "Status: Downloaded newer image for alpine:3.19", 0, 0)
	h.done("stage-0", 1, 2, "FROM alpine:3.19", 700*time.Millisecond, nil)
	h.done("stage-0", 2, 2, "LABEL a=b", 0, nil)
	h.close(100*time.Millisecond, nil)
	h.golden("tty-pull")
}

// TestTTYViewFrameRate: however fast events come, the view draws at most
// 10 frames a second, each in one write.
func TestTTYViewFrameRate(t *testing.T) {
	h := newTTYHarnessAt(t, 80, 24, false)
	h.v.event(builder.Event{Kind: builder.StepStarted, Stage: "s", Step: 2, Steps: 2, Name: "RUN yes", Time: time.Now()})
	start := time.Now()
	for i := 0; time.Since(start) < 500*time.Millisecond; i++ {
		h.v.event(builder.Event{Kind: builder.StepLog, Stage: "s", Step: 2, Steps: 2, Log: []byte(fmt.Sprintf("line %d\n", i))})
	}
	h.v.close(nil)
	took := time.Since(start)
	h.check()
	h.w.mu.Lock()
	writes := h.w.writes
	h.w.mu.Unlock()
	if most := int(took/frameInterval) + 1; writes > most || writes < 3 {
		t.Errorf("%d frames in %v, want 3 to %d", writes, took, most)
	}
}

// durations are the times a build's lines show, with the spaces that
// align them; they vary from run to run.
var durations = regexp.MustCompile(` +\d+\.\ds`)

// TestTTYViewBuild shows a real build (its RUN steps played by the fake
// executor) on an 80×24 pseudo-terminal, the view drawing at its own
// pace: while the build runs, no line wraps and no step has two lines,
// and a running step's output shows under it; the final terminal, times
// aside, is the golden one.
func TestTTYViewBuild(t *testing.T) {
	b := fakeBuilder(t)
	h := newTTYHarnessAt(t, 80, 24, false)
	const dockerfile = "FROM scratch AS build\n" +
		"RUN echo compiling && echo 'step 1 of 2' && sleep 0.8 && echo 'step 2 of 2' > /out\n" +
		"RUN echo \"a step with a command line much longer than a terminal of eighty columns is wide\" > /long\n" +
		"FROM scratch\nCOPY --from=build /out /out\nRUN echo 'tests failed' && exit 2\n"
	errc := make(chan error, 1)
	go func() { errc <- fakeBuild(t, b, h.v, dockerfile) }()
	var err error
	sawOutput := false
	for running := true; running; {
		select {
		case err = <-errc:
			running = false
		case <-time.After(20 * time.Millisecond):
		}
		h.invariants()
		screen := strings.Join(h.scr.screen(), "\n")
		sawOutput = sawOutput || runningOutput.MatchString(screen)
	}
	if err == nil {
		t.Fatal("the build succeeded")
	}
	h.check()
	if !sawOutput {
		t.Error("the output of the running step never showed under it")
	}
	golden(t, "tty-build", timeless(h.scr.transcript()))
}

// timeless replaces the times in lines.
func timeless(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = durations.ReplaceAllString(l, " N.Ns")
	}
	return out
}

// runningOutput matches a screen showing the output of the running step
// of TestTTYViewBuild's and TestBuildProgressTerminal's builds under it.
var runningOutput = regexp.MustCompile(`(?m)^=> \[build 2/3\] RUN echo compiling.*\n   compiling\n   step 1 of 2$`)
