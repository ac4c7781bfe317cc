package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// KillContainer sends sig to the container of stateDir: to its init,
// which forwards it to the process, or, for SIGKILL, to every process of
// the container's cgroup but the init, which then records exit code 137
// and exits. A signal to a paused container is delivered when it is
// thawed, except SIGKILL, which thaws it.
func KillContainer(stateDir string, sig syscall.Signal) error {
	r, _, err := runningState(stateDir)
	if err != nil {
		return err
	}
	return r.signal(sig)
}

func (r *containerRecord) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL && len(r.Cgroup.Paths) > 0 {
		return r.Cgroup.signalAll(sig, r.Pid)
	}
	// Without a cgroup (rootless, where the user may not create one) SIGKILL goes to the
	// init, pid 1 of the container's pid namespace, which takes every
	// process of the container with it; the next state read records 137.
	fd, err := openProcess(r.Pid, r.PidStart)
	if errors.Is(err, errProcessGone) {
		return fmt.Errorf("container %s: %w", r.ID, ErrNotRunning)
	} else if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling container %s: %w", r.ID, err)
	}
	return nil
}

// gone reports whether every process of the container has exited.
func (r *containerRecord) gone() (bool, error) {
	if isProcess(r.Pid, r.PidStart) {
		return false, nil
	}
	pids, err := r.Cgroup.procs()
	return len(pids) == 0, err
}

// killGrace is how long the init has to record the exit of a process
// killed with SIGKILL before it is killed too.
const killGrace = 10 * time.Second

// StopContainer stops the container of stateDir: it sends the stop signal
// (ContainerConfig.StopSignal, SIGTERM by default) to the process (through
// the init), thawing a paused container, and after timeout kills every
// process with SIGKILL. It returns once every process of the container is
// gone; the init has recorded the exit status by then. Stopping a
// container that does not run does nothing.
func StopContainer(ctx context.Context, stateDir string, timeout time.Duration) error {
	r, st, err := runningState(stateDir)
	if errors.Is(err, ErrNotRunning) {
		return nil
	} else if err != nil {
		return err
	}
	sig := syscall.Signal(r.StopSignal)
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if err := r.signal(sig); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if st.Status == StatusPaused {
		if err := r.Cgroup.setFrozen(false); err != nil {
			return err
		}
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := poll(tctx, r.gone); err == nil || ctx.Err() != nil {
		return err
	}
	// Kill the rest; the init records the status and exits.
	if err := r.signal(syscall.SIGKILL); err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, killGrace)
	defer cancel()
	if err := poll(gctx, r.gone); err == nil || ctx.Err() != nil {
		return err
	}
	if err := r.Cgroup.killAll(); err != nil {
		return err
	}
	return poll(ctx, r.gone)
}

// FreezeContainer freezes every process of the container of stateDir with
// the cgroup freezer (v1 freezer.state FROZEN, v2 cgroup.freeze) and
// returns once the kernel reports the cgroup frozen. Its state is then
// "paused".
func FreezeContainer(stateDir string) error {
	r, _, err := runningState(stateDir)
	if err != nil {
		return err
	}
	return r.Cgroup.setFrozen(true)
}

// ThawContainer undoes FreezeContainer.
func ThawContainer(stateDir string) error {
	r, _, err := runningState(stateDir)
	if err != nil {
		return err
	}
	return r.Cgroup.setFrozen(false)
}

// removeTimeout bounds how long RemoveContainer waits for the processes
// it killed.
const removeTimeout = 30 * time.Second

// RemoveContainer kills every process of the container of stateDir (its
// whole cgroup, running or paused), waits until they are all gone, removes
// the mountpoint stubs from the upperdir, the cgroup, and the files the
// executor keeps in stateDir (state, exit status, log, bundle). stateDir
// itself, the upperdir and the workdir stay: they are the caller's.
func RemoveContainer(stateDir string) error {
	var r containerRecord
	err := readJSON(stateDir, stateFile, &r)
	if errors.Is(err, fs.ErrNotExist) {
		return removeStateFiles(stateDir)
	} else if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	err = poll(ctx, func() (bool, error) {
		if err := r.Cgroup.killAll(); err != nil {
			return false, err
		}
		// The init is in the cgroup, unless it died before joining it.
		if fd, err := openProcess(r.Pid, r.PidStart); err == nil {
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		}
		return r.gone()
	})
	if err != nil {
		return fmt.Errorf("removing container %s: waiting for its processes: %w", r.ID, err)
	}
	var init initRecord
	if err := readJSON(stateDir, initFile, &init); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := removeStubs(r.Upper, init.Stubs); err != nil {
		return err
	}
	if err := r.Cgroup.remove(); err != nil {
		return err
	}
	return removeStateFiles(stateDir)
}

func removeStateFiles(dir string) error {
	if err := removeRunDir(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	for _, f := range []string{initFile, exitFile, logFile, stateFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing container state: %w", err)
		}
	}
	return nil
}
