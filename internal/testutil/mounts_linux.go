package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// MountsBelow returns the mount points of this process's mount namespace
// that are one of dirs or lie below one of them, read from
// /proc/self/mountinfo. Tests use it to look at their own fixtures only:
// the rest of the machine may mount and unmount at any time. Symlinks in
// dirs are resolved first, since the kernel reports resolved paths. If
// mountinfo cannot be read or parsed, t fails: a check that cannot look
// must not pass.
func MountsBelow(t testing.TB, dirs ...string) []string {
	t.Helper()
	if len(dirs) == 0 {
		t.Fatal("MountsBelow: no directories given")
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("reading mount table: %v", err)
	}
	points, err := parseMountPoints(string(data))
	if err != nil {
		t.Fatalf("parsing /proc/self/mountinfo: %v", err)
	}
	var roots []string
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		// A directory already removed keeps its name; anything mounted
		// below it would have kept it alive, so the name still matches.
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			abs = r
		}
		roots = append(roots, abs)
	}
	var out []string
	for _, p := range points {
		for _, r := range roots {
			if isBelow(p, r) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// NoMountsBelow fails t if anything is mounted at or below one of dirs.
func NoMountsBelow(t testing.TB, dirs ...string) {
	t.Helper()
	if m := MountsBelow(t, dirs...); len(m) != 0 {
		t.Errorf("mounts left at or below the test's directories %q:\n%s", dirs, strings.Join(m, "\n"))
	}
}

func isBelow(p, root string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// parseMountPoints returns the mount point (field 5) of each line of a
// mountinfo file, unescaped.
func parseMountPoints(data string) ([]string, error) {
	var out []string
	for i, line := range strings.Split(data, "\n") {
		if line == "" {
			continue
		}
		// Escaping leaves no blank inside a field: "ID parent maj:min
		// root mountpoint options [optional...] - fstype source super".
		f := strings.Fields(line)
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if len(f) < 7 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("line %d is malformed: %q", i+1, line)
		}
		p, err := unescapeMountinfo(f[4])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no mounts listed")
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 space, \011
// tab, \012 newline, \134 backslash) and drops the " (deleted)" the kernel
// appends to a mount point whose directory was removed.
func unescapeMountinfo(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q: %w", s, err)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return strings.TrimSuffix(b.String(), " (deleted)"), nil
}
