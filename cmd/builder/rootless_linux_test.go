package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/filecopy"
	"github.com/builder-project/builder/internal/testutil"
	"github.com/builder-project/builder/internal/userns"
)

// The users the rootless tests run the builder as; scripts/rootless-users.sh
// (which .ci/run calls) creates them.
const (
	// subidUser has subordinate ids in /etc/subuid and /etc/subgid.
	subidUser = "builder-rootless"
	// singleUser has none: the builder maps its own id alone.
	singleUser = "builder-single"
)

// rootlessUser runs the CLI as a non-root user, on a store in a directory
// of its own.
type rootlessUser struct {
	name     string
	uid, gid int
	ranges   []userns.SubIDRange
	dir, bin string
}

// newRootlessUser checks that user name exists with (subids) or without
// subordinate ids, and gives it a fresh directory with a copy of this test
// binary, which runs as the CLI.
func newRootlessUser(t *testing.T, name string, subids bool) *rootlessUser {
	t.Helper()
	testutil.RequirePrivileges(t, "root", "userns")
	testutil.RequireTool(t, "runuser")
	u, err := user.Lookup(name)
	if err != nil {
		testutil.Unavailable(t, "user %s (scripts/rootless-users.sh creates it): %v", name, err)
	}
	r := &rootlessUser{name: name}
	r.uid, _ = strconv.Atoi(u.Uid)
	r.gid, _ = strconv.Atoi(u.Gid)
	if r.ranges, err = userns.SubIDs("/etc/subuid", name, r.uid); err != nil {
		t.Fatal(err)
	}
	if subids {
		testutil.RequireTool(t, "newuidmap")
		testutil.RequireTool(t, "newgidmap")
		if len(r.ranges) == 0 || r.ranges[0].Count < 65536 {
			testutil.Unavailable(t, "user %s needs 65536 subordinate ids in /etc/subuid and /etc/subgid (scripts/rootless-users.sh)", name)
		}
	} else if len(r.ranges) > 0 {
		testutil.Unavailable(t, "user %s must have no subordinate ids (scripts/rootless-users.sh)", name)
	}
	// Not t.TempDir: its parents are private to root.
	if r.dir, err = os.MkdirTemp("", "builder-rootless-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(r.dir) })
	if err := os.Chmod(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(r.dir, r.uid, r.gid); err != nil {
		t.Fatal(err)
	}
	r.bin = filepath.Join(r.dir, "builder")
	if err := filecopy.File(r.bin, os.Args[0], 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// env is the environment of the CLI run as the user.
func (r *rootlessUser) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.dir, "USER=" + r.name, "BUILDER_TEST_CLI=1"}
}

// run runs the CLI as the user: verb --root store args.
func (r *rootlessUser) run(stdin []byte, store, verb string, args ...string) (string, error) {
	full := append([]string{"-u", r.name, "--", "env", "-i"}, r.env()...)
	full = append(append(full, r.bin, verb, "--root", store), args...)
	return output(exec.Command("runuser", full...), stdin)
}

// must is run that fails t on error.
func (r *rootlessUser) must(t *testing.T, stdin []byte, store, verb string, args ...string) string {
	t.Helper()
	out, err := r.run(stdin, store, verb, args...)
	if err != nil {
		t.Fatalf("builder %s %s as %s: %v\n%s", verb, strings.Join(args, " "), r.name, err, out)
	}
	return out
}

// asRoot runs the same binary as root on store.
func (r *rootlessUser) asRoot(t *testing.T, stdin []byte, store, verb string, args ...string) string {
	t.Helper()
	cmd := exec.Command(r.bin, append([]string{verb, "--root", store}, args...)...)
	cmd.Env = r.env()
	out, err := output(cmd, stdin)
	if err != nil {
		t.Fatalf("builder %s %s as root: %v\n%s", verb, strings.Join(args, " "), err, out)
	}
	return out
}

func output(cmd *exec.Cmd, stdin []byte) (string, error) {
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// baseTar is a busybox root filesystem as a layer tar with every time 0:
// /opt/old and /opt/data/{x,y} for a later step to delete. With owners, /home/app is 1000's (as in the
// busybox base of the tests); without, every file is 0's.
func baseTar(t *testing.T, owners bool) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := testutil.MakeBusyboxRootfs(testutil.BusyboxPath(t), dir); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"opt/old": "old\n", "opt/data/x": "x\n", "opt/data/y": "y\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		hdr.Uid, hdr.Gid = 0, 0
		if st := fi.Sys().(*syscall.Stat_t); owners {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeContext writes files (name → content, every time 0) into a new
// directory under dir that everyone may read.
func writeContext(t *testing.T, dir, name string, files map[string]string) string {
	t.Helper()
	ctx := filepath.Join(dir, name)
	for n, c := range files {
		p := filepath.Join(ctx, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		os.Chmod(p, map[bool]os.FileMode{true: 0o755, false: 0o644}[d.IsDir()])
		return os.Chtimes(p, time.Unix(0, 0), time.Unix(0, 0))
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// ownersDockerfile has files of several owners (COPY --chown, chown in
// RUN, USER), a whiteout (/opt/old), an opaque directory (/opt/data made
// again) and a RUN as a non-root user. Its layers do not depend on when
// it is built: COPY copies trees whose times are 0 into new directories,
// and each RUN sets the times of what it changed to 0.
const ownersDockerfile = `FROM base
COPY --chown=1000:1000 tree/ /
COPY --chown=app apptree/ /
RUN rm -rf /opt/old /opt/data && mkdir /opt/data && echo new > /opt/data/z && chown 1000:1000 /opt/data/z && \
    mkdir /var/nobody && chown nobody:nogroup /var/nobody && \
    touch -h -d @0 /opt /opt/data /opt/data/z /var /var/nobody
USER app
RUN echo mine > /home/app/mine && touch -h -d @0 /home/app /home/app/mine
USER nobody
CMD ["/bin/sh"]
`

// layers returns the diffIDs of ref's image.
func layers(t *testing.T, inspect string) []string {
	t.Helper()
	var v []struct {
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(inspect), &v); err != nil || len(v) != 1 {
		t.Fatalf("inspect output: %v\n%s", err, inspect)
	}
	return v[0].RootFS.Layers
}

// TestRootlessBuild builds as a non-root user with subordinate ids, with
// no flag: an image of many owners with whiteouts and opaque directories,
// whose layers must equal those of the same build as root; a rebuild from
// the cache; the examples; save read by skopeo and umoci; export; run,
// run -d, stop and commit of containers without a cgroup.
func TestRootlessBuild(t *testing.T) {
	testutil.SkipIfShort(t, "rootless builds as another user")
	u := newRootlessUser(t, subidUser, true)
	store, rootStore := filepath.Join(u.dir, "store"), filepath.Join(u.dir, "root-store")
	base := baseTar(t, true)
	u.must(t, base, store, "import", "-", "base")
	u.asRoot(t, base, rootStore, "import", "-", "base")

	info := u.must(t, nil, store, "info", "--format", "json")
	var got struct {
		Rootless      bool
		UserNamespace string
		UIDMap        string
		Overlay       string
		NAT, NATError string
	}
	if err := json.Unmarshal([]byte(info), &got); err != nil {
		t.Fatalf("info: %v\n%s", err, info)
	}
	wantMap := userns.Layout(uint32(u.uid), u.ranges[:1]).String()
	if !got.Rootless || got.UserNamespace != "subordinate ids" || got.Overlay != "userxattr" || !strings.HasPrefix(got.UIDMap, wantMap) {
		t.Errorf("info as %s: %+v, want rootless with uid map %s and userxattr", u.name, got, wantMap)
	}

	// RUN's network namespace reaches out through the NAT.
	if got.NAT == "" {
		testutil.Unavailable(t, "no NAT for rootless RUN steps: %s (scripts/rootless-users.sh makes /dev/net/tun usable)", got.NATError)
	}
	netCtx := writeContext(t, u.dir, "net", map[string]string{"Dockerfile": "FROM base\nRUN cat /proc/net/dev\n"})
	out := u.must(t, nil, store, "build", "--progress", "plain", netCtx)
	ifaces := regexp.MustCompile(`(?m)\s([a-z][a-z0-9]*):\s+\d+\s+\d+`).FindAllStringSubmatch(out, -1)
	if len(ifaces) < 2 || (ifaces[0][1] == "lo" && ifaces[1][1] == "lo") {
		t.Errorf("RUN has no interface but loopback with %s:\n%s", got.NAT, out)
	}

	ctx := writeContext(t, u.dir, "owners", map[string]string{"Dockerfile": ownersDockerfile, "tree/srv/app/a": "a\n", "tree/srv/app/sub/b": "b\n", "apptree/data/a": "a\n"})
	out = u.must(t, nil, store, "build", "--progress", "plain", "-t", "owners", ctx)
	time.Sleep(1100 * time.Millisecond) // a later second for every time the build takes
	rootOut := u.asRoot(t, nil, rootStore, "build", "--progress", "plain", "-t", "owners", ctx)
	rootless := layers(t, u.must(t, nil, store, "inspect", "owners"))
	root := layers(t, u.asRoot(t, nil, rootStore, "inspect", "owners"))
	if strings.Join(rootless, " ") != strings.Join(root, " ") || len(root) != 5 {
		t.Errorf("layers built rootless differ from root's:\nrootless %v\nroot     %v\n%s\n%s", rootless, root, out, rootOut)
	}

	// The upperdirs keep opaque markers the rootless way.
	var opaque []string
	filepath.WalkDir(filepath.Join(store, "snapshots"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "data" {
			if v, err := xattr(p, "user.overlay.opaque"); err == nil && v == "y" {
				opaque = append(opaque, p)
			}
		}
		return nil
	})
	if len(opaque) != 1 {
		t.Errorf("want one snapshot with user.overlay.opaque on opt/data, found %v", opaque)
	}

	again := u.must(t, nil, store, "build", "--progress", "plain", "-t", "owners", ctx)
	if !strings.Contains(again, "7 steps, 7 cached") || strings.Contains(again, " DONE ") {
		t.Errorf("rebuild as %s was not a cache hit:\n%s", u.name, again)
	}

	// save → skopeo and umoci, as root, read what the user wrote.
	archive := filepath.Join(u.dir, "owners.tar")
	u.must(t, nil, store, "save", "--format", "oci", "-o", archive, "owners")
	skopeo, umoci := testutil.RequireTool(t, "skopeo"), testutil.RequireTool(t, "umoci")
	if out, err := exec.Command(skopeo, "inspect", "oci-archive:"+archive).CombinedOutput(); err != nil || !strings.Contains(string(out), `"Layers"`) {
		t.Errorf("skopeo inspect: %v\n%s", err, out)
	}
	layout, bundle := filepath.Join(t.TempDir(), "layout"), filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("tar", "-xf", archive, "-C", mkdir(t, layout)).CombinedOutput(); err != nil {
		t.Fatalf("extracting the archive: %v\n%s", err, out)
	}
	if out, err := exec.Command(umoci, "unpack", "--image", layout+":latest", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	rootfs := filepath.Join(bundle, "rootfs")
	for p, want := range map[string]int{"srv/app/a": 1000, "srv/app/sub/b": 1000, "data/a": 1000, "home/app/mine": 1000, "opt/data/z": 1000, "var/nobody": 65534, "bin/busybox": 0} {
		fi, err := os.Lstat(filepath.Join(rootfs, p))
		if err != nil {
			t.Errorf("umoci rootfs: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != want {
			t.Errorf("umoci rootfs: %s is owned by %d, want %d", p, st.Uid, want)
		}
	}
	for _, p := range []string{"opt/old", "opt/data/x", "opt/data/y"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err == nil {
			t.Errorf("umoci rootfs: %s is there, though deleted (whiteout or opaque directory lost)", p)
		}
	}

	// A store that never built it unpacks the layers, opaque directory
	// included, the rootless way, and the next build sees what they hide.
	loaded := filepath.Join(u.dir, "loaded")
	u.must(t, nil, loaded, "load", "-i", archive)
	next := writeContext(t, u.dir, "next", map[string]string{"Dockerfile": "FROM owners\nRUN test -e /opt/data/z && test ! -e /opt/data/x && test ! -e /opt/old && test \"$(stat -c %u /srv/app/a)\" = 1000\n"})
	u.must(t, nil, loaded, "build", next)

	// The examples, on the same base as busybox:latest.
	u.must(t, nil, store, "tag", "base", "busybox:latest")
	examples := filepath.Join(u.dir, "examples")
	if err := os.CopyFS(examples, os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(examples, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chmod(p, map[bool]os.FileMode{true: 0o755, false: 0o644}[d.IsDir()]|0o444)
		}
		return err
	})
	for _, ex := range []string{"hello", "app", "multistage", "kubernetes"} {
		u.must(t, nil, store, "build", "--progress", "plain", "-t", "example/"+ex, filepath.Join(examples, ex))
	}
	if out := u.must(t, nil, store, "run", "--rm", "example/hello"); !strings.Contains(out, "Hello from a builder-built image") {
		t.Errorf("run example/hello as %s: %q", u.name, out)
	}
	// A detached container without a cgroup: stopped through its init;
	// committed without pausing it.
	u.must(t, nil, store, "run", "-d", "--name", "bg", "example/hello", "sh", "-c", "echo bg > /bg; sleep 60")
	// What each command's own namespace rules out says so.
	if out, err := u.run(nil, store, "exec", "bg", "true"); err == nil || !strings.Contains(out, "cannot join") {
		t.Errorf("exec into another command's container: %v\n%s", err, out)
	}
	if out, err := u.run(nil, store, "mount", "bg"); err == nil || !strings.Contains(out, "mount namespace of its own") {
		t.Errorf("mount: %v\n%s", err, out)
	}
	if out, err := u.run(nil, store, "commit", "bg", "bg:1"); err == nil || !strings.Contains(out, "--pause=false") {
		t.Errorf("commit of a running container without a cgroup: %v\n%s", err, out)
	}
	waitFor := time.Now().Add(10 * time.Second)
	for !strings.Contains(u.must(t, nil, store, "diff", "bg"), "/bg") && time.Now().Before(waitFor) {
		time.Sleep(50 * time.Millisecond)
	}
	u.must(t, nil, store, "commit", "--pause=false", "bg", "bg:1")
	start := time.Now()
	u.must(t, nil, store, "stop", "-t", "1", "bg")
	if ps := u.must(t, nil, store, "ps", "-a"); !strings.Contains(ps, "Exited") || time.Since(start) > 5*time.Second {
		t.Errorf("stop took %v:\n%s", time.Since(start), ps)
	}
	u.must(t, nil, store, "rm", "bg")
	if out := u.must(t, nil, store, "run", "--rm", "bg:1", "cat", "/bg"); !strings.Contains(out, "bg") {
		t.Errorf("the commit of a running container lacks its change: %q", out)
	}

	flat := filepath.Join(u.dir, "hello.tar")
	u.must(t, nil, store, "export", "-o", flat, "example/hello")
	if out, err := exec.Command("tar", "-tvf", flat).CombinedOutput(); err != nil || !strings.Contains(string(out), "greeting.txt") || !tarLists(string(out), "1000/1000", "home/app/") {
		t.Errorf("export of example/hello as %s: %v\n%s", u.name, err, out)
	}
}

// TestRootlessSingleID builds as a user without subordinate ids: a
// one-owner Dockerfile builds in a namespace that maps the user alone,
// and COPY --chown=1000, or a base with a file of uid 1000, fails with
// what to configure.
func TestRootlessSingleID(t *testing.T) {
	testutil.SkipIfShort(t, "rootless builds as another user")
	u := newRootlessUser(t, singleUser, false)
	store := filepath.Join(u.dir, "store")
	u.must(t, baseTar(t, false), store, "import", "-", "base")
	if info := u.must(t, nil, store, "info"); !strings.Contains(info, "User namespace: single id") || !strings.Contains(info, "UID map: 0:"+strconv.Itoa(u.uid)+":1\n") {
		t.Errorf("info as %s:\n%s", u.name, info)
	}
	one := writeContext(t, u.dir, "one", map[string]string{"Dockerfile": "FROM base\nCOPY f /f\nRUN cat /f > /g && id -u > /uid\n", "f": "f\n"})
	u.must(t, nil, store, "build", "-t", "one", one)
	flat := filepath.Join(u.dir, "one.tar")
	u.must(t, nil, store, "export", "-o", flat, "one")
	if out, err := exec.Command("tar", "-tvf", flat).CombinedOutput(); err != nil || !strings.Contains(string(out), " g\n") {
		t.Errorf("export: %v\n%s", err, out)
	}
	chown := writeContext(t, u.dir, "chown", map[string]string{"Dockerfile": "FROM base\nCOPY --chown=1000 f /f\n", "f": "f\n"})
	out, err := u.run(nil, store, "build", chown)
	if err == nil {
		t.Fatalf("COPY --chown=1000 built with a single id:\n%s", out)
	}
	for _, want := range []string{"Dockerfile:2", "owner 1000:1000", "/etc/subuid", "/etc/subgid", singleUser + ":100000:65536", "uidmap"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error lacks %q:\n%s", want, out)
		}
	}
	// A base with a file of another owner cannot be unpacked either.
	u.must(t, baseTar(t, true), store, "import", "-", "multi")
	multi := writeContext(t, u.dir, "multi", map[string]string{"Dockerfile": "FROM multi\nRUN true\n"})
	out, err = u.run(nil, store, "build", multi)
	if err == nil || !strings.Contains(out, "home/app") || !strings.Contains(out, "/etc/subuid") {
		t.Errorf("a base of two owners with a single id: %v\n%s", err, out)
	}
}

// TestRootlessInUnprivilegedContainer runs the builder as root of a user
// namespace made by a non-root user, with no capability outside it and
// without CAP_SYS_ADMIN inside (the capabilities of a Kubernetes pod with
// hostUsers: false), no_new_privs (allowPrivilegeEscalation: false) and
// /proc/sys masked as container runtimes do: it builds the context of
// examples/kubernetes/job.yaml in a user namespace nested in that one.
func TestRootlessInUnprivilegedContainer(t *testing.T) {
	testutil.SkipIfShort(t, "rootless builds as another user")
	u := newRootlessUser(t, subidUser, true)
	testutil.RequireTool(t, "unshare")
	testutil.RequireTool(t, "setpriv")
	start := int(u.ranges[0].Start) // the container's root
	pod := filepath.Join(u.dir, "pod")
	for _, d := range []string{pod, filepath.Join(pod, "tmp")} {
		mkdir(t, d)
		if err := os.Chown(d, start, start); err != nil {
			t.Fatal(err)
		}
	}
	ex := filepath.Join(u.dir, "kubernetes")
	if err := os.CopyFS(ex, os.DirFS("../../examples/kubernetes")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ex, 0o755); err != nil {
		t.Fatal(err)
	}
	caps := "-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap"
	inPod := func(stdin []byte, args ...string) (string, error) {
		m := strconv.Itoa(start) + ",0,65536"
		script := `mount -o bind,ro /proc/sys /proc/sys && exec setpriv --no-new-privs --bounding-set=` + caps + ` -- env -i "$@"`
		full := []string{"-u", u.name, "--", "unshare", "--map-users=" + m, "--map-groups=" + m, "--setuid", "0", "--setgid", "0",
			"--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh",
			"PATH=" + os.Getenv("PATH"), "HOME=" + pod, "TMPDIR=" + filepath.Join(pod, "tmp"), "BUILDER_TEST_CLI=1", u.bin}
		return output(exec.Command("runuser", append(full, args...)...), stdin)
	}
	store := filepath.Join(pod, "store")
	if out, err := inPod(baseTar(t, true), "import", "--root", store, "-", "busybox:latest"); err != nil {
		t.Fatalf("import in the container: %v\n%s", err, out)
	}
	info, err := inPod(nil, "info", "--root", store)
	if err != nil || !strings.Contains(info, "Mode: rootless") || !strings.Contains(info, "User namespace: nested") || !strings.Contains(info, "userxattr") {
		t.Errorf("info in the container: %v\n%s", err, info)
	}
	if out, err := inPod(nil, "build", "--root", store, "--progress", "plain", "-t", "hello", ex); err != nil {
		t.Fatalf("build in the container: %v\n%s", err, out)
	}
	flat := filepath.Join(pod, "hello.tar")
	if out, err := inPod(nil, "export", "--root", store, "-o", flat, "hello"); err != nil {
		t.Fatalf("export in the container: %v\n%s", err, out)
	}
	if out, err := exec.Command("tar", "-tvf", flat).CombinedOutput(); err != nil || !tarLists(string(out), "1000/1000", "home/app/greeting.txt") || !tarLists(string(out), "2000/2000", "data/") {
		t.Errorf("export of the container's build: %v\n%s", err, out)
	}
}

// tarLists reports whether a line of tar -tv output has owner and ends in
// name.
func tarLists(out, owner, name string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " "+owner+" ") && strings.HasSuffix(l, " "+name) {
			return true
		}
	}
	return false
}

func mkdir(t *testing.T, d string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// xattr reads one extended attribute of p.
func xattr(p, name string) (string, error) {
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
