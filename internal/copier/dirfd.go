//go:build unix

package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The copy of a directory tree keeps open the directories it is in, in
// both roots, and reaches each entry by its name in the open directory that
// holds it instead of resolving its whole path from the root again. Such a
// name is one component read from a directory listing, and the functions
// here refuse anything else ("", ".", "..", a name holding "/"). None of
// them follows a symlink at that name: a symlink put in the way makes an
// operation fail, or act on the symlink itself, inside the same directory,
// so it cannot lead outside the root. An open directory that is moved
// keeps being used where it is, as with os.Root.OpenRoot. Whatever needs a
// symlink followed (a destination directory that is a symlink, the
// destination path itself) still goes through the os.Root of the root.

// errNotName is returned for a name that is not a single path component.
var errNotName = errors.New("not a single path component")

// at checks that name is a single path component, so that the kernel looks
// up nothing but name in the directory fd, and calls f with fd until a
// signal does not interrupt it (as the os package does).
func at(fd int, name string, f func(fd int) error) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("%q: %w", name, errNotName)
	}
	for {
		if err := f(fd); err != unix.EINTR {
			return err
		}
	}
}

// openAt opens name in the directory dir without following a symlink.
func openAt(dir *os.File, name string, flag int, perm uint32) (*os.File, error) {
	var nfd int
	err := at(int(dir.Fd()), name, func(fd int) (err error) {
		nfd, err = unix.Openat(fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), dir.Name()+"/"+name), nil
}

// readlinkAt reads the symlink name in the directory dir.
func readlinkAt(dir *os.File, name string) (string, error) {
	for size := 128; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := at(int(dir.Fd()), name, func(fd int) (err error) {
			n, err = unix.Readlinkat(fd, name, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// dstDir is an open directory of the destination root. Its methods act on
// one name inside it and never follow a symlink there.
type dstDir struct {
	f *os.File
	// path is the root-relative path the directory was opened at, for
	// messages and for what still goes through the root.
	path string
}

// openDst opens the directory p of the destination root through the root.
func (c *copier) openDst(p string) (dstDir, error) {
	f, err := c.dst.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return dstDir{}, fmt.Errorf("opening /%s: %w", p, err)
	}
	return dstDir{f: f, path: p}, nil
}

func (d dstDir) fd() int { return int(d.f.Fd()) }

// join returns the root-relative path of name.
func (d dstDir) join(name string) string { return relJoin(d.path, name) }

func (d dstDir) close() {
	if d.f != nil {
		d.f.Close()
	}
}

// typeOf returns the type bits of name: fs.ModeDir, fs.ModeSymlink, 0 for a
// regular file or fs.ModeIrregular for anything else.
func (d dstDir) typeOf(name string) (fs.FileMode, error) {
	var st unix.Stat_t
	if err := at(d.fd(), name, func(fd int) error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return 0, err
	}
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir, nil
	case unix.S_IFLNK:
		return fs.ModeSymlink, nil
	case unix.S_IFREG:
		return 0, nil
	}
	return fs.ModeIrregular, nil
}

// openDir opens the directory name.
func (d dstDir) openDir(name string) (dstDir, error) {
	f, err := openAt(d.f, name, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return dstDir{}, fmt.Errorf("opening /%s: %w", d.join(name), err)
	}
	return dstDir{f: f, path: d.join(name)}, nil
}

func (d dstDir) mkdir(name string, perm uint32) error {
	return at(d.fd(), name, func(fd int) error { return unix.Mkdirat(fd, name, perm) })
}

// create creates the regular file name, which must not exist.
func (d dstDir) create(name string, perm uint32) (*os.File, error) {
	return openAt(d.f, name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

// remove removes the non-directory name.
func (d dstDir) remove(name string) error {
	return at(d.fd(), name, func(fd int) error { return unix.Unlinkat(fd, name, 0) })
}

func (d dstDir) symlink(target, name string) error {
	return at(d.fd(), name, func(fd int) error { return unix.Symlinkat(target, fd, name) })
}

func (d dstDir) lchown(name string, uid, gid int) error {
	return at(d.fd(), name, func(fd int) error { return unix.Fchownat(fd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW) })
}

// lchtimes sets the access and modification times of name to mtime.
func (d dstDir) lchtimes(name string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	return at(d.fd(), name, func(fd int) error {
		return unix.UtimesNanoAt(fd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}
