package executortest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/builder-project/builder/executor"
)

func TestScript(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "in"), []byte("mounted\n"), 0o644)
	f := &Fake{}
	var out bytes.Buffer
	spec := executor.Spec{
		Upper: root, Cwd: "/work", Env: []string{"NAME=world", "NAME=builder"},
		Args:   []string{"/bin/sh", "-c", `echo "hello $NAME" > greeting; mkdir -p a/b && touch a/b/c; cat /m/in; echo '$NAME' >> greeting; false && echo never > /never; rm -rf a`},
		Mounts: []executor.Mount{{Type: "bind", Source: src, Destination: "/m"}},
	}
	if err := f.Run(context.Background(), spec, executor.IO{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "work", "greeting")); string(got) != "hello builder\n$NAME\n" {
		t.Errorf("greeting = %q", got)
	}
	if out.String() != "mounted\n" {
		t.Errorf("stdout = %q", out.String())
	}
	for _, gone := range []string{"never", "work/a"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s exists", gone)
		}
	}
	if len(f.Runs()) != 1 {
		t.Errorf("runs = %d", len(f.Runs()))
	}
	for args, code := range map[string]int{"exit 3": 3, "nosuch": 127, "true && exit 4; echo after": 4, "false": 1} {
		err := f.Run(context.Background(), executor.Spec{Upper: root, Args: []string{"/bin/sh", "-c", args}}, executor.IO{})
		var ee *executor.ExitError
		if !errors.As(err, &ee) || ee.Code != code {
			t.Errorf("%q: %v, want exit %d", args, err, code)
		}
	}
	// Paths never leave the root.
	if err := f.Run(context.Background(), executor.Spec{Upper: root, Args: []string{"/bin/sh", "-c", "echo x > ../../../../escape"}}, executor.IO{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); err != nil {
		t.Errorf("../ write did not stay in the root: %v", err)
	}
}

func TestWithRootfsMergesLowers(t *testing.T) {
	lo, hi := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(lo, "a"), []byte("low"), 0o644)
	os.WriteFile(filepath.Join(lo, "b"), []byte("low"), 0o644)
	os.WriteFile(filepath.Join(hi, "a"), []byte("high"), 0o644)
	f := &Fake{}
	err := f.WithRootfs([]executor.RootfsMount{{Lowers: []string{hi, lo}}}, func(roots []string) error {
		a, _ := os.ReadFile(filepath.Join(roots[0], "a"))
		b, _ := os.ReadFile(filepath.Join(roots[0], "b"))
		if string(a) != "high" || string(b) != "low" {
			t.Errorf("merged view: a=%q b=%q", a, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
