package builder

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestFromStepEvents: a stage's FROM is its step 1, as BuildKit counts
// steps: done at once for scratch and another stage, CACHED for a stored
// image, an error for a missing one; the instructions follow it as steps
// 2..n of n.
func TestFromStepEvents(t *testing.T) {
	f := newFakeBuild(t, nil)
	f.mustBuild(t, "FROM scratch AS one\nRUN echo 1 > /1\nFROM one\nLABEL a=b\n", BuildOptions{Tags: []string{"base:1"}})
	if got, want := f.stepEvents(), []string{
		"one 1/2 FROM scratch done",
		"one 2/2 RUN echo 1 > /1 started",
		"one 2/2 RUN echo 1 > /1 done",
		"stage-1 1/2 FROM one done",
		"stage-1 2/2 LABEL a=b done",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	f.mustBuild(t, "FROM base:1\nENV X=1\nRUN echo 2 > /2\n", BuildOptions{})
	if got, want := f.stepEvents(), []string{
		"stage-0 1/3 FROM base:1 cached",
		"stage-0 2/3 ENV X=1 done",
		"stage-0 3/3 RUN echo 2 > /2 started",
		"stage-0 3/3 RUN echo 2 > /2 done",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if _, err := f.build(t, "FROM missing:1\nRUN true\n", BuildOptions{Pull: PullNever}); err == nil {
		t.Fatal("a build from a missing image succeeded")
	}
	if got, want := f.stepEvents(), []string{"stage-0 1/2 FROM missing:1 error"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events: %q, want %q", got, want)
	}
}

// stepEvents renders the step events of the last build as
// "STAGE i/n NAME STATUS".
func (f *fakeBuild) stepEvents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.evs {
		status := map[EventKind]string{StepStarted: "started", StepCached: "cached", StepDone: "done"}[ev.Kind]
		if status == "" {
			continue
		}
		if ev.Kind == StepDone && ev.Err != nil {
			status = "error"
		}
		out = append(out, strings.Join([]string{ev.Stage, fmt.Sprintf("%d/%d", ev.Step, ev.Steps), ev.Name, status}, " "))
	}
	return out
}
