package userns

import (
	"bytes"
	"os"
	"sync"
	"syscall"
)

// Info is what Current found about the process's user namespace.
type Info struct {
	// Rootless is true unless the process is root of the initial user
	// namespace: a non-root user, or root of a user namespace (its uid map
	// is not the identity of the whole id range, or its
	// /proc/self/ns/user is not the initial namespace). A rootless process
	// mounts overlays with userxattr and keeps overlay whiteouts and
	// opaque markers in user.overlay.* xattrs.
	Rootless bool
	// UIDs and GIDs are the process's id maps (/proc/self/uid_map,
	// gid_map); nil where the files cannot be read (not Linux).
	UIDs, GIDs Maps
	// Entered says how Enter made the namespace, when this process runs
	// in one it made: "subids" (newuidmap and newgidmap, with the
	// subordinate ranges), "single" (the user's own id only) or "nested"
	// (root without CAP_SYS_ADMIN: a namespace inside its own); empty
	// otherwise.
	Entered string
}

var (
	currentOnce sync.Once
	current     Info
)

// Current returns what the process's user namespace is, read once.
func Current() Info {
	currentOnce.Do(func() { current = detect() })
	return current
}

// Rootless reports Current().Rootless.
func Rootless() bool { return Current().Rootless }

// Mapped reports whether both uid and gid are mapped in the process's
// user namespace (always true where the maps are unknown).
func Mapped(uid, gid int) bool {
	c := Current()
	if c.UIDs == nil || c.GIDs == nil {
		return true
	}
	return uid >= 0 && gid >= 0 && c.UIDs.Contains(uint32(uid)) && c.GIDs.Contains(uint32(gid))
}

func readMaps(path string) Maps {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m, err := ParseMaps(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return m
}

func detect() Info {
	i := Info{
		UIDs:    readMaps("/proc/self/uid_map"),
		GIDs:    readMaps("/proc/self/gid_map"),
		Entered: os.Getenv(modeEnv),
	}
	i.Rootless = os.Geteuid() != 0 || (i.UIDs != nil && !i.UIDs.Identity()) || !initialNamespace()
	return i
}

// initUserNSInode is the inode number of the initial user namespace
// (the kernel's PROC_USER_INIT_INO).
const initUserNSInode = 0xEFFFFFFD

// initialNamespace reports whether the process is in the initial user
// namespace. A namespace that maps every id to itself reads like the
// initial one in uid_map, but its inode differs.
func initialNamespace() bool {
	fi, err := os.Stat("/proc/self/ns/user")
	if err != nil {
		return true // no namespaces (or no /proc): judge by the maps
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Ino == initUserNSInode
}

// SetgroupsAllowed reports whether the process may call setgroups(2): not
// in a user namespace whose maps were written with setgroups denied, as
// an unprivileged process must for a single-id map.
func SetgroupsAllowed() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err != nil || !bytes.HasPrefix(b, []byte("deny"))
}
