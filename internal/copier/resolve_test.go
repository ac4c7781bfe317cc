package copier

import (
	"context"
	"slices"
	"sync"
	"testing"
)

func TestResolve(t *testing.T) {
	src := build(t,
		file("a.go", "a", 0o644), file("b.go", "b", 0o644), file("c.txt", "c", 0o644),
		dir("d/e", 0o755), file("d/e/f", "f", 0o644), symlink("ln", "d/e/f"), symlink("dl", "/d"),
	)
	for _, tc := range []struct {
		name string
		opts Options
		want []Source
	}{
		{
			name: "wildcard sorted",
			opts: Options{Sources: []string{"*.go"}, Dest: "/x/"},
			want: []Source{{Path: "a.go", Resolved: "a.go", DestName: "a.go"}, {Path: "b.go", Resolved: "b.go", DestName: "b.go"}},
		},
		{
			name: "top-level symlinks are followed inside the root",
			opts: Options{Sources: []string{"ln", "dl"}, Dest: "/x/"},
			want: []Source{{Path: "ln", Resolved: "d/e/f", DestName: "ln"}, {Path: "dl", Resolved: "d", IsDir: true, DestName: "."}},
		},
		{
			name: "exclude and heredoc",
			opts: Options{Sources: []string{"*.go", "EOF"}, Exclude: []string{"a.*"}, Heredocs: []Heredoc{{Name: "EOF", Data: "x"}}, Dest: "/x/"},
			want: []Source{{Path: "b.go", Resolved: "b.go", DestName: "b.go"}, {Path: "EOF", Resolved: "EOF", DestName: "EOF", Heredoc: true, Data: "x"}},
		},
		{
			name: "parents",
			opts: Options{Sources: []string{"./d/./e/f"}, Dest: "/x/", Parents: true},
			want: []Source{{Path: "d/e/f", Resolved: "d/e/f", DestName: "e/f"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(context.Background(), src, tc.opts)
			must(t, err)
			for i := range got {
				got[i].base, got[i].wildcard = "", false
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Resolve:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// readHookMu serializes tests that install readHook.
var readHookMu sync.Mutex

// TestResolveMatchesCopy checks that Walk reports exactly the paths Copy
// reads, so that a cache key computed from Walk covers the copy.
func TestResolveMatchesCopy(t *testing.T) {
	requireRoot(t)
	ignore, canSkip := dockerignore(t, "**/*.log", "vendor", "skip", "!skip/keep")
	src := build(t,
		file("main.go", "m", 0o644), file("x.log", "l", 0o644), file("pkg/a/a.go", "a", 0o644), file("pkg/a/a.log", "l", 0o644),
		file("vendor/v.go", "v", 0o644), symlink("pkg/link", "../main.go"), file("pkg/a/hard", "h", 0o644), hardlink("pkg/a/hard2", "pkg/a/hard"),
		file("skip/drop", "d", 0o644), file("skip/keep", "k", 0o644), file("other/o.txt", "o", 0o644), symlink("toplink", "pkg/a"),
		file("docs/x/y/z.md", "z", 0o644),
	)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"dot", Options{Sources: []string{"."}, Dest: "/app/", Ignore: ignore, CanSkipDir: canSkip}},
		{"wildcards and exclude", Options{Sources: []string{"*.go", "pkg", "o*"}, Dest: "/app/", Exclude: []string{"a"}, Ignore: ignore, CanSkipDir: canSkip}},
		{"symlinked dir", Options{Sources: []string{"toplink", "skip"}, Dest: "/app/", Ignore: ignore, CanSkipDir: canSkip}},
		{"parents", Options{Sources: []string{"docs/**/*.md", "pkg/a/a.go"}, Dest: "/app/", Parents: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var walked []string
			must(t, Walk(context.Background(), src, tc.opts, func(e Entry) error {
				walked = append(walked, e.Path)
				return nil
			}))
			readHookMu.Lock()
			var read []string
			readHook = func(p string) { read = append(read, p) }
			_, err := Copy(context.Background(), src, t.TempDir(), tc.opts)
			readHook = nil
			readHookMu.Unlock()
			must(t, err)
			if len(walked) == 0 {
				t.Fatal("Walk reported no paths")
			}
			if !slices.Equal(walked, read) {
				t.Fatalf("Walk and Copy differ\nwalk: %v\ncopy: %v", walked, read)
			}
			for _, p := range walked {
				if p == "x.log" || p == "vendor/v.go" || p == "skip/drop" {
					t.Errorf("ignored path %s was read", p)
				}
			}
		})
	}
}

// TestWalkHeldDirectories checks that a directory left out by .dockerignore
// or --exclude but entered for "!" patterns is reported, before its
// contents, only when something below it is, however deep.
func TestWalkHeldDirectories(t *testing.T) {
	requireRoot(t)
	ignore, canSkip := dockerignore(t, "logs", "!logs/keep/x")
	src := build(t,
		file("logs/a/b/c", "c", 0o644), file("logs/keep/x", "x", 0o644), file("logs/keep/y", "y", 0o644),
		dir("logs/m/n", 0o755), file("logs/z", "z", 0o644), file("top.txt", "t", 0o644), file("zz/f", "f", 0o644),
	)
	for _, tc := range []struct {
		name string
		opts Options
		walk []string
		tree []string
	}{
		{
			name: "dockerignore",
			opts: Options{Sources: []string{"."}, Dest: "/o/", Ignore: ignore, CanSkipDir: canSkip},
			walk: []string{".", "logs", "logs/keep", "logs/keep/x", "top.txt", "zz", "zz/f"},
			tree: []string{"o: d 0755", "o/logs: d 0755", "o/logs/keep: d 0755", "o/logs/keep/x: f 0644 x", "o/top.txt: f 0644 t", "o/zz: d 0755", "o/zz/f: f 0644 f"},
		},
		{
			name: "exclude",
			opts: Options{Sources: []string{"logs"}, Dest: "/o/", Exclude: []string{"a", "keep", "m", "!keep/y"}},
			walk: []string{"logs", "logs/keep", "logs/keep/y", "logs/z"},
			tree: []string{"o: d 0755", "o/keep: d 0755", "o/keep/y: f 0644 y", "o/z: f 0644 z"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var walked []string
			must(t, Walk(context.Background(), src, tc.opts, func(e Entry) error {
				walked = append(walked, e.Path)
				return nil
			}))
			if !slices.Equal(walked, tc.walk) {
				t.Fatalf("Walk\n got %v\nwant %v", walked, tc.walk)
			}
			dst := t.TempDir()
			_, err := Copy(context.Background(), src, dst, tc.opts)
			must(t, err)
			assertTree(t, dst, tc.tree)
		})
	}
}
