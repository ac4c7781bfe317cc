package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The statuses of a long-lived container (ContainerState.Status).
const (
	// StatusCreated: recorded, but the process has not started (yet).
	StatusCreated = "created"
	// StatusRunning: the process runs.
	StatusRunning = "running"
	// StatusPaused: the container's processes are frozen.
	StatusPaused = "paused"
	// StatusExited: the process has exited; ExitCode tells how.
	StatusExited = "exited"
)

// ErrNotRunning is returned by the operations that need a running (or
// paused) container when the container does not run.
var ErrNotRunning = errors.New("container is not running")

// ErrNoFreezer reports a container without a cgroup (rootless, when the
// user may not create one), which cannot be paused.
var ErrNoFreezer = errors.New("pausing a container needs a cgroup, and this rootless container has none (commit with --pause=false)")

// ContainerConfig describes a long-lived container (StartContainer).
type ContainerConfig struct {
	// Spec holds the overlay directories, the process, its environment,
	// working directory, user, network and mounts, as for Executor.Run.
	Spec
	// ID is the container's unique id, 64 lowercase hex digits; it names
	// the container's cgroup.
	ID string
	// StateDir is a directory the caller owns for this container. The
	// executor keeps its files there: state.json (the init's pid and
	// start time, the cgroup), init.json (mountpoint stubs, start time),
	// exit (the exit status), log (a detached container's output) and
	// bundle/ (generated /etc files and the rootfs mountpoint). It is
	// created when missing.
	StateDir string
	// Terminal gives the process a pseudo-terminal as its controlling
	// terminal. Attached, stdio.Stdin and stdio.Stdout carry it (the
	// caller puts its own terminal in raw mode, so that ^C reaches the
	// process through the terminal) and stdio.Resize resizes it.
	Terminal bool
	// Detach makes StartContainer return once the process runs. Its
	// output goes to the log in StateDir, and the container outlives the
	// caller.
	Detach bool
	// StopSignal is the signal StopContainer sends first (an image's
	// STOPSIGNAL); zero means SIGTERM.
	StopSignal syscall.Signal
}

// ContainerState is what any process can learn about a container from its
// state directory (ContainerStateOf).
type ContainerState struct {
	// Status is StatusCreated, StatusRunning, StatusPaused or
	// StatusExited.
	Status string
	// Pid is the host pid of the container's init while it runs.
	Pid int
	// ExitCode is the process's exit status once exited: 128+N when
	// killed by signal N, 127 when its binary does not exist, 126 when it
	// cannot be executed.
	ExitCode int
	// Started is when the process started, Finished when it exited.
	Started, Finished time.Time
}

// ProcessSpec describes a process to run in a running container
// (ExecContainer). Zero fields take the container's values.
type ProcessSpec struct {
	// Args is the argv; Args[0] without a slash is looked up in PATH.
	Args []string
	// Env holds KEY=VALUE pairs added to the container's environment,
	// replacing those with the same key.
	Env []string
	// Cwd is the absolute working directory, which must exist; User is
	// as in Spec.User.
	Cwd, User string
	// Terminal gives the process a pseudo-terminal, as
	// ContainerConfig.Terminal does.
	Terminal bool
}

// logFile in a state directory holds a detached container's output.
const logFile = "log"

// ContainerLogs copies what a detached container wrote (its stdout and
// stderr, interleaved, or its terminal's output) to w. A container that
// wrote nothing, or was never detached, has an empty log.
func ContainerLogs(stateDir string, w io.Writer) error {
	f, err := os.Open(filepath.Join(stateDir, logFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("reading container log: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("reading container log: %w", err)
	}
	return nil
}

// mergeEnv returns base with the entries of over added, an entry of over
// replacing the one of base with the same key in place.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	index := map[string]int{}
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		index[k] = i
	}
	for _, e := range over {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := index[k]; ok {
			out[i] = e
			continue
		}
		index[k] = len(out)
		out = append(out, e)
	}
	return out
}
