package executor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-project/builder/internal/testutil"
)

// The probe suite: one test per way out of a container that Docker's
// defaults close, each run in every runtime.

// runStatus runs s and returns its stdout and stderr together, and its
// exit status (0 on success); a setup error fails t.
func runStatus(t *testing.T, ex Executor, s Spec) (string, int) {
	t.Helper()
	out, errOut, err := run(t, ex, s)
	var ee *ExitError
	switch {
	case err == nil:
		return out + errOut, 0
	case errors.As(err, &ee):
		return out + errOut, ee.Code
	}
	t.Fatalf("running %q: %v\nstdout: %s\nstderr: %s", s.Args, err, out, errOut)
	return "", -1
}

// inEachRuntime runs probe in a subtest per runtime.
func inEachRuntime(t *testing.T, probe func(t *testing.T, ex Executor)) {
	t.Helper()
	testutil.RequirePrivileges(t, "root", "overlay")
	for name, ex := range executors(t) {
		t.Run(name, func(t *testing.T) { probe(t, ex) })
	}
}

// TestProbeMknodBlockDevice: a block device node, made with mknod in /dev
// or in the root filesystem, or shipped in a layer, cannot be opened.
// (7:0 is /dev/loop0; the probe only reads a byte.)
func TestProbeMknodBlockDevice(t *testing.T) {
	probe := func(t *testing.T, ex Executor) {
		f := newFixture(t)
		if err := unix.Mknod(filepath.Join(f.lower, "shipped"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
			t.Fatal(err)
		}
		for _, script := range []string{
			"mknod /dev/x b 7 0 && head -c 1 /dev/x",
			"mknod /x b 7 0 && head -c 1 /x",
			"head -c 1 /shipped",
		} {
			out, code := runStatus(t, ex, f.spec(sh(script)...))
			if code == 0 || !(strings.Contains(out, "not permitted") || strings.Contains(out, "denied")) {
				t.Errorf("%s: exit %d, output %q: want the open denied", script, code, out)
			}
		}
		// The standard devices still work.
		if out, code := runStatus(t, ex, f.spec(sh("head -c 4 /dev/zero | wc -c && echo x > /dev/null && echo ok")...)); code != 0 || !strings.HasSuffix(out, "ok\n") {
			t.Errorf("standard devices: exit %d, output %q", code, out)
		}
	}
	inEachRuntime(t, probe)
	if root, ok := cgroupLayouts()["v2-unified"]; ok {
		// No devices cgroup there: the root filesystem is mounted nodev.
		t.Run("builtin-cgroup-v2", func(t *testing.T) {
			old := cgroupV2Root
			cgroupV2Root = root
			t.Cleanup(func() { cgroupV2Root = old })
			probe(t, builtinExecutor(t))
		})
	}
}

// listenTCP listens on 127.0.0.1 and answers every connection with
// "hello". It uses system calls rather than package net, which would make
// the test binary dynamically linked (see probeMount).
func listenTCP(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, fd)
	return sa.(*unix.SockaddrInet4).Port
}

// listenAbstract listens on the abstract unix socket @name.
func listenAbstract(t *testing.T, name string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: "@" + name}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	serve(t, fd)
}

// serve answers connections to the listening socket fd until the test
// ends.
func serve(t *testing.T, fd int) {
	go func() {
		for {
			c, _, err := unix.Accept(fd)
			if err != nil {
				return
			}
			_, _ = unix.Write(c, []byte("hello\n"))
			unix.Close(c)
		}
	}()
	t.Cleanup(func() {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		unix.Close(fd)
	})
}

// TestProbeHostLoopback: a service on the host's loopback and an abstract
// unix socket of the host are out of reach of the default network, and
// within reach with Network "host".
func TestProbeHostLoopback(t *testing.T) {
	port := listenTCP(t)
	abstract := "builder-test-" + testutil.NewMarker(t)
	listenAbstract(t, abstract)
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		tcp := f.spec(sh(fmt.Sprintf("nc -w 2 127.0.0.1 %d </dev/null", port))...)
		unixSock := withProbe(t, f.spec(), "abstract:"+abstract)
		for _, mode := range []string{"", NetworkDefault, NetworkHost} {
			tcp.Network, unixSock.Network = mode, mode
			out, code := runStatus(t, ex, tcp)
			if reached := code == 0 && strings.Contains(out, "hello"); reached != (mode == NetworkHost) {
				t.Errorf("network %q: host loopback reached = %v (exit %d, %q)", mode, reached, code, out)
			}
			out, code = runStatus(t, ex, unixSock)
			if reached := code == 0; reached != (mode == NetworkHost) {
				t.Errorf("network %q: host abstract socket reached = %v (%q)", mode, reached, out)
			}
		}
	})
}

