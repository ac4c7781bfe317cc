package main

import (
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// TestDetachedContainerCommands drives a detached container through the
// CLI: run -d, ps, exec, kill, logs, stop with the image's STOPSIGNAL,
// start, rm and rm -f, and what is refused.
func TestDetachedContainerCommands(t *testing.T) {
	root := storeWithBusybox(t)
	marker := testutil.NewMarker(t)
	mustCLI(t, root, nil, "from", "--name", "base", "busybox")
	mustCLI(t, root, nil, "commit", "-c", "STOPSIGNAL SIGUSR1", "base", "stopper:1")
	t.Cleanup(func() { cli(root, "rm", "-f", "svc").Run() })

	script := `echo started; trap 'echo got USR1; exit 5' USR1; trap 'echo got HUP' HUP; echo data > /file; while true; do sleep 0.1; done`
	id := strings.TrimSpace(mustCLI(t, root, nil, "run", "-d", "--name", "svc", "-e", testutil.MarkerEnv+"="+marker, "stopper:1", "sh", "-c", script))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("run -d printed %q, want the container's ID", id)
	}
	ps := mustCLI(t, root, nil, "ps")
	if !regexp.MustCompile(`(?m)^` + id[:12] + ` +stopper:1 +"sh -c echo started;…" +.* ago +Up .* +svc$`).MatchString(ps) {
		t.Errorf("ps:\n%s", ps)
	}
	testutil.WaitUntil(t, 20*time.Second, "the process's file", func() bool {
		out, _, code := runCLI(t, root, "exec", "svc", "cat", "/file")
		return code == 0 && out == "data\n"
	})
	if out, _, code := runCLI(t, root, "exec", "-e", "X=1", "-w", "/tmp", "svc", "sh", "-c", `echo "$X $(pwd) $BUILDER_TEST_MARKER"; exit 4`); code != 4 || out != "1 /tmp "+marker+"\n" {
		t.Errorf("exec: exit %d, %q", code, out)
	}

	if out := mustCLI(t, root, nil, "kill", "-s", "HUP", "svc"); out != "svc\n" {
		t.Errorf("kill printed %q", out)
	}
	testutil.WaitUntil(t, 20*time.Second, "the log of the signal", func() bool { return mustCLI(t, root, nil, "logs", "svc") == "started\ngot HUP\n" })
	if out := mustCLI(t, root, nil, "stop", "-t", "10", "svc"); out != "svc\n" {
		t.Errorf("stop printed %q", out)
	}
	status := func() string {
		return mustCLI(t, root, nil, "ps", "-a", "--filter", "name=svc", "--format", "{{.Status}}")
	}
	if st := status(); !regexp.MustCompile(`^Exited \(5\) .* ago\n$`).MatchString(st) {
		t.Errorf("status after stop with STOPSIGNAL USR1 = %q, want Exited (5)", st)
	}
	if out := mustCLI(t, root, nil, "logs", "svc"); out != "started\ngot HUP\ngot USR1\n" {
		t.Errorf("logs after stop = %q", out)
	}
	if _, stderr, code := runCLI(t, root, "exec", "svc", "true"); code != 1 || !strings.Contains(stderr, "container svc is not running") {
		t.Errorf("exec into a stopped container: exit %d, %q", code, stderr)
	}

	if out := mustCLI(t, root, nil, "start", "svc"); out != "svc\n" {
		t.Errorf("start printed %q", out)
	}
	if st := status(); !strings.HasPrefix(st, "Up ") {
		t.Errorf("status after start = %q", st)
	}
	mustCLI(t, root, nil, "kill", "svc")
	testutil.WaitUntil(t, 20*time.Second, "the container to exit", func() bool { return strings.HasPrefix(status(), "Exited (137) ") })
	if _, stderr, code := runCLI(t, root, "kill", "svc"); code != 1 || !strings.Contains(stderr, "not running") {
		t.Errorf("kill of a stopped container: exit %d, %q", code, stderr)
	}

	mustCLI(t, root, nil, "start", "svc")
	testutil.WaitUntil(t, 20*time.Second, "the restarted process", func() bool { return len(testutil.MarkedProcesses(t, "echo started", marker)) > 0 })
	if _, stderr, code := runCLI(t, root, "rm", "svc"); code != 1 || !strings.Contains(stderr, "stop the container before removing or force remove") {
		t.Errorf("rm of a running container: exit %d, %q", code, stderr)
	}
	if out := mustCLI(t, root, nil, "rm", "-f", "svc"); out != "svc\n" {
		t.Errorf("rm -f printed %q", out)
	}
	if left := append(testutil.MarkedProcesses(t, "echo started", marker), testutil.MarkedProcesses(t, "sleep", marker)...); len(left) != 0 {
		t.Errorf("processes left after rm -f: %v", left)
	}

	if _, stderr, code := runCLI(t, root, "run", "-d", "--rm", "busybox", "sleep", "1"); code != 125 || !strings.Contains(stderr, "--rm cannot be combined with -d") {
		t.Errorf("run -d --rm: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, root, "run", "-d", "--name", "missing", "busybox", "/nonexistent"); code != 127 || !strings.Contains(stderr, "/nonexistent: command not found") {
		t.Errorf("run -d of a missing command: exit %d, %q", code, stderr)
	}
	if out := mustCLI(t, root, nil, "ps", "-a", "--format", "{{.Names}}"); out != "missing\nbase\n" {
		t.Errorf("containers left: %q", out)
	}
}

// startOnTerminal starts the CLI on a new pseudo-terminal of rows×cols
// as its controlling terminal, as a user's shell would, and collects what
// it shows. The terminal's own end stays open, to look at its modes.
func startOnTerminal(t *testing.T, root string, rows, cols uint16, args ...string) (*exec.Cmd, *os.File, *os.File, *testutil.SyncBuffer) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	cmd := cli(root, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		ptmx.Close()
		tty.Close()
	})
	out := &testutil.SyncBuffer{}
	go func() { _, _ = io.Copy(out, ptmx) }()
	return cmd, ptmx, tty, out
}

