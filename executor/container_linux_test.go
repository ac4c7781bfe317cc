package executor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/atomicfile"
	"github.com/builder-project/builder/internal/testutil"
)

// containerFixture is one long-lived container's directories; its
// processes carry a marker in their environment.
type containerFixture struct {
	fixture
	id, dir, marker string
}

// newContainer returns a fixture whose container RemoveContainer removes
// when the test ends; the test then fails if its cgroup is left.
func newContainer(t *testing.T) containerFixture {
	t.Helper()
	f := newFixture(t)
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	c := containerFixture{fixture: f, id: hex.EncodeToString(b), dir: filepath.Join(t.TempDir(), "state"), marker: testutil.NewMarker(t)}
	t.Cleanup(func() {
		r, err := c.record()
		if err := RemoveContainer(c.dir); err != nil {
			t.Errorf("removing container: %v", err)
		}
		if err == nil {
			checkCgroupGone(t, r.Cgroup)
		}
	})
	return c
}

func checkCgroupGone(t *testing.T, cg cgroup) {
	t.Helper()
	for _, p := range cg.Paths {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("cgroup %s left behind", p)
		}
	}
}

// waitMarked waits until n processes of the container run cmd.
func (c containerFixture) waitMarked(t *testing.T, cmd string, n int) {
	t.Helper()
	testutil.WaitUntil(t, 10*time.Second, fmt.Sprintf("%d processes running %q", n, cmd), func() bool { return len(testutil.MarkedProcesses(t, cmd, c.marker)) == n })
}

func (c containerFixture) config(detach bool, args ...string) ContainerConfig {
	s := c.spec(args...)
	s.Env = []string{testutil.MarkerEnv + "=" + c.marker}
	return ContainerConfig{Spec: s, ID: c.id, StateDir: c.dir, Detach: detach}
}

func (c containerFixture) record() (*containerRecord, error) {
	var r containerRecord
	return &r, readJSON(c.dir, stateFile, &r)
}

func (c containerFixture) start(t *testing.T, cfg ContainerConfig, stdio IO) ContainerState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := StartContainer(ctx, "", cfg, stdio)
	if err != nil {
		t.Fatalf("starting %q: %v", cfg.Args, err)
	}
	return st
}

