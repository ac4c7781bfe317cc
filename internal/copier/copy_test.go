package copier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyCase is one COPY or ADD run against fresh source and destination
// trees.
type copyCase struct {
	name    string
	src     []op
	dst     []op
	opts    Options
	want    []string // the whole destination tree, see tree
	wantErr string   // a substring of the error
	errIs   error
	check   func(t *testing.T, src, dst string)
}

func runCases(t *testing.T, cases []copyCase) {
	t.Helper()
	requireRoot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil && tc.check == nil && tc.wantErr == "" && tc.errIs == nil {
				t.Fatal("case checks nothing: set want, check, wantErr or errIs")
			}
			src := build(t, tc.src...)
			dst := build(t, tc.dst...)
			_, err := Copy(context.Background(), src, dst, tc.opts)
			if tc.wantErr != "" || tc.errIs != nil {
				if err == nil {
					t.Fatalf("Copy succeeded, want error %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Fatalf("error %v is not %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if tc.want != nil {
				assertTree(t, dst, tc.want)
			}
			if tc.check != nil {
				tc.check(t, src, dst)
			}
		})
	}
}

func TestCopyBasics(t *testing.T) {
	ctxTree := []op{
		file("a.txt", "A", 0o644),
		file("b.txt", "B", 0o600),
		file("c.go", "C", 0o755),
		dir("sub", 0o750),
		file("sub/x", "X", 0o644),
		dir("sub/dir1/dir2", 0o700),
		dir("sub/dir1", 0o711),
		file("sub/dir1/dir2/foo", "FOO", 0o640),
	}
	runCases(t, []copyCase{
		{
			name: "file to path without slash becomes that file",
			src:  ctxTree, opts: Options{Sources: []string{"a.txt"}, Dest: "/dst"},
			want: []string{"dst: f 0644 A"},
		},
		{
			name: "file to path with slash goes inside",
			src:  ctxTree, opts: Options{Sources: []string{"a.txt"}, Dest: "/dst/"},
			want: []string{"dst: d 0755", "dst/a.txt: f 0644 A"},
		},
		{
			name: "file to existing directory goes inside",
			src:  ctxTree, dst: []op{dir("dst", 0o711)},
			opts: Options{Sources: []string{"a.txt"}, Dest: "/dst"},
			want: []string{"dst: d 0711", "dst/a.txt: f 0644 A"},
		},
		{
			name: "missing parents are created",
			src:  ctxTree, opts: Options{Sources: []string{"b.txt"}, Dest: "/x/y/z"},
			want: []string{"x: d 0755", "x/y: d 0755", "x/y/z: f 0600 B"},
		},
		{
			name: "directory copies its contents",
			src:  ctxTree, opts: Options{Sources: []string{"sub"}, Dest: "/dst"},
			want: []string{"dst: d 0750", "dst/x: f 0644 X", "dst/dir1: d 0711", "dst/dir1/dir2: d 0700", "dst/dir1/dir2/foo: f 0640 FOO"},
		},
		{
			name: "trailing slash and dot on a source are ignored",
			src:  ctxTree, opts: Options{Sources: []string{"sub/dir1/"}, Dest: "/d4"},
			want: []string{"d4: d 0711", "d4/dir2: d 0700", "d4/dir2/foo: f 0640 FOO"},
		},
		{
			name: "dot-slash source",
			src:  ctxTree, opts: Options{Sources: []string{"sub/dir1/."}, Dest: "/d5/"},
			want: []string{"d5: d 0711", "d5/dir2: d 0700", "d5/dir2/foo: f 0640 FOO"},
		},
		{
			name: "directory into existing directory merges and keeps its mode",
			src:  ctxTree, dst: []op{dir("dst", 0o711), file("dst/keep", "K", 0o644), file("dst/x", "old", 0o600)},
			opts: Options{Sources: []string{"sub/dir1"}, Dest: "/dst"},
			want: []string{"dst: d 0711", "dst/keep: f 0644 K", "dst/x: f 0600 old", "dst/dir2: d 0700", "dst/dir2/foo: f 0640 FOO"},
		},
		{
			name: "existing file is replaced",
			src:  ctxTree, dst: []op{file("dst", "old", 0o777)},
			opts: Options{Sources: []string{"a.txt"}, Dest: "/dst"},
			want: []string{"dst: f 0644 A"},
		},
		{
			name: "whole context with dot",
			src:  []op{file("a", "A", 0o644), dir("d", 0o755), file("d/b", "B", 0o644)},
			opts: Options{Sources: []string{"."}, Dest: "/app/"},
			want: []string{"app: d 0755", "app/a: f 0644 A", "app/d: d 0755", "app/d/b: f 0644 B"},
		},
		{
			name: "leading slash and dot-dot in sources stay in the context",
			src:  ctxTree, opts: Options{Sources: []string{"/a.txt", "../../b.txt"}, Dest: "/d/"},
			want: []string{"d: d 0755", "d/a.txt: f 0644 A", "d/b.txt: f 0600 B"},
		},
		{
			name: "relative destination is relative to WORKDIR",
			src:  ctxTree, dst: []op{dir("app", 0o755)},
			opts: Options{Sources: []string{"a.txt"}, Dest: "rel/", Workdir: "/app"},
			want: []string{"app: d 0755", "app/rel: d 0755", "app/rel/a.txt: f 0644 A"},
		},
		{
			name: "dot destination is WORKDIR",
			src:  ctxTree, opts: Options{Sources: []string{"a.txt"}, Dest: ".", Workdir: "/w"},
			want: []string{"w: d 0755", "w/a.txt: f 0644 A"},
		},
		{
			name: "directory to root",
			src:  []op{dir("r", 0o755), file("r/etc/conf", "C", 0o644)},
			dst:  []op{dir("etc", 0o755), file("etc/other", "O", 0o644)},
			opts: Options{Sources: []string{"r"}, Dest: "/"},
			want: []string{"etc: d 0755", "etc/conf: f 0644 C", "etc/other: f 0644 O"},
		},
		{
			name: "several sources need a directory destination",
			src:  ctxTree, opts: Options{Sources: []string{"a.txt", "b.txt"}, Dest: "/dst"},
			wantErr: "When using COPY with more than one source file, the destination must be a directory and end with a /",
		},
		{
			name: "several sources into an existing directory without slash",
			src:  ctxTree, dst: []op{dir("dst", 0o755)},
			opts: Options{Sources: []string{"a.txt", "b.txt"}, Dest: "/dst"},
			want: []string{"dst: d 0755", "dst/a.txt: f 0644 A", "dst/b.txt: f 0600 B"},
		},
		{
			name: "missing source is an error naming it",
			src:  ctxTree, opts: Options{Sources: []string{"nothere"}, Dest: "/dst"},
			wantErr: "stat nothere", errIs: ErrNotFound,
		},
		{
			name: "directory onto an existing file is an error",
			src:  ctxTree, dst: []op{file("dst", "F", 0o644)},
			opts:    Options{Sources: []string{"sub"}, Dest: "/dst"},
			wantErr: "cannot copy a directory onto non-directory /dst",
		},
		{
			name: "file onto an existing directory inside a copied tree is an error",
			src:  ctxTree, dst: []op{dir("dst/x", 0o755)},
			opts:    Options{Sources: []string{"sub"}, Dest: "/dst"},
			wantErr: "cannot replace directory /dst/x with a file",
		},
		{
			name: "URL in COPY",
			opts: Options{Sources: []string{"https://example.com/x"}, Dest: "/"}, wantErr: "source can't be a URL for COPY",
		},
	})
}