// outside is a stand-in for the internet: a network namespace made by the
// test, joined to the host by a veth pair, with an HTTP server.
type outside struct {
	addr string // the server's address, host:port
	body string // what it serves at /probe
}

// newOutside makes the namespace and starts busybox httpd in it. The host
// gets a default route into it only if it has none (a NAT needs one).
func newOutside(t *testing.T) outside {
	t.Helper()
	testutil.RequireTool(t, "ip")
	bb := testutil.BusyboxPath(t)
	id := testutil.NewMarker(t)[:8]
	ns, hostIf, nsIf := "bt-"+id, "bth"+id[:6], "btn"+id[:6]
	n, _ := strconv.ParseUint(id[:2], 16, 8)
	subnet := fmt.Sprintf("10.213.%d", n)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	ip("link", "set", nsIf, "netns", ns)
	ip("addr", "add", subnet+".1/30", "dev", hostIf)
	ip("link", "set", hostIf, "up")
	ip("-n", ns, "addr", "add", subnet+".2/30", "dev", nsIf)
	ip("-n", ns, "link", "set", nsIf, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "route", "add", "default", "via", subnet+".1")
	if out, _ := exec.Command("ip", "route", "show", "default").Output(); len(strings.TrimSpace(string(out))) == 0 {
		ip("route", "add", "default", "via", subnet+".2")
		t.Cleanup(func() { _ = exec.Command("ip", "route", "del", "default", "via", subnet+".2").Run() })
	}
	www := t.TempDir()
	o := outside{addr: subnet + ".2:8080", body: "outside " + id}
	if err := os.WriteFile(filepath.Join(www, "probe"), []byte(o.body+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	httpd := exec.Command("ip", "netns", "exec", ns, bb, "httpd", "-f", "-vv", "-p", o.addr, "-h", www)
	httpd.Stdout, httpd.Stderr = &log, &log
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- httpd.Wait() }()
	t.Cleanup(func() {
		_ = httpd.Process.Kill()
		<-exited
	})
	// A loaded machine can take seconds to start it; an httpd that ended
	// says why.
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command(bb, "wget", "-q", "-O", "/dev/null", "http://"+o.addr+"/probe").Run() != nil {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the outside server ended: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outside server at %s did not answer in 30 s", o.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return o
}

// TestProbeNATReachesOutside: the default network is a namespace of its
// own that reaches a server outside through the NAT.
func TestProbeNATReachesOutside(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		testutil.RequireTool(t, "pasta")
	}
	if err := checkNetwork(); err != nil {
		t.Fatal(err)
	}
	o := newOutside(t)
	hostNS := hostNetNS(t)
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		// busybox wget would need the NSS libraries the root lacks.
		host, port, _ := strings.Cut(o.addr, ":")
		get := fmt.Sprintf(`readlink /proc/self/ns/net; printf 'GET /probe HTTP/1.0\r\n\r\n' | nc -w 5 %s %s | tail -n 1`, host, port)
		out, code := runStatus(t, ex, f.spec(sh(get)...))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || lines[1] != o.body {
			t.Fatalf("exit %d, output %q: want the namespace and %q", code, out, o.body)
		}
		if lines[0] == hostNS {
			t.Errorf("the default network is the host's namespace (%s)", hostNS)
		}
	})
}

// hostNetNS returns the host's network namespace as readlink shows it.
// It reads the calling thread's: the main thread may have been left in a
// namespace of the executor's (a locked thread that ends is parked, not
// ended, when it is the main thread), and /proc/self shows the main
// thread's.
func hostNetNS(t *testing.T) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestProbeSeccompUnshareUser: creating a user namespace is denied.
func TestProbeSeccompUnshareUser(t *testing.T) {
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		if out, code := runStatus(t, ex, f.spec(sh("unshare -U true && echo escaped")...)); code == 0 || strings.Contains(out, "escaped") {
			t.Errorf("unshare -U: exit %d, output %q: want it denied", code, out)
		}
	})
}

