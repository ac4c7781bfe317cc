//go:build !linux

package executor

import (
	"errors"
	"runtime"
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
