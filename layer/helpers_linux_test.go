package layer

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

// compact describes a tree as path -> short kind/content, for Apply tests:
// "d" (with "+opq" when opaque), "f:<content>", "l:<target>", "c:M:m", "b:M:m", "p".
func compact(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			s := "d"
			op, err := isOpaqueDir(p)
			if err != nil {
				return err
			}
			if op {
				s += "+opq"
			}
			out[rel] = s
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "f:" + string(b)
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "l:" + l
		case unix.S_IFCHR:
			out[rel] = fmt.Sprintf("c:%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			out[rel] = fmt.Sprintf("b:%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			out[rel] = "p"
		default:
			out[rel] = "?"
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// fullSnapshot describes a tree with metadata, for round-trip comparisons:
// type, mode, owner, mtime (seconds; directories too unless skipDirTimes),
// content, link target, device, non-overlay xattrs.
func fullSnapshot(t testing.TB, root string, skipDirTimes bool) map[string]string {
	t.Helper()
	out := compact(t, root)
	for rel, s := range out {
		p := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		xa, _, err := readXattrs(p)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k, v := range xa {
			keys = append(keys, k+"="+string(v))
		}
		sort.Strings(keys)
		mt := fmt.Sprint(st.Mtim.Sec)
		if skipDirTimes && isDir(&st) {
			mt = "-"
		}
		mode := st.Mode & 0o7777
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			mode = 0
		}
		out[rel] = fmt.Sprintf("%s mode=%o owner=%d:%d mtime=%s xattrs=[%s]", s, mode, st.Uid, st.Gid, mt, strings.Join(keys, ","))
	}
	return out
}

// mountOverlay mounts an overlay at merged and unmounts it in t.Cleanup
// (or earlier through the returned function). An empty upper mounts it
// read-only from the lowers alone.
func mountOverlay(t testing.TB, lowers []string, upper, work, merged string) func() {
	t.Helper()
	testutil.RequirePrivileges(t, "root", "overlay")
	data := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		data += ",upperdir=" + upper + ",workdir=" + work
	}
	data += ",redirect_dir=off,metacopy=off,index=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		testutil.Unavailable(t, "mounting overlay (%s): %v", data, err)
	}
	done := false
	unmount := func() {
		if !done {
			done = true
			if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", merged, err)
			}
		}
	}
	t.Cleanup(unmount)
	return unmount
}

func mkdirs(t testing.TB, base string, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p := filepath.Join(base, n)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func writeFile(t testing.TB, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func setXattrForTest(p, k, v string) error { return unix.Setxattr(p, k, []byte(v), 0) }
