package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/atomicfile"
)

// foregroundRuntime runs the process of a container on an OCI runtime
// (runc, crun or a path: the executor's long-lived containers are the
// built-in runtime's only) in the foreground of the calling process,
// through Executor.Run: Start without Detach or Terminal. It keeps the
// state in the state directory: state.json, and run.lock held while the
// process runs, so that a builder killed meanwhile leaves a container that
// reads as exited. Everything that needs a process living on its own
// returns errNeedsBuiltinRuntime.
type foregroundRuntime struct{ b *Builder }

// errNeedsBuiltinRuntime is what a container on an OCI runtime returns
// for what needs a process living on its own.
var errNeedsBuiltinRuntime = errors.New("a container on an OCI runtime (--runtime runc, crun or a path) runs attached and without a terminal only: run -d, -t, start without -a, exec, stop, kill, logs, and commit, diff, copy or rm -f of a running container need the built-in runtime")

var _ containerRuntime = foregroundRuntime{}

// Start implements containerRuntime.
func (r foregroundRuntime) Start(ctx context.Context, runtime string, cfg executor.ContainerConfig, stdio executor.IO) (ContainerState, error) {
	if cfg.Detach || cfg.Terminal {
		return ContainerState{}, errNeedsBuiltinRuntime
	}
	ex, err := r.b.executor(runtime)
	if err != nil {
		return ContainerState{}, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return ContainerState{}, fmt.Errorf("starting container: %w", err)
	}
	lk, err := flockFile(filepath.Join(cfg.StateDir, "run.lock"), true)
	if err != nil {
		return ContainerState{}, fmt.Errorf("starting container: %w", err)
	}
	defer lk.Close()
	// The process's pid stays inside Executor.Run: none is recorded.
	st := ContainerState{Status: "running", StartedAt: time.Now().UTC()}
	if err := writeForegroundState(cfg.StateDir, st); err != nil {
		return ContainerState{}, err
	}
	runErr := ex.Run(ctx, cfg.Spec, stdio)
	st.Status, st.FinishedAt = "exited", time.Now().UTC()
	var ee *executor.ExitError
	switch {
	case errors.As(runErr, &ee):
		st.ExitCode, runErr = ee.Code, nil
	case ctx.Err() != nil:
		st.ExitCode = 128 + int(syscall.SIGKILL)
	case runErr != nil:
		st.ExitCode = startFailureCode(runErr)
	}
	if err := writeForegroundState(cfg.StateDir, st); err != nil {
		return st, errors.Join(runErr, err)
	}
	return st, runErr
}

// startFailureCode is docker's exit status for a process that could not
// start: 127 when the command is not found, 126 when it cannot be
// executed, 125 for any other failure.
func startFailureCode(err error) int {
	// The built-in runtime reports the failure as text, "starting ARGV0:
	// ERRNO"; runc as `exec: "ARGV0": stat ARGV0: ERRNO` or "executable
	// file not found in $PATH", crun as "executable file `ARGV0` not found".
	msg := err.Error()
	starting := strings.Contains(msg, "starting ") || strings.Contains(msg, `exec: "`) || strings.Contains(msg, "executable file")
	switch {
	case !starting:
		return 125
	case strings.Contains(msg, "executable file") && strings.Contains(msg, "not found"), strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "exec format error"):
		return 126
	}
	return 125
}

// State implements containerRuntime.
func (foregroundRuntime) State(stateDir string) (ContainerState, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return ContainerState{Status: "created"}, nil
	}
	if err != nil {
		return ContainerState{}, fmt.Errorf("reading container state: %w", err)
	}
	var st ContainerState
	if err := json.Unmarshal(data, &st); err != nil {
		return ContainerState{}, fmt.Errorf("decoding container state: %w", err)
	}
	if st.Status == "running" {
		lk, err := flockFile(filepath.Join(stateDir, "run.lock"), false)
		if err == nil {
			// Nobody runs it: the builder that did was killed, and its
			// container with it.
			lk.Close()
			st.Status, st.ExitCode = "exited", 128+int(syscall.SIGKILL)
		}
	}
	return st, nil
}

func writeForegroundState(dir string, st ContainerState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "state.json"), data, 0o600); err != nil {
		return fmt.Errorf("writing container state: %w", err)
	}
	return nil
}

// flockFile locks path exclusively: waiting for it with wait, else
// failing at once when another process holds it. Closing the file
// releases the lock.
func flockFile(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Remove implements containerRuntime: a process this runtime runs lives
// in another builder process, which it cannot reach.
func (r foregroundRuntime) Remove(stateDir string) error {
	st, err := r.State(stateDir)
	if err != nil {
		return err
	}
	if st.Running() {
		return errNeedsBuiltinRuntime
	}
	return nil
}

// Kill implements containerRuntime.
func (foregroundRuntime) Kill(string, syscall.Signal) error { return errNeedsBuiltinRuntime }

// Stop implements containerRuntime.
func (foregroundRuntime) Stop(context.Context, string, time.Duration) error {
	return errNeedsBuiltinRuntime
}

// Freeze implements containerRuntime.
func (foregroundRuntime) Freeze(string) error { return errNeedsBuiltinRuntime }

// Thaw implements containerRuntime.
func (foregroundRuntime) Thaw(string) error { return errNeedsBuiltinRuntime }

// Exec implements containerRuntime.
func (foregroundRuntime) Exec(context.Context, string, executor.ProcessSpec, executor.IO) (int, error) {
	return 0, errNeedsBuiltinRuntime
}

// Logs implements containerRuntime.
func (foregroundRuntime) Logs(string, io.Writer) error { return errNeedsBuiltinRuntime }

// Stubs implements containerRuntime.
func (foregroundRuntime) Stubs(string) ([]string, error) { return nil, errNeedsBuiltinRuntime }