// canonical reports whether the terminal tty is in canonical mode with
// echo and signals, as a shell leaves it.
func canonical(t *testing.T, tty *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) == unix.ICANON|unix.ECHO|unix.ISIG
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the CLI did not exit")
	}
	return cmd.ProcessState.ExitCode()
}

// TestRunTerminal: run -it on a terminal puts it in raw mode, so the
// container's shell gets what is typed (and ^C) through its own terminal,
// which has the caller's size and follows its resizes; the terminal is
// restored when the CLI exits. start -ai and exec -it work the same way.
func TestRunTerminal(t *testing.T) {
	root := storeWithBusybox(t)
	cmd, ptmx, tty, out := startOnTerminal(t, root, 40, 100, "run", "-it", "--name", "tty", "busybox", "sh")
	type_ := func(s string) {
		t.Helper()
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	type_("stty size\r")
	testutil.WaitUntil(t, 20*time.Second, "the terminal's size", func() bool { return strings.Contains(out.String(), "\r\n40 100\r\n") })
	if canonical(t, tty) {
		t.Error("the caller's terminal is not in raw mode while the container runs")
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 20*time.Second, "the resize", func() bool {
		type_("stty size\r")
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(out.String(), "\r\n50 120\r\n")
	})
	type_("echo hi; exit 3\r")
	if code := exitCode(t, cmd); code != 3 || !strings.Contains(out.String(), "\r\nhi\r\n") {
		t.Errorf("exit %d, terminal shows %q", code, out.String())
	}
	if !canonical(t, tty) {
		t.Error("the caller's terminal was not restored")
	}
	if got := mustCLI(t, root, nil, "ps", "-a", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(got, "tty Exited (3) ") {
		t.Errorf("ps: %q", got)
	}

	// start -ai of a container made with -t, and exec -it, get a
	// terminal the same way.
	cmd, ptmx, _, out = startOnTerminal(t, root, 30, 90, "start", "-ai", "tty")
	if _, err := ptmx.Write([]byte("stty size; exit 9\r")); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 9 || !strings.Contains(out.String(), "\r\n30 90\r\n") {
		t.Errorf("start -ai: exit %d, terminal shows %q", code, out.String())
	}
	mustCLI(t, root, nil, "run", "-d", "--name", "bg", "busybox", "sh", "-c", "echo bg > /bg; exec sleep 1000")
	t.Cleanup(func() { cli(root, "rm", "-f", "bg").Run() })
	cmd, ptmx, _, out = startOnTerminal(t, root, 31, 91, "exec", "-it", "bg", "sh")
	if _, err := ptmx.Write([]byte("stty size; cat /bg; exit 7\r")); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 7 || !strings.Contains(out.String(), "\r\n31 91\r\nbg\r\n") {
		t.Errorf("exec -it: exit %d, terminal shows %q", code, out.String())
	}

	cmd, ptmx, _, out = startOnTerminal(t, root, 24, 80, "run", "-it", "--rm", "busybox", "sleep", "4322")
	testutil.WaitUntil(t, 20*time.Second, "sleep to run", func() bool { return sleepRunning(t, "4322") })
	if _, err := ptmx.Write([]byte{3}); err != nil { // ^C
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 130 {
		t.Errorf("^C: exit %d, want 130 (SIGINT); terminal shows %q", code, out.String())
	}
	if sleepRunning(t, "4322") {
		t.Error("sleep survived ^C")
	}
	if got := mustCLI(t, root, nil, "ps", "-aq"); strings.Count(got, "\n") != 2 {
		t.Errorf("--rm left its container: %q", got)
	}
}
