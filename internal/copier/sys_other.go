//go:build !linux

package copier

import (
	"errors"
	"io/fs"
	"os"
)

// errUnsupported is returned where the copier needs Linux system calls.
var errUnsupported = errors.New("copier: not supported on this platform")

// mknod is not supported without Linux.
func mknod(r *os.Root, p string, mode fs.FileMode, rdev uint64) error {
	return errUnsupported
}

// statInfo reports no inode information without Linux, so hardlinks are
// copied as separate files.
func statInfo(fi fs.FileInfo) (dev, ino, nlink, rdev uint64, ok bool) {
	return 0, 0, 0, 0, false
}

// copyXattrs does nothing without Linux.
func copyXattrs(src, dst *os.File) error { return nil }

// mkdev returns the device number of a major and minor pair.
func mkdev(major, minor int64) uint64 {
	return uint64(major)<<8 | uint64(minor)
}

// setXattr does nothing without Linux.
func setXattr(f *os.File, name string, val []byte) error { return nil }
