package copier

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/patternmatcher"
)

// dockerignore returns Ignore and CanSkipDir callbacks for patterns.
func dockerignore(t *testing.T, patterns ...string) (func(string) (bool, error), func(string) (bool, error)) {
	t.Helper()
	pm, err := patternmatcher.New(patterns)
	must(t, err)
	match := func(p string) (bool, error) { return pm.MatchesOrParentMatches(p) }
	canSkip := func(p string) (bool, error) {
		m, err := match(p)
		return m && !pm.Exclusions(), err
	}
	return match, canSkip
}

var etcFiles = []op{
	file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001:App:/home/app:/bin/sh\n", 0o644),
	file("etc/group", "root:x:0:\nstaff:x:50:\napp:x:1001:\n", 0o644),
}

func TestCopyChown(t *testing.T) {
	src := []op{file("f", "F", 0o644), dir("d", 0o755), file("d/g", "G", 0o644), symlink("d/l", "g")}
	owned := func(want map[string][2]int) func(t *testing.T, src, dst string) {
		return func(t *testing.T, _, dst string) {
			for p, w := range want {
				if uid, gid := ownerOf(t, filepath.Join(dst, p)); uid != w[0] || gid != w[1] {
					t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, w[0], w[1])
				}
			}
		}
	}
	runCases(t, []copyCase{
		{
			name: "user and group names", src: src, dst: etcFiles,
			opts:  Options{Sources: []string{"d"}, Dest: "/new/parent/out", Chown: "app:staff"},
			check: owned(map[string][2]int{"new": {1000, 50}, "new/parent": {1000, 50}, "new/parent/out": {1000, 50}, "new/parent/out/g": {1000, 50}, "new/parent/out/l": {1000, 50}, "etc": {0, 0}}),
		},
		{
			name: "user name alone uses its primary group", src: src, dst: etcFiles,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "app"}, check: owned(map[string][2]int{"f": {1000, 1001}}),
		},
		{
			name: "user name with empty group", src: src, dst: etcFiles,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "app:"}, check: owned(map[string][2]int{"f": {1000, 1001}}),
		},
		{
			name: "numeric uid alone uses the same gid", src: src,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "1234"}, check: owned(map[string][2]int{"f": {1234, 1234}}),
		},
		{
			name: "numeric uid and gid need no passwd", src: src,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "10:11"}, check: owned(map[string][2]int{"f": {10, 11}}),
		},
		{
			name: "numeric uid and group name", src: src, dst: etcFiles,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "55:staff"}, check: owned(map[string][2]int{"f": {55, 50}}),
		},
		{
			name: "unknown user", src: src, dst: etcFiles,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "nobody"}, wantErr: `no entry for "nobody" in /etc/passwd`,
		},
		{
			name: "unknown group", src: src, dst: etcFiles,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "app:wheel"}, wantErr: `no entry for "wheel" in /etc/group`,
		},
		{
			name: "no passwd in the destination", src: src,
			opts: Options{Sources: []string{"f"}, Dest: "/f", Chown: "app"}, wantErr: "no /etc/passwd in the destination root",
		},
		{
			name: "setuid survives chown", src: []op{file("s", "S", 0o4755)},
			opts: Options{Sources: []string{"s"}, Dest: "/s", Chown: "7:7"}, want: []string{"s: f 4755 S"},
		},
	})
}

func TestCopyChmod(t *testing.T) {
	src := []op{file("d/exe", "E", 0o700), file("d/doc", "D", 0o600), dir("d/sub", 0o700), file("d/sub/f", "F", 0o640), symlink("d/l", "doc")}
	runCases(t, []copyCase{
		{
			name: "octal applies to files and directories", src: src,
			opts: Options{Sources: []string{"d"}, Dest: "/o", Chmod: "751"},
			want: []string{"o: d 0751", "o/exe: f 0751 E", "o/doc: f 0751 D", "o/sub: d 0751", "o/sub/f: f 0751 F", "o/l: l -> doc"},
		},
		{
			name: "created parents stay 0755", src: src,
			opts: Options{Sources: []string{"d/doc"}, Dest: "/p/q/doc", Chmod: "0440"},
			want: []string{"p: d 0755", "p/q: d 0755", "p/q/doc: f 0440 D"},
		},
		{
			name: "symbolic u=rwX,go=rX", src: src,
			opts: Options{Sources: []string{"d"}, Dest: "/o", Chmod: "u=rwX,go=rX"},
			want: []string{"o: d 0755", "o/exe: f 0755 E", "o/doc: f 0644 D", "o/sub: d 0755", "o/sub/f: f 0644 F", "o/l: l -> doc"},
		},
		{
			name: "symbolic +x", src: []op{file("s", "S", 0o644)},
			opts: Options{Sources: []string{"s"}, Dest: "/s", Chmod: "+x"}, want: []string{"s: f 0755 S"},
		},
		{
			name: "symbolic g=u", src: []op{file("s", "S", 0o640)},
			opts: Options{Sources: []string{"s"}, Dest: "/s", Chmod: "g=u"}, want: []string{"s: f 0660 S"},
		},
		{
			name: "symbolic removal", src: []op{file("s", "S", 0o777)},
			opts: Options{Sources: []string{"s"}, Dest: "/s", Chmod: "go-w,o-x"}, want: []string{"s: f 0754 S"},
		},
		{
			name: "octal out of range", src: src,
			opts: Options{Sources: []string{"d"}, Dest: "/o", Chmod: "17777"}, wantErr: "invalid chmod parameter: '17777'",
		},
		{
			name: "not octal", src: src,
			opts: Options{Sources: []string{"d"}, Dest: "/o", Chmod: "789"}, wantErr: "it should be octal string",
		},
		{
			name: "bad symbolic", src: src,
			opts: Options{Sources: []string{"d"}, Dest: "/o", Chmod: "u+q"}, wantErr: "unknown permission",
		},
	})
}

