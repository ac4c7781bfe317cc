package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"time"

	"github.com/builder-project/builder/executor"
)

// execRuntime is the containerRuntime of the executor's long-lived
// containers (executor.StartContainer and the functions beside it): a
// container's init supervises its process on its own, so a detached
// container outlives the builder that started it and any later builder
// process controls it through its state directory.
type execRuntime struct{}

var _ containerRuntime = execRuntime{}

// setUpTimeout bounds how long Start waits for the init of a detached
// container to record that its process could not start.
const setUpTimeout = 10 * time.Second

// Start implements containerRuntime.
func (execRuntime) Start(ctx context.Context, runtime string, cfg executor.ContainerConfig, stdio executor.IO) (ContainerState, error) {
	st, err := executor.StartContainer(ctx, runtime, cfg, stdio)
	if err != nil || !cfg.Detach || st.Status != executor.StatusCreated {
		return stateOf(st), err
	}
	// The init reports a process that could not start, then records its
	// exit status: wait for that, so the caller sees 126 or 127.
	deadline := time.Now().Add(setUpTimeout)
	for st.Status == executor.StatusCreated && st.Pid != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if st, err = executor.ContainerStateOf(cfg.StateDir); err != nil {
			return ContainerState{}, err
		}
	}
	return stateOf(st), nil
}

// State implements containerRuntime: a container whose process never
// started has no state yet.
func (execRuntime) State(stateDir string) (ContainerState, error) {
	st, err := executor.ContainerStateOf(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return ContainerState{Status: executor.StatusCreated}, nil
	}
	if err != nil {
		return ContainerState{}, err
	}
	return stateOf(st), nil
}

// stateOf is the executor's state as builder reports it.
func stateOf(st executor.ContainerState) ContainerState {
	return ContainerState{Status: st.Status, Pid: st.Pid, ExitCode: st.ExitCode, StartedAt: utc(st.Started), FinishedAt: utc(st.Finished)}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// Kill implements containerRuntime.
func (execRuntime) Kill(stateDir string, sig syscall.Signal) error {
	return executor.KillContainer(stateDir, sig)
}

// Stop implements containerRuntime.
func (execRuntime) Stop(ctx context.Context, stateDir string, timeout time.Duration) error {
	return executor.StopContainer(ctx, stateDir, timeout)
}

// Freeze implements containerRuntime.
func (execRuntime) Freeze(stateDir string) error { return executor.FreezeContainer(stateDir) }

// Thaw implements containerRuntime.
func (execRuntime) Thaw(stateDir string) error { return executor.ThawContainer(stateDir) }

// Exec implements containerRuntime.
func (execRuntime) Exec(ctx context.Context, stateDir string, p executor.ProcessSpec, stdio executor.IO) (int, error) {
	return executor.ExecContainer(ctx, stateDir, p, stdio)
}

// Remove implements containerRuntime.
func (execRuntime) Remove(stateDir string) error { return executor.RemoveContainer(stateDir) }

// Logs implements containerRuntime.
func (execRuntime) Logs(stateDir string, w io.Writer) error {
	return executor.ContainerLogs(stateDir, w)
}

// Stubs implements containerRuntime.
func (execRuntime) Stubs(stateDir string) ([]string, error) {
	stubs, err := executor.ContainerStubs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("reading mount point stubs: %w", err)
	}
	return stubs, nil
}
