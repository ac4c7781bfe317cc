package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// containerInit is pid 1 of the built-in runtime's container. It builds
// the root filesystem inside its own mount namespace, pivots into it,
// starts the process as its child and reaps until that child exits, then
// exits with the child's status; the kernel then kills whatever else is
// left in the pid namespace. It returns only on a setup error.
func containerInit(cfg *initConfig, t *stubTracker, status *os.File) error {
	sp := cfg.Spec
	syscall.Umask(0)
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
	if err := limitCapabilities(sp.Process.Capabilities); err != nil {
		return err
	}
	argv0, err := lookPath(sp.Process.Args[0], sp.Process.Env)
	if err != nil {
		return err
	}
	syscall.Umask(0o022)
	u := sp.Process.User
	groups := []uint32{}
	groups = append(groups, u.AdditionalGids...)
	// Report the stubs before the process may race with a kill.
	writeMessage(status, initMessage{Cleanup: t.entries})
	t.entries = nil
	pid, err := syscall.ForkExec(argv0, sp.Process.Args, &syscall.ProcAttr{
		Dir:   sp.Process.Cwd,
		Env:   sp.Process.Env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
			Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: groups},
		},
	})
	if err != nil {
		return fmt.Errorf("starting %s: %w", sp.Process.Args[0], err)
	}
	status.Close()
	os.Exit(reap(pid))
	return nil
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
		if err := applyMount(m, target); err != nil {
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
	if err := mountOverlayWith(cfg.Rootfs, cfg.Lowers, cfg.Upper, cfg.Work, cfg.LegacyOverlay); err != nil {
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
	return "", fmt.Errorf("starting %s: executable file not found in $PATH", file)
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
