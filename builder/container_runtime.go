package builder

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/builder-project/builder/executor"
)

// containerRuntime starts and controls the processes of containers. Its
// methods mirror the executor's container API (StartContainer,
// ContainerStateOf, KillContainer, …): each container has a state
// directory in the store (store.ContainerDirs.State) that the runtime
// owns, and every call names the container by it.
type containerRuntime interface {
	// Start starts the container's process. Without cfg.Detach it returns
	// once the process has exited, its exit code in the state; with it,
	// once the process runs. When the process exits, the runtime removes
	// the mount point stubs it created from the upperdir.
	Start(ctx context.Context, runtime string, cfg containerConfig, stdio executor.IO) (ContainerState, error)
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
	Exec(ctx context.Context, stateDir string, p processSpec, stdio executor.IO) (int, error)
	// Remove kills whatever still runs in the container and waits for it,
	// so that no process outlives the container.
	Remove(stateDir string) error
	// Logs writes what the container's process printed.
	Logs(stateDir string, w io.Writer) error
	// Stubs returns the paths (relative to the root filesystem) that the
	// runtime created in the upperdir of the running container only to
	// mount on: /etc/hosts, /etc/resolv.conf, /etc/hostname, /proc, /dev,
	// /sys, volume targets, and the directories copied up to hold them.
	// A commit of the running container leaves exactly those out.
	Stubs(stateDir string) ([]string, error)
}

// containerConfig is what Start needs: the process and its root
// filesystem, the container's identity and state directory, and how it
// is attached.
type containerConfig struct {
	executor.Spec
	ID       string
	StateDir string
	Terminal bool
	Detach   bool
}

// processSpec is one process Exec adds to a running container.
type processSpec struct {
	Args, Env []string
	Cwd, User string
	Terminal  bool
}

// errNeedsContainerRuntime is what the parts of containers that keep
// processes running return until the executor's container API is in.
var errNeedsContainerRuntime = errors.New("containers that run processes in the background (run -d, run -t, start without -a, exec, stop, kill, logs, commit of a running container) need the executor's container API, which this build of builder does not have yet")

// newRuntime makes the container runtime of a Builder; tests replace it.
var newRuntime = func(b *Builder) containerRuntime { return foregroundRuntime{b: b} }

// runtime returns the container runtime of b.
func (b *Builder) runtime() containerRuntime { return newRuntime(b) }

// containerState returns the state of c's process.
func (b *Builder) containerState(c *container) (ContainerState, error) {
	return b.runtime().State(c.dirs.State)
}
