package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

// TestPruneScopes: image prune leaves the build cache alone, builder prune
// (cache prune) leaves images alone and, without -a, the entries an image
// holds; system prune (and plain prune) removes both.
func TestPruneScopes(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo a > /a\nRUN echo b > /b\n"))
	mustCLI(t, root, nil, "build", "-q", "-t", "cached", ctx)
	mustCLI(t, root, nil, "build", "-q", ctx) // the same image again: no dangling one
	entries := func() string {
		out := mustCLI(t, root, nil, "cache", "du")
		return strings.TrimSpace(strings.Split(strings.Split(out, "\n")[0], "\t")[1])
	}
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo c > /c\n"))
	mustCLI(t, root, nil, "build", "-q", ctx) // dangling image with one cache entry
	if n := entries(); n != "3" {
		t.Fatalf("cache entries after the builds = %s, want 3", n)
	}
	if out := mustCLI(t, root, nil, "image", "prune", "-f"); !strings.Contains(out, "deleted: sha256:") || strings.Contains(out, "build cache") {
		t.Errorf("image prune printed:\n%s", out)
	}
	if n := entries(); n != "3" {
		t.Errorf("image prune removed build cache: %s entries left, want 3", n)
	}
	// The dangling image is gone, so its step's entry is dangling cache;
	// the tagged image's two are not.
	if out := mustCLI(t, root, nil, "builder", "prune", "-f"); !strings.Contains(out, "Deleted build cache entries: 1") {
		t.Errorf("builder prune printed:\n%s", out)
	}
	if n := entries(); n != "2" {
		t.Errorf("builder prune without -a: %s entries left, want 2", n)
	}
	if out := mustCLI(t, root, nil, "cache", "prune", "-a", "-f", "--filter", "until=1h"); !strings.Contains(out, "Deleted build cache entries: 0") {
		t.Errorf("cache prune --filter until=1h removed recent entries:\n%s", out)
	}
	if out := mustCLI(t, root, nil, "cache", "prune", "-a", "-f"); !strings.Contains(out, "Deleted build cache entries: 2") {
		t.Errorf("cache prune -a printed:\n%s", out)
	}
	if out := mustCLI(t, root, nil, "run", "--rm", "cached", "cat", "/a", "/b"); out != "a\nb\n" {
		t.Errorf("image damaged by cache prune: %q", out)
	}
	if out := mustCLI(t, root, nil, "images", "-q"); len(strings.Fields(out)) != 2 {
		t.Errorf("cache prune removed images: %q", out)
	}
}

// TestRmiParent: an image another is built on cannot be removed by ID,
// even with -f; its last tag only untags it, and images hides it unless -a.
func TestRmiParent(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo a > /a\n"))
	mustCLI(t, root, nil, "build", "-q", "-t", "child", ctx)
	base := strings.TrimSpace(mustCLI(t, root, nil, "inspect", "-f", "{{.Id}}", "busybox"))
	if p := strings.TrimSpace(mustCLI(t, root, nil, "inspect", "-f", "{{.Parent}}", "child")); p != base {
		t.Fatalf("child's Parent = %q, want %s", p, base)
	}
	for _, args := range [][]string{{"rmi", base}, {"rmi", "-f", base}} {
		_, errs := failCLI(t, root, 1, args...)
		if want := "Error: removing " + base + ": conflict: unable to delete " + base[7:19] + " (cannot be forced) - image has dependent child images\n"; errs != want {
			t.Errorf("%s: stderr %q, want %q", strings.Join(args, " "), errs, want)
		}
	}
	if out := mustCLI(t, root, nil, "rmi", "busybox"); out != "Untagged: busybox:latest\n" {
		t.Errorf("rmi of the parent's last tag printed %q", out)
	}
	if out := mustCLI(t, root, nil, "images", "-q", "--no-trunc"); strings.Contains(out, base) {
		t.Errorf("images shows the untagged parent without -a: %q", out)
	}
	if out := mustCLI(t, root, nil, "images", "-a", "-q", "--no-trunc"); !strings.Contains(out, base) {
		t.Errorf("images -a lacks the untagged parent: %q", out)
	}
	if out := mustCLI(t, root, nil, "run", "--rm", "child", "cat", "/a"); out != "a\n" {
		t.Errorf("the child image broke: %q", out)
	}
}

// TestBuildOutputStdout: -o - writes the image's root filesystem as a tar
// to standard output, as BuildKit's --output - (type=tar,dest=-).
func TestBuildOutputStdout(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo hi > /greeting\n"))
	for _, o := range []string{"-", "type=tar,dest=-"} {
		out := mustCLI(t, root, nil, "build", "-q", "-o", o, ctx)
		found := false
		tr := tar.NewReader(bytes.NewReader([]byte(out)))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("-o %s: standard output is not a tar: %v", o, err)
			}
			if strings.TrimPrefix(h.Name, "./") == "greeting" {
				data, _ := io.ReadAll(tr)
				found = string(data) == "hi\n"
			}
		}
		if !found {
			t.Errorf("-o %s: the tar on standard output lacks /greeting", o)
		}
	}
	if _, errs := failCLI(t, root, 1, "build", "-o", "type=local,dest=-", ctx); !strings.Contains(errs, "standard output") {
		t.Errorf("type=local,dest=-: %q", errs)
	}
}

// TestRunMissingBinary: docker's exit status 127 for a command that does
// not exist (126 for one that cannot be executed), with the built-in
// runtime attached and detached, and with runc.
func TestRunMissingBinary(t *testing.T) {
	root := storeWithBusybox(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"run", "--rm", "busybox", "/nope"}, 127},
		{[]string{"run", "--rm", "busybox", "/etc"}, 126},
		{[]string{"run", "-d", "--name", "detached", "busybox", "/nope"}, 127},
		{[]string{"start", "-a", "detached"}, 127},
		{[]string{"run", "--rm", "--runtime", "runc", "busybox", "/nope"}, 127},
		{[]string{"run", "--rm", "--runtime", "runc", "busybox", "/etc"}, 126},
	} {
		if slices.Contains(tc.args, "runc") {
			testutil.RequireTool(t, "runc")
		}
		failCLI(t, root, tc.code, tc.args...)
	}
}
