package layer

import (
	"bytes"
	"context"
	"github.com/builder-project/builder/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDiffDirs(t *testing.T) {
	sec := time.Unix(1700000000, 0)
	setTime := func(t *testing.T, p string, tm time.Time) { must(t, os.Chtimes(p, tm, tm)) }
	tests := []struct {
		name   string
		lower  func(t *testing.T, l string) // nil: DiffDirs gets lower ""
		change func(t *testing.T, u string)
		want   []string
	}{
		{"empty lower", nil, func(t *testing.T, u string) {
			writeFile(t, filepath.Join(u, "d/a"), "a")
			must(t, os.Symlink("d/a", filepath.Join(u, "s")))
		}, []string{"d/ 5", "d/a 0", "s 2 d/a"}},
		{"no change", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "d/a"), "a") },
			func(t *testing.T, u string) {}, nil},
		{"added file", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "a"), "a") },
			func(t *testing.T, u string) { writeFile(t, filepath.Join(u, "b"), "b") }, []string{"b 0"}},
		{"deleted file", func(t *testing.T, l string) {
			writeFile(t, filepath.Join(l, "a"), "a")
			writeFile(t, filepath.Join(l, "b"), "b")
		},
			func(t *testing.T, u string) { must(t, os.Remove(filepath.Join(u, "b"))) }, []string{".wh.b 0"}},
		{"deleted dir", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "d/x"), "x") },
			func(t *testing.T, u string) { must(t, os.RemoveAll(filepath.Join(u, "d"))) }, []string{".wh.d 0"}},
		{"nested change writes parents", func(t *testing.T, l string) {
			writeFile(t, filepath.Join(l, "d/e/f"), "1")
			writeFile(t, filepath.Join(l, "z"), "z")
		},
			func(t *testing.T, u string) {
				p := filepath.Join(u, "d/e/f")
				writeFile(t, p, "2")
				setTime(t, p, sec)
			}, []string{"d/ 5", "d/e/ 5", "d/e/f 0"}},
		{"same size and whole-second mtime, new content", func(t *testing.T, l string) {
			writeFile(t, filepath.Join(l, "a"), "old")
			setTime(t, filepath.Join(l, "a"), sec)
		}, func(t *testing.T, u string) {
			writeFile(t, filepath.Join(u, "a"), "new")
			setTime(t, filepath.Join(u, "a"), sec)
		}, []string{"a 0"}},
		{"same size and whole-second mtime, same content", func(t *testing.T, l string) {
			writeFile(t, filepath.Join(l, "a"), "old")
			setTime(t, filepath.Join(l, "a"), sec)
		}, func(t *testing.T, u string) {}, nil},
		{"mode changed", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "a"), "a") },
			func(t *testing.T, u string) { must(t, os.Chmod(filepath.Join(u, "a"), 0o600)) }, []string{"a 0"}},
		{"xattr changed", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "a"), "a") },
			func(t *testing.T, u string) { setXattrOrSkip(t, filepath.Join(u, "a"), "user.k", "v") }, []string{"a 0"}},
		{"symlink retargeted", func(t *testing.T, l string) { must(t, os.Symlink("x", filepath.Join(l, "s"))) },
			func(t *testing.T, u string) {
				p := filepath.Join(u, "s")
				must(t, os.Remove(p))
				must(t, os.Symlink("y", p))
			}, []string{"s 2 y"}},
		{"dir replaced by file", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "p/x"), "x") },
			func(t *testing.T, u string) {
				must(t, os.RemoveAll(filepath.Join(u, "p")))
				writeFile(t, filepath.Join(u, "p"), "f")
			}, []string{"p 0"}},
		{"file replaced by dir", func(t *testing.T, l string) { writeFile(t, filepath.Join(l, "p"), "f") },
			func(t *testing.T, u string) {
				must(t, os.Remove(filepath.Join(u, "p")))
				writeFile(t, filepath.Join(u, "p/x"), "x")
			}, []string{"p/ 5", "p/x 0"}},
		{"new hardlinked pair", func(t *testing.T, l string) {},
			func(t *testing.T, u string) {
				writeFile(t, filepath.Join(u, "x"), "x")
				must(t, os.Link(filepath.Join(u, "x"), filepath.Join(u, "y")))
			}, []string{"x 0", "y 1 x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mkdirs(t, t.TempDir(), "lower", "upper")
			lower, upper := d[0], d[1]
			if tc.lower != nil {
				tc.lower(t, lower)
				copyTree(t, lower, upper)
			} else {
				lower = ""
			}
			tc.change(t, upper)
			var buf bytes.Buffer
			if err := DiffDirs(context.Background(), lower, upper, DiffOptions{}, &buf); err != nil {
				t.Fatal(err)
			}
			if got := listTar(t, buf.Bytes()); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
			// Applying the layer onto the lower reproduces the upper.
			root := t.TempDir()
			if lower != "" {
				copyTree(t, lower, root)
			}
			if _, err := Apply(context.Background(), root, bytes.NewReader(buf.Bytes()), applyOpts(DirFormat)); err != nil {
				t.Fatal(err)
			}
			// Directory mtimes of untouched parents change when entries
			// are removed on apply; compare them only via the listing.
			if diff := diffMaps(fullSnapshot(t, upper, true), fullSnapshot(t, root, true)); diff != "" {
				t.Errorf("lower + layer differs from upper:\n%s", diff)
			}
		})
	}
}

func setXattrOrSkip(t *testing.T, p, k, v string) {
	t.Helper()
	if err := setXattrForTest(p, k, v); err != nil {
		testutil.Unavailable(t, "setting xattr %s: %v", k, err)
	}
}
