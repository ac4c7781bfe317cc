package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builder-project/builder/internal/testutil"
)

func TestCreatorPlan(t *testing.T) {
	c := creator{uid: 0, gid: 0, umask: 0o022, umaskKnown: true}
	tests := []struct {
		name     string
		mode     int64
		uid, gid int
		dir      newFiles
		noChown  bool
		wantPerm uint32
		want     metaSteps
	}{
		{"ours, plain mode", 0o644, 0, 0, newFiles{gid: 0}, false, 0o644, metaSteps{}},
		{"ours, executable", 0o755, 0, 0, newFiles{gid: 0}, false, 0o755, metaSteps{}},
		{"other owner", 0o644, 1000, 1000, newFiles{gid: 0}, false, 0o644, metaSteps{chown: true}},
		{"setgid parent's group differs", 0o644, 0, 0, newFiles{gid: 50}, false, 0o644, metaSteps{chown: true}},
		{"setgid parent's group is the entry's", 0o644, 0, 50, newFiles{gid: 50}, false, 0o644, metaSteps{}},
		{"umask cuts the mode", 0o666, 0, 0, newFiles{gid: 0}, false, 0o600, metaSteps{chmod: true}},
		{"setuid", 0o4755, 0, 0, newFiles{gid: 0}, false, 0o600, metaSteps{chmod: true}},
		{"setuid, other owner", 0o4755, 1, 1, newFiles{gid: 0}, false, 0o600, metaSteps{chown: true, chmod: true}},
		{"unprivileged never chowns", 0o644, 1000, 1000, newFiles{gid: 0}, true, 0o644, metaSteps{}},
		{"default ACL", 0o644, 0, 0, newFiles{aclDefault: true}, false, 0o600, metaSteps{chmod: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			perm, steps := c.plan(&tar.Header{Mode: tc.mode, Uid: tc.uid, Gid: tc.gid}, tc.dir, tc.noChown)
			if perm != tc.wantPerm || steps != tc.want {
				t.Errorf("plan = %o %+v, want %o %+v", perm, steps, tc.wantPerm, tc.want)
			}
		})
	}
	unknown := creator{}
	if perm, steps := unknown.plan(&tar.Header{Mode: 0o644}, newFiles{}, false); perm != 0o600 || !steps.chmod {
		t.Errorf("plan with an unknown umask = %o %+v, want 600 and a chmod", perm, steps)
	}
	if m, ok := readUmask(); !ok || m != uint32(syscall.Umask(0o022)) {
		t.Errorf("readUmask = %o %v", m, ok)
	} else {
		syscall.Umask(int(m))
	}
}

// TestApplyOwnerInSetgidDir unpacks root's files into a setgid directory
// of another group: the files must still be root's group, as the tar says,
// not the directory's, and keep their modes.
func TestApplyOwnerInSetgidDir(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	root := t.TempDir()
	must(t, os.Mkdir(filepath.Join(root, "sg"), 0o755))
	must(t, os.Chown(filepath.Join(root, "sg"), 0, 50))
	must(t, unix.Chmod(filepath.Join(root, "sg"), 0o2755))
	must(t, os.Chown(root, 0, 60))
	must(t, unix.Chmod(root, 0o2755))
	data := buildTar(t,
		tarEntry{name: "sg/a", body: "a", mode: 0o644},
		tarEntry{name: "sg/b", body: "b", mode: 0o640, gid: 50},
		tarEntry{name: "top", body: "t", mode: 0o755},
		tarEntry{name: "sg/big", body: string(bytes.Repeat([]byte("x"), smallFileMax+1)), mode: 0o600},
	)
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{Format: DirFormat}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][3]uint32{"sg/a": {0, 0, 0o644}, "sg/b": {0, 50, 0o640}, "top": {0, 0, 0o755}, "sg/big": {0, 0, 0o600}} {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(root, name), &st))
		if got := [3]uint32{st.Uid, st.Gid, st.Mode & 0o7777}; got != want {
			t.Errorf("%s: uid, gid, mode = %v, want %v", name, got, want)
		}
	}
}

// TestApplyModeUnderDefaultACL unpacks into a directory with a default ACL
// that denies others everything: the ACL, not the umask, shapes a new
// file's mode, so Apply must still set the entry's mode.
func TestApplyModeUnderDefaultACL(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	root := t.TempDir()
	dir := filepath.Join(root, "acl")
	must(t, os.Mkdir(dir, 0o755))
	// system.posix_acl_default, version 2: user::rwx, group::r-x, other::---
	// (tag, permissions, id), little-endian.
	acl := []byte{2, 0, 0, 0,
		0x01, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
		0x04, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(dir, "system.posix_acl_default", acl, 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			testutil.Unavailable(t, "the filesystem of %s has no ACLs", root)
		}
		t.Fatal(err)
	}
	data := buildTar(t, tarEntry{name: "acl/f", body: "f", mode: 0o644})
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{Format: DirFormat}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dir, "f"), &st))
	if st.Mode&0o7777 != 0o644 {
		t.Errorf("acl/f has mode %o, want 644", st.Mode&0o7777)
	}
}
