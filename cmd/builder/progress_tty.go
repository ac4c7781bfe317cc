package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/builder-project/builder/builder"
	units "github.com/docker/go-units"
	"golang.org/x/term"
)

// frameInterval is the tty view's frame rate limit: at most 10 frames a
// second, whatever the rate of events.
const frameInterval = 100 * time.Millisecond

// stepStatus is where a step is in the tty view.
type stepStatus int

const (
	stepRunning stepStatus = iota
	stepCached
	stepDone
	stepFailed
	stepCanceled
)

// ttyStep is one step line of the tty view.
type ttyStep struct {
	label   string // "[build 2/4] RUN make"
	status  stepStatus
	started time.Time
	took    time.Duration // once finished
	logs    logTail
}

// ttyOptions are the tty view's seams for tests. The zero value reads the
// clock and the terminal's size, and draws a frame every frameInterval.
type ttyOptions struct {
	now    func() time.Time
	size   func() (cols, rows int)
	manual bool // no frame timer: frames are drawn by flush and close
	color  bool // SGR colours
}

// ttyView shows a build as BuildKit's terminal view does: one line per
// step, "=> [stage n/m] INSTRUCTION" with its time on the right, in the
// order the steps started; under each running step the last lines of its
// output; a summary line at the end. Lines never reach the terminal's last
// column, so none wraps (the width is read again for every frame, so that
// a resized terminal gets lines that fit). Steps that finished before
// every running one scroll up for good; the lines below them are the live
// part, redrawn in place: each frame moves the cursor up to the first line
// that changed and rewrites only the changed lines.
type ttyView struct {
	w    io.Writer
	opts ttyOptions

	mu        sync.Mutex
	start     time.Time
	steps     map[string]*ttyStep
	order     []*ttyStep // as the steps started; never reordered
	committed int        // order[:committed] are printed for good
	pending   []any      // steps and messages (string) to print for good
	transfers map[string]builder.Event
	tids      []string // transfer IDs, as they came
	screen    []string // the live lines on the terminal now

	stop chan struct{}
	done chan struct{}
}

func newTTYView(w io.Writer, opts ttyOptions) *ttyView {
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.size == nil {
		opts.size = func() (int, int) { return terminalSize(w) }
	}
	v := &ttyView{w: w, opts: opts, start: opts.now(), steps: map[string]*ttyStep{}, transfers: map[string]builder.Event{}, stop: make(chan struct{}), done: make(chan struct{})}
	if opts.manual {
		close(v.done)
	} else {
		go v.tick()
	}
	return v
}

// terminalSize is the size of the terminal w is, 80×24 when unknown.
func terminalSize(w io.Writer) (cols, rows int) {
	if f, ok := w.(*os.File); ok {
		if c, r, err := term.GetSize(int(f.Fd())); err == nil && c > 0 && r > 0 {
			return c, r
		}
	}
	return 80, 24
}

func (v *ttyView) tick() {
	defer close(v.done)
	t := time.NewTicker(frameInterval)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.flush()
		}
	}
}

// flush draws a frame now.
func (v *ttyView) flush() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.frame(nil)
}

func (v *ttyView) event(ev builder.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch ev.Kind {
	case builder.Warning:
		v.note("WARNING: " + ev.Message)
	case builder.Info, builder.BuildDone:
		v.note(ev.Message)
	case builder.Transfer:
		if ev.ID == "" {
			v.note(ev.Message)
			return
		}
		if _, ok := v.transfers[ev.ID]; !ok {
			v.tids = append(v.tids, ev.ID)
		}
		v.transfers[ev.ID] = ev
	case builder.StepStarted, builder.StepCached, builder.StepLog, builder.StepDone:
		s := v.step(ev)
		switch ev.Kind {
		case builder.StepCached:
			s.status, s.took = stepCached, 0
		case builder.StepLog:
			s.logs.write(ev.Log)
		case builder.StepDone:
			s.status, s.took = stepDone, ev.Duration
			switch {
			case errors.Is(ev.Err, context.Canceled):
				s.status = stepCanceled
			case ev.Err != nil:
				s.status = stepFailed
			}
		}
	}
}

// note prints msg above the live part, below the steps finished before it.
func (v *ttyView) note(msg string) {
	v.finished(false)
	v.pending = append(v.pending, msg)
}

// finished moves the steps that finished before every running one, or
// with all every step, to the lines to print for good.
func (v *ttyView) finished(all bool) {
	for v.committed < len(v.order) && (all || v.order[v.committed].status != stepRunning) {
		v.pending = append(v.pending, v.order[v.committed])
		v.committed++
	}
}

// step returns the step of ev, adding it below the others if it is new.
func (v *ttyView) step(ev builder.Event) *ttyStep {
	id := stepID(ev)
	s := v.steps[id]
	if s == nil {
		s = &ttyStep{started: ev.Time}
		if s.started.IsZero() {
			s.started = v.opts.now()
		}
		v.steps[id] = s
		v.order = append(v.order, s)
	}
	if ev.Kind != builder.StepLog || s.label == "" {
		s.label = fmt.Sprintf("[%s %d/%d] %s", ev.Stage, ev.Step, ev.Steps, oneLine(ev.Name))
	}
	return s
}

