package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/filecopy"
)

// BusyboxPath returns the path of a statically linked busybox, or calls
// Unavailable. Debian's busybox-static installs it as /bin/busybox.
func BusyboxPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BUILDER_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	Unavailable(t, "busybox not found (apt-get install busybox-static)")
	return ""
}

// BusyboxRootfs builds a minimal root filesystem in a fresh temporary
// directory: /bin/busybox with a symlink per applet, /etc/passwd and
// /etc/group with root, nobody and an "app" user (uid 1000), and the usual
// empty top-level directories. It returns the directory.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := MakeBusyboxRootfs(BusyboxPath(t), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// MakeBusyboxRootfs writes the rootfs described at BusyboxRootfs into dir
// using the busybox binary at bb.
func MakeBusyboxRootfs(bb, dir string) error {
	for _, d := range []string{"bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "usr/bin", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777|os.ModeSticky); err != nil {
		return err
	}
	if err := filecopy.File(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		return fmt.Errorf("copying busybox: %w", err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("listing busybox applets: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":    "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n",
		"etc/hostname": "busybox\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.Chown(filepath.Join(dir, "home/app"), 1000, 1000)
}
