package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

// topLayer returns the tar entry names of the image's last layer and how
// many layers it has.
func topLayer(t *testing.T, b *Builder, ref string) ([]string, int) {
	t.Helper()
	img, err := b.resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	n := len(img.manifest.Layers)
	names := layerEntries(t, b, img.manifest.Layers[n-1].Digest)
	for i, name := range names {
		names[i] = strings.TrimSuffix(name, "/")
	}
	sort.Strings(names)
	return names, n
}

// run runs a container from ref with args and returns its output; the
// container is kept.
func (f *buildFixture) run(t *testing.T, opts CreateOptions) (RunResult, string) {
	t.Helper()
	var out bytes.Buffer
	res, err := f.b.Run(context.Background(), RunOptions{CreateOptions: opts, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("run %v: %v\n%s", opts.Cmd, err, out.String())
	}
	return res, out.String()
}

// output runs cmd in a throw-away container from ref.
func (f *buildFixture) output(t *testing.T, ref string, cmd ...string) string {
	t.Helper()
	res, out := f.run(t, CreateOptions{Image: ref, Cmd: cmd, AutoRemove: true})
	if res.ExitCode != 0 {
		t.Fatalf("%v exited %d: %s", cmd, res.ExitCode, out)
	}
	return out
}

// TestFromCopyConfigMountCommit is buildah's workflow: a working container
// with no process, files copied in, edits through the host mount, config
// changes, then a commit of exactly one new layer with the right
// whiteouts, which a container from the new image sees.
func TestFromCopyConfigMountCommit(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	c, err := f.b.Create(ctx, CreateOptions{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "busybox-working-container" {
		t.Errorf("default name = %q", c.Name)
	}
	host := filepath.Join(t.TempDir(), "note.txt")
	must(t, os.WriteFile(host, []byte("from the host\n"), 0o644))
	must(t, f.b.Copy(ctx, CopyOptions{Container: c.Name, Sources: []string{host}, Dest: "/opt/", Chmod: "600"}))
	cmd, wd := `["cat", "note.txt"]`, "/opt"
	must(t, f.b.ConfigureContainer(ctx, ConfigOptions{Container: c.Name, Cmd: &cmd, Workdir: &wd, Env: []string{"STAGE=1"}, Labels: []string{"team=core"}, Ports: []string{"8080"}}))

	merged, err := f.b.Mount(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.b.Unmount(ctx, c.Name) })
	if again, err := f.b.Mount(ctx, c.Name); err != nil || again != merged {
		t.Errorf("second Mount = %q, %v; want %q", again, err, merged)
	}
	// Delete a file of the image, replace a directory of it, add a file.
	must(t, os.Remove(filepath.Join(merged, "etc/hostname")))
	must(t, os.RemoveAll(filepath.Join(merged, "home")))
	must(t, os.MkdirAll(filepath.Join(merged, "home/new"), 0o755))
	must(t, os.WriteFile(filepath.Join(merged, "home/new/f"), []byte("n"), 0o644))
	if _, err := f.b.Start(ctx, StartOptions{Container: c.Name, Attach: true}); !errors.Is(err, ErrConflict) {
		t.Errorf("Start of a mounted container = %v, want ErrConflict", err)
	}

	id, err := f.b.Commit(ctx, CommitOptions{Container: c.Name, Ref: "edited:1"})
	if err != nil {
		t.Fatal(err)
	}
	must(t, f.b.Unmount(ctx, c.Name))
	if isMounted(merged) {
		t.Error("still mounted after Unmount")
	}
	names, n := topLayer(t, f.b, "edited:1")
	if _, base := topLayer(t, f.b, "busybox"); n != base+1 {
		t.Errorf("commit gave %d layers, want %d", n, base+1)
	}
	want := []string{"etc", "etc/.wh.hostname", "home", "home/.wh..wh..opq", "home/new", "home/new/f", "opt", "opt/note.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("layer entries = %v\nwant %v", names, want)
	}
	insp, err := f.b.Inspect(ctx, []string{id.String()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := insp[0].Config
	if !slices.Equal(cfg.Cmd, []string{"cat", "note.txt"}) || cfg.WorkingDir != "/opt" || cfg.Labels["team"] != "core" || !slices.Contains(cfg.Env, "STAGE=1") || len(cfg.ExposedPorts) != 1 {
		t.Errorf("committed config = %+v", cfg)
	}
	if out := f.output(t, "edited:1"); out != "from the host\n" {
		t.Errorf("CMD of the new image printed %q", out)
	}
	if out := f.output(t, "edited:1", "sh", "-c", "ls /home; ls /etc/hostname 2>&1; stat -c %a /opt/note.txt"); !strings.Contains(out, "new\n") || strings.Contains(out, "app") || !strings.Contains(out, "No such file") || !strings.HasSuffix(out, "600\n") {
		t.Errorf("container of the new image sees:\n%s", out)
	}
}

// TestRunCommit: a container keeps what its process changed; commit
// records -a, -m and -c in config and history, with Parent the image.
func TestRunCommit(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	res, _ := f.run(t, CreateOptions{Image: "busybox", Name: "worker", Cmd: []string{"sh", "-c", "echo data > /data.txt"}})
	if res.ExitCode != 0 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	list, err := f.b.Containers(ctx, ContainersOptions{All: true})
	if err != nil || len(list) != 1 || list[0].State.Status != "exited" || list[0].Name != "worker" {
		t.Fatalf("containers = %+v, %v", list, err)
	}
	if l, _ := f.b.Containers(ctx, ContainersOptions{}); len(l) != 0 {
		t.Errorf("ps without -a lists a stopped container: %+v", l)
	}
	id, err := f.b.Commit(ctx, CommitOptions{Container: "worker", Ref: "test:0.1", Author: "Docker Newbee", Message: "Added a new file", Changes: []string{`CMD ["cat", "/data.txt"]`}})
	if err != nil {
		t.Fatal(err)
	}
	if out := f.output(t, "test:0.1"); out != "data\n" {
		t.Errorf("committed image prints %q", out)
	}
	insp, err := f.b.Inspect(ctx, []string{"test:0.1"})
	if err != nil {
		t.Fatal(err)
	}
	busybox, _ := f.b.ResolveID("busybox")
	if r := insp[0]; r.ID != id.String() || r.Author != "Docker Newbee" || r.Comment != "Added a new file" || r.Parent != busybox.String() || !slices.Equal(r.Config.Cmd, []string{"cat", "/data.txt"}) {
		t.Errorf("inspect = id %s author %q comment %q parent %q cmd %v", r.ID, r.Author, r.Comment, r.Parent, r.Config.Cmd)
	}
	hist, err := f.b.History(ctx, "test:0.1")
	if err != nil {
		t.Fatal(err)
	}
	if h := hist[0]; h.CreatedBy != "sh -c echo data > /data.txt" || h.Comment != "Added a new file" || h.EmptyLayer {
		t.Errorf("history = %+v", h)
	}
	// Exit codes: the command's, 127 and 126.
	for cmd, want := range map[string]int{"exit 3": 3, "/nonexistent": 127, "/etc/passwd": 126} {
		args := []string{"sh", "-c", cmd}
		if !strings.Contains(cmd, " ") {
			args = []string{cmd}
		}
		res, err := f.b.Run(ctx, RunOptions{CreateOptions: CreateOptions{Image: "busybox", Cmd: args, AutoRemove: true}})
		var se *StartError
		if res.ExitCode != want || (want >= 126) != errors.As(err, &se) {
			t.Errorf("%s: exit %d, %v; want %d", cmd, res.ExitCode, err, want)
		}
	}
	if l, _ := f.b.Containers(ctx, ContainersOptions{All: true}); len(l) != 1 {
		t.Errorf("--rm left containers: %+v", l)
	}
}

// TestContainerDiff: docker diff's lines for a known change set.
func TestContainerDiff(t *testing.T) {
	f := newBuildFixture(t, nil)
	f.run(t, CreateOptions{Image: "busybox", Name: "changed", Cmd: []string{"sh", "-c",
		"echo x > /new; rm /etc/hostname; echo y >> /etc/passwd; rm -rf /home/app; mkdir -p /var/a/b; rm -rf /tmp && mkdir /tmp && touch /tmp/t"}})
	changes, err := f.b.Diff(context.Background(), "changed")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Kind+" "+c.Path)
	}
	want := []string{"C /etc", "D /etc/hostname", "C /etc/passwd", "C /home", "D /home/app", "A /new", "C /tmp", "A /tmp/t", "C /var", "A /var/a", "A /var/a/b"}
	if !slices.Equal(got, want) {
		t.Errorf("diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestInitLayerRule: the mount points the runtime makes (/etc/hosts,
// /etc/resolv.conf, volume targets) are never committed; a user's own
// /etc/hosts is.
func TestInitLayerRule(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	vol := t.TempDir()
	f.run(t, CreateOptions{Image: "busybox", Name: "stubs", Volumes: []string{vol + ":/data"}, Cmd: []string{"sh", "-c", "echo 10.0.0.1 db >> /etc/hosts; touch /data/v /kept"}})
	if _, err := f.b.Commit(ctx, CommitOptions{Container: "stubs", Ref: "stubs:1"}); err != nil {
		t.Fatal(err)
	}
	if names, _ := topLayer(t, f.b, "stubs:1"); !slices.Equal(names, []string{"kept"}) {
		t.Errorf("layer of a run with runtime mounts = %v, want only kept", names)
	}
	if _, err := os.Stat(filepath.Join(vol, "v")); err != nil {
		t.Errorf("the volume was not mounted: %v", err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	must(t, os.WriteFile(hosts, []byte("10.0.0.2 mine\n"), 0o644))
	must(t, f.b.Copy(ctx, CopyOptions{Container: "stubs", Sources: []string{hosts}, Dest: "/etc/hosts"}))
	if _, err := f.b.Commit(ctx, CommitOptions{Container: "stubs", Ref: "stubs:2"}); err != nil {
		t.Fatal(err)
	}
	if names, _ := topLayer(t, f.b, "stubs:2"); !slices.Equal(names, []string{"etc", "etc/hosts", "kept"}) {
		t.Errorf("layer with a user's /etc/hosts = %v", names)
	}
	root := f.rootfs(t, "stubs:2")
	if got := readFile(t, filepath.Join(root, "etc/hosts")); got != "10.0.0.2 mine\n" {
		t.Errorf("committed /etc/hosts = %q", got)
	}
}

// TestContainerExportImport: a container's export imports back as an
// image with the same files as its commit.
func TestContainerExportImport(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	f.run(t, CreateOptions{Image: "busybox", Name: "exp", Cmd: []string{"sh", "-c", "echo e > /e; rm -rf /home"}})
	var tarball bytes.Buffer
	must(t, f.b.Export(ctx, &tarball, "exp"))
	if _, err := f.b.Import(ctx, &tarball, ImportOptions{Ref: "imported:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Commit(ctx, CommitOptions{Container: "exp", Ref: "committed:1"}); err != nil {
		t.Fatal(err)
	}
	a, b := treeOf(t, f.rootfs(t, "imported:1")), treeOf(t, f.rootfs(t, "committed:1"))
	if !slices.Equal(a, b) {
		t.Errorf("exported container differs from its commit:\n%v\n%v", a, b)
	}
	if !slices.Contains(a, "e 0644 e\n") || slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "home") }) {
		t.Errorf("exported tree lacks the container's changes: %v", a)
	}
}

// treeOf lists a tree: path, mode and, for files, content.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := rel + " " + strconv4(fi.Mode())
		if fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			line += " " + readFile(t, p)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func strconv4(m os.FileMode) string {
	s := []byte("0000")
	perm := uint32(m.Perm())
	for i := 3; i >= 0; i-- {
		s[i] = byte('0' + perm%8)
		perm /= 8
	}
	if m&os.ModeSymlink != 0 {
		return "link"
	}
	return string(s)
}

// TestContainerKeepsItsImage: rmi refuses an image a container uses unless
// forced; prune never removes it; after rmi -f and a prune the container
// still commits.
func TestContainerKeepsItsImage(t *testing.T) {
	f := newBuildFixture(t, nil)
	ctx := context.Background()
	f.run(t, CreateOptions{Image: "busybox", Name: "user", Cmd: []string{"touch", "/u"}})
	_, err := f.b.Remove(ctx, []string{"busybox"}, false)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `unable to remove repository reference "busybox" (must force) - container`) {
		t.Errorf("rmi of an image in use = %v", err)
	}
	if rep, err := f.b.Prune(ctx, PruneOptions{All: true}); err != nil || len(rep.Deleted) != 0 {
		t.Errorf("prune -a = %+v, %v; want the image kept", rep, err)
	}
	if res, err := f.b.Remove(ctx, []string{"busybox"}, true); err != nil || len(res.Deleted) != 1 {
		t.Fatalf("rmi -f = %+v, %v", res, err)
	}
	if _, err := f.b.Prune(ctx, PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Commit(ctx, CommitOptions{Container: "user", Ref: "after:1"}); err != nil {
		t.Fatalf("commit after its image was removed: %v", err)
	}
	if out := f.output(t, "after:1", "ls", "/u", "/bin/busybox"); out != "/bin/busybox\n/u\n" {
		t.Errorf("image of a container whose image was removed: %q", out)
	}
	if _, err := f.b.RemoveContainers(ctx, []string{"user"}, false); err != nil {
		t.Fatal(err)
	}
	if l, err := f.b.Containers(ctx, ContainersOptions{All: true}); err != nil || len(l) != 0 {
		t.Errorf("containers after rm = %+v, %v", l, err)
	}
}

// TestSquash: a 50 MB file that a later step deletes takes no space in a
// squashed image, from build --squash and from commit --squash.
func TestSquash(t *testing.T) {
	testutil.SkipIfShort(t, "writes 50 MB files")
	f := newBuildFixture(t, map[string]string{"Dockerfile": `FROM busybox:latest
RUN dd if=/dev/zero of=/big bs=1M count=50 2>/dev/null && echo keep > /keep
RUN rm /big && echo small > /small
`})
	ctx := context.Background()
	size := func(ref string) int64 {
		insp, err := f.b.Inspect(ctx, []string{ref})
		if err != nil {
			t.Fatal(err)
		}
		return insp[0].Size
	}
	base := size("busybox")
	f.mustBuild(t, BuildOptions{Tags: []string{"fat:1"}})
	f.mustBuild(t, BuildOptions{Tags: []string{"slim:1"}, Squash: true})
	if got := size("fat:1") - base; got < 50<<20 {
		t.Errorf("unsquashed image adds %d bytes, want ≥ 50 MiB", got)
	}
	if got := size("slim:1") - base; got > 1<<20 {
		t.Errorf("squashed image adds %d bytes, want < 1 MiB", got)
	}
	if names, n := topLayer(t, f.b, "slim:1"); !slices.Equal(names, []string{"keep", "small"}) || n != 2 {
		t.Errorf("squashed build: %d layers, top %v", n, names)
	}
	if out := f.output(t, "slim:1", "cat", "/keep", "/small"); out != "keep\nsmall\n" {
		t.Errorf("squashed build's files: %q", out)
	}

	// commit --squash: the container's changes and the layers its image
	// added to busybox collapse into one on top of busybox.
	f.mustBuild(t, BuildOptions{Tags: []string{"grown:1"}, Dockerfile: writeDockerfile(t, "FROM busybox:latest\nRUN dd if=/dev/zero of=/big bs=1M count=50 2>/dev/null\n")})
	f.run(t, CreateOptions{Image: "grown:1", Name: "shrink", Cmd: []string{"sh", "-c", "rm /big /etc/hostname; echo c > /c"}})
	must(t, errOnly(f.b.Commit(ctx, CommitOptions{Container: "shrink", Ref: "plain:1"})))
	must(t, errOnly(f.b.Commit(ctx, CommitOptions{Container: "shrink", Ref: "squashed:1", Squash: true})))
	if got := size("plain:1") - base; got < 50<<20 {
		t.Errorf("commit without squash adds %d bytes", got)
	}
	if got := size("squashed:1") - base; got > 1<<20 {
		t.Errorf("commit --squash adds %d bytes, want < 1 MiB", got)
	}
	if names, n := topLayer(t, f.b, "squashed:1"); !slices.Equal(names, []string{"c", "etc", "etc/.wh.hostname"}) || n != 2 {
		t.Errorf("commit --squash: %d layers, top %v", n, names)
	}
	hist, err := f.b.History(ctx, "squashed:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) < 3 || hist[0].EmptyLayer || !hist[1].EmptyLayer {
		t.Errorf("squashed history: %+v", hist)
	}
}

// writeDockerfile writes a Dockerfile outside the context and returns its path.
func writeDockerfile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "Dockerfile")
	must(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

func errOnly[T any](_ T, err error) error { return err }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
