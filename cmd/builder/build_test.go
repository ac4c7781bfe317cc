package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

// storeWithBusybox returns a store root holding busybox:latest, made the way
// scripts/mkbase.sh makes it.
func storeWithBusybox(t *testing.T) string {
	t.Helper()
	testutil.RequirePrivileges(t, "root", "overlay")
	rootfs := testutil.BusyboxRootfs(t)
	tarball, err := exec.Command("tar", "--numeric-owner", "-C", rootfs, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// Containers go before the store: their processes and cgroups too.
	t.Cleanup(func() {
		if ids := strings.Fields(mustCLI(t, root, nil, "ps", "-aq", "--no-trunc")); len(ids) > 0 {
			mustCLI(t, root, nil, append([]string{"rm", "-f"}, ids...)...)
		}
	})
	mustCLI(t, root, tarball, "import", "-c", `CMD ["/bin/sh"]`, "-", "busybox:latest")
	return root
}

func examplesDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples")
}

func TestBuildExamplesAndRun(t *testing.T) {
	testutil.SkipIfShort(t, "builds and runs every example")
	root := storeWithBusybox(t)
	ex := examplesDir(t)
	iid := filepath.Join(t.TempDir(), "iid")
	for _, name := range []string{"hello", "multistage", "app"} {
		// A stale iidfile from the previous example must not pass for this one.
		if err := os.Remove(iid); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		mustCLI(t, root, nil, "build", "--progress", "plain", "--iidfile", iid, "-t", "ex/"+name, filepath.Join(ex, name))
		if id, err := os.ReadFile(iid); err != nil || !bytes.HasPrefix(id, []byte("sha256:")) {
			t.Fatalf("iidfile of %s = %q, %v", name, id, err)
		}
	}
	if out := mustCLI(t, root, nil, "run", "ex/hello"); !strings.Contains(out, "Hello from a builder-built image") {
		t.Errorf("run hello: %q", out)
	}
	if out := mustCLI(t, root, nil, "run", "ex/multistage"); strings.TrimSpace(out) != "tool 1.0" {
		t.Errorf("run multistage: %q", out)
	}
	if out := mustCLI(t, root, nil, "run", "ex/app", "tester"); !strings.Contains(out, "hello, tester! (built for hello)") {
		t.Errorf("run app: %q", out)
	}
	// .dockerignore kept the key out; the user is app.
	if out := mustCLI(t, root, nil, "run", "--entrypoint", "/bin/sh", "ex/app", "-c", "ls /srv/app; id -u"); strings.Contains(out, "secret.key") || !strings.Contains(out, "1000") {
		t.Errorf("app image: %q", out)
	}
	cmd := cli(root, "run", "--network", "none", "busybox", "sh", "-c", "exit 7")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 7 {
		t.Errorf("run exit code = %d (%v), want 7", cmd.ProcessState.ExitCode(), err)
	}
}

