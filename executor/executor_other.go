//go:build !linux

package executor

import (
	"context"
	"errors"
	"runtime"
	"syscall"
	"time"
)

// errUnsupported is returned by New on systems without Linux namespaces
// and overlayfs.
var errUnsupported = errors.New("running containers needs Linux (have " + runtime.GOOS + ")")

// Init reports whether the process is a container init started by the
// executor; on this OS it never is.
func Init() bool { return false }

func newBuiltin() (Executor, error) { return nil, errUnsupported }

func newOCIRuntime(string) (Executor, error) { return nil, errUnsupported }

// RootfsMount describes one root filesystem WithRootfs mounts (Linux only).
type RootfsMount struct {
	Lowers      []string
	Upper, Work string
}

// WithRootfs needs Linux mount namespaces and overlayfs.
func WithRootfs(mounts []RootfsMount, fn func(roots []string) error) error {
	return errUnsupported
}

// StartContainer needs Linux namespaces, cgroups and overlayfs.
func StartContainer(ctx context.Context, runtime string, cfg ContainerConfig, stdio IO) (ContainerState, error) {
	return ContainerState{}, errUnsupported
}

// ContainerStateOf needs Linux.
func ContainerStateOf(stateDir string) (ContainerState, error) {
	return ContainerState{}, errUnsupported
}

// KillContainer needs Linux.
func KillContainer(stateDir string, sig syscall.Signal) error { return errUnsupported }

// StopContainer needs Linux.
func StopContainer(ctx context.Context, stateDir string, timeout time.Duration) error {
	return errUnsupported
}

// FreezeContainer needs the Linux cgroup freezer.
func FreezeContainer(stateDir string) error { return errUnsupported }

// ThawContainer needs the Linux cgroup freezer.
func ThawContainer(stateDir string) error { return errUnsupported }

// ExecContainer needs Linux namespaces.
func ExecContainer(ctx context.Context, stateDir string, p ProcessSpec, stdio IO) (int, error) {
	return -1, errUnsupported
}

// RemoveContainer needs Linux.
func RemoveContainer(stateDir string) error { return errUnsupported }

// CheckNetwork needs Linux network namespaces.
func CheckNetwork() error { return errUnsupported }

// CleanupRuncState has nothing to clean up on this OS, where no runtime
// runs.
func CleanupRuncState(dir string) error { return nil }

// SweepTemp has nothing to sweep on this OS, where no container runs.
func SweepTemp() error { return nil }

// HostInfo reports what containers would get: nothing on this OS.
func HostInfo() Host { return Host{} }
