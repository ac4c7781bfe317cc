package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/builder-project/builder/executor"

	"golang.org/x/sys/unix"
)

// mountHost mounts the root filesystem m on target, in the caller's mount
// namespace: ex mounts it in a private mount namespace, as for any file
// work (see executor.WithRootfs), and a detached clone of that mount
// (open_tree) is attached on target (move_mount). The overlay options are
// thus the executor's, which keep the upperdir a self-contained diff.
func mountHost(ex executor.Executor, target string, m executor.RootfsMount) error {
	fd := -1
	err := ex.WithRootfs([]executor.RootfsMount{m}, func(roots []string) error {
		var err error
		fd, err = unix.OpenTree(unix.AT_FDCWD, roots[0], unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		return err
	})
	if err != nil {
		return fmt.Errorf("mounting the root filesystem: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching the root filesystem on %s: %w", target, err)
	}
	return nil
}

// withProcessRoot calls fn with the root filesystem of c's running
// container as its init (host pid pid) sees it: the overlay and the
// mounts on it, reached through /proc/<pid>/root, which is opened first
// and held open. c's state is read again once it is open: if the same
// init still runs, pid named it all along, so a pid reused meanwhile
// cannot hand fn another process's root.
func (b *Builder) withProcessRoot(c *container, pid int, fn func(root string) error) error {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the root filesystem of container %s: %w", c.name(), err)
	}
	defer unix.Close(fd)
	st, err := b.containerState(c)
	if err != nil {
		return err
	}
	if !st.Running() || st.Pid != pid {
		return fmt.Errorf("%w: container %s stopped meanwhile", ErrConflict, c.name())
	}
	return fn(fmt.Sprintf("/proc/self/fd/%d", fd))
}

// unmountHost unmounts target if something is mounted there.
func (b *Builder) unmountHost(target string) error {
	if !isMounted(target) {
		return nil
	}
	if err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	return nil
}

// isMounted reports whether a filesystem other than its parent's is
// mounted on dir.
func isMounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// isWhiteout reports whether fi is an overlay whiteout: a 0:0 character
// device.
func isWhiteout(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&os.ModeCharDevice != 0 && st.Rdev == 0
}

// isOpaque reports whether the directory p is an opaque overlay directory
// (trusted.overlay.opaque=y as root, user.overlay.opaque=y rootless).
func isOpaque(p string) bool {
	buf := make([]byte, 1)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(p, name, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
