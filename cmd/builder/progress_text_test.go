package main

import (
	"slices"
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"RUN make", 20, "RUN make"},
		{"RUN make", 8, "RUN make"},
		{"RUN make all", 8, "RUN m..."},
		{"漢字漢字", 8, "漢字漢字"},
		{"漢字漢字漢", 8, "漢字..."},
		{"漢字漢字漢", 6, "漢..."},                            // a wide character that would end past the room is left out
		{"e\u0301te\u0301 ok", 6, "e\u0301te\u0301 ok"}, // combining accents take no column
		{"abcdef", 2, ".."},
		{"abcdef", 0, ""},
	} {
		got := truncate(tc.in, tc.max)
		if got != tc.want || textWidth(got) > tc.max {
			t.Errorf("truncate(%q, %d) = %q (%d columns), want %q", tc.in, tc.max, got, textWidth(got), tc.want)
		}
	}
}

func TestWrapAndOneLine(t *testing.T) {
	if got, want := oneLine("RUN apt-get update \\\n\t&&  apt-get install -y \\\n\tcurl\n"), `RUN apt-get update \ && apt-get install -y \ curl`; got != want {
		t.Errorf("oneLine: %q, want %q", got, want)
	}
	if got, want := wrap("WARNING: 漢字 in a long\nsecond line", 10), []string{"WARNING: ", "漢字 in a ", "long", "second lin", "e"}; !slices.Equal(got, want) {
		t.Errorf("wrap: %q, want %q", got, want)
	}
	for _, l := range wrap(strings.Repeat("漢", 9), 5) {
		if textWidth(l) > 5 {
			t.Errorf("wrapped line %q is wider than 5 columns", l)
		}
	}
}

// TestLogTail: a step's output is kept as a terminal shows it, whatever
// the writes split.
func TestLogTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lines", []string{"one\ntwo\n", "three"}, []string{"one", "two", "three"}},
		{"last six", []string{"1\n2\n3\n4\n5\n6\n7\n8\n"}, []string{"3", "4", "5", "6", "7", "8"}},
		{"crlf", []string{"one\r\ntwo\r", "\n"}, []string{"one", "two"}},
		{"progress bar", []string{"  0%\r 50%", "\r100%\n"}, []string{"100%"}},
		{"colours and titles", []string{"\x1b[1;3", "2mok\x1b[0m \x1b]0;title\x07done\x1b(B\n"}, []string{"ok done"}},
		{"string ended by ST", []string{"a\x1bP1;2q\x1b\\b\n"}, []string{"ab"}},
		{"tabs", []string{"a\tb\n"}, []string{"a       b"}},
		{"backspace", []string{"abc\b\bX\n"}, []string{"aXc"}},
		{"split UTF-8", []string{"漢"[:2], "漢"[2:] + "\n"}, []string{"漢"}},
		{"invalid UTF-8", []string{"a\xffb\n"}, []string{"a\uFFFDb"}},
		{"control characters", []string{"a\x00\x07b\n"}, []string{"ab"}},
		{"long line", []string{strings.Repeat("x", 2*maxLineRunes) + "\n"}, []string{strings.Repeat("x", maxLineRunes)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lt logTail
			for _, w := range tc.writes {
				lt.write([]byte(w))
			}
			if got := lt.tail(); !slices.Equal(got, tc.want) {
				t.Errorf("tail %q, want %q", got, tc.want)
			}
		})
	}
}
