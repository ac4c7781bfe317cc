package executor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initEnv marks a re-executed child; its value is the mode.
const initEnv = "_BUILDER_EXECUTOR_INIT"

// init keeps a helper's main goroutine on the main thread (a lock taken in
// a package's init holds for main). Init then joins namespaces on the
// thread group leader, whose /proc/PID/ns links are what ExecContainer
// opens: had a setns run on another thread, an exec'd process would join
// the host's network namespace instead of the container's.
func init() {
	if os.Getenv(initEnv) != "" {
		runtime.LockOSThread()
	}
}

const (
	// modeInit is the built-in runtime's container init.
	modeInit = "init"
	// modeRuntime mounts the rootfs in a private mount namespace and execs
	// an external OCI runtime.
	modeRuntime = "runtime"
	// modeContainer is a long-lived container's init (supervisor_linux.go).
	modeContainer = "container"
	// modeExec runs a process in a running container (exec_linux.go).
	modeExec = "exec"
)

// Fixed descriptors of a re-executed child (os/exec ExtraFiles start at 3).
const (
	configFD = 3 // initConfig as JSON, then controlMessage lines, parent → child
	statusFD = 4 // initMessage lines, child → parent
)

// initFailureCode is the exit status of a child whose setup failed; the
// error text travels over the status pipe.
const initFailureCode = 125

// initConfig is what the parent sends a re-executed child.
type initConfig struct {
	Mode   string      `json:"mode"`
	Spec   *specs.Spec `json:"spec"`
	Rootfs string      `json:"rootfs"` // host directory the overlay is mounted on
	Lowers []string    `json:"lowers"`
	Upper  string      `json:"upper"`
	Work   string      `json:"work"`
	User   string      `json:"user"`
	// LegacyOverlay forces mount(2) for the overlay (tests).
	LegacyOverlay bool `json:"legacyOverlay,omitempty"`
	// NetNS makes the child join the network namespace open as netnsFD.
	NetNS bool `json:"netns,omitempty"`
	// NetReady makes the child wait for the NAT (see waitNetwork) before
	// it starts the process.
	NetReady bool `json:"netReady,omitempty"`
	// Cgroup is the container's cgroup, which the built-in runtime's init
	// mounts on /sys/fs/cgroup.
	Cgroup *cgroup `json:"cgroup,omitempty"`
	// NoDev mounts the root filesystem nodev, where no devices cgroup
	// stops the process from opening a device node it made.
	NoDev bool `json:"nodev,omitempty"`

	// External runtime only.
	Runtime  string `json:"runtime,omitempty"` // absolute path of the binary
	Bundle   string `json:"bundle,omitempty"`
	StateDir string `json:"stateDir,omitempty"`
	ID       string `json:"id,omitempty"`
	Log      string `json:"log,omitempty"`

	// Long-lived containers and exec only.
	Container *containerInitConfig `json:"container,omitempty"`
	Exec      *execTarget          `json:"exec,omitempty"`
	// Terminal, when set, gives the process a pseudo-terminal of this
	// initial size.
	Terminal *windowSize `json:"terminal,omitempty"`
}

// windowSize is a terminal's size in characters.
type windowSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// controlMessage is one line the parent writes on the config pipe after the
// config, to a long-lived container's init or an exec helper. The end of
// the pipe tells the child its parent is gone (see longLivedInit).
type controlMessage struct {
	Resize *windowSize `json:"resize,omitempty"`
}

// initMessage is one line a child writes on the status pipe.
type initMessage struct {
	Cleanup []cleanupEntry `json:"cleanup,omitempty"`
	Error   string         `json:"error,omitempty"`
	// Started is the pid (in the container) of a process a long-lived
	// container's init or an exec helper started.
	Started int `json:"started,omitempty"`
	// Exit is the exit status of an exec helper's process.
	Exit *int `json:"exit,omitempty"`
}

// Init runs the container side of the executor when the current process
// was started by it, and never returns then. Otherwise it returns false at
// once. Call it first thing in main, and in TestMain of any test package
// that runs containers:
//
//	func main() {
//		if executor.Init() {
//			return // not reached
//		}
//		...
//	}
func Init() bool {
	mode := os.Getenv(initEnv)
	if mode == "" {
		return false
	}
	_ = os.Unsetenv(initEnv)
	// The package's init locked this goroutine to the main thread.
	// Descriptors the parent inherited from its own parent without
	// O_CLOEXEC must not reach the container's process.
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		markFDsCloseOnExec()
	}
	status := os.NewFile(statusFD, "status")
	t := &stubTracker{}
	err := runInit(mode, t, status)
	// Reached only on failure: success execs or exits with the process's
	// status.
	writeMessage(status, initMessage{Cleanup: t.entries, Error: err.Error()})
	os.Exit(initFailureCode)
	return true
}

func runInit(mode string, t *stubTracker, status *os.File) error {
	f := os.NewFile(configFD, "config")
	var cfg initConfig
	dec := json.NewDecoder(f)
	if err := dec.Decode(&cfg); err != nil {
		f.Close()
		return fmt.Errorf("reading container config: %w", err)
	}
	if cfg.Spec == nil || cfg.Spec.Process == nil || cfg.Spec.Linux == nil {
		f.Close()
		return errors.New("reading container config: incomplete spec")
	}
	t.root, t.upper = cfg.Rootfs, cfg.Upper
	// These two keep reading the pipe for control messages.
	switch mode {
	case modeContainer:
		return longLivedInit(&cfg, t, status, dec)
	case modeExec:
		return execHelper(&cfg, status, dec)
	case modeNAT:
		f.Close()
		return natKeeper(status)
	}
	f.Close()
	switch mode {
	case modeInit:
		return containerInit(&cfg, t, status)
	case modeRuntime:
		return runtimeHelper(&cfg, t, status)
	}
	return fmt.Errorf("unknown executor init mode %q", mode)
}