func TestBuildOutputs(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo out > /out.txt && rm /etc/passwd\n"))
	dir := t.TempDir()
	mustCLI(t, root, nil, "build", "-q", "-t", "outs:1",
		"--output", "type=oci,dest="+filepath.Join(dir, "oci.tar"),
		"--output", "type=docker,dest="+filepath.Join(dir, "docker.tar"),
		"--output", "type=tar,dest="+filepath.Join(dir, "fs.tar"),
		"--output", "type=local,dest="+filepath.Join(dir, "local"),
		ctx)
	if b, err := os.ReadFile(filepath.Join(dir, "local", "out.txt")); err != nil || string(b) != "out\n" {
		t.Errorf("local output: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "local", "etc", "passwd")); !os.IsNotExist(err) {
		t.Errorf("whiteout not applied in local output: %v", err)
	}
	if out, err := exec.Command("tar", "-tf", filepath.Join(dir, "fs.tar")).Output(); err != nil || !strings.Contains(string(out), "out.txt") || strings.Contains(string(out), "etc/passwd") {
		t.Errorf("tar output: %v\n%s", err, out)
	}
	// Only the default or type=image output stores the image: a tar-only
	// build neither adds an image nor moves an existing tag.
	mustCLI(t, root, nil, "tag", "busybox:latest", "existing:1")
	before := mustCLI(t, root, nil, "images", "-q", "--no-trunc")
	mustCLI(t, root, nil, "build", "-q", "-t", "notstored:1", "-t", "existing:1", "--output", "type=tar,dest="+filepath.Join(dir, "x.tar"), ctx)
	if out := mustCLI(t, root, nil, "images"); strings.Contains(out, "notstored") {
		t.Errorf("a tar-only build stored its image:\n%s", out)
	}
	if after := mustCLI(t, root, nil, "images", "-q", "--no-trunc"); after != before {
		t.Errorf("a tar-only build changed the image list:\n%s\n→\n%s", before, after)
	}
	busybox := mustCLI(t, root, nil, "inspect", "busybox:latest")
	if existing := mustCLI(t, root, nil, "inspect", "existing:1"); !strings.Contains(existing, busybox[strings.Index(busybox, `"Id"`):strings.Index(busybox, `"Id"`)+80]) {
		t.Errorf("a tar-only build moved the tag existing:1")
	}

	// Interop: umoci unpacks the OCI archive, skopeo reads the docker one.
	t.Run("interop", func(t *testing.T) {
		testutil.SkipIfShort(t, "interop with skopeo and umoci")
		umoci := testutil.RequireTool(t, "umoci")
		skopeo := testutil.RequireTool(t, "skopeo")
		layout := filepath.Join(dir, "layout")
		if err := os.MkdirAll(layout, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("tar", "-C", layout, "-xf", filepath.Join(dir, "oci.tar")).CombinedOutput(); err != nil {
			t.Fatalf("untar: %v %s", err, out)
		}
		bundle := filepath.Join(dir, "bundle")
		if out, err := exec.Command(umoci, "unpack", "--image", layout+":1", bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack: %v\n%s", err, out)
		}
		if b, err := os.ReadFile(filepath.Join(bundle, "rootfs", "out.txt")); err != nil || string(b) != "out\n" {
			t.Errorf("umoci rootfs out.txt: %q %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(bundle, "rootfs", "bin", "busybox")); err != nil {
			t.Errorf("umoci rootfs lacks the base layer: %v", err)
		}
		if _, err := os.Stat(filepath.Join(bundle, "rootfs", "etc", "passwd")); !os.IsNotExist(err) {
			t.Errorf("umoci: whiteout of /etc/passwd not honoured: %v", err)
		}
		if out, err := exec.Command(skopeo, "inspect", "docker-archive:"+filepath.Join(dir, "docker.tar")).CombinedOutput(); err != nil || !strings.Contains(string(out), `"Layers"`) {
			t.Errorf("skopeo inspect docker-archive: %v\n%s", err, out)
		}
	})
}

func TestBuildStdinAndRuntime(t *testing.T) {
	root := storeWithBusybox(t)
	// A Dockerfile on stdin, no context.
	id := strings.TrimSpace(mustCLI(t, root, []byte("FROM busybox:latest\nRUN echo piped > /p\n"), "build", "-q", "-"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("build - printed %q", id)
	}
	// A tar context on stdin.
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nCOPY f /f\nRUN cat /f\n"))
	writeFile(t, filepath.Join(ctx, "f"), []byte("from tar"))
	tarball, err := exec.Command("tar", "-C", ctx, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	mustCLI(t, root, tarball, "build", "-q", "-t", "fromtar", "-")
	if out := mustCLI(t, root, nil, "run", "fromtar", "cat", "/f"); out != "from tar" {
		t.Errorf("tar context: %q", out)
	}
	// The same RUN through runc.
	t.Run("runc", func(t *testing.T) {
		testutil.SkipIfShort(t, "builds and runs through the external runtime")
		testutil.RequireTool(t, "runc")
		cmd := cli(root, "build", "--runtime", "runc", "--no-cache", "--progress", "plain", "-t", "viarunc", ctx)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build --runtime runc: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "from tar") {
			t.Errorf("build --runtime runc does not show the RUN's output:\n%s", out)
		}
		if out := mustCLI(t, root, nil, "run", "--runtime", "runc", "viarunc", "cat", "/f"); out != "from tar" {
			t.Errorf("runc build/run: %q", out)
		}
	})
}

func TestBuildErrorShowsDockerfileLine(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN true\nRUN echo failing-step; exit 4\nRUN true\n"))
	cmd := cli(root, "build", "--progress", "plain", ctx)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("failing build exited 0")
	}
	msg := stderr.String()
	for _, want := range []string{"Dockerfile:3", ">>>", "RUN echo failing-step; exit 4", "exit code: 4", "failing-step"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error output lacks %q:\n%s", want, msg)
		}
	}
}

// TestCacheToFrom moves a build cache to an empty store on "another
// machine" through a local cache directory: every step hits.
func TestCacheToFrom(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nCOPY f /f\nRUN cat /f > /g\n"))
	writeFile(t, filepath.Join(ctx, "f"), []byte("cached"))
	cacheDir := filepath.Join(t.TempDir(), "cache")
	id1 := strings.TrimSpace(mustCLI(t, root, nil, "build", "-q", "--cache-to", "type=local,dest="+cacheDir, ctx))
	if !strings.HasPrefix(id1, "sha256:") {
		t.Fatalf("build -q printed %q, want an image ID", id1)
	}

	// The other machine gets the base image through save/load.
	base := filepath.Join(t.TempDir(), "base.tar")
	mustCLI(t, root, nil, "save", "-o", base, "busybox:latest")
	other := t.TempDir()
	mustCLI(t, other, nil, "load", "-i", base)
	cmd := cli(other, "build", "--progress", "plain", "--cache-from", "type=local,src="+cacheDir, "--iidfile", filepath.Join(other, "iid"), ctx)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build with --cache-from: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "2 steps, 2 cached") {
		t.Fatalf("not every step hit the imported cache:\n%s", out)
	}
	if id2, err := os.ReadFile(filepath.Join(other, "iid")); err != nil || string(id2) != id1 {
		t.Fatalf("image ID differs across machines: %s vs %s (%v)", id1, id2, err)
	}
}

func TestCacheCommands(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo a > /a\nRUN echo b > /b\n"))
	mustCLI(t, root, nil, "build", "-q", "-t", "cached", ctx)
	ls := mustCLI(t, root, nil, "cache", "ls")
	if !strings.Contains(ls, "RUN /bin/sh -c echo a > /a") || !strings.Contains(ls, "LAST USED") {
		t.Errorf("cache ls:\n%s", ls)
	}
	if du := mustCLI(t, root, nil, "cache", "du"); !strings.Contains(du, "Entries:\t2") {
		t.Errorf("cache du:\n%s", du)
	}
	// Entries used just now survive an until=1h filter; prune without a
	// filter empties the cache; the tagged image and its layers stay.
	mustCLI(t, root, nil, "prune", "-f", "--filter", "until=1h")
	if du := mustCLI(t, root, nil, "cache", "du"); !strings.Contains(du, "Entries:\t2") {
		t.Errorf("until=1h removed recent entries:\n%s", du)
	}
	if out := mustCLI(t, root, nil, "prune", "-f"); !strings.Contains(out, "Deleted build cache entries: 2") {
		t.Errorf("prune:\n%s", out)
	}
	if du := mustCLI(t, root, nil, "cache", "du"); !strings.Contains(du, "Entries:\t0") {
		t.Errorf("cache not empty after prune:\n%s", du)
	}
	if out := mustCLI(t, root, nil, "run", "cached", "cat", "/a", "/b"); out != "a\nb\n" {
		t.Errorf("image damaged by cache prune: %q", out)
	}
}
