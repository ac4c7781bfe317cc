package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// atParent opens the parent directory of the symlink-free path p inside r
// and calls fn with its descriptor and the last component of p.
func atParent(r *os.Root, p string, fn func(fd int, name string) error) error {
	d, err := r.Open(relDir(p))
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(int(d.Fd()), relBase(p))
}

// mknod creates a device node or FIFO at p.
func mknod(r *os.Root, p string, mode fs.FileMode, rdev uint64) error {
	m := uint32(mode.Perm())
	switch {
	case mode&fs.ModeNamedPipe != 0:
		m |= unix.S_IFIFO
	case mode&fs.ModeCharDevice != 0:
		m |= unix.S_IFCHR
	case mode&fs.ModeDevice != 0:
		m |= unix.S_IFBLK
	default:
		return fmt.Errorf("creating %s: unsupported file type %v", p, mode.Type())
	}
	return atParent(r, p, func(fd int, name string) error {
		if err := unix.Mknodat(fd, name, m, int(rdev)); err != nil {
			return fmt.Errorf("creating device %s: %w", p, err)
		}
		return nil
	})
}

// statInfo returns the inode identity, link count and device number of fi.
func statInfo(fi fs.FileInfo) (dev, ino, nlink, rdev uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, 0, false
	}
	return st.Dev, st.Ino, st.Nlink, st.Rdev, true
}

// copyXattrs copies the extended attributes of src to dst, best effort:
// a filesystem that does not support them is not an error. It runs after
// chown, which clears security.capability.
func copyXattrs(src, dst *os.File) error {
	size, err := unix.Flistxattr(int(src.Fd()), nil)
	if err != nil || size <= 0 {
		return ignoreXattrErr(err)
	}
	buf := make([]byte, size)
	size, err = unix.Flistxattr(int(src.Fd()), buf)
	if err != nil {
		return ignoreXattrErr(err)
	}
	for _, name := range splitNul(buf[:size]) {
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue // overlayfs metadata would change the meaning of the upperdir
		}
		n, err := unix.Fgetxattr(int(src.Fd()), name, nil)
		if err != nil {
			if ignoreXattrErr(err) == nil {
				continue
			}
			return fmt.Errorf("reading xattr %s: %w", name, err)
		}
		val := make([]byte, n)
		if n, err = unix.Fgetxattr(int(src.Fd()), name, val); err != nil {
			return ignoreXattrErr(err)
		}
		if err := unix.Fsetxattr(int(dst.Fd()), name, val[:n], 0); err != nil {
			if ignoreXattrErr(err) == nil {
				continue
			}
			return fmt.Errorf("setting xattr %s: %w", name, err)
		}
	}
	return nil
}

// ignoreXattrErr drops the errors of filesystems without xattrs or of
// namespaces we may not write.
func ignoreXattrErr(err error) error {
	if err == nil || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENODATA) {
		return nil
	}
	return err
}

// splitNul splits a NUL-separated list of names.
func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// mkdev returns the device number of a major and minor pair.
func mkdev(major, minor int64) uint64 {
	return unix.Mkdev(uint32(major), uint32(minor))
}

// setXattr sets one extended attribute on f, best effort.
func setXattr(f *os.File, name string, val []byte) error {
	return ignoreXattrErr(unix.Fsetxattr(int(f.Fd()), name, val, 0))
}
