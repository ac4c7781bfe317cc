package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/builder"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/executor/executortest"
)

// fakeBuilder is a builder on a new store whose RUN steps the fake
// executor plays; a step whose command has "partial" writes output
// without a final newline.
func fakeBuilder(t *testing.T) *builder.Builder {
	t.Helper()
	h := func(ctx context.Context, s executor.Spec, root string, stdio executor.IO) error {
		if strings.Contains(strings.Join(s.Args, " "), "partial") {
			fmt.Fprint(stdio.Stdout, "line\nno newline")
			return nil
		}
		return executortest.Script(ctx, s, root, stdio)
	}
	b, err := builder.Open(t.TempDir(), builder.WithExecutor(&executortest.Fake{Handler: h}))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeBuild builds dockerfile on b, showing its progress on r.
func fakeBuild(t *testing.T, b *builder.Builder, r renderer, dockerfile string) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := b.Build(context.Background(), builder.BuildOptions{ContextDir: dir, Progress: r.event})
	r.close(err)
	return err
}

// decodeJSONLines decodes rawjson output line by line, strictly.
func decodeJSONLines(t *testing.T, out []byte) []jsonEvent {
	t.Helper()
	var evs []jsonEvent
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var ev jsonEvent
		if err := dec.Decode(&ev); err != nil || dec.More() {
			t.Fatalf("line %q is not one event: %v", sc.Text(), err)
		}
		if ev.Type == "" || ev.Time.IsZero() {
			t.Errorf("line %q has no type or time", sc.Text())
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestRawJSONProgress: --progress=rawjson writes one JSON event per line:
// each step as it runs and ends (or is cached), with its stage, position,
// instruction and times; its output as whole lines, a last line without
// a newline included; a failing step's error; how the build ended.
func TestRawJSONProgress(t *testing.T) {
	b := fakeBuilder(t)
	const base = "FROM scratch AS a\nRUN echo one && echo two > /f\nFROM scratch\nCOPY --from=a /f /f\nRUN partial\n"
	var out bytes.Buffer
	if err := fakeBuild(t, b, newJSONView(&out), base); err != nil {
		t.Fatal(err)
	}
	evs := decodeJSONLines(t, out.Bytes())
	var got []string
	for _, ev := range evs {
		switch ev.Type {
		case "step":
			got = append(got, fmt.Sprintf("step %s %d/%d %s %s cached=%v", ev.ID, ev.Index, ev.Total, ev.Instruction, ev.Status, *ev.Cached))
			if ev.Stage == "" || ev.Started == nil || (ev.Status != "running") != (ev.Completed != nil && ev.Duration != nil) {
				t.Errorf("step event %+v lacks a field", ev)
			}
			if ev.Completed != nil && ev.Started.Add(time.Duration(*ev.Duration*float64(time.Second))).Sub(*ev.Completed).Abs() > time.Millisecond {
				t.Errorf("step %s: started %v + %vs is not completed %v", ev.ID, ev.Started, *ev.Duration, ev.Completed)
			}
		case "log":
			got = append(got, fmt.Sprintf("log %s %q", ev.ID, ev.Lines))
		case "build":
			got = append(got, "build "+ev.Status)
			if !strings.HasPrefix(ev.Message, "built ") {
				t.Errorf("build event %+v", ev)
			}
		}
	}
	want := []string{
		"step a/1 1/2 FROM scratch done cached=false",
		"step a/2 2/2 RUN echo one && echo two > /f running cached=false",
		`log a/2 ["one"]`,
		"step a/2 2/2 RUN echo one && echo two > /f done cached=false",
		"step stage-1/1 1/3 FROM scratch done cached=false",
		"step stage-1/2 2/3 COPY --from=a /f /f running cached=false",
		"step stage-1/2 2/3 COPY --from=a /f /f done cached=false",
		"step stage-1/3 3/3 RUN partial running cached=false",
		`log stage-1/3 ["line"]`,
		`log stage-1/3 ["no newline"]`,
		"step stage-1/3 3/3 RUN partial done cached=false",
		"build done",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The same steps again come from the cache; then a step fails.
	out.Reset()
	err := fakeBuild(t, b, newJSONView(&out), base+"RUN echo bad && exit 3\n")
	if err == nil {
		t.Fatal("a failing build succeeded")
	}
	evs = decodeJSONLines(t, out.Bytes())
	var cached, failed, logged int
	for _, ev := range evs {
		switch {
		case ev.Type == "step" && ev.Status == "cached":
			cached++
			if !*ev.Cached || *ev.Duration != 0 {
				t.Errorf("cached step %+v", ev)
			}
		case ev.Type == "step" && ev.Status == "error":
			failed++
			if ev.ID != "stage-1/4" || ev.Instruction != "RUN echo bad && exit 3" || !strings.Contains(ev.Error, "exit code: 3") {
				t.Errorf("failed step %+v", ev)
			}
		case ev.Type == "log" && ev.ID == "stage-1/4":
			logged++
			if !slices.Equal(ev.Lines, []string{"bad"}) {
				t.Errorf("failed step's output %q", ev.Lines)
			}
		}
	}
	if cached != 3 || failed != 1 || logged != 1 {
		t.Errorf("%d cached, %d failed steps, %d output events; want 3, 1, 1:\n%s", cached, failed, logged, out.String())
	}
	if last := evs[len(evs)-1]; last.Type != "build" || last.Status != "error" || !strings.Contains(last.Error, "exit code: 3") {
		t.Errorf("last event %+v, want the build's error", last)
	}
}
