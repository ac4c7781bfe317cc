package executor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// fixture is one container run's directories.
type fixture struct {
	lower, upper, work string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	testutil.RequirePrivileges(t, "root", "overlay")
	lower := testutil.BusyboxRootfs(t)
	dir := t.TempDir()
	f := fixture{lower: lower, upper: filepath.Join(dir, "upper"), work: filepath.Join(dir, "work")}
	for _, d := range []string{f.upper, f.work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f fixture) spec(args ...string) Spec {
	return Spec{Lowers: []string{f.lower}, Upper: f.upper, Work: f.work, Args: args}
}

// upperEntries lists the upperdir, relative paths, sorted by walk order.
func (f fixture) upperEntries(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(f.upper, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(f.upper, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, ex Executor, s Spec) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := ex.Run(ctx, s, IO{Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), stderr.String(), err
}

func mustRun(t *testing.T, ex Executor, s Spec) string {
	t.Helper()
	out, errOut, err := run(t, ex, s)
	if err != nil {
		t.Fatalf("running %q: %v\nstdout: %s\nstderr: %s", s.Args, err, out, errOut)
	}
	return out
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// executors returns the runtimes to test: the built-in one always, runc
// when installed (required under CI=true) and not under -short, where the
// external runtime's runs (half a second each) are left out.
func executors(t *testing.T) map[string]Executor {
	t.Helper()
	m := map[string]Executor{}
	b, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	m["builtin"] = b
	if testing.Short() {
		t.Log("-short: testing the built-in runtime only, not runc")
		return m
	}
	t.Run("runc-available", func(t *testing.T) { testutil.RequireTool(t, "runc") })
	if r, err := New(Runc); err == nil {
		m["runc"] = r
	}
	return m
}

// TestRunBasics runs the same basic checks on every runtime.
func TestRunBasics(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	for name, ex := range executors(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("stdout", func(t *testing.T) {
				f := newFixture(t)
				if out := mustRun(t, ex, f.spec("echo", "hello")); out != "hello\n" {
					t.Errorf("stdout = %q, want %q", out, "hello\n")
				}
				if got := f.upperEntries(t); len(got) != 0 {
					t.Errorf("upper after echo = %q, want empty (no stubs left)", got)
				}
			})
			t.Run("stderr-and-exit-code", func(t *testing.T) {
				f := newFixture(t)
				_, errOut, err := run(t, ex, f.spec(sh("echo oops >&2; exit 3")...))
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Code != 3 {
					t.Fatalf("err = %v, want ExitError{3}", err)
				}
				if errOut != "oops\n" {
					t.Errorf("stderr = %q", errOut)
				}
			})
			t.Run("write-lands-in-upper", func(t *testing.T) {
				f := newFixture(t)
				mustRun(t, ex, f.spec(sh("mkdir -p /srv/data && echo content > /srv/data/file")...))
				b, err := os.ReadFile(filepath.Join(f.upper, "srv/data/file"))
				if err != nil || string(b) != "content\n" {
					t.Fatalf("upper file = %q, %v", b, err)
				}
			})
			t.Run("delete-makes-whiteout", func(t *testing.T) {
				f := newFixture(t)
				mustRun(t, ex, f.spec("rm", "/etc/hostname"))
				var st syscall.Stat_t
				if err := syscall.Lstat(filepath.Join(f.upper, "etc/hostname"), &st); err != nil {
					t.Fatal(err)
				}
				if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
					t.Errorf("etc/hostname in upper: mode %o rdev %d, want char device 0:0", st.Mode, st.Rdev)
				}
			})
			t.Run("missing-command", func(t *testing.T) {
				f := newFixture(t)
				_, _, err := run(t, ex, f.spec("no-such-command"))
				var ee *ExitError
				if err == nil || (errors.As(err, &ee) && name == "builtin") {
					t.Fatalf("err = %v, want a setup error", err)
				}
				if !strings.Contains(err.Error(), "no-such-command") && !errors.As(err, &ee) {
					t.Errorf("err = %v, want it to name the command", err)
				}
			})
		})
	}
}
