package layer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
}

func diffTar(t testing.TB, upper string, opts DiffOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Diff(context.Background(), upper, opts, &buf); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	return buf.Bytes()
}

// TestDiffOverlay makes changes through a real overlay mount and checks the
// layer Diff writes, then applies it both ways and compares with the merged
// view.
func TestDiffOverlay(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	base := t.TempDir()
	d := mkdirs(t, base, "lower", "upper", "work", "merged")
	lower, upper, work, merged := d[0], d[1], d[2], d[3]
	for p, body := range map[string]string{
		"a.txt": "a", "del.txt": "d", "deldir/x": "x", "deldir/y": "y",
		"redo/old1": "1", "redo/sub/old2": "2", "keep/k1": "k",
	} {
		writeFile(t, filepath.Join(lower, p), body)
	}
	must(t, os.Symlink("a.txt", filepath.Join(lower, "link")))

	unmount := mountOverlay(t, []string{lower}, upper, work, merged)
	m := func(p string) string { return filepath.Join(merged, p) }
	must(t, os.Remove(m("del.txt")))
	must(t, os.RemoveAll(m("deldir")))
	must(t, os.RemoveAll(m("redo")))
	writeFile(t, m("redo/new"), "new")
	writeFile(t, m("newdir/f"), "f")
	writeFile(t, m("keep/new.txt"), "n")
	writeFile(t, m("a.txt"), "changed")
	writeFile(t, m("hl1"), "hard")
	must(t, os.Link(m("hl1"), m("hl2")))
	must(t, os.Symlink("/abs/target", m("abs")))
	must(t, os.Symlink("a.txt", m("rel")))
	writeFile(t, m("xf"), "x")
	must(t, unix.Setxattr(m("xf"), "user.foo", []byte("bar"), 0))
	must(t, unix.Setxattr(m("xf"), "trusted.bar", []byte("baz"), 0))
	must(t, unix.Mkfifo(m("fifo"), 0o640))
	must(t, unix.Mknod(m("dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	writeFile(t, m("suid"), "s")
	must(t, os.Chown(m("suid"), 1000, 1000))
	must(t, os.Chmod(m("suid"), 0o4755|os.ModeSetuid))
	must(t, unix.Chmod(m("suid"), 0o4755))
	want := fullSnapshot(t, merged, false)
	unmount()

	data := diffTar(t, upper, DiffOptions{Lowers: []string{lower}})

	t.Run("listing", func(t *testing.T) {
		wantList := []string{
			".wh.del.txt 0", ".wh.deldir 0", "a.txt 0", "abs 2 /abs/target", "dev 3", "fifo 6",
			"hl1 0", "hl2 1 hl1", "keep/ 5", "keep/new.txt 0", "newdir/ 5", "newdir/f 0",
			"redo/ 5", "redo/.wh..wh..opq 0", "redo/new 0", "rel 2 a.txt", "suid 0", "xf 0",
		}
		if got := listTar(t, data); strings.Join(got, "\n") != strings.Join(wantList, "\n") {
			t.Errorf("layer entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantList, "\n"))
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		if again := diffTar(t, upper, DiffOptions{Lowers: []string{lower}}); !bytes.Equal(again, data) {
			t.Errorf("a second Diff differs")
		}
	})
	t.Run("overlay format round trip", func(t *testing.T) {
		d := mkdirs(t, t.TempDir(), "layer", "view")
		if _, err := Apply(context.Background(), d[0], bytes.NewReader(data), ApplyOptions{Format: OverlayFormat}); err != nil {
			t.Fatal(err)
		}
		mountOverlay(t, []string{d[0], lower}, "", "", d[1])
		if diff := diffMaps(want, fullSnapshot(t, d[1], false)); diff != "" {
			t.Errorf("overlay of applied layer differs from the merged view:\n%s", diff)
		}
		if got := compact(t, d[0])["newdir"]; got != "d" {
			t.Errorf("new directory applied as %q, want a non-opaque dir", got)
		}
	})
	t.Run("dir format onto lower", func(t *testing.T) {
		root := t.TempDir()
		copyTree(t, lower, root)
		if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		if diff := diffMaps(want, fullSnapshot(t, root, false)); diff != "" {
			t.Errorf("applied rootfs differs from the merged view:\n%s", diff)
		}
		var s1, s2 unix.Stat_t
		must(t, unix.Lstat(filepath.Join(root, "hl1"), &s1))
		must(t, unix.Lstat(filepath.Join(root, "hl2"), &s2))
		if s1.Ino != s2.Ino {
			t.Errorf("hl1 and hl2 are not hardlinked after apply")
		}
	})
}

// TestDiffUpper covers upperdir shapes built by hand: whiteouts and opaque
// markers with nothing below, and overlay features Diff must refuse.
func TestDiffUpper(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	tests := []struct {
		name    string
		lower   func(t *testing.T, dir string)
		upper   func(t *testing.T, dir string)
		want    []string
		wantErr error
	}{
		{"whiteout not in lower omitted", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "x"), "x") },
			func(t *testing.T, u string) {
				must(t, unix.Mknod(filepath.Join(u, "ghost"), unix.S_IFCHR, 0))
				must(t, unix.Mknod(filepath.Join(u, "x"), unix.S_IFCHR, 0))
			}, []string{".wh.x 0"}, nil},
		{"new opaque dir not marked", func(t *testing.T, l string) {},
			func(t *testing.T, u string) {
				mkdirs(t, u, "nd")
				must(t, unix.Setxattr(filepath.Join(u, "nd"), "trusted.overlay.opaque", []byte("y"), 0))
			}, []string{"nd/ 5"}, nil},
		{"user.overlay opaque over lower dir", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "d/x"), "x") },
			func(t *testing.T, u string) {
				mkdirs(t, u, "d")
				must(t, unix.Setxattr(filepath.Join(u, "d"), "user.overlay.opaque", []byte("y"), 0))
			}, []string{"d/ 5", "d/.wh..wh..opq 0"}, nil},
		{"whiteout under deleted lower parent omitted", func(t *testing.T, l string) {
			mkdirs(t, l, "p")
			must(t, unix.Mknod(filepath.Join(l, "p", "gone"), unix.S_IFCHR, 0))
		}, func(t *testing.T, u string) {
			mkdirs(t, u, "p")
			must(t, unix.Mknod(filepath.Join(u, "p", "gone"), unix.S_IFCHR, 0))
		}, []string{"p/ 5"}, nil},
		{"redirect refused", func(t *testing.T, l string) {},
			func(t *testing.T, u string) {
				mkdirs(t, u, "r")
				must(t, unix.Setxattr(filepath.Join(u, "r"), "trusted.overlay.redirect", []byte("/x"), 0))
			}, nil, ErrOverlayFeature},
		{"metacopy refused", func(t *testing.T, l string) {},
			func(t *testing.T, u string) {
				writeFile(t, filepath.Join(u, "m"), "")
				must(t, unix.Setxattr(filepath.Join(u, "m"), "trusted.overlay.metacopy", nil, 0))
			}, nil, ErrOverlayFeature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mkdirs(t, t.TempDir(), "lower", "upper")
			tc.lower(t, d[0])
			tc.upper(t, d[1])
			var buf bytes.Buffer
			err := Diff(context.Background(), d[1], DiffOptions{Lowers: []string{d[0]}}, &buf)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Diff error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listTar(t, buf.Bytes()); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDiffSourceDateEpoch(t *testing.T) {
	upper := t.TempDir()
	writeFile(t, filepath.Join(upper, "d/new"), "n")
	old := time.Unix(1000, 0)
	writeFile(t, filepath.Join(upper, "old"), "o")
	must(t, os.Chtimes(filepath.Join(upper, "old"), old, old))
	epoch := time.Unix(2000, 0)
	data := diffTar(t, upper, DiffOptions{SourceDateEpoch: &epoch})
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), applyOpts(DirFormat)); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]int64{"d": 2000, "d/new": 2000, "old": 1000} {
		fi := mustLstat(t, filepath.Join(root, p))
		if fi.ModTime().Unix() != want {
			t.Errorf("%s mtime %d, want %d", p, fi.ModTime().Unix(), want)
		}
	}
}

func TestDiffCancelled(t *testing.T) {
	upper := t.TempDir()
	writeFile(t, filepath.Join(upper, "a"), "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Diff(ctx, upper, DiffOptions{}, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Diff = %v, want context.Canceled", err)
	}
	if err := DiffDirs(ctx, "", upper, DiffOptions{}, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("DiffDirs = %v, want context.Canceled", err)
	}
}
