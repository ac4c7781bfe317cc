package testutil

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// MarkerEnv names the environment variable that tags the processes of one
// test, so that process checks look at the test's own processes only.
const MarkerEnv = "BUILDER_TEST_MARKER"

// NewMarker returns a random value for MarkerEnv.
func NewMarker(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// MarkedProcesses lists the pids whose command line contains cmd ("" for
// any) and whose environment holds MarkerEnv=marker. Processes that exit
// while /proc is read are skipped; any other error fails t, since a check
// that cannot look must not pass.
func MarkedProcesses(t testing.TB, cmd, marker string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("listing processes: %v", err)
	}
	gone := func(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) }
	want := []byte(MarkerEnv + "=" + marker)
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if gone(err) {
			continue
		} else if err != nil {
			t.Fatalf("reading command line of pid %s: %v", e.Name(), err)
		}
		if !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), cmd) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if gone(err) {
			continue
		} else if err != nil {
			t.Fatalf("reading environment of pid %s (%q): %v", e.Name(), b, err)
		}
		if slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) {
			out = append(out, e.Name())
		}
	}
	return out
}
