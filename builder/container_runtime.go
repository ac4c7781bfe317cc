package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/builder-project/builder/executor"
)

// containerRuntime starts and controls the processes of containers. Its
// methods mirror the executor's container API (StartContainer,
// ContainerStateOf, KillContainer, …): each container has a state
// directory in the store (store.ContainerDirs.State) that the runtime
// owns, and every call names the container by it. execRuntime implements
// it on the executor's long-lived containers, foregroundRuntime for
// containers on an OCI runtime; tests replace it.
type containerRuntime interface {
	// Start starts the container's process. Without cfg.Detach it returns
	// once the process has exited, its exit code in the state; with it,
	// once the process runs (or could not start). When the process exits,
	// the runtime removes the mount point stubs it created from the
	// upperdir.
	Start(ctx context.Context, runtime string, cfg executor.ContainerConfig, stdio executor.IO) (ContainerState, error)
	// State returns the state of the container's process: "created"
	// when it never started.
	State(stateDir string) (ContainerState, error)
	// Kill sends sig to the container's process.
	Kill(stateDir string, sig syscall.Signal) error
	// Stop sends the stop signal, then SIGKILL after timeout.
	Stop(ctx context.Context, stateDir string, timeout time.Duration) error
	// Freeze and Thaw pause and resume every process of the container
	// (cgroup freezer).
	Freeze(stateDir string) error
	Thaw(stateDir string) error
	// Exec runs one more process in the running container and returns
	// its exit code.
	Exec(ctx context.Context, stateDir string, p executor.ProcessSpec, stdio executor.IO) (int, error)
	// Remove kills whatever still runs in the container and waits for it,
	// so that no process outlives the container.
	Remove(stateDir string) error
	// Logs writes what the container's process printed while detached.
	Logs(stateDir string, w io.Writer) error
	// Stubs returns the paths (relative to the root filesystem) that the
	// runtime created in the upperdir of the running container only to
	// mount on: /etc/hosts, /etc/resolv.conf, /etc/hostname, /proc, /dev,
	// /sys, volume targets, and the directories copied up to hold them.
	// A commit of the running container leaves exactly those out.
	Stubs(stateDir string) ([]string, error)
}

// newRuntime makes the container runtime for the containers of b whose
// runtime (CreateOptions.Runtime) is runtime; tests replace it.
var newRuntime = func(b *Builder, runtime string) containerRuntime {
	if isOCIRuntime(runtime) {
		return foregroundRuntime{b: b}
	}
	return execRuntime{}
}

// isOCIRuntime reports whether runtime names an external OCI runtime
// rather than the built-in one.
func isOCIRuntime(runtime string) bool { return runtime != "" && runtime != executor.Builtin }

// runtime returns the runtime of c's processes.
func (b *Builder) runtime(c *container) containerRuntime { return newRuntime(b, c.spec.Runtime) }

// containerState returns the state of c's process.
func (b *Builder) containerState(c *container) (ContainerState, error) {
	return b.runtime(c).State(c.dirs.State)
}

// notRunning turns the runtime's ErrNotRunning into ErrConflict naming c,
// as docker reports a verb that needs a running container.
func notRunning(c *container, err error) error {
	if errors.Is(err, executor.ErrNotRunning) {
		return fmt.Errorf("%w: container %s is not running", ErrConflict, c.name())
	}
	return err
}
