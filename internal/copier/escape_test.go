package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

// hostSecret is the content of files outside both roots; it must never
// show up in a destination.
const hostSecret = "HOST-SECRET"

// outsideDir creates a directory outside both roots with a sentinel file
// and returns its absolute path.
func outsideDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	must(t, os.WriteFile(filepath.Join(d, "sentinel"), []byte(hostSecret), 0o644))
	return d
}

// assertOutsideUntouched checks that the outside directory still holds only
// its sentinel, unchanged.
func assertOutsideUntouched(t *testing.T, outside string) {
	t.Helper()
	assertTree(t, outside, []string{"sentinel: f 0644 " + hostSecret})
}

// assertNoSecret checks that no file below root holds the host secret.
func assertNoSecret(t *testing.T, root string) {
	t.Helper()
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, []byte(hostSecret)) {
			t.Errorf("%s holds content from outside the source root", p)
		}
		return err
	}))
}

func TestSourceEscapes(t *testing.T) {
	requireRoot(t)
	outside := outsideDir(t)
	secret := filepath.Join(outside, "sentinel")
	for _, tc := range []struct {
		name    string
		src     []op
		sources []string
		wantErr bool
		want    []string // nil: not checked
	}{
		{name: "absolute symlink to a host file", src: []op{symlink("passwd", secret)}, sources: []string{"passwd"}, wantErr: true},
		{name: "relative symlink climbing out", src: []op{symlink("up", "../../../../../../../.."+secret)}, sources: []string{"up"}, wantErr: true},
		{name: "symlinked directory out of the context", src: []op{symlink("d", outside)}, sources: []string{"d"}, wantErr: true},
		{name: "dot-dot in the source", src: []op{file("a", "A", 0o644)}, sources: []string{"../../../../" + secret}, wantErr: true},
		{name: "wildcard below a symlink out of the context", src: []op{symlink("d", outside), file("a", "A", 0o644)}, sources: []string{"a", "d/*"}, want: []string{"o: d 0755", "o/a: f 0644 A"}},
		{
			name:    "absolute symlink resolves inside the context",
			src:     []op{file(strings.TrimPrefix(secret, "/"), "inside", 0o644), symlink("link", secret)},
			sources: []string{"link"},
			want:    []string{"o: d 0755", "o/link: f 0644 inside"},
		},
		{
			name:    "symlinks inside a copied directory are copied, not followed",
			src:     []op{symlink("d/abs", secret), symlink("d/rel", "../../../.."+secret), file("d/f", "F", 0o644)},
			sources: []string{"d"},
			want:    []string{"o: d 0755", "o/abs: l -> " + secret, "o/rel: l -> ../../../.." + secret, "o/f: f 0644 F"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := build(t, tc.src...)
			dst := t.TempDir()
			o := Options{Sources: tc.sources, Dest: "/o/"}
			_, err := Copy(context.Background(), src, dst, o)
			if tc.wantErr != (err != nil) {
				t.Fatalf("Copy error %v, want error %v", err, tc.wantErr)
			}
			if tc.want != nil {
				assertTree(t, dst, tc.want)
			}
			assertNoSecret(t, dst)
			if _, err := Resolve(context.Background(), src, o); tc.wantErr != (err != nil) {
				t.Fatalf("Resolve error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestDestEscapes(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name   string
		dst    func(outside string) []op
		opts   Options
		inside string // path below the destination root where the file must land
	}{
		{
			name:   "absolute symlink directory",
			dst:    func(o string) []op { return []op{symlink("link", o)} },
			opts:   Options{Sources: []string{"f"}, Dest: "/link/f"},
			inside: "{outside}/f",
		},
		{
			name:   "absolute symlink with dot-dot",
			dst:    func(o string) []op { return []op{symlink("link", "/../../.."+o)} },
			opts:   Options{Sources: []string{"f"}, Dest: "/link/"},
			inside: "{outside}/f",
		},
		{
			name:   "relative symlink climbing out",
			dst:    func(o string) []op { return []op{dir("a/b", 0o755), symlink("a/b/up", "../../../../../../.."+o)} },
			opts:   Options{Sources: []string{"f"}, Dest: "/a/b/up/f"},
			inside: "{outside}/f",
		},
		{
			name:   "final symlink to a host file is replaced, not written through",
			dst:    func(o string) []op { return []op{symlink("f", filepath.Join(o, "sentinel"))} },
			opts:   Options{Sources: []string{"f"}, Dest: "/f"},
			inside: "f",
		},
		{
			name:   "directory copy through a nested symlink",
			dst:    func(o string) []op { return []op{dir("out", 0o755), symlink("out/d", o)} },
			opts:   Options{Sources: []string{"tree"}, Dest: "/out"},
			inside: "{outside}/f",
		},
		{
			name: "file in a copied directory replaces a symlink to a host file",
			dst: func(o string) []op {
				return []op{dir("out/d", 0o755), symlink("out/d/f", filepath.Join(o, "sentinel"))}
			},
			opts:   Options{Sources: []string{"tree"}, Dest: "/out"},
			inside: "out/d/f",
		},
		{
			name:   "nested directory symlink climbing out with dot-dot",
			dst:    func(o string) []op { return []op{dir("out", 0o755), symlink("out/d", "../../../../../../.."+o)} },
			opts:   Options{Sources: []string{"tree"}, Dest: "/out"},
			inside: "{outside}/f",
		},
		{
			name:   "workdir through a symlink",
			dst:    func(o string) []op { return []op{symlink("w", o)} },
			opts:   Options{Sources: []string{"f"}, Dest: "f", Workdir: "/w"},
			inside: "{outside}/f",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := outsideDir(t)
			src := build(t, file("f", "new", 0o644), file("tree/d/f", "new", 0o644))
			dst := build(t, tc.dst(outside)...)
			if _, err := Copy(context.Background(), src, dst, tc.opts); err != nil {
				t.Fatalf("Copy: %v", err)
			}
			assertOutsideUntouched(t, outside)
			landed := filepath.Join(dst, strings.ReplaceAll(tc.inside, "{outside}", outside))
			data, err := os.ReadFile(landed)
			if err != nil || string(data) != "new" {
				t.Fatalf("file not at %s inside the root: %v %q", landed, err, data)
			}
		})
	}
}

func TestDestSymlinkDirIsKept(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "file into /lib64 -> /usr/lib64",
			src:  []op{file("libx.so", "x", 0o755)},
			dst:  []op{dir("usr/lib64", 0o755), symlink("lib64", "/usr/lib64")},
			opts: Options{Sources: []string{"libx.so"}, Dest: "/lib64/"},
			want: []string{"lib64: l -> /usr/lib64", "usr: d 0755", "usr/lib64: d 0755", "usr/lib64/libx.so: f 0755 x"},
		},
		{
			name: "rootfs tree onto / keeps directory symlinks",
			src:  []op{dir("rootfs/lib64", 0o700), file("rootfs/lib64/liby.so", "y", 0o755), file("rootfs/usr/local/man/m.1", "m", 0o644)},
			dst:  []op{dir("usr/lib64", 0o755), symlink("lib64", "usr/lib64"), dir("usr/local/share/man", 0o755), symlink("usr/local/man", "share/man")},
			opts: Options{Sources: []string{"rootfs"}, Dest: "/"},
			want: []string{
				"lib64: l -> usr/lib64", "usr: d 0755", "usr/lib64: d 0755", "usr/lib64/liby.so: f 0755 y",
				"usr/local: d 0755", "usr/local/man: l -> share/man", "usr/local/share: d 0755", "usr/local/share/man: d 0755",
				"usr/local/share/man/m.1: f 0644 m",
			},
		},
	})
}

