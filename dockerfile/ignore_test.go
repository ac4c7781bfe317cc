package dockerfile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestIgnoreMatch(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		excluded []string
		included []string
	}{
		{
			name:     "nested paths match through parents",
			patterns: []string{"node_modules", "*.log"},
			excluded: []string{"node_modules", "node_modules/a/b.js", "x.log"},
			included: []string{"src/x.log", "src/node_modules", "main.go"},
		},
		{
			// docker/cli#2919: re-including with ** below an excluded tree.
			name:     "exception with double star",
			patterns: []string{"**", "!**/*.go", "!go.mod"},
			excluded: []string{"README.md", "docs/a.md", "pkg"},
			included: []string{"main.go", "pkg/sub/x.go", "go.mod"},
		},
		{
			// moby#45284: a trailing slash on an exception must still match.
			name:     "exception with trailing slash",
			patterns: []string{"*", "!keep/", "!/also/"},
			excluded: []string{"drop", "drop/file"},
			included: []string{"keep", "keep/file", "keep/sub/deep", "also/x"},
		},
		{
			name:     "later pattern wins",
			patterns: []string{"*.md", "!README.md", "README.md"},
			excluded: []string{"README.md", "a.md"},
			included: []string{"a.txt"},
		},
		{
			name:     "leading slash and dot segments are normalized",
			patterns: []string{"/build/", "./tmp", "# comment", ""},
			excluded: []string{"build/out", "tmp"},
			included: []string{"src/build", "."},
		},
		{
			name:     "double star prefix",
			patterns: []string{"**/*.tmp"},
			excluded: []string{"a.tmp", "x/y/z.tmp"},
			included: []string{"x/y/z.txt"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ig, err := NewIgnore(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.excluded {
				if m, err := ig.Match(p); err != nil || !m {
					t.Errorf("Match(%q) = %v, %v; want excluded", p, m, err)
				}
			}
			for _, p := range tc.included {
				if m, err := ig.Match(p); err != nil || m {
					t.Errorf("Match(%q) = %v, %v; want included", p, m, err)
				}
			}
		})
	}
}

func TestIgnoreCanSkipDir(t *testing.T) {
	tests := []struct {
		patterns []string
		dir      string
		want     bool
	}{
		{[]string{"node_modules"}, "node_modules", true},
		{[]string{"node_modules"}, "src", false},
		{[]string{"node_modules", "!node_modules/keep"}, "node_modules", false},
		{[]string{"node_modules", "!src/keep"}, "node_modules", true},
		{[]string{"*", "!**/*.go"}, "docs", false},
		{[]string{"*", "!keep/"}, "drop", true},
		{[]string{"*", "!keep/"}, "keep", false},
		{[]string{"a", "!a/b/c"}, "a/x", true},
		{[]string{"a", "!a/b/c"}, "a/b", false},
		{[]string{"a", "!a*/b"}, "a", false},
	}
	for _, tc := range tests {
		ig, err := NewIgnore(tc.patterns)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ig.CanSkipDir(tc.dir)
		if err != nil || got != tc.want {
			t.Errorf("%v CanSkipDir(%q) = %v, %v; want %v", tc.patterns, tc.dir, got, err, tc.want)
		}
	}
}

func TestNilIgnore(t *testing.T) {
	var ig *Ignore
	if m, err := ig.Match("x"); m || err != nil {
		t.Errorf("nil Ignore matched: %v %v", m, err)
	}
}

func TestReadIgnore(t *testing.T) {
	ctx := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	df := filepath.Join(ctx, "sub", "Dockerfile.dev")
	write(df, "FROM alpine\n")

	got, err := ReadIgnore(ctx, df)
	if err != nil || got != nil {
		t.Fatalf("no ignore file: %v, %v", got, err)
	}

	write(filepath.Join(ctx, ".dockerignore"), "# c\n/root-only/\n!keep\n")
	got, err = ReadIgnore(ctx, df)
	if want := []string{"root-only", "!keep"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("root ignore = %v, %v; want %v", got, err, want)
	}

	write(df+".dockerignore", "dev-only\n")
	got, err = ReadIgnore(ctx, df)
	if want := []string{"dev-only"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Dockerfile-specific ignore = %v, %v; want %v", got, err, want)
	}

	got, err = ReadIgnore(ctx, "-")
	if want := []string{"root-only", "!keep"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("stdin Dockerfile = %v, %v; want %v", got, err, want)
	}
}
