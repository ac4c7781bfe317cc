package executor

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// RootfsMount describes one root filesystem WithRootfs mounts: an overlay of
// Lowers (topmost first) with Upper and Work, or, with Upper empty, a
// read-only view of Lowers.
type RootfsMount struct {
	Lowers      []string
	Upper, Work string
}

// WithRootfs mounts each root filesystem on a fresh directory and calls fn
// with those directories, in the same order. It runs on a dedicated OS
// thread in a new private mount namespace that is discarded with the thread
// afterwards, so no mount can outlive the call or be seen by the host, even
// if the process is killed. fn must do its file work on the calling
// goroutine: other goroutines do not see the mounts.
func WithRootfs(mounts []RootfsMount, fn func(roots []string) error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: when this goroutine ends, the
		// runtime terminates the thread and its mount namespace with it.
		runtime.LockOSThread()
		errc <- withRootfsLocked(mounts, fn)
	}()
	return <-errc
}

func withRootfsLocked(mounts []RootfsMount, fn func(roots []string) error) error {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("creating mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	tmp, lock, err := makeTempDir(rootfsDirPrefix)
	if err != nil {
		return err
	}
	// The mounts vanish with the namespace; the directory does not. It is
	// removed once nothing is mounted on it in this namespace either, on
	// every return; SweepTemp removes it after a crash.
	defer func() {
		_ = os.Remove(tmp)
		lock.Close()
	}()
	// Mount a private tmpfs over the scratch dir so that mountpoints are
	// never visible on the host filesystem's directory either.
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "mode=700"); err != nil {
		return fmt.Errorf("mounting scratch tmpfs: %w", err)
	}
	// Detaching the tmpfs detaches everything below it.
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	roots := make([]string, len(mounts))
	for i, m := range mounts {
		dir := fmt.Sprintf("%s/%d", tmp, i)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := mountRootfs(dir, m); err != nil {
			return err
		}
		roots[i] = dir
	}
	return fn(roots)
}

func mountRootfs(dir string, m RootfsMount) error {
	switch {
	case m.Upper != "":
		lowers := m.Lowers
		if len(lowers) == 0 {
			empty, err := os.MkdirTemp(dir+"/..", "empty-")
			if err != nil {
				return err
			}
			lowers = []string{empty}
		}
		return mountOverlay(dir, lowers, m.Upper, m.Work)
	case len(m.Lowers) == 0:
		return nil // an empty read-only root: scratch
	case len(m.Lowers) == 1:
		if err := unix.Mount(m.Lowers[0], dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", m.Lowers[0], err)
		}
		return unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, "")
	default:
		return mountOverlay(dir, m.Lowers, "", "")
	}
}

// WithRootfs implements Executor with the package function WithRootfs.
func (builtin) WithRootfs(mounts []RootfsMount, fn func(roots []string) error) error {
	return WithRootfs(mounts, fn)
}

// WithRootfs implements Executor with the package function WithRootfs: an
// OCI runtime has no command for file work without a process.
func (*ociRuntime) WithRootfs(mounts []RootfsMount, fn func(roots []string) error) error {
	return WithRootfs(mounts, fn)
}
