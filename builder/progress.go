package builder

import "time"

// EventKind says what an Event reports.
type EventKind int

// Event kinds, in the order a step emits them.
const (
	// StepStarted: a step began executing (a cache miss).
	StepStarted EventKind = iota
	// StepCached: a step was satisfied from the build cache.
	StepCached
	// StepLog: output of a running step (Log holds a chunk).
	StepLog
	// StepDone: a step finished; Err is set if it failed.
	StepDone
	// Warning: a non-fatal message about the build (Message).
	Warning
	// BuildDone: the build finished (Message holds a summary).
	BuildDone
	// Info: a message about the build worth showing (Message), such as
	// how many cache entries --cache-from imported.
	Info
	// Transfer: progress of a pull or push, in docker's words: Message is
	// the status ("Pulling fs layer", "Downloading", "Pushed", ...), ID the
	// layer's short digest ("" for lines about the whole image), Current
	// and Total the bytes done and to do while a blob moves.
	Transfer
)

// Event is one progress report of a build. The library never writes to the
// terminal; the CLI renders events.
type Event struct {
	Kind EventKind
	// Stage is the stage's display name ("build", "stage-0").
	Stage string
	// Step is the 1-based position of the step in its stage, Steps the
	// number of steps in that stage. As in BuildKit, the stage's FROM is
	// its step 1 ("FROM alpine", StepCached when the base image is stored,
	// StepStarted then StepDone while it is pulled), the base image's
	// ONBUILD triggers come next, then the stage's own instructions.
	// Stage and Step identify a step within a build.
	Step, Steps int
	// Name is the instruction as written ("RUN make"); it may span lines.
	Name string
	// Log is output of the step, for StepLog.
	Log []byte
	// Duration is how long the step took, for StepDone.
	Duration time.Duration
	// Err is the step's error, for StepDone.
	Err error
	// Message is the text of Warning, BuildDone, Info and Transfer.
	Message string
	// ID is the layer a Transfer event is about.
	ID string
	// Current and Total are the bytes done and to do of a Transfer.
	Current, Total int64
	// Time is when the event happened.
	Time time.Time
}

// emitter serializes events to the user's callback.
type emitter struct {
	fn func(Event)
	ch chan Event
}

func (e *emitter) emit(ev Event) {
	if e == nil || e.fn == nil {
		return
	}
	ev.Time = time.Now()
	e.ch <- ev
}

func newEmitter(fn func(Event)) (*emitter, func()) {
	e := &emitter{fn: fn, ch: make(chan Event, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range e.ch {
			if fn != nil {
				fn(ev)
			}
		}
	}()
	return e, func() { close(e.ch); <-done }
}

// logWriter turns a step's output into StepLog events and keeps its tail
// for the error message of a failing step.
type logWriter struct {
	e    *emitter
	base Event
	tail []byte
}

const tailSize = 4 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	ev := w.base
	ev.Kind = StepLog
	ev.Log = append([]byte(nil), p...)
	w.e.emit(ev)
	w.tail = append(w.tail, p...)
	if len(w.tail) > 2*tailSize {
		w.tail = append([]byte(nil), w.tail[len(w.tail)-tailSize:]...)
	}
	return len(p), nil
}

func (w *logWriter) Tail() string {
	t := w.tail
	if len(t) > tailSize {
		t = t[len(t)-tailSize:]
	}
	return string(t)
}
