package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/builder-project/builder/builder"
	"golang.org/x/term"
)

// renderer shows the events of one build: "plain" writes one line per
// event (plainView), "tty" keeps a live view of the steps (ttyView),
// "rawjson" writes one JSON object per event (jsonView), "quiet" nothing.
type renderer interface {
	// event shows one build event; calls are serialized by the builder.
	event(ev builder.Event)
	// close shows what is left once the build returned err.
	close(err error)
}

// progressModes are the values of --progress.
const progressModes = "auto, plain, tty, rawjson or quiet"

// newRenderer returns the renderer of mode writing to w. "auto" is "tty"
// when w is a terminal and TERM is not "dumb", else "plain".
func newRenderer(mode string, w io.Writer) (renderer, error) {
	if mode == "auto" {
		mode = "plain"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
			mode = "tty"
		}
	}
	switch mode {
	case "plain":
		return &plainView{w: w, transfers: newTransferPrinter(w)}, nil
	case "tty":
		return newTTYView(w, ttyOptions{color: os.Getenv("NO_COLOR") == ""}), nil
	case "rawjson":
		return newJSONView(w), nil
	case "quiet":
		return quietView{}, nil
	}
	return nil, fmt.Errorf("--progress %q: want %s", mode, progressModes)
}

// quietView shows nothing.
type quietView struct{}

func (quietView) event(builder.Event) {}
func (quietView) close(error)         {}

// plainView writes one line per event, each step's lines prefixed with
// "#STAGE/STEP" as BuildKit's plain output, so that logs stay parseable.
type plainView struct {
	w  io.Writer
	mu sync.Mutex
	// transfers prints the pulls a build does.
	transfers *transferPrinter
}

func label(ev builder.Event) string {
	return fmt.Sprintf("[%s %d/%d] %s", ev.Stage, ev.Step, ev.Steps, ev.Name)
}

// stepID names a step within a build: "STAGE/STEP".
func stepID(ev builder.Event) string { return fmt.Sprintf("%s/%d", ev.Stage, ev.Step) }

func (r *plainView) event(ev builder.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := stepID(ev)
	switch ev.Kind {
	case builder.Warning:
		fmt.Fprintf(r.w, "WARNING: %s\n", ev.Message)
	case builder.Transfer:
		r.transfers.event(ev)
	case builder.BuildDone, builder.Info:
		fmt.Fprintf(r.w, "%s\n", ev.Message)
	case builder.StepStarted:
		fmt.Fprintf(r.w, "#%s %s\n", key, label(ev))
	case builder.StepCached:
		fmt.Fprintf(r.w, "#%s %s CACHED\n", key, label(ev))
	case builder.StepLog:
		for _, line := range strings.SplitAfter(string(ev.Log), "\n") {
			if line != "" {
				fmt.Fprintf(r.w, "#%s %s", key, line)
				if !strings.HasSuffix(line, "\n") {
					fmt.Fprintln(r.w)
				}
			}
		}
	case builder.StepDone:
		status := "DONE"
		if ev.Err != nil {
			status = "ERROR"
		}
		fmt.Fprintf(r.w, "#%s %s %s %.1fs\n", key, label(ev), status, ev.Duration.Seconds())
	}
}

func (r *plainView) close(error) {}
