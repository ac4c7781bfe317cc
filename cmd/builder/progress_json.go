package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/builder-project/builder/builder"
)

// jsonEvent is one line of --progress=rawjson. The schema is documented
// in docs/progress.md; fields that do not apply to a type are left out.
type jsonEvent struct {
	// Time is when the event happened (RFC 3339, nanoseconds).
	Time time.Time `json:"time"`
	// Type is "step", "log", "warning", "info", "transfer" or "build".
	Type string `json:"type"`
	// ID names the step within the build: "STAGE/INDEX".
	ID          string `json:"id,omitempty"`
	Stage       string `json:"stage,omitempty"`
	Index       int    `json:"index,omitempty"`
	Total       int    `json:"total,omitempty"`
	Instruction string `json:"instruction,omitempty"`
	// Status of a step: "running", "cached", "done", "error" or
	// "canceled"; of the build: "done", "error" or "canceled"; of a
	// transfer, the registry's ("Downloading", "Pull complete", ...).
	Status    string     `json:"status,omitempty"`
	Cached    *bool      `json:"cached,omitempty"`
	Started   *time.Time `json:"started,omitempty"`
	Completed *time.Time `json:"completed,omitempty"`
	// Duration is in seconds.
	Duration *float64 `json:"duration,omitempty"`
	Lines    []string `json:"lines,omitempty"`
	Error    string   `json:"error,omitempty"`
	Message  string   `json:"message,omitempty"`
	Layer    string   `json:"layer,omitempty"`
	Current  int64    `json:"current,omitempty"`
	Size     int64    `json:"size,omitempty"`
}

// maxJSONLine bounds the output a step may write without a newline
// before it is reported as a line of its own.
const maxJSONLine = 64 << 10

// jsonView writes each event as one JSON object on its own line, for
// tools that follow a build: steps as they start and finish, their output
// in whole lines, warnings, pulls, and how the build ended.
type jsonView struct {
	enc     *json.Encoder
	mu      sync.Mutex
	partial map[string][]byte // output of a step after its last newline
}

func newJSONView(w io.Writer) *jsonView {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &jsonView{enc: enc, partial: map[string][]byte{}}
}

func (v *jsonView) event(ev builder.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	out := jsonEvent{Time: t}
	switch ev.Kind {
	case builder.Warning:
		out.Type, out.Message = "warning", ev.Message
	case builder.Info:
		out.Type, out.Message = "info", ev.Message
	case builder.BuildDone:
		out.Type, out.Status, out.Message = "build", "done", ev.Message
	case builder.Transfer:
		out.Type, out.Layer, out.Status, out.Current, out.Size = "transfer", ev.ID, ev.Message, ev.Current, ev.Total
	case builder.StepLog:
		buf := append(v.partial[stepID(ev)], ev.Log...)
		var lines []string
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			lines = append(lines, string(bytes.TrimSuffix(buf[:i], []byte("\r"))))
			buf = buf[i+1:]
		}
		if len(buf) > maxJSONLine {
			lines, buf = append(lines, string(buf)), nil
		}
		v.partial[stepID(ev)] = append([]byte(nil), buf...)
		if len(lines) == 0 {
			return
		}
		v.stepFields(&out, ev, "log")
		out.Lines = lines
	case builder.StepStarted, builder.StepCached, builder.StepDone:
		if ev.Kind == builder.StepDone {
			v.flushLog(ev, t)
		}
		v.stepFields(&out, ev, "step")
		cached := ev.Kind == builder.StepCached
		out.Cached = &cached
		started, completed := t, t
		out.Started = &started
		switch ev.Kind {
		case builder.StepStarted:
			out.Status = "running"
		case builder.StepCached:
			out.Status, out.Completed = "cached", &completed
			out.Duration = new(float64)
		case builder.StepDone:
			started = t.Add(-ev.Duration)
			secs := ev.Duration.Seconds()
			out.Status, out.Completed, out.Duration = "done", &completed, &secs
			switch {
			case errors.Is(ev.Err, context.Canceled):
				out.Status, out.Error = "canceled", ev.Err.Error()
			case ev.Err != nil:
				out.Status, out.Error = "error", ev.Err.Error()
			}
		}
	default:
		return
	}
	_ = v.enc.Encode(out)
}

func (v *jsonView) stepFields(out *jsonEvent, ev builder.Event, typ string) {
	out.Type, out.ID, out.Stage, out.Index, out.Total, out.Instruction = typ, stepID(ev), ev.Stage, ev.Step, ev.Steps, ev.Name
}

// flushLog reports the output of ev's step that no newline ended.
func (v *jsonView) flushLog(ev builder.Event, t time.Time) {
	id := stepID(ev)
	if rest := v.partial[id]; len(rest) > 0 {
		out := jsonEvent{Time: t, Lines: []string{string(rest)}}
		v.stepFields(&out, ev, "log")
		_ = v.enc.Encode(out)
	}
	delete(v.partial, id)
}

// close reports how the build ended when it failed; a build that
// succeeded was reported by its "build" event.
func (v *jsonView) close(err error) {
	if err == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	out := jsonEvent{Time: time.Now().UTC(), Type: "build", Status: "error", Error: err.Error()}
	if errors.Is(err, context.Canceled) {
		out.Status = "canceled"
	}
	_ = v.enc.Encode(out)
}
