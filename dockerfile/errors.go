package dockerfile

import (
	"errors"
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Error is a Dockerfile error with its location. Error() reads
// "Dockerfile:7: unknown instruction: RUNN (did you mean RUN?)"; File is the
// name passed to Parse. A zero StartLine means the error has no line (for
// example an unknown --target). Unwrap returns Err.
type Error struct {
	File      string
	StartLine int
	EndLine   int
	Err       error
}

// Error implements error.
func (e *Error) Error() string {
	if e.StartLine <= 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.StartLine, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Location is a line range in a Dockerfile (1-based, inclusive).
type Location struct {
	File      string
	StartLine int
	EndLine   int
}

// String renders the location as "file:start" or "file:start-end".
func (l Location) String() string {
	if l.EndLine > l.StartLine {
		return fmt.Sprintf("%s:%d-%d", l.File, l.StartLine, l.EndLine)
	}
	return fmt.Sprintf("%s:%d", l.File, l.StartLine)
}

// errorAt returns err as an *Error located at loc. An err that already is an
// *Error is returned unchanged.
func errorAt(loc Location, err error) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return err
	}
	return &Error{File: loc.File, StartLine: loc.StartLine, EndLine: loc.EndLine, Err: err}
}

// fromBuildKit converts an error returned by BuildKit's parser or
// instructions package into an *Error. The location comes from the
// parser.LocationError in the chain; the message is the innermost located
// error, without BuildKit's "dockerfile parse error on line N:" prefix.
func fromBuildKit(file string, err error, fallback Location) error {
	if err == nil {
		return nil
	}
	var le *parser.LocationError
	if !errors.As(err, &le) {
		return errorAt(fallback, err)
	}
	loc := fallback
	if start, end, ok := rangeOf(le.Locations); ok {
		loc = Location{File: file, StartLine: start, EndLine: end}
	}
	return errorAt(loc, le.Unwrap())
}

// rangeOf returns the smallest and largest line of the first non-empty
// location list.
func rangeOf(locs [][]parser.Range) (start, end int, ok bool) {
	for _, rs := range locs {
		if len(rs) == 0 {
			continue
		}
		start, end = rs[0].Start.Line, rs[0].End.Line
		for _, r := range rs {
			start = min(start, r.Start.Line)
			end = max(end, r.End.Line)
		}
		return start, end, true
	}
	return 0, 0, false
}

// location converts a BuildKit range list into a Location in file.
func location(file string, rs []parser.Range) Location {
	start, end, _ := rangeOf([][]parser.Range{rs})
	return Location{File: file, StartLine: start, EndLine: end}
}

// NewError returns err located at loc, for errors found while executing a
// step (a failing RUN, a missing COPY source). An err that already is an
// *Error is returned unchanged.
func NewError(loc Location, err error) error { return errorAt(loc, err) }
