package copier

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// op builds one object of a test tree.
type op func(t *testing.T, root string)

// file creates a regular file with content and mode (numeric, as in
// chmod(1): 0o4755 is setuid).
func file(p, content string, mode fs.FileMode) op {
	return func(t *testing.T, root string) {
		t.Helper()
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(content), 0o600))
		must(t, os.Chmod(full, fromUnixMode(uint32(mode))))
	}
}

// dir creates a directory with mode (numeric, as in chmod(1)).
func dir(p string, mode fs.FileMode) op {
	return func(t *testing.T, root string) {
		t.Helper()
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(full, 0o755))
		must(t, os.Chmod(full, fromUnixMode(uint32(mode))))
	}
}

// symlink creates a symlink p -> target.
func symlink(p, target string) op {
	return func(t *testing.T, root string) {
		t.Helper()
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.Symlink(target, full))
	}
}

// hardlink creates p as a hardlink of an existing file.
func hardlink(p, existing string) op {
	return func(t *testing.T, root string) {
		t.Helper()
		must(t, os.Link(filepath.Join(root, existing), filepath.Join(root, p)))
	}
}

// chown changes the owner of p.
func chown(p string, uid, gid int) op {
	return func(t *testing.T, root string) {
		t.Helper()
		must(t, os.Lchown(filepath.Join(root, p), uid, gid))
	}
}

// mtime sets the modification time of p.
func mtime(p string, tm time.Time) op {
	return func(t *testing.T, root string) {
		t.Helper()
		must(t, os.Chtimes(filepath.Join(root, p), tm, tm))
	}
}

// build creates a fresh temporary directory holding the ops.
func build(t *testing.T, ops ...op) string {
	t.Helper()
	root := t.TempDir()
	for _, o := range ops {
		o(t, root)
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tree describes every object below root as "path: kind mode detail",
// sorted, where detail is a file's content or a symlink's target.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		out = append(out, describe(t, rel, p, fi))
		return nil
	})
	must(t, err)
	slices.Sort(out)
	return out
}

// describe renders one object for tree.
func describe(t *testing.T, rel, p string, fi fs.FileInfo) string {
	t.Helper()
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		must(t, err)
		return fmt.Sprintf("%s: l -> %s", rel, target)
	case fi.IsDir():
		return fmt.Sprintf("%s: d %04o", rel, toUnixMode(fi.Mode()))
	default:
		data, err := os.ReadFile(p)
		must(t, err)
		return fmt.Sprintf("%s: f %04o %s", rel, toUnixMode(fi.Mode()), data)
	}
}

// assertTree checks that the tree below root is exactly want.
func assertTree(t *testing.T, root string, want []string) {
	t.Helper()
	got := tree(t, root)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("tree mismatch\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(w, "\n      "))
	}
}

// owner returns the uid and gid of p.
func ownerOf(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// requireRoot skips (or under CI fails) tests that need to chown: Copy
// gives every file it writes an owner, 0:0 by default.
func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequirePrivileges(t, "root")
}
