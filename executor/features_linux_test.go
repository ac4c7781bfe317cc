package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

func builtinExecutor(t *testing.T) Executor {
	t.Helper()
	ex, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// TestRunFeatures checks the process environment on every runtime.
func TestRunFeatures(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	for name, ex := range executors(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("env-and-cwd", func(t *testing.T) {
				f := newFixture(t)
				s := f.spec(sh(`echo "$FOO|$PATH|$HOME"; pwd`)...)
				s.Env = []string{"FOO=bar"}
				s.Cwd = "/work/dir"
				want := "bar|" + DefaultPath + "|/root\n/work/dir\n"
				if out := mustRun(t, ex, s); out != want {
					t.Errorf("output = %q, want %q", out, want)
				}
				if fi, err := os.Stat(filepath.Join(f.upper, "work/dir")); err != nil || !fi.IsDir() {
					t.Errorf("working directory not kept in upper: %v", err)
				}
			})
			t.Run("user-by-name", func(t *testing.T) {
				f := newFixture(t)
				s := f.spec(sh(`id -u; id -g; id -G; echo $HOME; grep CapEff /proc/self/status`)...)
				s.User = "app"
				out := mustRun(t, ex, s)
				lines := strings.Split(out, "\n")
				if len(lines) < 5 || lines[0] != "1000" || lines[1] != "1000" || !strings.Contains(" "+lines[2]+" ", " 10 ") || lines[3] != "/home/app" {
					t.Errorf("output = %q, want uid/gid 1000, groups with wheel(10), HOME /home/app", out)
				}
				if !strings.HasSuffix(strings.TrimSpace(lines[4]), "0000000000000000") {
					t.Errorf("non-root user has capabilities: %q", lines[4])
				}
			})
			t.Run("user-and-group", func(t *testing.T) {
				f := newFixture(t)
				s := f.spec(sh(`id -u; id -g; id -G`)...)
				s.User = "1000:wheel"
				if out := mustRun(t, ex, s); out != "1000\n10\n10\n" {
					t.Errorf("output = %q, want uid 1000 gid 10 and no other groups", out)
				}
			})
			t.Run("unknown-user", func(t *testing.T) {
				f := newFixture(t)
				s := f.spec("true")
				s.User = "nosuchuser"
				_, _, err := run(t, ex, s)
				if err == nil || !strings.Contains(err.Error(), `no user named "nosuchuser"`) {
					t.Errorf("err = %v, want unknown user error", err)
				}
			})
			t.Run("hostname-and-hosts", func(t *testing.T) {
				f := newFixture(t)
				s := f.spec(sh(`hostname; cat /etc/hosts; test -w /etc/hosts && echo writable; true`)...)
				s.Hostname = "buildhost"
				out := mustRun(t, ex, s)
				if !strings.HasPrefix(out, "buildhost\n") || !strings.Contains(out, "127.0.0.1\tlocalhost buildhost") {
					t.Errorf("output = %q", out)
				}
				if got := f.upperEntries(t); len(got) != 0 {
					t.Errorf("upper = %q, want empty: /etc/hosts stubs must not stay", got)
				}
			})
			t.Run("network-none", func(t *testing.T) {
				f := newFixture(t)
				s := f.spec(sh(`cat /proc/net/dev; cat /sys/class/net/lo/flags`)...)
				s.Network = NetworkNone
				out := mustRun(t, ex, s)
				var ifaces []string
				for _, l := range strings.Split(out, "\n") {
					if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
						ifaces = append(ifaces, strings.TrimSpace(name))
					}
				}
				if len(ifaces) != 1 || ifaces[0] != "lo" {
					t.Errorf("interfaces = %q, want only lo\n%s", ifaces, out)
				}
				if !strings.HasSuffix(out, "0x9\n") {
					t.Errorf("lo flags: %q, want up (0x9)", out)
				}
			})
			t.Run("background-process-does-not-hang", func(t *testing.T) {
				f := newFixture(t)
				marker := testutil.NewMarker(t)
				start := time.Now()
				// Closing the output keeps the test about the process tree,
				// not about an inherited pipe.
				s := f.spec(sh(`sleep 100 >/dev/null 2>&1 & echo started`)...)
				s.Env = []string{testutil.MarkerEnv + "=" + marker}
				if out := mustRun(t, ex, s); out != "started\n" {
					t.Errorf("output = %q", out)
				}
				if d := time.Since(start); d > 20*time.Second {
					t.Errorf("run took %v", d)
				}
				if left := waitMarkedGone(t, "sleep 100", marker, 5*time.Second); len(left) != 0 {
					t.Errorf("background process outlived the run: %v", left)
				}
			})
			t.Run("cancel", func(t *testing.T) { testCancel(t, ex) })
		})
	}
}

