package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/testutil"
)

// fakeRuntime reports every container as running with the given stubs
// and records the calls that control it.
type fakeRuntime struct {
	execRuntime
	stubs     []string
	calls     *[]string
	freezeErr error
}

func (r fakeRuntime) State(string) (ContainerState, error) {
	return ContainerState{Status: "running", Pid: 1}, nil
}
func (r fakeRuntime) Stubs(string) ([]string, error) { return r.stubs, nil }
func (r fakeRuntime) Freeze(string) error            { *r.calls = append(*r.calls, "freeze"); return r.freezeErr }
func (r fakeRuntime) Thaw(string) error              { *r.calls = append(*r.calls, "thaw"); return nil }
func (r fakeRuntime) Remove(string) error            { *r.calls = append(*r.calls, "remove"); return nil }

// useFakeRuntime makes every Builder use a fakeRuntime until the test ends.
func useFakeRuntime(t *testing.T, stubs ...string) *[]string {
	calls := &[]string{}
	old := newRuntime
	newRuntime = func(*Builder, string) containerRuntime {
		return fakeRuntime{stubs: stubs, calls: calls}
	}
	t.Cleanup(func() { newRuntime = old })
	return calls
}

// TestCommitRunningContainer: a running container is frozen while its
// upperdir is read (unless NoPause), and exactly the mount point stubs its
// runtime made are left out of the layer and of Diff, while a user's file
// beside them keeps its directory.
func TestCommitRunningContainer(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	b := newTestBuilder(t)
	ctx := context.Background()
	if _, err := b.Import(ctx, bytes.NewReader(tarOf(t, "etc/", "", "etc/passwd", "root:x:0:0::/:/bin/sh\n")), ImportOptions{Ref: "base:1"}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Create(ctx, CreateOptions{Image: "base:1", Cmd: []string{"serve"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := b.st.Snapshots().Get(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// What a running process and its runtime leave in the upperdir.
	for _, d := range []string{"etc", "data", "proc"} {
		must(t, os.Mkdir(filepath.Join(a.Upper, d), 0o755))
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		must(t, os.WriteFile(filepath.Join(a.Upper, f), nil, 0o644))
	}
	calls := useFakeRuntime(t, "etc", "etc/hosts", "etc/resolv.conf", "data", "proc")

	_, err = b.Commit(ctx, CommitOptions{Container: c.Name, Ref: "only-stubs:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, n := topLayer(t, b, "only-stubs:1"); n != 1 {
		t.Errorf("a commit of stubs only added a layer (%d layers)", n)
	}
	must(t, os.WriteFile(filepath.Join(a.Upper, "etc/app.conf"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(a.Upper, "log"), []byte("y"), 0o644))
	if _, err := b.Commit(ctx, CommitOptions{Container: c.Name, Ref: "running:1"}); err != nil {
		t.Fatal(err)
	}
	if names, _ := topLayer(t, b, "running:1"); !slices.Equal(names, []string{"etc", "etc/app.conf", "log"}) {
		t.Errorf("layer of a running container = %v", names)
	}
	if want := []string{"freeze", "thaw", "freeze", "thaw"}; !slices.Equal(*calls, want) {
		t.Errorf("runtime calls = %v, want %v", *calls, want)
	}
	*calls = nil
	if _, err := b.Commit(ctx, CommitOptions{Container: c.Name, NoPause: true}); err != nil || len(*calls) != 0 {
		t.Errorf("commit --pause=false: %v, calls %v", err, *calls)
	}
	changes, err := b.Diff(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := changeLines(changes); !slices.Equal(got, []string{"C /etc", "A /etc/app.conf", "A /log"}) {
		t.Errorf("diff of a running container = %v", got)
	}

	// A running container is only removed by force, which kills it first;
	// its image cannot be removed even by force.
	if _, err := b.RemoveContainers(ctx, []string{c.Name}, false); !errors.Is(err, ErrConflict) {
		t.Errorf("rm of a running container = %v, want ErrConflict", err)
	}
	if _, err := b.Remove(ctx, []string{"base:1"}, true); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "(cannot be forced) - image is being used by running container "+c.ID[:12]) {
		t.Errorf("rmi -f of an image a running container uses = %v", err)
	}
	if _, err := b.Mount(ctx, c.Name); !errors.Is(err, ErrConflict) {
		t.Errorf("mount of a running container = %v, want ErrConflict", err)
	}
	*calls = nil
	if _, err := b.RemoveContainers(ctx, []string{c.Name}, true); err != nil || !slices.Equal(*calls, []string{"remove"}) {
		t.Errorf("rm -f = %v, calls %v", err, *calls)
	}
	if _, err := b.st.Snapshots().Get(c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("snapshot after rm -f: %v", err)
	}
}

func changeLines(changes []Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.Kind+" "+c.Path)
	}
	return out
}

// TestFrozenAlwaysThawed: a running container frozen for a commit or a
// diff is thawed even when the read fails, or the freeze itself did.
func TestFrozenAlwaysThawed(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	b := newTestBuilder(t)
	ctx := context.Background()
	if _, err := b.Import(ctx, bytes.NewReader(tarOf(t, "f", "x")), ImportOptions{Ref: "base:1"}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Create(ctx, CreateOptions{Image: "base:1", Cmd: []string{"serve"}})
	if err != nil {
		t.Fatal(err)
	}
	calls := useFakeRuntime(t)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	a, err := b.st.Snapshots().Get(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(a.Upper, "new"), nil, 0o644))
	if _, err := b.Diff(cancelled, c.ID); !errors.Is(err, context.Canceled) || !slices.Equal(*calls, []string{"freeze", "thaw"}) {
		t.Errorf("diff with a failing read: %v, calls %v", err, *calls)
	}

	*calls = nil
	old := newRuntime
	newRuntime = func(*Builder, string) containerRuntime {
		return fakeRuntime{calls: calls, freezeErr: errors.New("freezer stuck")}
	}
	t.Cleanup(func() { newRuntime = old })
	if _, err := b.Commit(ctx, CommitOptions{Container: c.ID}); err == nil || !strings.Contains(err.Error(), "freezer stuck") || !slices.Equal(*calls, []string{"freeze", "thaw"}) {
		t.Errorf("commit with a failing freeze: %v, calls %v", err, *calls)
	}
}

// TestContainerOptionsRefused: what builder cannot do is refused before
// anything is created: a detached container removed when it exits, and a
// detached or terminal container on an OCI runtime, which only runs
// attached (through the Executor) and refuses what needs a process of its
// own.
func TestContainerOptionsRefused(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	f := newFakeBuild(t, func(context.Context, executor.Spec, string, executor.IO) error { return nil })
	b := f.b
	ctx := context.Background()
	if _, err := b.Import(ctx, bytes.NewReader(tarOf(t, "f", "x")), ImportOptions{Ref: "base:1", Changes: []string{`CMD ["/bin/sh"]`}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.Run(ctx, RunOptions{CreateOptions: CreateOptions{Image: "base:1", AutoRemove: true}, Detach: true})
	if !errors.Is(err, errDetachedAutoRemove) || res.ExitCode != 125 {
		t.Errorf("run -d --rm = %+v, %v", res, err)
	}
	for name, opts := range map[string]RunOptions{
		"-d": {CreateOptions: CreateOptions{Image: "base:1", Runtime: "runc"}, Detach: true},
		"-t": {CreateOptions: CreateOptions{Image: "base:1", Runtime: "runc", Tty: true}},
	} {
		if _, err := b.Run(ctx, opts); !errors.Is(err, errNeedsBuiltinRuntime) {
			t.Errorf("run %s --runtime runc = %v", name, err)
		}
	}
	if list, _ := b.Containers(ctx, ContainersOptions{All: true}); len(list) != 0 {
		t.Errorf("refused runs left containers: %+v", list)
	}

	res, err = b.Run(ctx, RunOptions{CreateOptions: CreateOptions{Image: "base:1", Runtime: "runc", Name: "attached"}})
	if err != nil || res.ExitCode != 0 || len(f.exec.Runs()) != 1 {
		t.Fatalf("attached run --runtime runc = %+v, %v; executor ran %d", res, err, len(f.exec.Runs()))
	}
	for name, err := range map[string]error{
		"start": errOnly(b.Start(ctx, StartOptions{Container: "attached"})),
		"exec":  errOnly(b.Exec(ctx, ExecOptions{Container: "attached", Cmd: []string{"ls"}})),
		"stop":  b.Stop(ctx, "attached", 0),
		"kill":  b.Kill(ctx, "attached", ""),
		"logs":  b.Logs(ctx, "attached", &bytes.Buffer{}),
	} {
		if !errors.Is(err, errNeedsBuiltinRuntime) {
			t.Errorf("%s of a container on runc = %v, want errNeedsBuiltinRuntime", name, err)
		}
	}
	if list, _ := b.Containers(ctx, ContainersOptions{All: true, Filters: []string{"status=exited"}}); len(list) != 1 {
		t.Errorf("exited containers = %+v", list)
	}
}
