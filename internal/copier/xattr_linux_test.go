package copier

import (
	"context"
	"github.com/builder-project/builder/internal/testutil"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCopyXattrs(t *testing.T) {
	requireRoot(t)
	src := build(t, file("d/f", "F", 0o644))
	f := filepath.Join(src, "d/f")
	if err := unix.Setxattr(f, "user.test", []byte("v"), 0); err != nil {
		testutil.Unavailable(t, "no user xattrs here: %v", err)
	}
	must(t, unix.Setxattr(f, "trusted.overlay.opaque", []byte("y"), 0))
	dst := t.TempDir()
	_, err := Copy(context.Background(), src, dst, Options{Sources: []string{"d"}, Dest: "/o", Chown: "1:1"})
	must(t, err)
	buf := make([]byte, 16)
	n, err := unix.Getxattr(filepath.Join(dst, "o/f"), "user.test", buf)
	if err != nil || string(buf[:n]) != "v" {
		t.Fatalf("user.test not copied: %v %q", err, buf[:n])
	}
	if _, err := unix.Getxattr(filepath.Join(dst, "o/f"), "trusted.overlay.opaque", buf); err == nil {
		t.Fatal("overlay xattr copied")
	}
}