func TestBuiltinPID1IsInit(t *testing.T) {
	f := newFixture(t)
	out := mustRun(t, builtinExecutor(t), f.spec(sh(`echo $$; tr '\0' ' ' </proc/1/cmdline; echo; ps`)...))
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || lines[0] == "1" || strings.TrimSpace(lines[1]) != "builder-executor-init" {
		t.Errorf("output = %q, want our init as pid 1 and the process below it", out)
	}
	if !strings.Contains(out, "ps") {
		t.Errorf("ps output = %q", out)
	}
}

// waitMarkedGone waits up to d for the marked processes running cmd to be
// gone, and returns those left.
func waitMarkedGone(t *testing.T, cmd, marker string, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := testutil.MarkedProcesses(t, cmd, marker)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// privateTMPDIR points TMPDIR at a new directory of the test and returns
// it: Run makes its run directory (for a runtime, the bundle with the
// rootfs mountpoint) with os.MkdirTemp, so that becomes a fixture of the
// test as well.
func privateTMPDIR(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv("TMPDIR", d)
	return d
}

// checkRunCleanedUp fails t if a mount remains at or below the test's own
// directories, or Run left its run directory in tmp.
func checkRunCleanedUp(t *testing.T, tmp string, dirs ...string) {
	t.Helper()
	testutil.NoMountsBelow(t, append([]string{tmp}, dirs...)...)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("run directory left behind: %s", filepath.Join(tmp, e.Name()))
	}
}

func testCancel(t *testing.T, ex Executor) {
	tmp := privateTMPDIR(t)
	f := newFixture(t)
	marker := testutil.NewMarker(t)
	sleep := fmt.Sprintf("sleep %d", 1000+time.Now().UnixNano()%1000)
	s := f.spec(sh(sleep + " & " + sleep)...)
	s.Env = []string{testutil.MarkerEnv + "=" + marker}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- ex.Run(ctx, s, IO{})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for len(testutil.MarkedProcesses(t, sleep, marker)) < 2 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("processes did not start: %v", <-errc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	start := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run returned %v after cancel", d)
	}
	if left := testutil.MarkedProcesses(t, sleep, marker); len(left) != 0 {
		t.Errorf("processes left after cancel: %v", left)
	}
	checkRunCleanedUp(t, tmp, f.lower, f.upper, f.work)
}

func TestNoLeakedDescriptors(t *testing.T) {
	// A descriptor this process holds without O_CLOEXEC, like one
	// inherited from a parent, must not reach the container.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fd, err := syscall.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	f := newFixture(t)
	out := mustRun(t, builtinExecutor(t), f.spec(sh(`ls /proc/self/fd`)...))
	// ls itself opens one directory descriptor (3).
	if fields := strings.Fields(out); len(fields) > 4 {
		t.Errorf("open descriptors in the container: %q, want 0 1 2 and ls's own", fields)
	}
}

func TestParallelRuns(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	ex := builtinExecutor(t)
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			want := fmt.Sprintf("run %d\n", i)
			if out := mustRun(t, ex, f.spec(sh("echo run "+fmt.Sprint(i)+" | tee /out")...)); out != want {
				t.Errorf("output = %q, want %q", out, want)
			}
			if b, err := os.ReadFile(filepath.Join(f.upper, "out")); err != nil || string(b) != want {
				t.Errorf("upper file = %q, %v", b, err)
			}
		})
	}
}
