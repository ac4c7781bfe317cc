package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/builder-project/builder/internal/userns"
	"golang.org/x/sys/unix"
)

// execTarget is the running container an exec helper joins.
type execTarget struct {
	Pid      int    `json:"pid"` // host pid of the container's init
	PidStart uint64 `json:"pidStart"`
	Cgroup   cgroup `json:"cgroup"`
}

// ExecContainer runs the process p in the running container of stateDir
// and returns its exit status (128+N when killed by signal N; 127 and 126,
// with a message on its stderr, when the binary does not exist or cannot
// be executed). A helper process joins the container's cgroup and its
// mount, pid, UTS, IPC and network namespaces, chroots into the root of
// the container's init, resolves p's user against the container's
// /etc/passwd, and starts p with the container's capabilities and limits.
// p's zero fields default to the container's: Env adds to (and overrides)
// the container's environment; Cwd, which must exist, and User default to
// the container's. With p.Terminal the process gets a pseudo-terminal
// carried by stdio.Stdin and stdio.Stdout, resized from stdio.Resize.
//
// Cancelling ctx, or the end of the calling process, kills the process;
// ExecContainer then returns ctx's error. It returns ErrNotRunning when the container does not run, and an
// error when it is paused.
func ExecContainer(ctx context.Context, stateDir string, p ProcessSpec, stdio IO) (int, error) {
	r, st, err := readState(stateDir)
	if err != nil {
		return -1, err
	}
	switch st.Status {
	case StatusRunning:
	case StatusPaused:
		return -1, fmt.Errorf("executing in container %s: container is paused", r.ID)
	default:
		return -1, fmt.Errorf("executing in container %s: %w", r.ID, ErrNotRunning)
	}
	s := Spec{Args: p.Args, Env: mergeEnv(r.Env, p.Env), Cwd: p.Cwd, User: p.User, Seccomp: r.Seccomp}
	if s.Cwd == "" {
		s.Cwd = r.Cwd
	}
	if s.User == "" {
		s.User = r.User
	}
	oci, err := s.OCI()
	if err != nil {
		return -1, err
	}
	clampRlimits(oci)
	cfg := &initConfig{Mode: modeExec, Spec: oci, User: s.User, Exec: &execTarget{Pid: r.Pid, PidStart: r.PidStart, Cgroup: r.Cgroup}}
	if p.Terminal {
		cfg.Terminal = initialSize(stdio.Resize)
	}
	// The helper kills the process when its config pipe ends, which is
	// when ctx is done or this process is gone. (The process cannot die
	// with the helper: Pdeathsig does not work across pid namespaces.)
	h, err := startHelper(modeExec, stdio, &syscall.SysProcAttr{})
	if err != nil {
		return -1, err
	}
	res, err := h.supervise(ctx, cfg, stdio.Resize, func() { _ = h.cmd.Process.Kill() })
	switch {
	case res.err != "":
		if _, st, _ := readState(stateDir); st.Status != StatusRunning {
			return -1, fmt.Errorf("executing in container %s: %w", r.ID, ErrNotRunning)
		}
		return -1, fmt.Errorf("executing in container %s: %s", r.ID, res.err)
	case err != nil:
		return -1, err
	case res.exit != nil:
		return *res.exit, nil
	case h.cmd.ProcessState != nil && exitCode(h.cmd.ProcessState) > 128:
		// The helper is in the container's cgroup: it was killed with
		// the container's processes, this one included.
		return exitCode(h.cmd.ProcessState), nil
	}
	return -1, fmt.Errorf("executing in container %s: helper exited without a status (%v)", r.ID, h.waitErr)
}

// supervise sends cfg to the helper, forwards the terminal sizes from
// resize and waits for the helper to exit. When ctx is done it closes the
// config pipe, which makes the helper kill its process, and calls kill if
// the helper has not exited a few seconds later. It returns ctx's error
// then.
func (h *helperProc) supervise(ctx context.Context, cfg *initConfig, resize <-chan [2]uint16, kill func()) (helperResult, error) {
	ctrl := newController(h.ctrl)
	defer ctrl.close()
	if err := ctrl.send(cfg); err != nil {
		kill()
	}
	results := make(chan helperResult, 1)
	go func() { results <- collect(h.msgs) }()
	stop := make(chan struct{})
	defer close(stop)
	go ctrl.forwardResizes(resize, stop)
	select {
	case <-h.exited:
	case <-ctx.Done():
		ctrl.close()
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			kill()
			<-h.exited
		}
	}
	return <-results, ctx.Err()
}

