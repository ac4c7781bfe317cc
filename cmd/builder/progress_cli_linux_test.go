package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// progressDockerfile has a step with output that runs for a while, a
// command line wider than a terminal, and a step that fails.
const progressDockerfile = `FROM busybox AS build
RUN echo compiling; echo 'step 1 of 2'; sleep 1; echo 'step 2 of 2' > /out
RUN echo "a step with a command line much longer than a terminal of eighty columns is wide" > /long
FROM busybox
COPY --from=build /out /out
RUN echo 'tests failed' && exit 2
`

// TestBuildProgressTerminal runs `builder build` on an 80×24
// pseudo-terminal, as a user would: --progress=auto picks the tty view;
// while the build runs no line wraps, no step has two lines and the
// running step's output shows under it; the terminal at the end, times
// aside, is the golden one, followed by the build's error. Then
// --progress=rawjson writes one JSON event per line for the same build.
func TestBuildProgressTerminal(t *testing.T) {
	root := storeWithBusybox(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(progressDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, _, _, out := startOnTerminal(t, root, 24, 80, "build", dir)
	exited := make(chan int, 1)
	go func() { exited <- exitCode(t, cmd) }()
	h := &ttyHarness{t: t, scr: newVTScreen(80, 24)}
	fed := 0
	feed := func() { // the view, up to its summary line: the error follows
		s := out.String()
		if i := strings.Index(s, "Failed in "); i >= 0 {
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				s = s[:i+j+1]
			}
		}
		h.scr.Write([]byte(s[fed:]))
		fed = len(s)
		h.invariants()
	}
	sawOutput := false
	code := -1
	for code < 0 {
		select {
		case code = <-exited:
		case <-time.After(20 * time.Millisecond):
		}
		feed()
		sawOutput = sawOutput || runningOutput.MatchString(strings.Join(h.scr.screen(), "\n"))
	}
	time.Sleep(100 * time.Millisecond) // what the terminal still had
	feed()
	if code == 0 {
		t.Fatal("the failing build exited 0")
	}
	if !sawOutput {
		t.Error("the output of the running step never showed under it")
	}
	golden(t, "tty-cli", timeless(h.scr.transcript()))
	if rest := out.String()[fed:]; !strings.Contains(rest, "exit code: 2") {
		t.Errorf("the build's error does not follow the view:\n%q", rest)
	}

	_, stderr, code := runCLI(t, root, "build", "--progress=rawjson", dir)
	if code == 0 {
		t.Fatal("the failing build exited 0")
	}
	var cached, failed int
	var last jsonEvent
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			break // the error message follows the events
		}
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		switch {
		case last.Type == "step" && last.Status == "cached":
			cached++
		case last.Type == "step" && last.Status == "error":
			failed++
		}
	}
	if cached != 5 || failed != 1 || last.Type != "build" || last.Status != "error" {
		t.Errorf("%d cached, %d failed steps, last event %+v; want 5 (FROMs included), 1 and the build's error:\n%s", cached, failed, last, stderr)
	}
}
