package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// The file kinds of meta.mode (the S_IFMT bits of st_mode).
const (
	modeTypeMask = unix.S_IFMT
	modeDir      = unix.S_IFDIR
	modeReg      = unix.S_IFREG
	modeSymlink  = unix.S_IFLNK
	modeChar     = unix.S_IFCHR
	modeBlock    = unix.S_IFBLK
)

// metaFromStat converts a stat result.
func metaFromStat(st *unix.Stat_t) meta {
	return meta{
		mode:  st.Mode,
		uid:   st.Uid,
		gid:   st.Gid,
		size:  st.Size,
		rdev:  uint64(st.Rdev),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}
}

// statAt lstats name in the directory dirfd. It never follows a symlink.
func statAt(dirfd int, name string) (meta, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return meta{}, &os.PathError{Op: "lstat", Path: name, Err: err}
		}
		return metaFromStat(&st), nil
	}
}

// statFile fstats an open file.
func statFile(f *os.File) (meta, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return meta{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return metaFromStat(&st), nil
}

// openDirAt opens the directory name in dirfd without following a symlink;
// path names the result for error messages.
func openDirAt(dirfd int, name, path string) (*os.File, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// openFileAt opens the regular file name in dirfd for reading without
// following a symlink and without blocking should it have become a FIFO.
func openFileAt(dirfd int, name, path string) (*os.File, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// readlinkAt returns the target of the symlink name in dirfd.
func readlinkAt(dirfd int, name, path string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
