package output

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// stagingDir creates the private directory an image is unpacked into
// before it moves into dir: next to dir, so that moving is a rename, or
// inside dir when dir is a mount point (or its parent is not writable).
func stagingDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	parent := filepath.Dir(abs)
	var pst, dst unix.Stat_t
	if unix.Stat(parent, &pst) == nil && unix.Stat(abs, &dst) == nil && pst.Dev == dst.Dev {
		if s, err := os.MkdirTemp(parent, "."+filepath.Base(abs)+".export-"); err == nil {
			return s, nil
		}
	}
	return os.MkdirTemp(abs, ".export-")
}

// moveEntries moves every entry of the directory src into the directory
// dst by renaming it, never replacing an entry of dst unless force is set.
// With force, a directory of src merges into the directory of the same name
// in dst (and gives it its mode, owner and times), and any other entry of
// src replaces the entry of dst, whose old content is removed from src's
// tree, never from dst's. Nothing in dst is followed: a symlink there is an
// entry like any other.
func moveEntries(src, dst string, force bool) error {
	sd, err := openDir(unix.AT_FDCWD, src, true)
	if err != nil {
		return err
	}
	defer sd.Close()
	dd, err := openDir(unix.AT_FDCWD, dst, false) // dst itself as the caller named it
	if err != nil {
		return err
	}
	defer dd.Close()
	m := &mover{src: src, dst: dst, force: force}
	return m.move(sd, dd, "")
}

type mover struct {
	src, dst string
	force    bool
}

// move moves the entries of sd, which is src/rel, into dd, dst/rel.
func (m *mover) move(sd, dd *os.File, rel string) error {
	names, err := sd.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(m.src, rel), err)
	}
	sort.Strings(names)
	sfd, dfd := int(sd.Fd()), int(dd.Fd())
	for _, n := range names {
		p := path.Join(rel, n)
		err := renameNoReplace(sfd, n, dfd)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("moving %s into %s: %w", p, m.dst, err)
		}
		if !m.force {
			return fmt.Errorf("%s already holds %s: %w", m.dst, p, ErrDirNotEmpty)
		}
		var sst, dstSt unix.Stat_t
		if err := unix.Fstatat(sfd, n, &sst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("moving %s: %w", p, err)
		}
		if err := unix.Fstatat(dfd, n, &dstSt, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("moving %s into %s: %w", p, m.dst, err)
		}
		if sst.Mode&unix.S_IFMT == unix.S_IFDIR && dstSt.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := m.merge(sfd, dfd, n, p, &sst); err != nil {
				return err
			}
			continue
		}
		if err := m.replace(sfd, dfd, n, rel); err != nil {
			return fmt.Errorf("replacing %s in %s: %w", p, m.dst, err)
		}
	}
	return nil
}

// renameNoReplace renames sfd/n to dfd/n, failing with EEXIST when that
// exists. Where the filesystem lacks RENAME_NOREPLACE (NFS), it looks
// first, leaving a window for a concurrent writer of dfd/n.
func renameNoReplace(sfd int, n string, dfd int) error {
	err := unix.Renameat2(sfd, n, dfd, n, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return unix.EEXIST
	}
	return unix.Renameat(sfd, n, dfd, n)
}

// replace puts sfd/n (src/rel/n) in the place of dfd/n, and removes what
// was there from src's tree, never from dst's.
func (m *mover) replace(sfd, dfd int, n, rel string) error {
	err := unix.Renameat2(sfd, n, dfd, n, unix.RENAME_EXCHANGE)
	if err == nil {
		return os.RemoveAll(filepath.Join(m.src, rel, n))
	}
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	// No RENAME_EXCHANGE: move the old entry aside into src, then rename.
	aside, err := os.MkdirTemp(m.src, ".replaced-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(aside)
	ad, err := openDir(unix.AT_FDCWD, aside, true)
	if err != nil {
		return err
	}
	defer ad.Close()
	if err := unix.Renameat(dfd, n, int(ad.Fd()), n); err != nil {
		return err
	}
	return unix.Renameat(sfd, n, dfd, n)
}

// merge moves the directory n of sfd into the directory n of dfd, then
// gives the latter the metadata st of the former.
func (m *mover) merge(sfd, dfd int, n, p string, st *unix.Stat_t) error {
	sub, err := openDir(sfd, n, true)
	if err != nil {
		return fmt.Errorf("moving %s: %w", p, err)
	}
	defer sub.Close()
	dsub, err := openDir(dfd, n, true)
	if err != nil {
		return fmt.Errorf("moving %s into %s: %w", p, m.dst, err)
	}
	defer dsub.Close()
	if err := m.move(sub, dsub, p); err != nil {
		return err
	}
	fd := int(dsub.Fd())
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("setting owner of %s in %s: %w", p, m.dst, err)
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("setting mode of %s in %s: %w", p, m.dst, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, n, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %s in %s: %w", p, m.dst, err)
	}
	return nil
}

// openDir opens the directory name relative to dirfd, refusing a symlink
// there when nofollow is set.
func openDir(dirfd int, name string, nofollow bool) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