func TestArchiveEscapes(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name    string
		entries func(outside string) []tarEntry
		wantErr string
	}{
		{
			name:    "dot-dot entry",
			entries: func(string) []tarEntry { return []tarEntry{{name: "../../../../../evil", body: "x"}} },
			wantErr: "path escapes the destination",
		},
		{
			name:    "dot-dot inside an entry",
			entries: func(string) []tarEntry { return []tarEntry{{name: "a/../../evil", body: "x"}} },
			wantErr: "path escapes the destination",
		},
		{
			name: "hardlink climbing out",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../../.." + o + "/sentinel"}}
			},
			wantErr: "path escapes the destination",
		},
		{
			name:    "hardlink to an absolute host path",
			entries: func(o string) []tarEntry { return []tarEntry{{name: "h", typ: tar.TypeLink, link: o + "/sentinel"}} },
			wantErr: "invalid hardlink",
		},
		{
			name: "file written through a symlink entry stays inside",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "evil", typ: tar.TypeSymlink, link: o}, {name: "evil/sentinel", body: "overwritten"}}
			},
		},
		{
			name:    "absolute entry names are relative to the destination",
			entries: func(o string) []tarEntry { return []tarEntry{{name: o + "/sentinel", body: "overwritten"}} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := outsideDir(t)
			src := build(t, blob("a.tar", mkTar(t, tc.entries(outside)...)))
			dst := t.TempDir()
			_, err := Copy(context.Background(), src, dst, Options{Sources: []string{"a.tar"}, Dest: "/x/", Add: true})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			assertOutsideUntouched(t, outside)
			assertNoSecret(t, dst)
		})
	}
}

