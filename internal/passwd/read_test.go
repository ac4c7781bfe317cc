package passwd

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadIn reads /etc/passwd inside a root whose /etc is an absolute
// symlink: it resolves inside the root, never to the host's file, and a
// missing file has no entries.
func TestReadIn(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/etc/passwd"), []byte("app:x:1000:1001::/home/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/etc", filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	users, err := ReadIn(root, "/etc/passwd", ParsePasswd)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Name != "app" || users[0].GID != 1001 {
		t.Fatalf("users %+v", users)
	}
	groups, err := ReadIn(root, "/etc/group", ParseGroup)
	if err != nil || groups != nil {
		t.Fatalf("missing /etc/group: %v, %v", groups, err)
	}
}