func TestChmodSymbolic(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		in    uint32
		isDir bool
		want  uint32
	}{
		{"a+x", 0o644, false, 0o755},
		{"u+s", 0o755, false, 0o4755},
		{"g+s,o+t", 0o755, true, 0o3755},
		{"u=rw,g=r,o=", 0o777, false, 0o640},
		{"a=rX", 0o700, true, 0o555},
		{"a=rX", 0o600, false, 0o444},
		{"o=g", 0o750, false, 0o755},
		{"u-s", 0o4755, false, 0o755},
		{"=r", 0o777, false, 0o444},
		{"+w-x", 0o555, false, 0o666},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			c, err := parseChmod(tc.spec)
			must(t, err)
			if got := toUnixMode(c.apply(fromUnixMode(tc.in), tc.isDir)); got != tc.want {
				t.Fatalf("%s on %04o: %04o, want %04o", tc.spec, tc.in, got, tc.want)
			}
		})
	}
}

func TestCopyExclude(t *testing.T) {
	src := []op{
		file("dir1/file-101.png", "2", 0o600), file("dir1/file-102.txt", "3", 0o600), file("dir1/file-103.jpeg", "4", 0o600),
		file("dir3/file-301.mp3", "9", 0o600), file("dir3/file-302.mpeg", "10", 0o600),
		file("home.txt", "h", 0o644), file("homer.md", "m", 0o644), file("homes.go", "g", 0o644),
		dir("dir1", 0o755), dir("dir3", 0o755),
		dir("dir4/skip/deep", 0o755), file("dir4/skip/deep/x", "x", 0o644), file("dir4/keep", "k", 0o644),
	}
	runCases(t, []copyCase{
		{
			name: "patterns relative to a copied directory", src: src,
			opts: Options{Sources: []string{"."}, Dest: "/1", Exclude: []string{"*/*.png", "*/*.jpeg", "dir3", "dir4", "home*"}},
			want: []string{"1: d 0755", "1/dir1: d 0755", "1/dir1/file-102.txt: f 0600 3"},
		},
		{
			name: "relative to the source directory", src: src,
			opts: Options{Sources: []string{"dir3/"}, Dest: "/3/", Exclude: []string{"*.mp3"}},
			want: []string{"3: d 0755", "3/file-302.mpeg: f 0600 10"},
		},
		{
			name: "files matched by a wildcard", src: src,
			opts: Options{Sources: []string{"hom*"}, Dest: "/mydir/", Exclude: []string{"*.txt", "*.md"}},
			want: []string{"mydir: d 0755", "mydir/homes.go: f 0644 g"},
		},
		{
			name: "excluding everything in matched directories leaves the destination", src: src,
			opts: Options{Sources: []string{"dir*"}, Dest: "/6", Exclude: []string{"*"}, Add: true},
			want: []string{"6: d 0755"},
		},
		{
			name: "excluded directory with a re-included file", src: src,
			opts: Options{Sources: []string{"dir4"}, Dest: "/4", Exclude: []string{"skip", "keep", "!skip/deep/x"}},
			want: []string{"4: d 0755", "4/skip: d 0755", "4/skip/deep: d 0755", "4/skip/deep/x: f 0644 x"},
		},
	})
}

