package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/builder-project/builder/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// containerInit is pid 1 of the built-in runtime's container. It builds
// the root filesystem inside its own mount namespace, pivots into it,
// starts the process as its child and reaps until that child exits, then
// exits with the child's status; the kernel then kills whatever else is
// left in the pid namespace. It returns only on a setup error.
func containerInit(cfg *initConfig, t *stubTracker, status *os.File) error {
	if err := enterContainer(cfg, t); err != nil {
		return err
	}
	syscall.Umask(0o022)
	// Report the stubs before the process may race with a kill.
	writeMessage(status, initMessage{Cleanup: t.entries})
	t.entries = nil
	if err := waitNetwork(cfg); err != nil {
		return err
	}
	if err := loadSeccomp(cfg.Spec.Linux.Seccomp); err != nil {
		return err
	}
	pid, err := forkProcess(cfg.Spec.Process, nil, true)
	if err != nil {
		return err
	}
	status.Close()
	os.Exit(reap(pid))
	return nil
}

// enterContainer is the setup every container init does: it joins the
// namespaces the parent prepared (see isolate), builds the root
// filesystem inside the init's own mount namespace, pivots into it, and
// sets the hostname, the loopback interface, the limits and the
// capability bounding set the process will get. The seccomp filter comes
// last, just before the process starts.
func enterContainer(cfg *initConfig, t *stubTracker) error {
	sp := cfg.Spec
	syscall.Umask(0)
	if err := isolate(cfg, true); err != nil {
		return err
	}
	if err := setupRootfs(cfg, t); err != nil {
		return err
	}
	if err := createDevices(t, append(standardDevices(), sp.Linux.Devices...)); err != nil {
		return err
	}
	if err := maskPaths(t, sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths); err != nil {
		return err
	}
	if err := pivotRoot(cfg.Rootfs); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(sp.Hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	if hasNamespace(sp, specs.NetworkNamespace) {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := setRlimits(sp.Process.Rlimits); err != nil {
		return err
	}
	return limitCapabilities(sp.Process.Capabilities)
}

// forkProcess starts the process p describes in a new session, with its
// user, working directory and environment, on the terminal tty (as its
// controlling terminal) or else on the caller's descriptors 0, 1 and 2.
// With dieWithParent it dies with the calling thread, which must then be
// in the process's pid namespace (Go checks the parent's pid). The binary
// is looked up in p's PATH inside the current root.
func forkProcess(p *specs.Process, tty *terminal, dieWithParent bool) (int, error) {
	argv0, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return 0, err
	}
	u := p.User
	sys := &syscall.SysProcAttr{
		Setsid:     true,
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, u.AdditionalGids...)},
	}
	// A user namespace with one id (rootless without subordinate ids)
	// denies setgroups; there are no other groups to set in it anyway.
	sys.Credential.NoSetGroups = !userns.SetgroupsAllowed()
	if dieWithParent {
		sys.Pdeathsig = syscall.SIGKILL
	}
	files := []uintptr{0, 1, 2}
	if tty != nil {
		fd := tty.slaveFd()
		files = []uintptr{fd, fd, fd}
		sys.Setctty, sys.Ctty = true, 0
	}
	pid, err := syscall.ForkExec(argv0, p.Args, &syscall.ProcAttr{Dir: p.Cwd, Env: p.Env, Files: files, Sys: sys})
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", p.Args[0], err)
	}
	return pid, nil
}

// setupRootfs mounts the overlay, creates the working directory, resolves
// the user and applies the spec's mounts, all below cfg.Rootfs.
func setupRootfs(cfg *initConfig, t *stubTracker) error {
	sp := cfg.Spec
	if err := prepareRootfs(cfg, t); err != nil {
		return err
	}
	for _, m := range sp.Mounts {
		target, err := t.mountpoint(m.Destination, isFileBind(m))
		if err != nil {
			return err
		}
		switch {
		case m.Type == "cgroup":
			err = mountCgroupFS(cfg.Cgroup, target)
		case m.Destination == "/dev":
			// Nodev: the standard devices are bound from the host (see
			// bindHostDevice), so no node made in /dev can be opened.
			m.Options = append(slices.Clone(m.Options), "nodev")
			err = applyMount(m, target)
		default:
			err = applyMount(m, target)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// prepareRootfs is the part shared with the external runtime helper: a
// private mount tree, the overlay, the working directory and the user.
func prepareRootfs(cfg *initConfig, t *stubTracker) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := mountOverlayWith(cfg.Rootfs, cfg.Lowers, cfg.Upper, cfg.Work, overlayOptions{legacy: cfg.LegacyOverlay, nodev: cfg.NoDev}); err != nil {
		return err
	}
	if err := t.mkdirPersistent(cfg.Spec.Process.Cwd); err != nil {
		return fmt.Errorf("creating working directory: %w", err)
	}
	u, err := resolveUser(cfg.Rootfs, cfg.User)
	if err != nil {
		return err
	}
	applyUser(cfg.Spec, u)
	return nil
}

// pivotRoot makes root the root of the mount namespace and detaches the
// old one.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("changing to the root filesystem: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivoting root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("isolating the old root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("changing to /: %w", err)
	}
	return nil
}

func hasNamespace(sp *specs.Spec, typ specs.LinuxNamespaceType) bool {
	for _, ns := range sp.Linux.Namespaces {
		if ns.Type == typ {
			return true
		}
	}
	return false
}

// loopbackUp brings up lo in a new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

var rlimitTypes = map[string]int{
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC,
	"RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_STACK": unix.RLIMIT_STACK,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_AS": unix.RLIMIT_AS,
	"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_CPU": unix.RLIMIT_CPU,
}

// setRlimits applies the spec's limits. syscall.Setrlimit (rather than
// x/sys) also stops the Go runtime from restoring its own NOFILE limit in
// the child.
func setRlimits(rl []specs.POSIXRlimit) error {
	for _, r := range rl {
		res, ok := rlimitTypes[r.Type]
		if !ok {
			return fmt.Errorf("setting rlimit: unsupported type %s", r.Type)
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("setting %s: %w", r.Type, err)
		}
	}
	return nil
}

// lookPath finds file in the PATH of env, inside the new root.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	pathEnv := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("starting %s: %w", file, errExecNotFound)
}

// errExecNotFound is lookPath's error for a command not found in PATH.
var errExecNotFound = errors.New("executable file not found in $PATH")

// execFailureCode is the exit status docker reports for a process that
// could not be started: 127 when the binary does not exist, 126 when it
// cannot be executed.
func execFailureCode(err error) int {
	if errors.Is(err, errExecNotFound) || errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}

// reap waits for children until pid exits and returns its status as a
// shell would report it.
func reap(pid int) int {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 255
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