// TestHeredocNames checks that a heredoc name holding "/" or ".." is
// resolved inside the destination root, or refused.
func TestHeredocNames(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name string
		want []string // nil: an error
	}{
		{name: "../../../../../../../../{outside}/sentinel"},
		{name: "a/../../../../../../../../../{outside}/sentinel"},
		{name: ".."},
		{name: "a/.."},
		{name: "a/f", want: []string{"x: d 0755", "x/a: d 0755", "x/a/f: f 0644 new"}},
		{name: "a/../f", want: []string{"x: d 0755", "x/a: d 0755", "x/f: f 0644 new"}},
		{name: "../f", want: []string{"f: f 0644 new", "x: d 0755", "x/a: d 0755"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := outsideDir(t)
			name := strings.ReplaceAll(tc.name, "{outside}", outside)
			dst := build(t, dir("x/a", 0o755))
			_, err := Copy(context.Background(), t.TempDir(), dst, Options{Heredocs: []Heredoc{{Name: name, Data: "new"}}, Dest: "/x/"})
			assertOutsideUntouched(t, outside)
			if tc.want == nil {
				if err == nil {
					t.Fatal("Copy succeeded")
				}
				assertTree(t, dst, []string{"x: d 0755", "x/a: d 0755"})
				return
			}
			must(t, err)
			assertTree(t, dst, tc.want)
		})
	}
}

// TestSwapDuringCopy replaces what the copy is about to read or write with
// symlinks out of the roots, from readHook, after the directories that hold
// them were listed or opened: a symlink found where the walk saw something
// else is never followed.
func TestSwapDuringCopy(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name string
		at   string // the entry whose read triggers swap
		swap func(t *testing.T, src, dst, outside string)
		want []string // nil: Copy fails; else the destination tree, whether or not Copy fails
	}{
		{
			name: "source directory",
			at:   "d/a",
			swap: func(t *testing.T, src, _, outside string) {
				must(t, os.Rename(filepath.Join(src, "d/sub"), filepath.Join(src, "moved")))
				must(t, os.Symlink(outside, filepath.Join(src, "d/sub")))
			},
		},
		{
			name: "source file",
			at:   "d/a",
			swap: func(t *testing.T, src, _, outside string) {
				must(t, os.Remove(filepath.Join(src, "d/b")))
				must(t, os.Symlink(filepath.Join(outside, "sentinel"), filepath.Join(src, "d/b")))
			},
		},
		{
			name: "destination directory being filled",
			at:   "d/sub/f",
			swap: func(t *testing.T, _, dst, outside string) {
				must(t, os.Rename(filepath.Join(dst, "out/sub"), filepath.Join(dst, "out/moved")))
				must(t, os.Symlink(outside, filepath.Join(dst, "out/sub")))
			},
			want: []string{"out: d 0755", "out/a: f 0644 A", "out/b: f 0644 B", "out/moved: d 0755", "out/moved/f: f 0644 F", "out/moved/g: f 0644 G", "out/sub: l -> {outside}"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := outsideDir(t)
			src := build(t, file("d/a", "A", 0o644), file("d/b", "B", 0o644), file("d/sub/f", "F", 0o644), file("d/sub/g", "G", 0o644))
			dst := t.TempDir()
			readHookMu.Lock()
			readHook = func(p string) {
				if p == tc.at {
					tc.swap(t, src, dst, outside)
				}
			}
			_, err := Copy(context.Background(), src, dst, Options{Sources: []string{"d"}, Dest: "/out"})
			readHook = nil
			readHookMu.Unlock()
			assertOutsideUntouched(t, outside)
			assertNoSecret(t, dst)
			if tc.want == nil {
				if err == nil {
					t.Fatal("Copy succeeded")
				}
				return
			}
			// Copy writes into the directory it opened, wherever that
			// is now, and may fail setting the times of the symlink's
			// path at the end.
			for i, w := range tc.want {
				tc.want[i] = strings.ReplaceAll(w, "{outside}", outside)
			}
			assertTree(t, dst, tc.want)
		})
	}
}

// FuzzHeredocTarget copies a heredoc under any name to any Dest, in a
// destination root holding symlinks out of it: nothing outside the root
// may change.
func FuzzHeredocTarget(f *testing.F) {
	testutil.RequirePrivileges(f, "root")
	for _, seed := range [][2]string{
		{"EOF", "/x/"}, {"../../../../../../../../sentinel", "/x/"}, {"a/../../b", "/link/"}, {"..", "/"},
		{"a/f", "/x/"}, {"../outside/sentinel", "/"}, {"link/sentinel", "/"}, {"up/sentinel", "/"}, {"f", "/up/../link/f"}, {"", "/x/"},
	} {
		f.Add(seed[0], seed[1])
	}
	src := f.TempDir()
	f.Fuzz(func(t *testing.T, name, dest string) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		must(t, os.Mkdir(outside, 0o755))
		must(t, os.WriteFile(filepath.Join(outside, "sentinel"), []byte(hostSecret), 0o644))
		root := filepath.Join(base, "root")
		build := func(o op) { o(t, root) }
		build(dir("x/a", 0o755))
		build(symlink("link", outside))
		build(symlink("up", "../../../../../../../.."+outside))
		_, _ = Copy(context.Background(), src, root, Options{Heredocs: []Heredoc{{Name: name, Data: "new"}}, Dest: dest})
		assertOutsideUntouched(t, outside)
		des, err := os.ReadDir(base)
		must(t, err)
		if len(des) != 2 {
			t.Fatalf("%s holds %v, want only outside and root", base, des)
		}
	})
}
