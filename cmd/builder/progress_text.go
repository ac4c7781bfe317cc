package main

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// runeWidth is how many terminal columns r takes: 2 for East Asian wide
// and fullwidth characters, 0 for combining marks, format and control
// characters, else 1.
func runeWidth(r rune) int {
	switch {
	case r < 0x20 || (r >= 0x7f && r < 0xa0):
		return 0
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// textWidth is how many terminal columns s takes.
func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// ellipsis ends a truncated line.
const ellipsis = "..."

// truncate cuts s to at most max columns; a cut line ends with "...".
func truncate(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if textWidth(s) <= max {
		return s
	}
	room := max - len(ellipsis)
	if room < 0 {
		return ellipsis[:max]
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		rw := runeWidth(r)
		if w+rw > room {
			break
		}
		b.WriteRune(r)
		w += rw
	}
	return b.String() + ellipsis
}

// wrap cuts each line of s into lines of at most width columns, so
// that a message is shown whole without the terminal wrapping it.
func wrap(s string, width int) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		var b strings.Builder
		w := 0
		for _, r := range oneLine(line) {
			rw := runeWidth(r)
			if w+rw > width && w > 0 {
				out = append(out, b.String())
				b.Reset()
				w = 0
			}
			b.WriteRune(r)
			w += rw
		}
		out = append(out, b.String())
	}
	return out
}

// oneLine makes an instruction that may span lines (continuations,
// heredocs) fit one line: every run of white space becomes one space and
// other control characters go.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case r < 0x20 || r == 0x7f:
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tailLines is how many output lines of a running step the tty view shows.
const tailLines = 6

// maxLineRunes bounds a line of output kept for display: only its start
// can be shown anyway.
const maxLineRunes = 512

// escape states of logTail.
const (
	escNone   = iota
	escStart  // after ESC
	escInter  // after ESC and an intermediate byte ("ESC ( B")
	escCSI    // in "ESC [ ... final"
	escString // in OSC, DCS, APC, PM or SOS, up to BEL or ST
	escStringEsc
)

// logTail keeps the last lines of a step's output as a terminal would
// show them: escape sequences (colours, cursor moves, titles) are dropped,
// a carriage return goes back to the start of the line so that progress
// bars overwrite themselves, tabs become spaces, and invalid UTF-8 shows
// as U+FFFD. Writes may split lines, sequences and characters anywhere.
type logTail struct {
	lines []string // the last complete lines, at most tailLines
	cur   []rune   // the line being written
	pos   int      // the cursor in cur
	state int
	carry []byte // an incomplete UTF-8 character
}

func (t *logTail) write(p []byte) {
	if len(t.carry) > 0 {
		p = append(t.carry, p...)
		t.carry = nil
	}
	for len(p) > 0 {
		if !utf8.FullRune(p) {
			t.carry = append([]byte(nil), p...)
			return
		}
		r, n := utf8.DecodeRune(p)
		p = p[n:]
		t.rune(r)
	}
}

func (t *logTail) rune(r rune) {
	switch t.state {
	case escStart:
		switch {
		case r == '[':
			t.state = escCSI
		case r == ']' || r == 'P' || r == '_' || r == '^' || r == 'X':
			t.state = escString
		case r >= 0x20 && r <= 0x2f:
			t.state = escInter
		default:
			t.state = escNone
		}
		return
	case escInter:
		if r < 0x20 || r > 0x2f {
			t.state = escNone
		}
		return
	case escCSI:
		if r >= 0x40 && r <= 0x7e {
			t.state = escNone
		}
		return
	case escString:
		switch r {
		case 0x07:
			t.state = escNone
		case 0x1b:
			t.state = escStringEsc
		}
		return
	case escStringEsc:
		t.state = escNone
		return
	}
	switch r {
	case 0x1b:
		t.state = escStart
	case '\n':
		t.lines = append(t.lines, strings.TrimRight(string(t.cur), " "))
		if len(t.lines) > tailLines {
			t.lines = t.lines[len(t.lines)-tailLines:]
		}
		t.cur, t.pos = t.cur[:0], 0
	case '\r':
		t.pos = 0
	case '\b':
		if t.pos > 0 {
			t.pos--
		}
	case '\t':
		for {
			t.put(' ')
			if t.pos%8 == 0 {
				break
			}
		}
	default:
		if runeWidth(r) > 0 || unicode.In(r, unicode.Mn, unicode.Me) {
			t.put(r)
		}
	}
}

// put writes r at the cursor.
func (t *logTail) put(r rune) {
	switch {
	case t.pos < len(t.cur):
		t.cur[t.pos] = r
	case len(t.cur) < maxLineRunes:
		t.cur = append(t.cur, r)
	default:
		return
	}
	t.pos++
}

// tail returns the last tailLines lines, the one being written included.
func (t *logTail) tail() []string {
	out := t.lines
	if len(t.cur) > 0 {
		out = append(append([]string(nil), out...), strings.TrimRight(string(t.cur), " "))
	}
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}
