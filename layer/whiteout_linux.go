package layer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// isMissing reports errors meaning "there is nothing at this path".
func isMissing(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// whiteout applies ".wh.target" found in directory parent.
func (a *applier) whiteout(parent, target string) error {
	name := path.Join(parent, target)
	if a.opts.Format == OverlayFormat {
		if a.seen[name] {
			return nil // the same layer's entry wins over its own whiteout
		}
		pdir, err := a.parentDir(parent, true)
		if err != nil {
			return fmt.Errorf("creating parent directory: %w", err)
		}
		pfd := int(pdir.Fd())
		if err := removeExisting(pfd, target, false); err != nil {
			return err
		}
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("creating whiteout device: %w", err)
		}
		return nil
	}

	pdir, err := a.parentDir(parent, false)
	if isMissing(err) {
		return nil // nothing below to hide
	}
	if err != nil {
		return fmt.Errorf("resolving parent directory: %w", err)
	}
	pfd := int(pdir.Fd())
	if !a.seen[name] {
		if err := removeAllAt(pfd, target); err != nil {
			return fmt.Errorf("removing %s: %w", name, err)
		}
		return nil
	}
	// The path also came with this layer: keep it, but hide what lay
	// below it.
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !isDir(&st) {
		return nil
	}
	fd, err := unix.Openat(pfd, target, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", name, err)
	}
	defer unix.Close(fd)
	return a.removeUnseen(fd, name)
}

// opaque applies "dir/.wh..wh..opq".
func (a *applier) opaque(dir string) error {
	if a.opts.Format == OverlayFormat {
		d, err := a.parentDir(dir, true)
		if err != nil {
			return fmt.Errorf("creating opaque directory: %w", err)
		}
		fd, err := unix.Openat(int(d.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening opaque directory: %w", err)
		}
		defer unix.Close(fd)
		xattr := trustedOverlay + "opaque"
		if a.opts.UserXattr {
			xattr = userOverlay + "opaque"
		}
		if err := unix.Fsetxattr(fd, xattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("setting %s: %w", xattr, err)
		}
		return nil
	}
	d, err := a.parentDir(dir, false)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolving opaque directory: %w", err)
	}
	return a.removeUnseen(int(d.Fd()), dir)
}

// removeUnseen removes everything below the directory dirfd (layer path
// rel) that this layer did not bring.
func (a *applier) removeUnseen(dirfd int, rel string) error {
	names, err := readNamesAt(dirfd, ".")
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", rel, err)
	}
	for _, n := range names {
		child := path.Join(rel, n)
		if !a.seen[child] {
			if err := removeAllAt(dirfd, n); err != nil {
				return fmt.Errorf("removing %s: %w", child, err)
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !isDir(&st) {
			continue
		}
		cfd, err := unix.Openat(dirfd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", child, err)
		}
		err = a.removeUnseen(cfd, child)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// finishDirs sets the modes and times of the directories of the layer.
func (a *applier) finishDirs() error {
	a.dropParent()
	for _, d := range a.dirs {
		if err := a.finishDir(d); err != nil {
			return fmt.Errorf("finishing directory %q: %w", d.name, err)
		}
	}
	return nil
}

func (a *applier) finishDir(d dirMeta) error {
	pdir, base := a.root, "."
	if d.name != "" {
		parent := parentOf(d.name)
		base = d.name[strings.LastIndexByte(d.name, '/')+1:]
		if parent != "" {
			p, err := pathrs.OpenatInRoot(a.root, parent)
			if isMissing(err) {
				return nil // removed by a later entry
			}
			if err != nil {
				return err
			}
			defer p.Close()
			pdir = p
		}
	}
	fd, err := unix.Openat(int(pdir.Fd()), base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if isMissing(err) || errors.Is(err, unix.ELOOP) {
		return nil // replaced by a non-directory later in the layer
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, d.mode); err != nil {
		return fmt.Errorf("setting mode: %w", err)
	}
	ts := []unix.Timespec{timespec(d.atime), timespec(d.mtime)}
	if err := unix.UtimesNanoAt(fd, ".", ts, 0); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// removeExisting clears pfd/base for a new entry. With keepDir an existing
// directory stays (a directory entry over a directory merges).
func removeExisting(pfd int, base string, keepDir bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspecting existing entry: %w", err)
	}
	if keepDir && isDir(&st) {
		return nil
	}
	if err := removeAllAt(pfd, base); err != nil {
		return fmt.Errorf("replacing existing entry: %w", err)
	}
	return nil
}

// removeAllAt removes dirfd/name and, if it is a directory, its content,
// never following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		names, err := readNamesAt(fd, ".")
		if err == nil {
			for _, n := range names {
				if err = removeAllAt(fd, n); err != nil {
					break
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
		err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.ENOTEMPTY) || attempt > 2 {
			return err
		}
	}
}

// readNamesAt lists the directory dirfd/name.
func readNamesAt(dirfd int, name string) ([]string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return f.Readdirnames(-1)
}
