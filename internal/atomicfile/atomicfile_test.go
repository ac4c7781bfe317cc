package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, tc := range []struct {
		data string
		perm os.FileMode
	}{{"first", 0o600}, {"second, longer", 0o644}, {"", 0o640}} {
		if err := WriteFile(p, []byte(tc.data), tc.perm); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != tc.data {
			t.Fatalf("content = %q, %v; want %q", b, err, tc.data)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != tc.perm {
			t.Fatalf("mode = %v, %v; want %v", fi.Mode(), err, tc.perm)
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Fatalf("directory holds %q, want only f", names)
		}
	}
}

func TestWriteTempFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "data.json")
	err := Write(p, 0o600, func(w io.Writer) error {
		f, ok := w.(*os.File)
		if !ok {
			t.Fatalf("fill got %T, want a file", w)
		}
		if got := filepath.Dir(f.Name()); got != dir {
			t.Errorf("temporary file in %s, want %s", got, dir)
		}
		if base := filepath.Base(f.Name()); !strings.HasPrefix(base, TempPrefix+"data.json-") {
			t.Errorf("temporary file named %s", base)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("target visible before the rename: %v", err)
		}
		_, err := io.WriteString(w, "x")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "x" {
		t.Fatalf("content = %q", b)
	}
}

func TestWriteFailureKeepsOldContent(t *testing.T) {
	fillErr := errors.New("fill failed")
	tests := []struct {
		name   string
		target func(t *testing.T, dir string) string
		fill   func(io.Writer) error
		want   error
	}{
		{"fill error", func(_ *testing.T, dir string) string { return filepath.Join(dir, "f") },
			func(w io.Writer) error {
				io.WriteString(w, "partial")
				return fillErr
			}, fillErr},
		{"rename over a directory", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "sub")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d, "keep"), nil, 0o644)
			return d
		}, func(w io.Writer) error { return nil }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.target(t, dir)
			if _, err := os.Stat(p); os.IsNotExist(err) {
				if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := entries(t, dir)
			err := Write(p, 0o644, tc.fill)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Write error = %v, want %v", err, tc.want)
			}
			if after := entries(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("directory holds %q after the failure, want %q", after, before)
			}
			if fi, _ := os.Stat(p); !fi.IsDir() {
				if b, _ := os.ReadFile(p); string(b) != "old" {
					t.Errorf("content = %q after the failure, want old", b)
				}
			}
		})
	}
}

func TestWriteMissingDir(t *testing.T) {
	called := false
	err := Write(filepath.Join(t.TempDir(), "missing", "f"), 0o644, func(io.Writer) error {
		called = true
		return nil
	})
	if err == nil || called {
		t.Fatalf("Write into a missing directory: err %v, fill called %v", err, called)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := SyncDir(""); err != nil {
		t.Errorf("SyncDir of the current directory: %v", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("SyncDir of a missing directory succeeded")
	}
}

func TestMkdirAllSync(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := MkdirAllSync(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a 0700 directory", d, fi.Mode(), err)
		}
	}
	if err := MkdirAllSync(deep+"/", 0o700); err != nil {
		t.Errorf("existing directory: %v", err)
	}
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	if err := MkdirAllSync(file, 0o700); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("over a file: %v, want ENOTDIR", err)
	}
	if err := MkdirAllSync(filepath.Join(file, "sub"), 0o700); err == nil {
		t.Error("below a file: succeeded")
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := []struct {
		name string
		age  time.Duration
		kept bool
	}{
		{TempPrefix + "old", 2 * time.Hour, false},
		{TempPrefix + "at-limit", time.Hour, false},
		{TempPrefix + "fresh", time.Minute, true},
		{"old-but-real", 2 * time.Hour, true},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := now.Add(-f.age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(dir, time.Hour, now)
	for _, f := range files {
		_, err := os.Stat(filepath.Join(dir, f.name))
		if kept := err == nil; kept != f.kept {
			t.Errorf("%s kept = %v, want %v", f.name, kept, f.kept)
		}
	}
	RemoveStale(filepath.Join(dir, "missing"), time.Hour, now) // must not panic
}