func (v *ttyView) close(err error) {
	select {
	case <-v.stop:
	default:
		close(v.stop)
	}
	<-v.done
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.opts.now()
	var failed []string
	for _, s := range v.order {
		if s.status == stepRunning {
			s.status, s.took = stepCanceled, now.Sub(s.started)
		}
		if s.status == stepFailed {
			failed = append(failed, s.label)
		}
	}
	took := fmt.Sprintf("%.1fs", now.Sub(v.start).Seconds())
	summary := "Finished in " + took
	switch {
	case err == nil:
	case len(failed) > 0:
		summary = fmt.Sprintf("Failed in %s: %s", took, strings.Join(failed, ", "))
	case errors.Is(err, context.Canceled):
		summary = "Canceled after " + took
	default:
		summary = "Failed in " + took
	}
	v.frame(&summary)
}

// SGR sequences of the view.
const (
	sgrReset = "\x1b[0m"
	sgrBlue  = "\x1b[34m"
	sgrRed   = "\x1b[31m"
	sgrDim   = "\x1b[2m"
)

func (v *ttyView) paint(sgr, s string) string {
	if !v.opts.color || sgr == "" || s == "" {
		return s
	}
	return sgr + s + sgrReset
}

// frame draws the view; summary, when not nil, ends it for good.
func (v *ttyView) frame(summary *string) {
	cols, rows := v.opts.size()
	width := max(cols-1, 1) // the last column stays free: no line wraps
	now := v.opts.now()
	v.finished(summary != nil)
	var lines []string
	for _, p := range v.pending {
		switch p := p.(type) {
		case string:
			lines = append(lines, wrap(p, width)...)
		case *ttyStep:
			lines = append(lines, v.stepLine(p, now, width))
		}
	}
	v.pending = nil
	var live []string
	if summary != nil {
		lines = append(lines, wrap(*summary, width)...)
	} else {
		live = v.live(now, width, max(rows-1, 1))
	}
	v.draw(append(lines, live...), len(live))
}

// stepLine renders s: "=> [build 2/4] RUN make" and its time on the right.
func (v *ttyView) stepLine(s *ttyStep, now time.Time, width int) string {
	prefix, sgr := "=> ", ""
	took := s.took
	switch s.status {
	case stepRunning:
		sgr, took = sgrBlue, now.Sub(s.started)
	case stepCached:
		prefix += "CACHED "
	case stepFailed:
		prefix, sgr = prefix+"ERROR ", sgrRed
	case stepCanceled:
		prefix, sgr = prefix+"CANCELED ", sgrRed
	}
	right := fmt.Sprintf("%.1fs", max(took, 0).Seconds())
	left := prefix + s.label
	room := width - textWidth(right) - 1
	if room < 12 {
		return v.paint(sgr, truncate(left+" "+right, width))
	}
	left = truncate(left, room)
	return v.paint(sgr, left+strings.Repeat(" ", room-textWidth(left))+" "+right)
}

// live renders the steps that are not printed for good, the output of the
// running ones under them, then the layers being downloaded, in at most
// limit lines: output goes first when they do not fit, then steps.
func (v *ttyView) live(now time.Time, width, limit int) []string {
	steps := v.order[v.committed:]
	var transfers []string
	for _, id := range v.tids {
		ev := v.transfers[id]
		if ev.Total > 0 && ev.Current < ev.Total {
			transfers = append(transfers, v.paint(sgrDim, truncate(fmt.Sprintf("   %s %s %s/%s", id, ev.Message, units.HumanSize(float64(ev.Current)), units.HumanSize(float64(ev.Total))), width)))
		}
	}
	var out []string
	for _, s := range steps {
		out = append(out, v.stepLine(s, now, width))
		if s.status == stepRunning {
			for _, l := range s.logs.tail() {
				out = append(out, v.paint(sgrDim, truncate("   "+l, width)))
			}
		}
	}
	if out = append(out, transfers...); len(out) <= limit {
		return out
	}
	out = out[:0]
	for _, s := range steps {
		out = append(out, v.stepLine(s, now, width))
	}
	if len(out) > limit {
		more := len(out) - limit + 1
		out = append(out[:limit-1], truncate(fmt.Sprintf("=> ... %d more steps", more), width))
	}
	return out
}

// draw writes lines below what is printed for good, over the live lines
// of the last frame; the last nLive of them are the new live lines.
func (v *ttyView) draw(lines []string, nLive int) {
	prev := v.screen
	i := 0
	for i < len(prev) && i < len(lines) && prev[i] == lines[i] {
		i++
	}
	var b bytes.Buffer
	if i < len(prev) || i < len(lines) {
		b.WriteByte('\r')
		if up := len(prev) - i; up > 0 {
			fmt.Fprintf(&b, "\x1b[%dA", up)
		}
		skip := 0
		for j := i; j < len(lines); j++ {
			if j < len(prev) && prev[j] == lines[j] {
				skip++
				continue
			}
			if skip > 0 {
				fmt.Fprintf(&b, "\x1b[%dB", skip)
				skip = 0
			}
			b.WriteString(lines[j])
			b.WriteString("\x1b[K\n")
		}
		if skip > 0 {
			fmt.Fprintf(&b, "\x1b[%dB", skip)
		}
		if len(lines) < len(prev) {
			b.WriteString("\x1b[J")
		}
	}
	v.screen = append([]string(nil), lines[len(lines)-nLive:]...)
	if b.Len() > 0 {
		_, _ = v.w.Write(b.Bytes())
	}
}
