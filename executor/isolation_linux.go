package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// netnsFD is the descriptor of the network namespace a re-executed child
// joins when initConfig.NetNS is set (os/exec ExtraFiles[2]).
const netnsFD = 5

// netReadyFD is the descriptor a child reads the network's readiness
// from when initConfig.NetReady is set (os/exec ExtraFiles[3]).
const netReadyFD = 6

// waitNetwork waits, when the parent starts the NAT while the child sets
// the container up, until the NAT has configured the namespace: the
// parent writes a byte then, or closes the pipe without one when the NAT
// failed.
func waitNetwork(cfg *initConfig) error {
	if !cfg.NetReady {
		return nil
	}
	f := os.NewFile(netReadyFD, "network-ready")
	defer f.Close()
	if n, _ := f.Read(make([]byte, 1)); n != 1 {
		return errNetworkFailed
	}
	return nil
}

// errNetworkFailed is the child's error when the NAT did not start; the
// parent reports the NAT's own error instead.
var errNetworkFailed = errors.New("the container's network could not be set up")

// isolate puts a container's init (or the runtime helper) into the
// namespaces the parent prepared and gives it a session keyring of its
// own, before anything else: the network namespace open as netnsFD, a new
// cgroup namespace rooted at the container's cgroup (the parent moved the
// process there before sending the config), and a new anonymous session
// keyring, so that keys of the caller's session are out of reach, as runc
// does.
func isolate(cfg *initConfig, newCgroupNS bool) error {
	if cfg.NetNS {
		if err := unix.Setns(netnsFD, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("joining the container's network namespace: %w", err)
		}
		unix.Close(netnsFD)
	}
	if newCgroupNS && hasNamespace(cfg.Spec, specs.CgroupNamespace) {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("creating cgroup namespace: %w", err)
		}
	}
	return newSessionKeyring()
}

// newSessionKeyring makes the calling thread join a new anonymous session
// keyring; the process forked from it inherits it. (The default seccomp
// profile then denies the process keyctl altogether.)
func newSessionKeyring() error {
	_, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	if errno != 0 && errno != unix.ENOSYS {
		return fmt.Errorf("joining a new session keyring: %w", errno)
	}
	return nil
}

// mountCgroupFS mounts the container's cgroups read-only on target, as
// seen from its cgroup namespace (the container's cgroup is the root):
// the unified hierarchy on v2; on v1 a tmpfs with the hierarchies the
// container joined, each at its name (memory, pids, ...). Hierarchies it
// did not join would show the builder's own cgroup, so they are left out.
func mountCgroupFS(cg *cgroup, target string) error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME
	if cg == nil {
		return nil
	}
	if cg.V2 {
		if err := unix.Mount("cgroup2", target, "cgroup2", flags|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mounting cgroup2 on /sys/fs/cgroup: %w", err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", flags, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("mounting tmpfs on /sys/fs/cgroup: %w", err)
	}
	for _, p := range cg.Paths {
		h := hierarchy(p)
		dir := filepath.Join(target, h)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("mounting cgroup %s: %w", h, err)
		}
		if err := unix.Mount("cgroup", dir, "cgroup", flags|unix.MS_RDONLY, h); err != nil {
			return fmt.Errorf("mounting cgroup %s: %w", h, err)
		}
		// cpu,cpuacct is also reachable as cpu and cpuacct.
		for _, ctrl := range strings.Split(h, ",") {
			if ctrl != h {
				_ = os.Symlink(h, filepath.Join(target, ctrl))
			}
		}
	}
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|flags, ""); err != nil {
		return fmt.Errorf("making /sys/fs/cgroup read-only: %w", err)
	}
	return nil
}

// bindHostDevice makes the container path of device d (full, its host
// path inside the merged root) the host's device node of the same path,
// bound read-only (so that chmod or chown cannot change the host's node;
// reading and writing a device is not affected). It reports false when
// the host has no such device. The container's /dev is mounted nodev, so
// a node created there by mknod cannot be opened, while these can.
func bindHostDevice(d specs.LinuxDevice, full string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.Path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR ||
		unix.Major(st.Rdev) != uint32(d.Major) || unix.Minor(st.Rdev) != uint32(d.Minor) {
		return false, nil
	}
	_ = os.Remove(full)
	f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false, fmt.Errorf("creating device %s: %w", d.Path, err)
	}
	f.Close()
	if err := bindMount(d.Path, full, unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
		return false, fmt.Errorf("binding device %s: %w", d.Path, err)
	}
	return true, nil
}