// markFDsCloseOnExec is the fallback for kernels without close_range.
func markFDsCloseOnExec() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func writeMessage(w *os.File, m initMessage) {
	b, _ := json.Marshal(m)
	_, _ = w.Write(append(b, '\n'))
}

// helperResult is what a child reported over the status pipe.
type helperResult struct {
	cleanup []cleanupEntry
	err     string
	exit    *int
}

// collect gathers the messages of a child until it closes its status pipe.
func collect(msgs <-chan initMessage) helperResult {
	var r helperResult
	for m := range msgs {
		r.cleanup = append(r.cleanup, m.Cleanup...)
		if m.Error != "" {
			r.err = m.Error
		}
		if m.Exit != nil {
			r.exit = m.Exit
		}
	}
	return r
}

// helperProc is a re-executed child of this process.
type helperProc struct {
	cmd *exec.Cmd
	// ctrl is the write end of the child's config pipe.
	ctrl *os.File
	// msgs delivers what the child writes on its status pipe, and is
	// closed when the child closes it.
	msgs chan initMessage
	// exited is closed once the child is waited for, with waitErr set.
	exited  chan struct{}
	waitErr error
}

// startHelper re-executes the current binary in mode, with stdio and sys,
// and waits for it in the background. The caller sends the config on
// h.ctrl and must drain h.msgs. extra are further descriptors for the
// child, from 5 on (netnsFD).
func startHelper(mode string, stdio IO, sys *syscall.SysProcAttr, extra ...*os.File) (*helperProc, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating config pipe: %w", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, fmt.Errorf("creating status pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{"builder-executor-" + mode},
		Env:         append(os.Environ(), initEnv+"="+mode),
		Stdin:       stdio.Stdin,
		Stdout:      stdio.Stdout,
		Stderr:      stdio.Stderr,
		ExtraFiles:  append([]*os.File{cfgR, stW}, extra...),
		SysProcAttr: sys,
		// Every process of the container is gone when the child is, so
		// output copying ends promptly; only a blocking Stdin may linger.
		WaitDelay: 2 * time.Second,
	}
	err = cmd.Start()
	cfgR.Close()
	stW.Close()
	if err != nil {
		cfgW.Close()
		stR.Close()
		return nil, fmt.Errorf("starting container init: %w", err)
	}
	h := &helperProc{cmd: cmd, ctrl: cfgW, msgs: make(chan initMessage, 4), exited: make(chan struct{})}
	go func() {
		defer close(h.msgs)
		defer stR.Close()
		sc := bufio.NewScanner(stR)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m initMessage
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				h.msgs <- m
			}
		}
	}()
	go func() {
		h.waitErr = cmd.Wait()
		close(h.exited)
	}()
	return h, nil
}

// helperOptions are how runHelper starts a child.
type helperOptions struct {
	// cloneflags are the namespaces the child is created in.
	cloneflags uintptr
	// extra are further descriptors for the child (see startHelper).
	extra []*os.File
	// started, when set, is called with the child's pid before the child
	// gets its config (and so before it does anything); an error kills
	// the child.
	started func(pid int) error
	// cancel, when set, is called instead of killing the child when ctx
	// is done.
	cancel func(*exec.Cmd)
}

// runHelper re-executes the current binary as o says, sends it cfg and
// waits for it. When ctx is done it calls o.cancel (nil kills the child)
// and, if the child still lives after a grace period, kills it. It
// returns the child's state, its messages, and an error only when the
// child could not be started or waited for.
func runHelper(ctx context.Context, cfg *initConfig, stdio IO, o helperOptions) (*os.ProcessState, helperResult, error) {
	// Pdeathsig follows the thread that forked the child: keep it alive
	// and ours until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := startHelper(cfg.Mode, stdio, &syscall.SysProcAttr{Cloneflags: o.cloneflags, Pdeathsig: syscall.SIGKILL}, o.extra...)
	if err != nil {
		return nil, helperResult{}, err
	}
	if o.started != nil {
		if err := o.started(h.cmd.Process.Pid); err != nil {
			_ = h.cmd.Process.Kill()
			h.ctrl.Close()
			<-h.exited
			for range h.msgs {
			}
			return nil, helperResult{}, err
		}
	}
	go func() {
		_ = json.NewEncoder(h.ctrl).Encode(cfg)
		h.ctrl.Close()
	}()
	results := make(chan helperResult, 1)
	go func() { results <- collect(h.msgs) }()
	select {
	case <-h.exited:
	case <-ctx.Done():
		if o.cancel != nil {
			o.cancel(h.cmd)
		} else {
			_ = h.cmd.Process.Kill()
		}
		select {
		case <-h.exited:
		case <-time.After(15 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.exited
		}
	}
	res := <-results
	var ee *exec.ExitError
	if h.waitErr != nil && !errors.As(h.waitErr, &ee) && h.cmd.ProcessState == nil {
		return nil, res, fmt.Errorf("waiting for container init: %w", h.waitErr)
	}
	return h.cmd.ProcessState, res, nil
}

// exitCode returns the status a shell would report for st.
func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
