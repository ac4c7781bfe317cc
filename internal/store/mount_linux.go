package store

import "golang.org/x/sys/unix"

// detachMount lazily unmounts whatever is mounted on dir, if anything, so
// that removing dir never reaches into a mounted filesystem.
func detachMount(dir string) {
	_ = unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
}