func (c containerFixture) state(t *testing.T) ContainerState {
	t.Helper()
	st, err := ContainerStateOf(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitExited polls the container's state until it has exited.
func (c containerFixture) waitExited(t *testing.T) ContainerState {
	t.Helper()
	var st ContainerState
	testutil.WaitUntil(t, 20*time.Second, "container to exit", func() bool {
		st = c.state(t)
		return st.Status == StatusExited
	})
	return st
}

// checkExitRecorded fails t unless the init recorded code as the exit
// status.
func (c containerFixture) checkExitRecorded(t *testing.T, code int) {
	t.Helper()
	var ex exitRecord
	if err := readJSON(c.dir, exitFile, &ex); err != nil || ex.ExitCode != code || ex.Finished.IsZero() {
		t.Errorf("exit record = %+v, %v; want %d recorded by the init", ex, err, code)
	}
}

// checkNoneLeft fails t if a process of the container running cmd is left.
func (c containerFixture) checkNoneLeft(t *testing.T, cmd string) {
	t.Helper()
	if left := testutil.MarkedProcesses(t, cmd, c.marker); len(left) != 0 {
		t.Errorf("processes running %q left: %v", cmd, left)
	}
}

func (c containerFixture) logSize(t *testing.T) int {
	t.Helper()
	var b bytes.Buffer
	if err := ContainerLogs(c.dir, &b); err != nil {
		t.Fatal(err)
	}
	return b.Len()
}

func (c containerFixture) exec(t *testing.T, p ProcessSpec) (int, string) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := ExecContainer(ctx, c.dir, p, IO{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("exec %q: %v", p.Args, err)
	}
	return code, out.String()
}

// cgroupLayouts returns the cgroup layouts to test, as values for
// cgroupV2Root: the detected one, and on a hybrid host also its unified
// hierarchy, so that both the v1 and the v2 code run.
func cgroupLayouts() map[string]string {
	if fileExists(filepath.Join(cgroupRoot, "cgroup.controllers")) {
		return map[string]string{"v2": ""}
	}
	m := map[string]string{"v1": ""}
	if u := filepath.Join(cgroupRoot, "unified"); fileExists(filepath.Join(u, "cgroup.freeze")) || fileExists(filepath.Join(u, "cgroup.procs")) {
		m["v2-unified"] = u
	}
	return m
}

// inEachCgroupLayout runs test as a subtest per cgroup layout, with a new
// container.
func inEachCgroupLayout(t *testing.T, test func(*testing.T, containerFixture)) {
	testutil.RequirePrivileges(t, "root", "overlay")
	for name, root := range cgroupLayouts() {
		t.Run(name, func(t *testing.T) {
			old := cgroupV2Root
			cgroupV2Root = root
			t.Cleanup(func() { cgroupV2Root = old })
			test(t, newContainer(t))
		})
	}
}

// TestContainerDetached runs a detached container through its life:
// running, logging, paused and thawed, exec'd into, and stopped with a
// signal whose exit status its init records with nobody waiting.
func TestContainerDetached(t *testing.T) {
	inEachCgroupLayout(t, func(t *testing.T, c containerFixture) {
		cfg := c.config(true, sh(`echo data > /written; while true; do echo tick; sleep 0.1; done`)...)
		cfg.Hostname = "ctrhost"
		st := c.start(t, cfg, IO{})
		if st.Status != StatusRunning || st.Pid == 0 || st.Started.IsZero() {
			t.Fatalf("state after start = %+v, want running with a pid", st)
		}
		r, err := c.record()
		if err != nil {
			t.Fatal(err)
		}
		if pids, err := r.Cgroup.procs(); err != nil || !slices.Contains(pids, st.Pid) {
			t.Errorf("cgroup %s holds %v (%v), want the init %d", r.Cgroup.Paths[0], pids, err, st.Pid)
		}
		grows := func() {
			t.Helper()
			n := c.logSize(t)
			testutil.WaitUntil(t, 10*time.Second, "the log to grow", func() bool { return c.logSize(t) > n })
		}
		grows()

		if err := FreezeContainer(c.dir); err != nil {
			t.Fatal(err)
		}
		if st := c.state(t); st.Status != StatusPaused {
			t.Errorf("state after freeze = %q, want paused", st.Status)
		}
		n := c.logSize(t)
		time.Sleep(400 * time.Millisecond)
		if m := c.logSize(t); m != n {
			t.Errorf("log grew from %d to %d bytes while frozen", n, m)
		}
		if _, err := ExecContainer(context.Background(), c.dir, ProcessSpec{Args: []string{"true"}}, IO{}); err == nil {
			t.Error("exec into a paused container succeeded")
		}
		if err := ThawContainer(c.dir); err != nil {
			t.Fatal(err)
		}
		if st := c.state(t); st.Status != StatusRunning {
			t.Errorf("state after thaw = %q, want running", st.Status)
		}
		grows()

		code, out := c.exec(t, ProcessSpec{Args: sh(`cat /written; tr '\0' ' ' </proc/1/cmdline; echo; hostname`)})
		if code != 0 || out != "data\nbuilder-executor-container \nctrhost\n" {
			t.Errorf("exec = %d, %q; want 0 and the container's file and init", code, out)
		}
		code, out = c.exec(t, ProcessSpec{Args: sh(`id -u; echo "$FOO $` + testutil.MarkerEnv + `"; pwd; exit 3`), Env: []string{"FOO=bar"}, User: "app", Cwd: "/tmp"})
		if want := "1000\nbar " + c.marker + "\n/tmp\n"; code != 3 || out != want {
			t.Errorf("exec = %d, %q; want 3, %q", code, out, want)
		}

		if code, out := c.exec(t, ProcessSpec{Args: []string{"nosuchbinary"}}); code != 127 || !strings.Contains(out, "not found") {
			t.Errorf("exec of a missing binary = %d, %q; want 127", code, out)
		}

		if err := KillContainer(c.dir, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		st = c.waitExited(t)
		if st.ExitCode != 143 || st.Finished.IsZero() {
			t.Errorf("state after SIGTERM = %+v, want exited with 143", st)
		}
		c.checkExitRecorded(t, 143)
		if got := c.upperEntries(t); !slices.Equal(got, []string{"written"}) {
			t.Errorf("upper after exit = %q, want only the process's file", got)
		}
		var logs bytes.Buffer
		if err := ContainerLogs(c.dir, &logs); err != nil || !strings.HasPrefix(logs.String(), "tick\ntick\n") {
			t.Errorf("logs = %q, %v", logs.String(), err)
		}
		if err := KillContainer(c.dir, syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
			t.Errorf("kill after exit: %v, want ErrNotRunning", err)
		}
		if _, err := ExecContainer(context.Background(), c.dir, ProcessSpec{Args: []string{"true"}}, IO{}); !errors.Is(err, ErrNotRunning) {
			t.Errorf("exec after exit: %v, want ErrNotRunning", err)
		}
		if err := RemoveContainer(c.dir); err != nil {
			t.Fatal(err)
		}
		checkCgroupGone(t, r.Cgroup)
		if ents, _ := os.ReadDir(c.dir); len(ents) != 0 {
			t.Errorf("state directory after remove holds %v", ents)
		}
	})
}

// TestContainerRemove removes a running container: no process of it may
// remain, nor its cgroup.
func TestContainerRemove(t *testing.T) {
	inEachCgroupLayout(t, func(t *testing.T, c containerFixture) {
		st := c.start(t, c.config(true, sh(`sleep 1000 & sleep 1000`)...), IO{})
		c.waitMarked(t, "sleep 1000", 2)
		r, err := c.record()
		if err != nil {
			t.Fatal(err)
		}
		// An exec'd process is the container's too.
		execd := make(chan int, 1)
		go func() {
			code, _ := ExecContainer(context.Background(), c.dir, ProcessSpec{Args: []string{"sleep", "1001"}}, IO{})
			execd <- code
		}()
		c.waitMarked(t, "sleep 1001", 1)
		if err := FreezeContainer(c.dir); err != nil {
			t.Fatal(err)
		}
		if err := RemoveContainer(c.dir); err != nil {
			t.Fatal(err)
		}
		if code := <-execd; code != 137 {
			t.Errorf("exec'd process exited with %d, want 137", code)
		}
		c.checkNoneLeft(t, "sleep 100")
		if isProcess(st.Pid, r.PidStart) {
			t.Errorf("init %d left after remove", st.Pid)
		}
		checkCgroupGone(t, r.Cgroup)
		if got := c.upperEntries(t); len(got) != 0 {
			t.Errorf("upper after remove = %q, want no stubs", got)
		}
	})
}

func TestContainerStop(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	t.Run("ignored-signal", func(t *testing.T) {
		c := newContainer(t)
		c.start(t, c.config(true, sh(`trap '' TERM; sleep 1000 & sleep 1000`)...), IO{})
		c.waitMarked(t, "sleep 1000", 2)
		start := time.Now()
		if err := StopContainer(context.Background(), c.dir, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("stop took %v", d)
		}
		c.checkNoneLeft(t, "sleep 1000")
		c.checkExitRecorded(t, 137)
		if got := c.upperEntries(t); len(got) != 0 {
			t.Errorf("upper after stop = %q, want no stubs", got)
		}
		if err := StopContainer(context.Background(), c.dir, time.Second); err != nil {
			t.Errorf("stopping a stopped container: %v", err)
		}
	})
	t.Run("stop-signal", func(t *testing.T) {
		c := newContainer(t)
		cfg := c.config(true, sh(`trap 'exit 42' USR1; echo ready; while true; do sleep 0.1; done`)...)
		cfg.StopSignal = syscall.SIGUSR1
		c.start(t, cfg, IO{})
		testutil.WaitUntil(t, 10*time.Second, "the trap", func() bool { return c.logSize(t) > 0 })
		// A paused container is thawed to handle the signal.
		if err := FreezeContainer(c.dir); err != nil {
			t.Fatal(err)
		}
		if err := StopContainer(context.Background(), c.dir, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if st := c.state(t); st.Status != StatusExited || st.ExitCode != 42 {
			t.Errorf("state after stop = %+v, want exited with 42", st)
		}
	})
}

// TestContainerAttached runs attached containers: exit codes as docker
// reports them, streams, restart, and cancellation.
func TestContainerAttached(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	c := newContainer(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string
	}{
		{"exit-code", sh(`echo out; echo err >&2; echo change > /file; exit 5`), 5, "out\nerr\n"},
		{"not-found", []string{"nosuchbinary"}, 127, "nosuchbinary: executable file not found"},
		{"not-executable", []string{"/etc/passwd"}, 126, "/etc/passwd: permission denied"},
		{"detached-not-found", []string{"/nosuchbinary"}, 127, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg := c.config(strings.HasPrefix(tc.name, "detached"), tc.args...)
			// The same container, started again each time.
			st := c.start(t, cfg, IO{Stdout: &out, Stderr: &out})
			if cfg.Detach {
				st = c.waitExited(t)
				var logs bytes.Buffer
				_ = ContainerLogs(c.dir, &logs)
				out = logs
				tc.output = "/nosuchbinary: no such file or directory"
			}
			if st.Status != StatusExited || st.ExitCode != tc.code {
				t.Errorf("state = %+v, want exited with %d", st, tc.code)
			}
			if !strings.Contains(out.String(), tc.output) {
				t.Errorf("output = %q, want %q in it", out.String(), tc.output)
			}
			if got := c.upperEntries(t); !slices.Equal(got, []string{"file"}) {
				t.Errorf("upper = %q, want only the process's file", got)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		var st ContainerState
		go func() {
			var err error
			st, err = StartContainer(ctx, "", c.config(false, sh(`sleep 1000 & sleep 1000`)...), IO{})
			errc <- err
		}()
		c.waitMarked(t, "sleep 1000", 2)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if st.Status != StatusExited || st.ExitCode != 137 {
			t.Errorf("state = %+v, want exited with 137", st)
		}
		c.checkNoneLeft(t, "sleep 1000")
	})
}

// TestContainerTerminal attaches to a container with a terminal: the
// terminal echoes input, has the size the caller gives, passes a size
// change on as SIGWINCH and ^C on as SIGINT.
func TestContainerTerminal(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	c := newContainer(t)
	cfg := c.config(false, sh(`stty size; tty; echo ready1; read line; echo "got:$line"; trap 'stty size' WINCH; trap 'echo INT; exit 7' INT; echo ready2; while true; do sleep 0.1; done`)...)
	cfg.Terminal = true
	in, inW := io.Pipe()
	defer inW.Close()
	var out testutil.SyncBuffer
	resize := make(chan [2]uint16, 1)
	resize <- [2]uint16{30, 100}
	type result struct {
		st  ContainerState
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := StartContainer(context.Background(), "", cfg, IO{Stdin: in, Stdout: &out, Resize: resize})
		done <- result{st, err}
	}()
	waitFor := func(s string) {
		t.Helper()
		testutil.WaitUntil(t, 10*time.Second, s+" in "+out.String(), func() bool { return strings.Contains(out.String(), s) })
	}
	waitFor("ready1")
	if o := out.String(); !strings.HasPrefix(o, "30 100\r\n/dev/pts/0\r\n") {
		t.Errorf("output = %q, want the initial size and the container's terminal", o)
	}
	if _, err := io.WriteString(inW, "hello\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("got:hello")
	if o := out.String(); !strings.Contains(o, "hello\r\n") {
		t.Errorf("output = %q, want the input echoed", o)
	}
	waitFor("ready2")
	resize <- [2]uint16{40, 120}
	waitFor("40 120")
	if _, err := io.WriteString(inW, "\x03"); err != nil {
		t.Fatal(err)
	}
	waitFor("INT")
	inW.Close()
	select {
	case r := <-done:
		if r.err != nil || r.st.ExitCode != 7 {
			t.Errorf("result = %+v, %v; want exit code 7 from the INT trap", r.st, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("container did not exit after ^C")
	}
	if got := c.upperEntries(t); len(got) != 0 {
		t.Errorf("upper = %q, want no stubs", got)
	}
}

func TestContainerExecTerminal(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	c := newContainer(t)
	c.start(t, c.config(true, "sleep", "1000"), IO{})
	resize := make(chan [2]uint16, 1)
	resize <- [2]uint16{20, 50}
	var out bytes.Buffer
	code, err := ExecContainer(context.Background(), c.dir, ProcessSpec{Args: sh(`tty; stty size; ls -l $(tty)`), User: "app", Terminal: true}, IO{Stdout: &out, Resize: resize})
	if err != nil || code != 0 {
		t.Fatalf("exec = %d, %v (output %q)", code, err, out.String())
	}
	o := out.String()
	if !strings.HasPrefix(o, "/dev/pts/0\r\n20 50\r\n") || !strings.Contains(o, " app ") {
		t.Errorf("output = %q, want a terminal of the container owned by the user, of the given size", o)
	}
}

// TestContainerPidReuse fakes the state of a container whose init pid now
// names another process (this test's) that started at another time.
func TestContainerPidReuse(t *testing.T) {
	testutil.RequirePrivileges(t, "linux")
	dir := t.TempDir()
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	write := func(start uint64) {
		r := containerRecord{ID: strings.Repeat("ab", 32), Pid: os.Getpid(), PidStart: start}
		if err := r.write(dir); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.Write(filepath.Join(dir, initFile), 0o644, jsonFill(initRecord{Started: time.Now()})); err != nil {
			t.Fatal(err)
		}
	}
	write(start)
	if st, err := ContainerStateOf(dir); err != nil || st.Status != StatusRunning {
		t.Fatalf("state with the right start time = %+v, %v; want running", st, err)
	}
	write(start + 1)
	if err := KillContainer(dir, syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("kill = %v, want ErrNotRunning", err)
	}
	st, err := ContainerStateOf(dir)
	if err != nil || st.Status != StatusExited || st.Pid != 0 {
		t.Errorf("state with another start time = %+v, %v; want exited", st, err)
	}
}

func TestContainerRuncUnsupported(t *testing.T) {
	_, err := StartContainer(context.Background(), Runc, ContainerConfig{}, IO{})
	if err == nil || !strings.Contains(err.Error(), "not supported with --runtime runc") {
		t.Errorf("err = %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "PATH=/bin", "B=2"}, []string{"PATH=/usr/bin", "C=3"})
	if want := []string{"A=1", "PATH=/usr/bin", "B=2", "C=3"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

// callerEnv makes TestContainerCaller the caller of StartContainer for
// TestContainerOutlivesCaller; its value is the ContainerConfig as JSON.
const callerEnv = "BUILDER_TEST_CONTAINER_CALLER"

// TestContainerCaller is not a test: run by TestContainerOutlivesCaller
// in a process of its own, it starts a container and prints "started".
func TestContainerCaller(t *testing.T) {
	v := os.Getenv(callerEnv)
	if v == "" {
		t.Skip("only run by TestContainerOutlivesCaller")
	}
	var cfg ContainerConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Detach {
		st, err := StartContainer(context.Background(), "", cfg, IO{})
		if err != nil || st.Status != StatusRunning {
			t.Fatalf("StartContainer = %+v, %v", st, err)
		}
		fmt.Println("started")
		return
	}
	// An attached container runs until this process is killed.
	go func() {
		for {
			if st, _ := ContainerStateOf(cfg.StateDir); st.Status == StatusRunning {
				fmt.Println("started")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	st, err := StartContainer(context.Background(), "", cfg, IO{})
	t.Fatalf("StartContainer returned %+v, %v", st, err)
}

// TestContainerOutlivesCaller starts containers from another process: a
// detached one outlives it, an attached one dies with it, and either way
// the exit status is recorded by the init alone.
func TestContainerOutlivesCaller(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	for _, detach := range []bool{true, false} {
		t.Run(map[bool]string{true: "detached", false: "attached"}[detach], func(t *testing.T) {
			c := newContainer(t)
			b, err := json.Marshal(c.config(detach, sh(`trap 'exit 9' TERM; echo ready; while true; do sleep 0.1; done`)...))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestContainerCaller$", "-test.v")
			cmd.Env = append(os.Environ(), callerEnv+"="+string(b))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			for sc.Scan() && sc.Text() != "started" {
			}
			if detach {
				if err := cmd.Wait(); err != nil {
					t.Fatalf("caller: %v", err)
				}
				if st := c.state(t); st.Status != StatusRunning {
					t.Fatalf("state after the caller exited = %+v, want running", st)
				}
				testutil.WaitUntil(t, 10*time.Second, "the trap", func() bool { return c.logSize(t) > 0 })
				if err := StopContainer(context.Background(), c.dir, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				if st := c.state(t); st.Status != StatusExited || st.ExitCode != 9 {
					t.Errorf("state after stop = %+v, want exited with 9", st)
				}
				return
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			st := c.waitExited(t)
			if st.ExitCode != 137 {
				t.Errorf("state after the caller was killed = %+v, want exited with 137", st)
			}
			c.checkNoneLeft(t, "sleep")
			c.checkExitRecorded(t, 137)
		})
	}
}
