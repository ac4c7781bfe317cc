package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestValidateBreakouts checks Validate against the breakout corpus: every
// layer Apply must refuse is refused, naming its entry, and every layer
// Apply must accept is accepted.
func TestValidateBreakouts(t *testing.T) {
	for _, tc := range breakoutCases("/outside", "/sentinel") {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(bytes.NewReader(buildTar(t, tc.entries...)))
			switch tc.want {
			case mustFail:
				if !errors.Is(err, ErrInvalidEntry) {
					t.Fatalf("Validate = %v, want an error wrapping ErrInvalidEntry", err)
				}
				if !strings.Contains(err.Error(), "entry ") {
					t.Errorf("error %q does not name the entry", err)
				}
			case mustSucceed:
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dev := func(name string, typ byte) tarEntry { return tarEntry{name: name, typ: typ, major: 1, minor: 3} }
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		// bad is the entry named in the error; "" means valid.
		bad string
		// stricter marks a layer Validate refuses although Apply, on a
		// directory holding nothing, would accept it.
		stricter bool
	}{
		{name: "plain tree", entries: []tarEntry{dir("./"), dir("etc"), file("etc/passwd", "root"), symlink("bin", "/usr/bin"), symlink("up", "../../..")}},
		{name: "absolute names", entries: []tarEntry{dir("/etc"), file("/etc/hosts", "h"), hardlink("/etc/h2", "/etc/hosts")}},
		{name: "hardlink chain", entries: []tarEntry{file("a", "a"), hardlink("b", "a"), hardlink("c", "./b"), symlink("s", "/nowhere"), hardlink("t", "s")}},
		{name: "devices and fifo", entries: []tarEntry{dev("null", tar.TypeChar), dev("blk", tar.TypeBlock), {name: "fifo", typ: tar.TypeFifo}, hardlink("null2", "null")}},
		{name: "whiteouts", entries: []tarEntry{dir("d"), file("d/.wh..wh..opq", ""), file(".wh.gone", ""), file("d/.wh.x", "")}},
		{name: "aufs bookkeeping", entries: []tarEntry{dir(".wh..wh.plnk"), file(".wh..wh.plnk/123", "x"), file(".wh..wh.aufs", "")}},
		{name: "dotdot that stays inside", entries: []tarEntry{dir("a"), file("a/../b", "b"), hardlink("c", "a/../b")}},

		{name: "dotdot name", entries: []tarEntry{file("ok", ""), file("a/../../x", "x")}, bad: "a/../../x"},
		{name: "absolute dotdot", entries: []tarEntry{file("/../x", "x")}, bad: "/../x"},
		{name: "whiteout that escapes", entries: []tarEntry{file("../.wh.x", "")}, bad: "../.wh.x"},
		{name: "whiteout of dotdot", entries: []tarEntry{file("d/.wh..", "")}, bad: "d/.wh.."},
		{name: "whiteout without a name", entries: []tarEntry{file(".wh.", "")}, bad: ".wh."},
		{name: "whiteout prefix in a directory", entries: []tarEntry{file(".wh.d/x", "")}, bad: ".wh.d/x"},
		{name: "hardlink out of the root", entries: []tarEntry{hardlink("h", "../etc/shadow")}, bad: "h"},
		{name: "hardlink to the root", entries: []tarEntry{hardlink("h", "/")}, bad: "h"},
		{name: "hardlink to itself", entries: []tarEntry{hardlink("h", "h")}, bad: "h"},
		{name: "hardlink to a missing file", entries: []tarEntry{file("a", "a"), hardlink("h", "b")}, bad: "h"},
		{name: "hardlink before its target", entries: []tarEntry{hardlink("h", "a"), file("a", "a")}, bad: "h"},
		{name: "hardlink to a directory", entries: []tarEntry{dir("d"), hardlink("h", "d")}, bad: "h"},
		{name: "hardlink through a symlink", entries: []tarEntry{dir("d"), file("d/f", "f"), symlink("s", "d"), hardlink("h", "s/f")}, bad: "h", stricter: true},
		{name: "hardlink into aufs bookkeeping", entries: []tarEntry{file(".wh..wh.plnk/1", "x"), hardlink("h", ".wh..wh.plnk/1")}, bad: "h"},
		{name: "root not a directory", entries: []tarEntry{file(".", "x")}, bad: "."},
		{name: "unsupported type", entries: []tarEntry{{name: "v", typ: tar.TypeGNULongName + 1}}, bad: "v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := buildTar(t, tc.entries...)
			err := Validate(bytes.NewReader(data))
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			} else {
				if !errors.Is(err, ErrInvalidEntry) {
					t.Fatalf("Validate = %v, want an error wrapping ErrInvalidEntry", err)
				}
				if want := "entry \"" + tc.bad + "\""; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			// Validate refuses only what Apply refuses too.
			_, aerr := Apply(context.Background(), t.TempDir(), bytes.NewReader(data), applyOpts(DirFormat))
			switch {
			case err == nil && aerr != nil:
				t.Errorf("Validate accepted a layer Apply refuses: %v", aerr)
			case err != nil && aerr == nil && !tc.stricter:
				t.Errorf("Validate refused a layer Apply accepts: %v", err)
			}
		})
	}
}

// TestValidateReadsEverything checks that a valid layer is read to EOF,
// trailing bytes included, so that a hasher upstream sees the whole blob,
// and that a tar that is no tar is an error.
func TestValidateReadsEverything(t *testing.T) {
	data := append(buildTar(t, dir("d"), file("d/f", strings.Repeat("x", 5000))), make([]byte, 4096)...)
	cr := &countingReader{r: bytes.NewReader(data)}
	if err := Validate(cr); err != nil {
		t.Fatal(err)
	}
	if cr.n != int64(len(data)) {
		t.Errorf("read %d of %d bytes", cr.n, len(data))
	}
	if _, err := cr.r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("bytes left after Validate: %v", err)
	}
	if err := Validate(strings.NewReader(`{"not": "a tar"}` + strings.Repeat(" ", 600))); err == nil || errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Validate of JSON = %v, want a tar read error", err)
	}
}