func TestCopyDockerignore(t *testing.T) {
	src := []op{
		file("Dockerfile", "FROM x", 0o644), file("app/main.go", "main", 0o644), file("app/secret.key", "k", 0o600),
		dir("node_modules/x", 0o755), file("node_modules/x/i.js", "js", 0o644),
		dir("logs", 0o755), file("logs/a.log", "a", 0o644), file("logs/keep.log", "keep", 0o644),
		file("notes.md", "n", 0o644),
	}
	withIgnore := func(o Options, t *testing.T, patterns ...string) Options {
		o.Ignore, o.CanSkipDir = dockerignore(t, patterns...)
		return o
	}
	runCases(t, []copyCase{
		{
			name: "ignored files and pruned directories are not copied", src: src,
			opts: withIgnore(Options{Sources: []string{"."}, Dest: "/c/"}, t, "**/*.key", "node_modules", "logs", "!logs/keep.log", "*.md"),
			want: []string{
				"c: d 0755", "c/Dockerfile: f 0644 FROM x", "c/app: d 0755", "c/app/main.go: f 0644 main",
				"c/logs: d 0755", "c/logs/keep.log: f 0644 keep",
			},
		},
		{
			name: "an ignored file named explicitly is not found", src: src,
			opts:    withIgnore(Options{Sources: []string{"notes.md"}, Dest: "/n"}, t, "*.md"),
			wantErr: "stat notes.md", errIs: ErrNotFound,
		},
		{
			name: "wildcards do not match ignored files", src: src,
			opts: withIgnore(Options{Sources: []string{"*"}, Dest: "/w/"}, t, "app", "node_modules", "logs", "Dockerfile"),
			want: []string{"w: d 0755", "w/notes.md: f 0644 n"},
		},
		{
			name: "ignored directory entered for a re-included file", src: src,
			opts: withIgnore(Options{Sources: []string{"logs"}, Dest: "/l"}, t, "logs", "!logs/keep.log"),
			want: []string{"l: d 0755", "l/keep.log: f 0644 keep"},
		},
	})
}

func TestCopyParents(t *testing.T) {
	src := []op{
		dir("x", 0o750), file("x/a.txt", "xa", 0o644), dir("y", 0o755), file("y/a.txt", "ya", 0o644),
		dir("x/y", 0o700), file("x/y/a.txt", "xya", 0o644), file("x/y/b.txt", "xyb", 0o644),
		dir("src/x/y", 0o755), file("src/a.txt", "1", 0o644), file("src/x/b.txt", "2", 0o644), file("src/x/y/c.txt", "3", 0o644), file("src/x/y/d.md", "4", 0o644),
	}
	runCases(t, []copyCase{
		{
			name: "without parents", src: src,
			opts: Options{Sources: []string{"./x/a.txt", "./y/a.txt"}, Dest: "/no_parents/"},
			want: []string{"no_parents: d 0755", "no_parents/a.txt: f 0644 ya"},
		},
		{
			name: "with parents", src: src,
			opts: Options{Sources: []string{"./x/a.txt", "./y/a.txt"}, Dest: "/parents/", Parents: true},
			want: []string{"parents: d 0755", "parents/x: d 0750", "parents/x/a.txt: f 0644 xa", "parents/y: d 0755", "parents/y/a.txt: f 0644 ya"},
		},
		{
			name: "pivot", src: src,
			opts: Options{Sources: []string{"./x/./y/*.txt"}, Dest: "/parents/", Parents: true},
			want: []string{"parents: d 0755", "parents/y: d 0700", "parents/y/a.txt: f 0644 xya", "parents/y/b.txt: f 0644 xyb"},
		},
		{
			name: "double star", src: src,
			opts: Options{Sources: []string{"./src/**/*.txt"}, Dest: "/parents/", Parents: true},
			want: []string{
				"parents: d 0755", "parents/src: d 0755", "parents/src/a.txt: f 0644 1", "parents/src/x: d 0755",
				"parents/src/x/b.txt: f 0644 2", "parents/src/x/y: d 0755", "parents/src/x/y/c.txt: f 0644 3",
			},
		},
		{
			name: "directory with parents", src: src,
			opts: Options{Sources: []string{"x/y"}, Dest: "/p", Parents: true},
			want: []string{"p: d 0755", "p/x: d 0750", "p/x/y: d 0700", "p/x/y/a.txt: f 0644 xya", "p/x/y/b.txt: f 0644 xyb"},
		},
		{
			name: "missing required path", src: src,
			opts: Options{Sources: []string{"x/nothere"}, Dest: "/p", Parents: true}, errIs: ErrNotFound,
		},
	})
}

func TestCopyLinkFlagSameFiles(t *testing.T) {
	requireRoot(t)
	src := build(t, file("a", "A", 0o644))
	for _, link := range []bool{false, true} {
		dst := t.TempDir()
		_, err := Copy(t.Context(), src, dst, Options{Sources: []string{"a"}, Dest: "/a", Link: link})
		must(t, err)
		data, err := os.ReadFile(filepath.Join(dst, "a"))
		must(t, err)
		if string(data) != "A" {
			t.Fatalf("link=%v: %q", link, data)
		}
	}
}
