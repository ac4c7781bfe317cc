package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// vtScreen is a tiny VT100 screen for tests of what the CLI draws on a
// terminal: it replays bytes into a grid of cols×rows cells as xterm does
// (CR, LF with scrolling, BS, cursor up and down, erase in line and in
// display; SGR is ignored) and keeps the lines that scrolled off the top.
// What it does not understand, and every line that would wrap, is
// recorded as a problem: a view that fits the terminal never wraps.
type vtScreen struct {
	mu         sync.Mutex
	cols, rows int
	grid       [][]rune // a wide character is followed by a 0 cell
	history    []string // lines scrolled off the top
	x, y       int
	n          int // bytes received
	problems   []string
	esc        []byte // an escape sequence being read
	carry      []byte // an incomplete UTF-8 character
}

func newVTScreen(cols, rows int) *vtScreen {
	s := &vtScreen{cols: cols, rows: rows}
	for range rows {
		s.grid = append(s.grid, s.blank())
	}
	return s
}

func (s *vtScreen) blank() []rune {
	row := make([]rune, s.cols)
	for i := range row {
		row[i] = ' '
	}
	return row
}

// Write implements io.Writer.
func (s *vtScreen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n += len(p)
	b := append(s.carry, p...)
	s.carry = nil
	for len(b) > 0 {
		if !utf8.FullRune(b) {
			s.carry = append([]byte(nil), b...)
			break
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		s.put(r)
	}
	return len(p), nil
}

func (s *vtScreen) put(r rune) {
	if s.esc != nil {
		s.esc = utf8.AppendRune(s.esc, r)
		if len(s.esc) == 2 && r != '[' {
			s.problem("escape sequence %q", s.esc)
			s.esc = nil
		} else if len(s.esc) > 2 && r >= 0x40 && r <= 0x7e {
			s.csi(string(s.esc[2:len(s.esc)-1]), r)
			s.esc = nil
		}
		return
	}
	switch r {
	case 0x1b:
		s.esc = []byte{0x1b}
	case '\r':
		s.x = 0
	case '\n':
		s.lineFeed()
	case '\b':
		s.x = max(s.x-1, 0)
	default:
		if r < 0x20 || r == 0x7f {
			s.problem("control character %q", r)
			return
		}
		w := runeWidth(r)
		if w == 0 {
			return
		}
		if s.x+w > s.cols {
			s.problem("line %q wraps", strings.TrimRight(string(s.grid[s.y]), " "))
			s.x = 0
			s.lineFeed()
		}
		s.grid[s.y][s.x] = r
		if w == 2 {
			s.grid[s.y][s.x+1] = 0
		}
		s.x += w
	}
}

func (s *vtScreen) lineFeed() {
	if s.y < s.rows-1 {
		s.y++
		return
	}
	s.history = append(s.history, rowText(s.grid[0]))
	s.grid = append(s.grid[1:], s.blank())
}

// csi performs "ESC [ params final".
func (s *vtScreen) csi(params string, final rune) {
	n := 1
	if params != "" && final != 'm' {
		v, err := strconv.Atoi(params)
		if err != nil {
			s.problem("CSI %q%c", params, final)
			return
		}
		n = v
	}
	switch final {
	case 'm': // SGR
	case 'A':
		s.y = max(s.y-max(n, 1), 0)
	case 'B':
		s.y = min(s.y+max(n, 1), s.rows-1)
	case 'K':
		switch {
		case params == "" || n == 0:
			for i := s.x; i < s.cols; i++ {
				s.grid[s.y][i] = ' '
			}
		case n == 2:
			s.grid[s.y] = s.blank()
		default:
			s.problem("CSI %sK", params)
		}
	case 'J':
		if params != "" && n != 0 {
			s.problem("CSI %sJ (only erasing below the cursor is expected)", params)
			return
		}
		for i := s.x; i < s.cols; i++ {
			s.grid[s.y][i] = ' '
		}
		for y := s.y + 1; y < s.rows; y++ {
			s.grid[y] = s.blank()
		}
	default:
		s.problem("CSI %q%c", params, final)
	}
}

func (s *vtScreen) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// resize changes the size as xterm does: no reflow, cut or padded rows;
// the cursor stays on its line, which moves up if rows shrink.
func (s *vtScreen) resize(cols, rows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.grid) > rows { // the top lines scroll off
		s.history = append(s.history, rowText(s.grid[0]))
		s.grid = s.grid[1:]
		s.y--
	}
	s.cols, s.rows = cols, rows
	for i, row := range s.grid {
		nr := s.blank()
		copy(nr, row)
		if cols < len(row) && cols > 0 && nr[cols-1] != 0 && runeWidth(nr[cols-1]) == 2 {
			nr[cols-1] = ' '
		}
		s.grid[i] = nr
	}
	for len(s.grid) < rows {
		s.grid = append(s.grid, s.blank())
	}
	s.x = min(s.x, cols-1)
}

func rowText(row []rune) string {
	var b strings.Builder
	for _, r := range row {
		if r != 0 {
			b.WriteRune(r)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// screen returns the visible lines, trailing blank ones dropped.
func (s *vtScreen) screen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, row := range s.grid {
		out = append(out, rowText(row))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// transcript returns the lines that scrolled off, then the screen.
func (s *vtScreen) transcript() []string {
	s.mu.Lock()
	h := append([]string(nil), s.history...)
	s.mu.Unlock()
	return append(h, s.screen()...)
}

func (s *vtScreen) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *vtScreen) errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// TestVTScreen checks the emulator the tty tests rely on.
func TestVTScreen(t *testing.T) {
	s := newVTScreen(10, 3)
	s.Write([]byte("one\r\ntwo\r\nthree\r\n"))
	s.Write([]byte("\x1b[2Athree!\x1b[K\r\n\x1b[1B\x1b[31m漢字\x1b[0m\r\n"))
	if got, want := strings.Join(s.transcript(), "|"), "one|three!|three|漢字"; got != want {
		t.Errorf("transcript %q, want %q", got, want)
	}
	s.Write([]byte("\x1b[1A\r\x1b[J"))
	if got, want := strings.Join(s.screen(), "|"), "three"; got != want {
		t.Errorf("after erase below: %q, want %q", got, want)
	}
	if len(s.errors()) != 0 {
		t.Errorf("problems: %q", s.errors())
	}
	s.Write([]byte("0123456789x\x1b[H"))
	if got := s.errors(); len(got) != 2 || !strings.Contains(got[0], "wraps") || !strings.Contains(got[1], `CSI ""H`) {
		t.Errorf("problems: %q", got)
	}
}