func TestCopyWildcards(t *testing.T) {
	ctxTree := []op{
		file("foo.go", "foo", 0o644),
		file("bar.go", "bar", 0o644),
		file("index.js", "js", 0o644),
		file("index.ts", "ts", 0o644),
		file("arr[0].txt", "arr", 0o644),
		file("home.txt", "home", 0o644),
		file("homer.md", "homer", 0o644),
		dir("sub/dir1/dir2", 0o755),
		file("sub/dir1/dir2/foo", "FOO", 0o644),
		file("sub/top", "T", 0o644),
	}
	runCases(t, []copyCase{
		{
			name: "star", src: ctxTree, opts: Options{Sources: []string{"*.go"}, Dest: "/gofiles/"},
			want: []string{"gofiles: d 0755", "gofiles/bar.go: f 0644 bar", "gofiles/foo.go: f 0644 foo"},
		},
		{
			name: "single match to a file path", src: ctxTree, opts: Options{Sources: []string{"f*.go"}, Dest: "/foo2.go"},
			want: []string{"foo2.go: f 0644 foo"},
		},
		{
			name: "question mark", src: ctxTree, opts: Options{Sources: []string{"index.?s"}, Dest: "/d/"},
			want: []string{"d: d 0755", "d/index.js: f 0644 js", "d/index.ts: f 0644 ts"},
		},
		{
			name: "class", src: ctxTree, opts: Options{Sources: []string{"[a-c]*"}, Dest: "/d/"},
			want: []string{"d: d 0755", "d/arr[0].txt: f 0644 arr", "d/bar.go: f 0644 bar"},
		},
		{
			name: "escaped bracket", src: ctxTree, opts: Options{Sources: []string{"arr[[]0].txt"}, Dest: "/d/"},
			want: []string{"d: d 0755", "d/arr[0].txt: f 0644 arr"},
		},
		{
			name: "wildcard in a directory component", src: ctxTree,
			opts: Options{Sources: []string{"sub/*/dir2/foo"}, Dest: "/subdest2/"},
			want: []string{"subdest2: d 0755", "subdest2/foo: f 0644 FOO"},
		},
		{
			name: "wildcard matching a directory copies its contents", src: ctxTree,
			opts: Options{Sources: []string{"sub/*"}, Dest: "/subdest/"},
			want: []string{"subdest: d 0755", "subdest/dir2: d 0755", "subdest/dir2/foo: f 0644 FOO", "subdest/top: f 0644 T"},
		},
		{
			name: "several matches need a directory", src: ctxTree,
			opts: Options{Sources: []string{"*.go"}, Dest: "/x"}, wantErr: "destination must be a directory",
		},
		{
			name: "empty wildcard next to a real source", src: ctxTree,
			opts: Options{Sources: []string{"foo.go", "nomatch*"}, Dest: "/"},
			want: []string{"foo.go: f 0644 foo"},
		},
		{
			name: "only an empty wildcard", src: ctxTree,
			opts: Options{Sources: []string{"nomatch*"}, Dest: "/"}, wantErr: "no source files were specified", errIs: ErrNotFound,
		},
		{
			name: "bad pattern", src: ctxTree,
			opts: Options{Sources: []string{"[z-a"}, Dest: "/"}, wantErr: "syntax error in pattern",
		},
	})
}

