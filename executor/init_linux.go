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

const (
	// modeInit is the built-in runtime's container init.
	modeInit = "init"
	// modeRuntime mounts the rootfs in a private mount namespace and execs
	// an external OCI runtime.
	modeRuntime = "runtime"
)

// Fixed descriptors of a re-executed child (os/exec ExtraFiles start at 3).
const (
	configFD = 3 // initConfig as JSON, parent → child
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

	// External runtime only.
	Runtime  string `json:"runtime,omitempty"` // absolute path of the binary
	Bundle   string `json:"bundle,omitempty"`
	StateDir string `json:"stateDir,omitempty"`
	ID       string `json:"id,omitempty"`
	Log      string `json:"log,omitempty"`
}

// initMessage is one line a child writes on the status pipe.
type initMessage struct {
	Cleanup []cleanupEntry `json:"cleanup,omitempty"`
	Error   string         `json:"error,omitempty"`
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
	runtime.LockOSThread()
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
	err := json.NewDecoder(f).Decode(&cfg)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading container config: %w", err)
	}
	if cfg.Spec == nil || cfg.Spec.Process == nil || cfg.Spec.Linux == nil {
		return errors.New("reading container config: incomplete spec")
	}
	t.root, t.upper = cfg.Rootfs, cfg.Upper
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
}

// runHelper re-executes the current binary in new namespaces (cloneflags),
// sends it cfg and waits for it. When ctx is done it calls cancel (nil
// kills the child) and, if the child still lives after a grace period,
// kills it. It returns the child's state, its messages, and an error only
// when the child could not be started or waited for.
func runHelper(ctx context.Context, cfg *initConfig, cloneflags uintptr, stdio IO, cancel func(*exec.Cmd)) (*os.ProcessState, helperResult, error) {
	var res helperResult
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, res, fmt.Errorf("creating config pipe: %w", err)
	}
	defer cfgW.Close()
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return nil, res, fmt.Errorf("creating status pipe: %w", err)
	}
	defer stR.Close()
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"builder-executor-" + cfg.Mode},
		Env:        append(os.Environ(), initEnv+"="+cfg.Mode),
		Stdin:      stdio.Stdin,
		Stdout:     stdio.Stdout,
		Stderr:     stdio.Stderr,
		ExtraFiles: []*os.File{cfgR, stW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cloneflags,
			Pdeathsig:  syscall.SIGKILL,
		},
		// Every process of the container is gone when the child is, so
		// output copying ends promptly; only a blocking Stdin may linger.
		WaitDelay: 2 * time.Second,
	}
	// Pdeathsig follows the thread that forked the child: keep it alive
	// and ours until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	cfgR.Close()
	stW.Close()
	if err != nil {
		return nil, res, fmt.Errorf("starting container init: %w", err)
	}
	go func() {
		_ = json.NewEncoder(cfgW).Encode(cfg)
		cfgW.Close()
	}()
	msgs := make(chan helperResult, 1)
	go func() {
		var r helperResult
		sc := bufio.NewScanner(stR)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m initMessage
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			r.cleanup = append(r.cleanup, m.Cleanup...)
			if m.Error != "" {
				r.err = m.Error
			}
		}
		msgs <- r
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		if cancel != nil {
			cancel(cmd)
		} else {
			_ = cmd.Process.Kill()
		}
		select {
		case waitErr = <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			waitErr = <-done
		}
	}
	res = <-msgs
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) && cmd.ProcessState == nil {
		return nil, res, fmt.Errorf("waiting for container init: %w", waitErr)
	}
	return cmd.ProcessState, res, nil
}

// exitCode returns the status a shell would report for st.
func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