// execNamespaces are the namespaces an exec'd process joins, the mount
// namespace last.
var execNamespaces = []struct {
	name string
	flag int
}{
	{"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}, {"net", unix.CLONE_NEWNET},
	{"pid", unix.CLONE_NEWPID}, {"cgroup", unix.CLONE_NEWCGROUP}, {"mnt", unix.CLONE_NEWNS},
}

// execHelper runs in the helper ExecContainer starts, on its main thread,
// which Init locked. It joins the container's cgroup (the whole helper, so
// that the process starts in it) and, on this thread only, the container's
// namespaces and root; the process forked from this thread inherits them.
// It reports the process's start and exit status and exits; it returns
// only on a setup error.
func execHelper(cfg *initConfig, status *os.File, ctrl *json.Decoder) error {
	x := cfg.Exec
	if x == nil {
		return errors.New("reading exec config: no target")
	}
	ignoreSIGPIPE()
	fds, err := openNamespaces(x)
	if err != nil {
		return err
	}
	if err := x.Cgroup.add(os.Getpid()); err != nil {
		return err
	}
	// setns(CLONE_NEWNS) needs a filesystem context of the thread's own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing filesystem attributes: %w", err)
	}
	for i, ns := range execNamespaces {
		if err := unix.Setns(fds[i], ns.flag); err != nil {
			return fmt.Errorf("joining the container's %s namespace: %w", ns.name, err)
		}
		unix.Close(fds[i])
	}
	// fds[len(execNamespaces)] is the init's root.
	root := fds[len(execNamespaces)]
	if err := unix.Fchdir(root); err != nil {
		return fmt.Errorf("changing to the container's root: %w", err)
	}
	unix.Close(root)
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("changing root to the container's: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("changing to /: %w", err)
	}
	sp := cfg.Spec
	u, err := resolveUser("/", cfg.User)
	if err != nil {
		return err
	}
	applyUser(sp, u)
	if err := setRlimits(sp.Process.Rlimits); err != nil {
		return err
	}
	if err := limitCapabilities(sp.Process.Capabilities); err != nil {
		return err
	}
	if err := newSessionKeyring(); err != nil {
		return err
	}
	syscall.Umask(0o022)
	var tty *terminal
	var pumped <-chan struct{}
	stderr := os.Stderr
	if cfg.Terminal != nil {
		if tty, err = openTerminal(*cfg.Terminal, u.UID); err != nil {
			return err
		}
		pumped = tty.pump(os.Stdin, os.Stdout)
		stderr = tty.slave
	}
	var pid, code int
	if fi, serr := os.Stat(sp.Process.Cwd); serr != nil || !fi.IsDir() {
		err = fmt.Errorf("changing to working directory %s: not a directory in the container", sp.Process.Cwd)
		fmt.Fprintf(stderr, "builder: %v\n", err)
		code = 126
	} else if err = loadSeccomp(sp.Linux.Seccomp); err != nil {
		fmt.Fprintf(stderr, "builder: %v\n", err)
		code = 126
	} else if pid, err = forkProcess(sp.Process, tty, false); err != nil {
		fmt.Fprintf(stderr, "builder: %v\n", err)
		code = execFailureCode(err)
	}
	if tty != nil {
		tty.slave.Close()
	}
	if err == nil {
		writeMessage(status, initMessage{Started: pid})
		go readControl(ctrl, tty, func() { _ = unix.Kill(pid, unix.SIGKILL) })
		code = reap(pid)
	}
	drain(pumped)
	writeMessage(status, initMessage{Exit: &code})
	status.Close()
	os.Exit(0)
	return nil
}

// openNamespaces opens the namespaces of x's init, in execNamespaces
// order, followed by its root directory, and checks that the pid still
// names the init: the descriptors then refer to the container's.
func openNamespaces(x *execTarget) (fds []int, err error) {
	defer func() {
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	proc := "/proc/" + strconv.Itoa(x.Pid)
	for _, ns := range execNamespaces {
		fd, err := unix.Open(proc+"/ns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EACCES) && userns.Rootless() {
			return fds, fmt.Errorf("opening the container's %s namespace: %w (rootless, a container started by another command lives in that command's user namespace, which this one cannot join)", ns.name, err)
		}
		if err != nil {
			return fds, fmt.Errorf("opening the container's %s namespace: %w", ns.name, err)
		}
		fds = append(fds, fd)
	}
	root, err := unix.Open(proc+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fds, fmt.Errorf("opening the container's root: %w", err)
	}
	fds = append(fds, root)
	if !isProcess(x.Pid, x.PidStart) {
		return fds, ErrNotRunning
	}
	return fds, nil
}
