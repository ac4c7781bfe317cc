package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRelativeContext builds with the context named relative to the
// working directory, "." and "../proj", as a user types it: RUN
// --mount=type=bind of a context file, a context directory and the whole
// context, and COPY, all read the context, uncached.
func TestBuildRelativeContext(t *testing.T) {
	root := storeWithBusybox(t)
	base := t.TempDir()
	proj, other := filepath.Join(base, "proj"), filepath.Join(base, "other")
	for _, d := range []string{filepath.Join(proj, "d"), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(proj, "file"), []byte("from-file\n"))
	writeFile(t, filepath.Join(proj, "d", "a"), []byte("from-dir\n"))
	writeFile(t, filepath.Join(proj, "Dockerfile"), []byte(`FROM busybox:latest
RUN --mount=type=bind,source=file,target=/x cat /x
RUN --mount=type=bind,source=d,target=/y cat /y/a
RUN --mount=type=bind,target=/ctx,rw cat /ctx/d/a && touch /ctx/new
COPY file /copied
RUN cat /copied
`))
	for _, c := range []struct{ dir, context string }{{proj, "."}, {other, "../proj"}} {
		cmd := cli(root, "build", "--no-cache", "--progress", "plain", "-t", "ctx:1", c.context)
		cmd.Dir = c.dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build %s in %s: %v\n%s", c.context, c.dir, err, out)
		}
		for _, want := range []string{"from-file", "from-dir"} {
			if n := strings.Count(string(out), want); n < 2 {
				t.Errorf("build %s: %q printed %d times, want 2 or more:\n%s", c.context, want, n, out)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(proj, "new")); !os.IsNotExist(err) {
		t.Errorf("a rw bind mount wrote into the context: %v", err)
	}
}
