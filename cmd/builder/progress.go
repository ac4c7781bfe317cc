package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/builder-project/builder/builder"
)

// renderer prints build events: "plain" writes one line per event and the
// steps' output prefixed by their step; "tty" keeps one status line per
// running step; "quiet" prints nothing.
type renderer struct {
	mode    string
	w       io.Writer
	mu      sync.Mutex
	running map[string]builder.Event
	// transfers prints the pulls a build does.
	transfers *transferPrinter
	start     time.Time
	lines     int
	stop      chan struct{}
	done      chan struct{}
}

func newRenderer(mode string, w io.Writer) (*renderer, error) {
	if mode == "auto" {
		mode = "plain"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb" {
			mode = "tty"
		}
	}
	switch mode {
	case "plain", "tty", "quiet":
	default:
		return nil, fmt.Errorf("--progress %q: want auto, plain, tty or quiet", mode)
	}
	r := &renderer{mode: mode, w: w, running: map[string]builder.Event{}, transfers: newTransferPrinter(w), start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if mode == "tty" {
		go r.tick()
	} else {
		close(r.done)
	}
	return r, nil
}

func label(ev builder.Event) string {
	return fmt.Sprintf("[%s %d/%d] %s", ev.Stage, ev.Step, ev.Steps, ev.Name)
}

func (r *renderer) event(ev builder.Event) {
	if r.mode == "quiet" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := fmt.Sprintf("%s/%d", ev.Stage, ev.Step)
	switch ev.Kind {
	case builder.Warning:
		r.clear()
		fmt.Fprintf(r.w, "WARNING: %s\n", ev.Message)
	case builder.Transfer:
		r.clear()
		r.transfers.event(ev)
	case builder.BuildDone, builder.Info:
		r.clear()
		fmt.Fprintf(r.w, "%s\n", ev.Message)
	case builder.StepStarted:
		r.running[key] = ev
		if r.mode == "plain" {
			fmt.Fprintf(r.w, "#%s %s\n", key, label(ev))
		}
	case builder.StepCached:
		r.clear()
		fmt.Fprintf(r.w, "#%s %s CACHED\n", key, label(ev))
	case builder.StepLog:
		if r.mode == "plain" {
			for _, line := range strings.SplitAfter(string(ev.Log), "\n") {
				if line != "" {
					fmt.Fprintf(r.w, "#%s %s", key, line)
					if !strings.HasSuffix(line, "\n") {
						fmt.Fprintln(r.w)
					}
				}
			}
		}
	case builder.StepDone:
		delete(r.running, key)
		r.clear()
		status := "DONE"
		if ev.Err != nil {
			status = "ERROR"
		}
		fmt.Fprintf(r.w, "#%s %s %s %.1fs\n", key, label(ev), status, ev.Duration.Seconds())
	}
	r.draw()
}

// clear erases the tty status lines.
func (r *renderer) clear() {
	if r.mode != "tty" {
		return
	}
	for ; r.lines > 0; r.lines-- {
		fmt.Fprint(r.w, "\033[1A\033[2K")
	}
}

// draw prints one status line per running step (tty only).
func (r *renderer) draw() {
	if r.mode != "tty" {
		return
	}
	r.clear()
	for _, ev := range r.running {
		fmt.Fprintf(r.w, "=> %s %.1fs\n", label(ev), time.Since(ev.Time).Seconds())
		r.lines++
	}
}

func (r *renderer) tick() {
	defer close(r.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.mu.Lock()
			r.draw()
			r.mu.Unlock()
		}
	}
}

func (r *renderer) close() {
	if r.mode == "tty" {
		close(r.stop)
	}
	<-r.done
	r.mu.Lock()
	r.clear()
	r.mu.Unlock()
}
