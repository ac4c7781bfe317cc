package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/builder-project/builder/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountFlags maps OCI mount options to mount(2) flags; a false clear
// sets the flag, a true one clears it.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits OCI options into flags, propagation flags and
// filesystem data.
func parseMountOptions(opts []string) (flags uintptr, prop []uintptr, data string) {
	var d []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
		} else if p, ok := propagationFlags[o]; ok {
			prop = append(prop, p)
		} else {
			d = append(d, o)
		}
	}
	return flags, prop, strings.Join(d, ",")
}

// isFileBind reports whether m binds a non-directory, which needs a file
// as its mountpoint.
func isFileBind(m specs.Mount) bool {
	if m.Type != "bind" {
		return false
	}
	fi, err := os.Stat(m.Source)
	return err == nil && !fi.IsDir()
}

// applyMount mounts m on target, a host path inside the merged root.
func applyMount(m specs.Mount, target string) error {
	flags, prop, data := parseMountOptions(m.Options)
	var err error
	switch {
	case m.Type == "bind" || flags&unix.MS_BIND != 0:
		err = bindMount(m.Source, target, flags)
	case m.Type == "sysfs":
		err = unix.Mount(m.Source, target, m.Type, flags, data)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
			// No sysfs of our own: show the host's, read-only.
			err = bindMount("/sys", target, unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|flags)
		}
	case m.Type == "proc":
		err = unix.Mount(m.Source, target, m.Type, flags, data)
		if errors.Is(err, unix.EPERM) && userns.Rootless() {
			// A user namespace inside a container whose /proc has
			// masked paths (docker's, Kubernetes') may not mount a
			// procfs of its own: the kernel refuses one that would
			// reveal what the masks hide. Show the /proc the runtime
			// mounted, masks included, read-only; the process keeps
			// its own pid namespace.
			err = bindMount("/proc", target, unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|flags)
		}
	case m.Type == "devpts" && !userns.Mapped(0, 5):
		// A user namespace with one id has no tty group (gid 5) for
		// the terminals, as rootless podman finds too.
		err = unix.Mount(m.Source, target, m.Type, flags, withoutOption(data, "gid="))
	default:
		err = unix.Mount(m.Source, target, m.Type, flags, data)
	}
	if err != nil {
		return fmt.Errorf("mounting %s (%s) on %s: %w", m.Source, m.Type, m.Destination, err)
	}
	for _, p := range prop {
		if err := unix.Mount("", target, "", p, ""); err != nil {
			return fmt.Errorf("setting propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// withoutOption drops the options of a comma-separated mount data string
// that start with prefix.
func withoutOption(data, prefix string) string {
	var keep []string
	for _, o := range strings.Split(data, ",") {
		if !strings.HasPrefix(o, prefix) {
			keep = append(keep, o)
		}
	}
	return strings.Join(keep, ",")
}

// bindMount binds src on target and then applies the per-mount flags,
// which a bind mount only takes on a remount. A recursive read-only bind
// is made read-only all the way down with mount_setattr.
func bindMount(src, target string, flags uintptr) error {
	if err := unix.Mount(src, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return err
	}
	rest := flags &^ (unix.MS_BIND | unix.MS_REC)
	if rest == 0 {
		return nil
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|rest, ""); err != nil {
		return fmt.Errorf("remounting: %w", err)
	}
	if flags&unix.MS_REC != 0 && rest&unix.MS_RDONLY != 0 {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, attr); err != nil && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("making submounts read-only: %w", err)
		}
	}
	return nil
}

// createDevices provides the spec's devices, bound from the host's where
// it has them and made with mknod otherwise, and the usual /dev symlinks
// inside the merged root, whose /dev is a fresh tmpfs by now.
func createDevices(t *stubTracker, devs []specs.LinuxDevice) error {
	for _, d := range devs {
		full, _, err := t.resolve(d.Path)
		if err != nil {
			return err
		}
		if bound, err := bindHostDevice(d, full); err != nil {
			return err
		} else if bound {
			continue
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(d.FileMode.Perm())
		}
		var typ uint32
		switch d.Type {
		case "c", "u":
			typ = unix.S_IFCHR
		case "b":
			typ = unix.S_IFBLK
		case "p":
			typ = unix.S_IFIFO
		default:
			return fmt.Errorf("creating device %s: unknown type %q", d.Path, d.Type)
		}
		_ = os.Remove(full)
		if err := unix.Mknod(full, typ|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("creating device %s: %w", d.Path, err)
		}
		uid, gid := 0, 0
		if d.UID != nil {
			uid = int(*d.UID)
		}
		if d.GID != nil {
			gid = int(*d.GID)
		}
		if err := unix.Lchown(full, uid, gid); err != nil {
			return fmt.Errorf("creating device %s: %w", d.Path, err)
		}
	}
	dev, _, err := t.resolve("/dev")
	if err != nil {
		return err
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
		{"pts/ptmx", "ptmx"},
	}
	for _, l := range links {
		p := filepath.Join(dev, l[1])
		_ = os.Remove(p)
		if err := os.Symlink(l[0], p); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// maskPaths hides the masked paths (an empty read-only tmpfs on a
// directory, /dev/null on a file) and makes the read-only ones so. Paths
// missing from the root are skipped.
func maskPaths(t *stubTracker, masked, readonly []string) error {
	devNull, _, err := t.resolve("/dev/null")
	if err != nil {
		return err
	}
	for _, p := range masked {
		full, _, err := t.resolve(p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(full)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", full, "tmpfs", unix.MS_RDONLY, "")
		} else {
			err = unix.Mount(devNull, full, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	for _, p := range readonly {
		full, _, err := t.resolve(p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(full); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(full, &st); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
		keep := uintptr(0)
		for _, f := range [][2]uintptr{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC}} {
			if uintptr(st.Flags)&f[0] != 0 {
				keep |= f[1]
			}
		}
		if err := bindMount(full, full, unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|keep); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
	}
	return nil
}