func TestCopyMetadata(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	runCases(t, []copyCase{
		{
			name: "modes, symlinks and mtimes are preserved",
			src: []op{
				file("d/suid", "S", 0o4755), file("d/sticky-dir/f", "F", 0o644), dir("d/sticky-dir", 0o1777),
				symlink("d/link", "suid"), symlink("d/abs", "/etc/passwd"), symlink("d/dangling", "../nowhere"),
				mtime("d/suid", old),
			},
			opts: Options{Sources: []string{"d"}, Dest: "/out"},
			want: []string{
				"out: d 0755", "out/suid: f 4755 S", "out/sticky-dir: d 1777", "out/sticky-dir/f: f 0644 F",
				"out/link: l -> suid", "out/abs: l -> /etc/passwd", "out/dangling: l -> ../nowhere",
			},
			check: func(t *testing.T, src, dst string) {
				fi, err := os.Stat(filepath.Join(dst, "out/suid"))
				must(t, err)
				if !fi.ModTime().Equal(old) {
					t.Errorf("mtime %v, want %v", fi.ModTime(), old)
				}
			},
		},
		{
			name: "directory mtimes are preserved after their contents are written",
			src:  []op{file("d/sub/f", "F", 0o644), mtime("d/sub", old), mtime("d", old)},
			opts: Options{Sources: []string{"d"}, Dest: "/out"},
			check: func(t *testing.T, src, dst string) {
				for _, p := range []string{"out", "out/sub"} {
					fi, err := os.Stat(filepath.Join(dst, p))
					must(t, err)
					if !fi.ModTime().Equal(old) {
						t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), old)
					}
				}
			},
		},
		{
			name: "SourceDateEpoch clamps newer times only",
			src:  []op{file("new", "N", 0o644), file("old", "O", 0o644), mtime("old", old)},
			opts: Options{Sources: []string{"new", "old"}, Dest: "/out/", SourceDateEpoch: new(time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC))},
			check: func(t *testing.T, src, dst string) {
				epoch := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
				for p, want := range map[string]time.Time{"out/new": epoch, "out/old": old, "out": epoch} {
					fi, err := os.Stat(filepath.Join(dst, p))
					must(t, err)
					if !fi.ModTime().Equal(want) {
						t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), want)
					}
				}
			},
		},
		{
			name: "hardlinks inside a copied tree stay hardlinks",
			src:  []op{file("d/a", "same", 0o644), hardlink("d/b", "d/a"), file("d/c", "other", 0o644)},
			opts: Options{Sources: []string{"d"}, Dest: "/out"},
			check: func(t *testing.T, src, dst string) {
				a, err := os.Stat(filepath.Join(dst, "out/a"))
				must(t, err)
				b, err := os.Stat(filepath.Join(dst, "out/b"))
				must(t, err)
				c, err := os.Stat(filepath.Join(dst, "out/c"))
				must(t, err)
				if !os.SameFile(a, b) {
					t.Error("out/a and out/b are not the same inode")
				}
				if os.SameFile(a, c) {
					t.Error("out/c is linked to out/a")
				}
			},
		},
		{
			name: "default owner is root for files, dirs and symlinks",
			src: []op{
				dir("d/sub", 0o755), file("d/sub/f", "F", 0o644), symlink("d/l", "sub"),
				chown("d", 1000, 1000), chown("d/sub", 1000, 1000), chown("d/sub/f", 1000, 1000), chown("d/l", 1000, 1000),
			},
			opts: Options{Sources: []string{"d"}, Dest: "/out"},
			check: func(t *testing.T, src, dst string) {
				for _, p := range []string{"out", "out/sub", "out/sub/f", "out/l"} {
					if uid, gid := ownerOf(t, filepath.Join(dst, p)); uid != 0 || gid != 0 {
						t.Errorf("%s owned by %d:%d, want 0:0", p, uid, gid)
					}
				}
			},
		},
	})
}

