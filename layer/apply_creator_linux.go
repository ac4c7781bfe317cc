package layer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// A file that Apply creates already has an owner (our effective uid, and
// the group of a setgid parent directory or else our effective gid) and a
// mode (what open(2) is asked for, less the umask). When those are what
// the tar entry says, the fchown and fchmod that would set them again are
// skipped: two of the six system calls per file of a base image whose
// files are root's with ordinary modes.

// creator is who creates the files of an unpack.
type creator struct {
	uid, gid int
	// umask is the process's file mode creation mask; umaskKnown is
	// false where /proc does not tell it, and then every mode is set
	// with fchmod.
	umask      uint32
	umaskKnown bool
}

// metaSteps says which of owner and mode a created file still needs.
type metaSteps struct{ chown, chmod bool }

// currentCreator returns the creator of the files this process creates.
func currentCreator() creator {
	c := creator{uid: os.Geteuid(), gid: os.Getegid()}
	c.umask, c.umaskKnown = readUmask()
	return c
}

// readUmask reads the process's umask from /proc/self/status, which
// tells it without changing it (umask(2) can only set it, and setting it
// to read it would race with other goroutines creating files).
func readUmask() (uint32, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			return uint32(m), err == nil
		}
	}
	return 0, false
}

// newFiles is what a file created in a directory gets from it.
type newFiles struct {
	// gid is the file's group: the directory's if it is setgid, else
	// the creator's.
	gid int
	// aclDefault is set when the directory has a default ACL, which
	// replaces the umask in making the file's mode.
	aclDefault bool
}

// plan returns the mode to create the regular file of hdr with, in a
// directory that gives it dir, and what is left to set once it is
// written. A mode with setuid, setgid or sticky bits, that the umask
// would cut, or in a directory with a default ACL, is set with fchmod
// after the owner (chown clears setuid and setgid); the file is created
// 0600 until then.
func (c creator) plan(hdr *tar.Header, dir newFiles, noChown bool) (uint32, metaSteps) {
	mode := uint32(hdr.Mode & 0o7777)
	steps := metaSteps{chown: !noChown && (hdr.Uid != c.uid || hdr.Gid != dir.gid), chmod: true}
	if c.umaskKnown && !dir.aclDefault && mode&^0o777 == 0 && mode&c.umask == 0 {
		return mode, metaSteps{chown: steps.chown}
	}
	return 0o600, steps
}

// newFilesIn returns what a file created in the directory open as d gets
// from it.
func (a *applier) newFilesIn(d *os.File) (newFiles, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return newFiles{}, fmt.Errorf("reading directory %s: %w", d.Name(), err)
	}
	nf := newFiles{gid: a.creator.gid}
	if st.Mode&unix.S_ISGID != 0 {
		nf.gid = int(st.Gid)
	}
	// A directory opened O_PATH takes no fgetxattr: its default ACL is
	// read through /proc. Where that cannot be told, the mode is set
	// with fchmod as if there were one.
	_, err := unix.Getxattr(fmt.Sprintf("/proc/self/fd/%d", d.Fd()), "system.posix_acl_default", nil)
	nf.aclDefault = !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP)
	return nf, nil
}