// TestProbeSeccompKeyctl: keyctl and io_uring are denied.
func TestProbeSeccompKeyctl(t *testing.T) {
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		for _, p := range []string{"keyctl", "io_uring"} {
			if out, code := runStatus(t, ex, withProbe(t, f.spec(), p)); code == 0 || !strings.Contains(out, "operation not permitted") {
				t.Errorf("%s: exit %d, output %q: want EPERM", p, code, out)
			}
		}
	})
}

// TestProbeSeccompStatus: the process runs filtered, and unfiltered with
// "unconfined".
func TestProbeSeccompStatus(t *testing.T) {
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		s := f.spec(sh("grep '^Seccomp:' /proc/self/status")...)
		for mode, want := range map[string]string{"": "2", SeccompUnconfined: "0"} {
			out := mustRun(t, ex, withSeccomp(s, mode))
			if got := strings.Fields(out); len(got) != 2 || got[1] != want {
				t.Errorf("seccomp %q: %q, want Seccomp: %s", mode, out, want)
			}
		}
	})
}

// TestProbeSessionKeyring: a key in the caller's session keyring is not
// reachable from the container (unconfined, so that keyctl is allowed).
func TestProbeSessionKeyring(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	// Credentials are per thread: plant the key in a session keyring of
	// this thread only (never unlocked, so the thread ends with the test),
	// which Run, called on it, forks from.
	runtime.LockOSThread()
	if _, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 {
		t.Fatal(errno)
	}
	desc := "builder-test-" + testutil.NewMarker(t)
	if _, err := unix.AddKey("user", desc, []byte("secret"), unix.KEY_SPEC_SESSION_KEYRING); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0); err != nil {
		t.Fatalf("the planted key is not found here: %v", err)
	}
	testutil.RequirePrivileges(t, "overlay")
	for name, ex := range executors(t) {
		f := newFixture(t)
		if out, code := runStatus(t, ex, withProbe(t, withSeccomp(f.spec(), SeccompUnconfined), "keysearch:"+desc)); code == 0 {
			t.Errorf("%s: the caller's key is reachable: %q", name, out)
		}
	}
}

// TestProbeDoubleForkDies: a double-forked process dies with its run,
// when the process exits and when the run is cancelled.
func TestProbeDoubleForkDies(t *testing.T) {
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		marker := testutil.NewMarker(t)
		sleep := fmt.Sprintf("sleep %d", 2000+time.Now().UnixNano()%1000)
		s := f.spec(sh("(setsid " + sleep + " >/dev/null 2>&1 &) ; sleep 0.2")...)
		s.Env = []string{testutil.MarkerEnv + "=" + marker}
		mustRun(t, ex, s)
		if left := waitMarkedGone(t, sleep, marker, 5*time.Second); len(left) != 0 {
			t.Errorf("double-forked process outlived its run: %v", left)
		}
		testCancel(t, ex)
	})
}

// TestProbeResourceLimits: the limits are set on the run's cgroup and
// visible inside, where the cgroup namespace shows it as the root.
func TestProbeResourceLimits(t *testing.T) {
	inEachRuntime(t, func(t *testing.T, ex Executor) {
		f := newFixture(t)
		s := withLimits(f.spec(sh(`cd /sys/fs/cgroup
cat memory.max 2>/dev/null || cat memory/memory.limit_in_bytes
cat pids.max 2>/dev/null || cat pids/pids.max
if [ -f cpu.max ]; then cut -d' ' -f1 cpu.max; else cat cpu/cpu.cfs_quota_us; fi
grep -c -v ':/$' /proc/self/cgroup || true`)...), 64<<20, 0.5, 64)
		out, code := runStatus(t, ex, s)
		f2 := strings.Fields(out)
		if code != 0 || len(f2) < 4 || f2[0] != "67108864" || f2[1] != "64" || f2[2] != "50000" || f2[len(f2)-1] != "0" {
			t.Errorf("exit %d, output %q: want 67108864, 64, 50000 and every cgroup shown as /", code, out)
		}
	})
}