func TestCopyHeredoc(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "heredoc to a file path",
			opts: Options{Heredocs: []Heredoc{{Name: "EOF", Data: "hello\n"}}, Dest: "/app/file"},
			want: []string{"app: d 0755", "app/file: f 0644 hello\n"},
		},
		{
			name: "heredocs named in sources, to a directory",
			opts: Options{Sources: []string{"a.conf", "b.conf"}, Heredocs: []Heredoc{{Name: "a.conf", Data: "A"}, {Name: "b.conf", Data: "B"}}, Dest: "/etc/"},
			want: []string{"etc: d 0755", "etc/a.conf: f 0644 A", "etc/b.conf: f 0644 B"},
		},
		{
			name: "heredoc with chmod",
			opts: Options{Heredocs: []Heredoc{{Name: "EOF", Data: "#!/bin/sh\n"}}, Dest: "/run.sh", Chmod: "755"},
			want: []string{"run.sh: f 0755 #!/bin/sh\n"},
		},
		{
			name: "heredoc replaces a symlink instead of writing through it",
			dst:  []op{file("target", "T", 0o644), symlink("f", "target")},
			opts: Options{Heredocs: []Heredoc{{Name: "EOF", Data: "new"}}, Dest: "/f"},
			want: []string{"f: f 0644 new", "target: f 0644 T"},
		},
	})
}

func TestCopyCancelled(t *testing.T) {
	requireRoot(t)
	src := build(t, file("a", "A", 0o644), file("d/b", "B", 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Copy(ctx, src, t.TempDir(), Options{Sources: []string{"d"}, Dest: "/x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy with a cancelled context: %v", err)
	}
}

func TestCopyResult(t *testing.T) {
	requireRoot(t)
	src := build(t, file("d/a", "12345", 0o644), file("d/b", "678", 0o644), symlink("d/l", "a"), dir("d/e", 0o755))
	res, err := Copy(context.Background(), src, t.TempDir(), Options{Sources: []string{"d"}, Dest: "/x"})
	must(t, err)
	if res.Files != 3 || res.Bytes != 8 {
		t.Fatalf("Result %+v, want 3 files, 8 bytes", res)
	}
}

func TestCopySpecialFiles(t *testing.T) {
	requireRoot(t)
	src := build(t, dir("d", 0o755))
	must(t, syscall.Mkfifo(filepath.Join(src, "d/fifo"), 0o640))
	dst := t.TempDir()
	res, err := Copy(context.Background(), src, dst, Options{Sources: []string{"d"}, Dest: "/o"})
	must(t, err)
	fi, err := os.Lstat(filepath.Join(dst, "o/fifo"))
	must(t, err)
	if fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o640 || res.Files != 1 {
		t.Fatalf("fifo copied as %v (%+v)", fi.Mode(), res)
	}
}

func TestErrorMessages(t *testing.T) {
	requireRoot(t)
	src := build(t, file("a", "A", 0o644))
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Sources: []string{"nothere"}, Dest: "/x"}, "copying nothere: file not found in build context or excluded by .dockerignore: stat nothere: file does not exist"},
		{Options{Sources: []string{"a", "a"}, Dest: "/x"}, "copying to /x: When using COPY with more than one source file, the destination must be a directory and end with a /"},
		{Options{Sources: []string{"no*"}, Dest: "/x"}, "copying no*: no source files were specified: file not found in build context or excluded by .dockerignore"},
	} {
		_, err := Copy(context.Background(), src, t.TempDir(), tc.opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("error\n got %v\nwant %s", err, tc.want)
		}
	}
}
