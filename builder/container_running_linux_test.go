package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// runDetached starts a detached container and removes it by force when
// the test ends; its processes carry marker in their environment.
func (f *buildFixture) runDetached(t *testing.T, name, marker, script string, volumes ...string) {
	t.Helper()
	ctx := context.Background()
	res, err := f.b.Run(ctx, RunOptions{CreateOptions: CreateOptions{Image: "busybox", Name: name, Volumes: volumes,
		Env: []string{testutil.MarkerEnv + "=" + marker}, Cmd: []string{"sh", "-c", script}}, Detach: true})
	if err != nil {
		t.Fatalf("run -d: %v", err)
	}
	if res.ExitCode != 0 || len(res.ID) != 64 {
		t.Fatalf("run -d = %+v", res)
	}
	t.Cleanup(func() { f.b.RemoveContainers(ctx, []string{name}, true) })
}

// state returns the status of container ref.
func (f *buildFixture) status(t *testing.T, ref string) ContainerState {
	t.Helper()
	c, err := f.b.loadContainer(ref)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.b.containerState(c)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// upperFile is the path of the container path p in ref's upperdir.
func (f *buildFixture) upperFile(t *testing.T, ref, p string) string {
	t.Helper()
	c, err := f.b.loadContainer(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(a.Upper, p)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// layerFile returns the content of name in the top layer of ref.
func layerFile(t *testing.T, b *Builder, ref, name string) string {
	t.Helper()
	img, err := b.resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	tr := layerTar(t, b, img.manifest.Layers[len(img.manifest.Layers)-1].Digest)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the top layer of %s: %v", name, ref, err)
		}
		if strings.Trim(h.Name, "/") == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
	}
}

// checkCounted fails unless log is the lines 0, 1, 2, … each complete,
// and returns the last.
func checkCounted(t *testing.T, log string) int {
	t.Helper()
	if !strings.HasSuffix(log, "\n") {
		t.Fatalf("torn last line: %q", log[max(0, len(log)-20):])
	}
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	for i, l := range lines {
		if n, err := strconv.Atoi(l); err != nil || n != i {
			t.Fatalf("line %d of %d is %q, want %d", i+1, len(lines), l, i)
		}
	}
	return len(lines) - 1
}

// TestCommitWhileAppending commits a container whose process appends to a
// file as fast as it can, and writes the last number it appended to
// another: each commit freezes it, so the committed log is a consistent
// prefix of what it writes (complete lines counting from 0) and the other
// file agrees with it (the process was stopped at one point for the whole
// read), and thaws it, so it goes on writing.
func TestCommitWhileAppending(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	f.runDetached(t, "appender", testutil.NewMarker(t), `mkdir -p /data; i=0; while true; do echo $i >> /data/log; echo $i > /data/last; i=$((i+1)); done`)
	log := f.upperFile(t, "appender", "data/log")
	testutil.WaitUntil(t, 20*time.Second, "the log to grow", func() bool { return fileSize(log) > 20000 })
	for round := range 3 {
		ref := fmt.Sprintf("appended:%d", round)
		if _, err := f.b.Commit(ctx, CommitOptions{Container: "appender", Ref: ref}); err != nil {
			t.Fatal(err)
		}
		committed := layerFile(t, f.b, ref, "data/log")
		n := checkCounted(t, committed)
		// Frozen between its two writes, or in the middle of the second.
		if last := layerFile(t, f.b, ref, "data/last"); last != "" && last != fmt.Sprintf("%d\n", n) && last != fmt.Sprintf("%d\n", n-1) {
			t.Fatalf("committed /data/last is %q, the log's last line %d: not one instant of the process", last, n)
		}
		if st := f.status(t, "appender"); st.Status != "running" {
			t.Fatalf("status after commit = %q, want running", st.Status)
		}
		testutil.WaitUntil(t, 20*time.Second, "the log to grow after the commit", func() bool { return fileSize(log) > int64(len(committed))+1000 })
		if names, _ := topLayer(t, f.b, ref); !slices.Equal(names, []string{"data", "data/last", "data/log"}) {
			t.Errorf("layer of the running container = %v, want only /data", names)
		}
	}
}

// TestRunningContainer: a detached container is seen by exec, gets files
// copied in (through symlinks resolved inside it, into its volumes), is
// diffed and committed without the runtime's mount points, and rm -f
// leaves none of its processes, exec'd ones included.
func TestRunningContainer(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	vol, outside := t.TempDir(), t.TempDir()
	marker := testutil.NewMarker(t)
	f.runDetached(t, "web", marker, `echo hi > /greeting; ln -s /srv /link; ln -s `+outside+` /escape; exec sleep 1000`, vol+":/vol")
	exec := func(cmd string) string {
		t.Helper()
		var out bytes.Buffer
		code, err := f.b.Exec(ctx, ExecOptions{Container: "web", Cmd: []string{"sh", "-c", cmd}, Stdout: &out, Stderr: &out})
		if err != nil || code != 0 {
			t.Fatalf("exec %q: %d, %v\n%s", cmd, code, err, out.String())
		}
		return out.String()
	}
	testutil.WaitUntil(t, 20*time.Second, "the process's files", func() bool { return fileSize(f.upperFile(t, "web", "greeting")) > 0 })
	if out := exec("cat /greeting; echo $BUILDER_TEST_MARKER"); out != "hi\n"+marker+"\n" {
		t.Errorf("exec sees %q", out)
	}

	host := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(host, []byte("copied\n"), 0o644))
	for _, dest := range []string{"/link/", "/vol/", "/escape/"} {
		must(t, f.b.Copy(ctx, CopyOptions{Container: "web", Sources: []string{host}, Dest: dest}))
	}
	if out := exec("cat /srv/f /vol/f; ls /escape"); out != "copied\ncopied\nf\n" {
		t.Errorf("after copy, exec sees %q", out)
	}
	if _, err := os.Stat(filepath.Join(vol, "f")); err != nil {
		t.Errorf("copy into the volume: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "f")); err == nil {
		t.Error("a symlink in the container led the copy to the host")
	}

	changes, err := f.b.Diff(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	// The host path the copy did not reach is made inside the container.
	var got []string
	for _, l := range changeLines(changes) {
		if p := l[2:]; p != outside+"/f" && !strings.HasPrefix(outside+"/", p+"/") {
			got = append(got, l)
		}
	}
	if want := []string{"A /escape", "A /greeting", "A /link", "A /srv", "A /srv/f"}; !slices.Equal(got, want) || !slices.Contains(changeLines(changes), "A "+outside+"/f") {
		t.Errorf("diff of the running container = %v\nwant %v and %s/f with its parents", changeLines(changes), want, outside)
	}
	// The runtime's stubs are in the upperdir, and stay out of the commit.
	for _, stub := range []string{"etc/hosts", "etc/resolv.conf", "vol"} {
		if _, err := os.Lstat(f.upperFile(t, "web", stub)); err != nil {
			t.Errorf("stub %s not in the upperdir of the running container: %v", stub, err)
		}
	}
	if _, err := f.b.Commit(ctx, CommitOptions{Container: "web", Ref: "web:1"}); err != nil {
		t.Fatal(err)
	}
	names, _ := topLayer(t, f.b, "web:1")
	if slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "etc") || strings.HasPrefix(n, "vol") || n == "proc" }) ||
		!slices.Contains(names, "greeting") || !slices.Contains(names, "srv/f") {
		t.Errorf("layer of the running container = %v: want the process's and copied files, no stubs", names)
	}
	if st := f.status(t, "web"); st.Status != "running" {
		t.Errorf("status after commit = %q", st.Status)
	}

	execd := make(chan int, 1)
	go func() {
		code, _ := f.b.Exec(ctx, ExecOptions{Container: "web", Cmd: []string{"sleep", "1001"}})
		execd <- code
	}()
	testutil.WaitUntil(t, 20*time.Second, "the exec'd process", func() bool { return len(testutil.MarkedProcesses(t, "sleep 1001", marker)) == 1 })
	if _, err := f.b.RemoveContainers(ctx, []string{"web"}, false); !errors.Is(err, ErrConflict) {
		t.Errorf("rm of a running container = %v, want ErrConflict", err)
	}
	if _, err := f.b.RemoveContainers(ctx, []string{"web"}, true); err != nil {
		t.Fatal(err)
	}
	if left := testutil.MarkedProcesses(t, "sleep", marker); len(left) != 0 {
		t.Errorf("processes left after rm -f: %v", left)
	}
	if code := <-execd; code != 137 {
		t.Errorf("exec'd process ended with %d, want 137", code)
	}
}
