//go:build linux

package cache

import (
	"context"
	"errors"
	"github.com/builder-project/builder/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newTestHasher returns a Hasher whose clock runs a minute ahead, as if the
// test files had been written well before the build: they are then not
// racy and their index entries are trusted on the next run.
func newTestHasher(t testing.TB, indexDir string) *Hasher {
	t.Helper()
	h, err := OpenHasher(indexDir)
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return time.Now().Add(time.Minute) }
	return h
}

// writeTree creates files (path → content; a trailing "/" makes a
// directory, a content starting with "->" a symlink) under dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var baseTree = map[string]string{
	"Dockerfile":        "FROM scratch\n",
	"src/main.go":       "package main\n",
	"src/lib/a.go":      "package lib // a\n",
	"src/lib/b.go":      "package lib // b\n",
	"src/link":          "->lib/a.go",
	"src/outside":       "->/etc/passwd",
	"src/readme":        "->../docs/readme.txt",
	"src/empty/":        "",
	"src/notes.md":      "notes\n",
	"docs/readme.txt":   "docs\n",
	"src/lib/z_test.go": "package lib\n",
}

func excludeMD(rel string, isDir bool) bool { return strings.HasSuffix(rel, ".md") }

func TestChecksumRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		same   bool
	}{
		{"nothing", func(*testing.T, string) {}, true},
		{"mtime only", func(t *testing.T, root string) {
			old := time.Now().Add(-time.Hour)
			must(t, os.Chtimes(filepath.Join(root, "src/main.go"), old, old))
		}, true},
		{"content", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "src/main.go"), []byte("package main // changed\n"), 0o644))
		}, false},
		{"content same size same mtime", func(t *testing.T, root string) {
			p := filepath.Join(root, "src/lib/a.go")
			fi, err := os.Stat(p)
			must(t, err)
			must(t, os.WriteFile(p, []byte("package lib // A\n"), 0o644))
			must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime())) // only ctime tells
		}, false},
		{"mode", func(t *testing.T, root string) { must(t, os.Chmod(filepath.Join(root, "src/main.go"), 0o755)) }, false},
		{"setuid", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "src/main.go"), os.ModeSetuid|0o644))
		}, false},
		{"dir mode", func(t *testing.T, root string) { must(t, os.Chmod(filepath.Join(root, "src/empty"), 0o700)) }, false},
		{"owner", func(t *testing.T, root string) {
			testutil.RequirePrivileges(t, "root")
			must(t, os.Lchown(filepath.Join(root, "src/main.go"), 1000, 1000))
		}, false},
		{"rename", func(t *testing.T, root string) {
			must(t, os.Rename(filepath.Join(root, "src/lib/b.go"), filepath.Join(root, "src/lib/c.go")))
		}, false},
		{"new file", func(t *testing.T, root string) { writeTree(t, root, map[string]string{"src/new.go": "x"}) }, false},
		{"new empty dir", func(t *testing.T, root string) { writeTree(t, root, map[string]string{"src/new/": ""}) }, false},
		{"delete", func(t *testing.T, root string) { must(t, os.Remove(filepath.Join(root, "src/lib/b.go"))) }, false},
		{"symlink target", func(t *testing.T, root string) {
			p := filepath.Join(root, "src/link")
			must(t, os.Remove(p))
			must(t, os.Symlink("lib/b.go", p))
		}, false},
		{"file through symlink not followed", func(t *testing.T, root string) {
			// src/readme points at docs/readme.txt, outside the
			// checksummed src: the link counts as a link, so its
			// target's content does not.
			must(t, os.WriteFile(filepath.Join(root, "docs/readme.txt"), []byte("other docs, longer\n"), 0o644))
		}, true},
		{"unrelated file", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "docs/readme.txt"), []byte("changed docs\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(root, "Dockerfile"), []byte("FROM busybox\n"), 0o644))
		}, true},
		{"excluded file", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "src/notes.md"), []byte("other notes, longer\n"), 0o644))
			writeTree(t, root, map[string]string{"src/more.md": "new"})
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			writeTree(t, root, baseTree)
			h := newTestHasher(t, t.TempDir())
			opts := ChecksumOptions{Exclude: excludeMD}
			before, err := h.Checksum(ctx, root, []string{"src"}, opts)
			must(t, err)
			tt.change(t, root)
			after, err := h.Checksum(ctx, root, []string{"src"}, opts)
			must(t, err)
			if (before == after) != tt.same {
				t.Fatalf("checksum changed = %v, want %v", before != after, !tt.same)
			}
			// A cold Hasher (no index) must agree with the warm one.
			cold, err := newTestHasher(t, t.TempDir()).Checksum(ctx, root, []string{"src"}, opts)
			must(t, err)
			if cold != after {
				t.Fatalf("cold checksum %s != warm %s", cold, after)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestChecksumSecondRunReadsNothing(t *testing.T) {
	ctx := context.Background()
	root, idx := t.TempDir(), t.TempDir()
	writeTree(t, root, baseTree)
	h := newTestHasher(t, idx)
	first, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	r1, u1 := h.Stats()
	const files = 7 // regular files in baseTree
	if r1 != files || u1 != 0 {
		t.Fatalf("first run read %d reused %d, want %d, 0", r1, u1, files)
	}
	second, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	r2, u2 := h.Stats()
	if second != first || r2 != r1 || u2 != files {
		t.Fatalf("second run: same=%v read %d reused %d, want no reads", second == first, r2-r1, u2)
	}
	// A new Hasher (another build process) finds the index on disk.
	h2 := newTestHasher(t, idx)
	third, err := h2.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	if r, u := h2.Stats(); third != first || r != 0 || u != files {
		t.Fatalf("new hasher: same=%v read %d reused %d", third == first, r, u)
	}
	// Changing one file re-reads exactly that file.
	must(t, os.WriteFile(filepath.Join(root, "src/main.go"), []byte("package main // v2\n"), 0o644))
	fourth, err := h2.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	if r, _ := h2.Stats(); fourth == first || r != 1 {
		t.Fatalf("after one change: changed=%v read %d, want 1", fourth != first, r)
	}
}

// TestChecksumRacyEntry checks the racy-mtime guard with the real clock: a
// file hashed within the racy margin of its last change is read again,
// because a write in the same timestamp tick would not show in its stat.
func TestChecksumRacyEntry(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeTree(t, root, map[string]string{"f": "one"})
	h, err := OpenHasher(t.TempDir())
	must(t, err)
	for i := 1; i <= 2; i++ {
		_, err := h.Checksum(ctx, root, []string{"f"}, ChecksumOptions{})
		must(t, err)
		if r, u := h.Stats(); r != i || u != 0 {
			t.Fatalf("run %d: read %d reused %d; a fresh file must not be trusted", i, r, u)
		}
	}
	// Once the file is older than the margin at the time it was read, the
	// entry is trusted.
	h.now = func() time.Time { return time.Now().Add(defaultRacyMargin + time.Second) }
	_, err = h.Checksum(ctx, root, []string{"f"}, ChecksumOptions{})
	must(t, err)
	_, err = h.Checksum(ctx, root, []string{"f"}, ChecksumOptions{})
	must(t, err)
	if r, u := h.Stats(); r != 3 || u != 1 {
		t.Fatalf("aged: read %d reused %d, want 3, 1", r, u)
	}
}

func TestChecksumNamesAndLocation(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, baseTree)
	writeTree(t, b, baseTree)
	h := newTestHasher(t, t.TempDir())
	var seen []string
	opts := ChecksumOptions{Exclude: func(rel string, isDir bool) bool {
		seen = append(seen, rel)
		return rel == "src/lib" // skips the whole subtree
	}}
	sa, err := h.Checksum(ctx, a, []string{"src"}, opts)
	must(t, err)
	if strings.Join(seen, ",") != "src,src/empty,src/lib,src/link,src/main.go,src/notes.md,src/outside,src/readme" {
		t.Fatalf("Exclude saw %v", seen)
	}
	// The same sources in another directory have the same checksum.
	sb, err := h.Checksum(ctx, b, []string{"src"}, opts)
	must(t, err)
	if sa != sb {
		t.Fatal("same context at another location has another checksum")
	}
	// Path order matters (later sources overwrite earlier ones); the names
	// are part of the checksum.
	sum := func(paths ...string) string {
		t.Helper()
		d, err := h.Checksum(ctx, a, paths, ChecksumOptions{})
		must(t, err)
		return d.String()
	}
	x, y := sum("src/main.go", "docs"), sum("docs", "src/main.go")
	z, w := sum("src/lib/a.go"), sum("src/link")
	if x == y || z == w || x == "" || z == "" {
		t.Fatal("order or names do not count")
	}
	if _, err := h.Checksum(ctx, a, []string{"missing"}, ChecksumOptions{}); !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("missing source: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestChecksumStaysInsideRoot(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret/key": "s3cret"})
	root := t.TempDir()
	writeTree(t, root, map[string]string{"ok": "x", "esc": "->" + filepath.Join(outside, "secret"), "rel": "->../../"})
	h := newTestHasher(t, t.TempDir())
	for _, p := range []string{"../x", "/etc", "esc/key", "rel/etc/passwd"} {
		if _, err := h.Checksum(ctx, root, []string{p}, ChecksumOptions{}); err == nil {
			t.Errorf("Checksum(%q) escaped the root", p)
		}
	}
	before, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(outside, "secret/key"), []byte("changed"), 0o644))
	after, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	if before != after {
		t.Fatal("a file outside the root changed the checksum")
	}
	if r, _ := h.Stats(); r != 1 {
		t.Fatalf("read %d files, want only ok", r)
	}
}

