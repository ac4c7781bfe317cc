package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountPoints(t *testing.T) {
	const info = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw
35 22 0:30 / /tmp/with\040space rw shared:2 - tmpfs tmpfs rw
36 22 0:31 / /tmp/tab\011and\134backslash rw - tmpfs tmpfs rw
37 22 0:32 / /tmp/gone\040(deleted) rw master:3 - overlay overlay rw,lowerdir=/a
`
	got, err := parseMountPoints(info)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/tmp/with space", "/tmp/tab\tand\\backslash", "/tmp/gone"}
	if !slices.Equal(got, want) {
		t.Errorf("mount points %q, want %q", got, want)
	}
	for _, bad := range []string{"", "22 1 0:21 / / rw\n", `22 1 0:21 / /x\04 rw - tmpfs tmpfs rw`, `22 1 0:21 / /x\999 rw - tmpfs tmpfs rw`} {
		if _, err := parseMountPoints(bad); err == nil {
			t.Errorf("parseMountPoints(%q) succeeded", bad)
		}
	}
}

func TestIsBelow(t *testing.T) {
	for _, tc := range []struct {
		p, root string
		want    bool
	}{
		{"/tmp/a", "/tmp/a", true},
		{"/tmp/a/b", "/tmp/a", true},
		{"/tmp/ab", "/tmp/a", false},
		{"/tmp", "/tmp/a", false},
		{"/anything", "/", true},
	} {
		if got := isBelow(tc.p, tc.root); got != tc.want {
			t.Errorf("isBelow(%q, %q) = %v", tc.p, tc.root, got)
		}
	}
}

// TestMountsBelow mounts a tmpfs on a directory whose name the kernel
// escapes, and checks that MountsBelow finds it there and nowhere else.
func TestMountsBelow(t *testing.T) {
	RequirePrivileges(t, "root")
	base := t.TempDir()
	dir := filepath.Join(base, "with space", "mnt")
	other := t.TempDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		Unavailable(t, "mounting a tmpfs: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := MountsBelow(t, base); !slices.Equal(got, []string{real}) {
		t.Errorf("MountsBelow(base) = %q, want %q", got, real)
	}
	if got := MountsBelow(t, dir); !slices.Equal(got, []string{real}) {
		t.Errorf("MountsBelow(mount point) = %q, want %q", got, real)
	}
	if got := MountsBelow(t, other, filepath.Join(base, "with")); len(got) != 0 {
		t.Errorf("MountsBelow(unrelated) = %q, want none", got)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if got := MountsBelow(t, base); len(got) != 0 {
		t.Errorf("after unmount, MountsBelow = %q", got)
	}
}