func TestChecksumCorruptIndex(t *testing.T) {
	ctx := context.Background()
	root, idx := t.TempDir(), t.TempDir()
	writeTree(t, root, baseTree)
	want, err := newTestHasher(t, idx).Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	files, _ := filepath.Glob(filepath.Join(idx, "*.idx"))
	if len(files) != 1 {
		t.Fatalf("index files %v", files)
	}
	b, err := os.ReadFile(files[0])
	must(t, err)
	if len(b) == 0 {
		t.Fatal("empty index file")
	}
	b[len(b)/2] ^= 0xff
	must(t, os.WriteFile(files[0], b, 0o600))
	h := newTestHasher(t, idx)
	got, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	if r, _ := h.Stats(); got != want || r != 7 {
		t.Fatalf("corrupt index: same=%v read %d, want all re-read", got == want, r)
	}
}

func TestChecksumForgetsDeletedFiles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeTree(t, root, baseTree)
	h := newTestHasher(t, t.TempDir())
	_, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
	must(t, err)
	must(t, os.RemoveAll(filepath.Join(root, "src/lib")))
	_, err = h.Checksum(ctx, root, []string{"src"}, ChecksumOptions{})
	must(t, err)
	abs, err := canonicalRoot(root)
	must(t, err)
	ri, err := h.rootIndex(abs)
	must(t, err)
	if len(ri.entries) == 0 {
		t.Fatal("index is empty")
	}
	for name := range ri.entries {
		if strings.HasPrefix(name, "src/lib/") {
			t.Errorf("index still holds %s", name)
		}
	}
	if _, ok := ri.get("docs/readme.txt"); !ok {
		t.Error("index forgot a file outside the walked paths")
	}
}

func TestChecksumCancelled(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, baseTree)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newTestHasher(t, t.TempDir()).Checksum(ctx, root, []string{"."}, ChecksumOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Checksum = %v, want context.Canceled", err)
	}
}
