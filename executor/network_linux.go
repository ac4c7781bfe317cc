package executor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CheckNetwork reports whether the default network (Spec.Network
// "default") has outbound connectivity on this host: it returns nil when
// slirp4netns or pasta is installed, and ErrNoNAT otherwise. Runs do not
// fail for want of either; the builder calls this once per build and
// reports the error as a warning.
func CheckNetwork() error {
	if _, err := findNAT(); err != nil {
		return err
	}
	return nil
}

// noTunError reports that /dev/net/tun cannot be opened; it is ErrNoNAT
// for errors.Is.
type noTunError struct{ err error }

func (e noTunError) Error() string {
	return "RUN steps have no network: pasta and slirp4netns need /dev/net/tun: " + e.err.Error()
}

func (e noTunError) Is(target error) bool { return target == ErrNoNAT }

// natTool is a user-space NAT that connects a network namespace to the
// host's network.
type natTool struct {
	name string
	path string
	// dns is the resolver address the container's resolv.conf names.
	dns string
}

// natTools are the NATs Run uses, in order of preference. slirp4netns
// comes first: it starts in about 20ms, while the pasta packaged by
// Debian 12 spends about 160ms of CPU on starting, which every RUN step
// would pay. pasta is used where slirp4netns is missing.
var natTools = []natTool{
	{name: "slirp4netns", dns: "10.0.2.3"},
	{name: "pasta", dns: "169.254.1.1"},
}

var (
	natOnce  sync.Once
	natFound natTool
	natErr   error
)

// findNAT returns the first of natTools installed on PATH.
func findNAT() (natTool, error) {
	natOnce.Do(func() {
		natErr = ErrNoNAT
		if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
			// Both NATs open a tun device, often missing in a
			// container (a Kubernetes pod) or mode 0600 where a
			// rootless build would need 0666.
			natErr = noTunError{err}
			return
		}
		for _, t := range natTools {
			if p, err := exec.LookPath(t.name); err == nil {
				t.path = p
				natFound, natErr = t, nil
				return
			}
		}
	})
	return natFound, natErr
}

// args returns the command line that attaches t to the network namespace
// open as descriptor 3 and reports readiness on descriptor 4. Neither
// forwards ports from the host, and neither lets the container reach the
// host's loopback.
func (t natTool) args() []string {
	if t.name == "pasta" {
		// pasta drops to nobody when started as root, and then cannot
		// join the namespace; it still sandboxes itself (a detached user
		// and mount namespace, seccomp). -P writes its pid once it is
		// configured.
		return []string{"-q", "-f", "--runas", "0", "--config-net",
			"-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw",
			"--dns-forward", t.dns, "--netns", "/proc/self/fd/3", "-P", "/proc/self/fd/4"}
	}
	return []string{"--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp", "--ready-fd=4",
		"--netns-type=path", "/proc/self/fd/3", "tap0"}
}

// netns is a network namespace made for one container, with the NAT that
// connects it when it has one. It lives until close, whatever the
// container's processes do.
type netns struct {
	file *os.File // the namespace (nsfs), for setns
	nat  *exec.Cmd
	// exited is closed when the NAT has exited.
	exited chan struct{}
	// ready delivers the outcome of the NAT's start once: nil when it has
	// configured the namespace.
	ready chan error
}

// newNetNS makes a network namespace with the loopback interface up and,
// with nat, starts the NAT for it; waitReady tells when it is ready.
func newNetNS(nat *natTool) (_ *netns, err error) {
	f, err := unshareNetNS()
	if err != nil {
		return nil, err
	}
	ns := &netns{file: f}
	if nat != nil {
		if err := ns.startNAT(*nat); err != nil {
			ns.close()
			return nil, err
		}
	}
	return ns, nil
}

// unshareNetNS creates a network namespace on a throwaway thread, brings
// its loopback interface up and returns it open.
func unshareNetNS() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked, so the runtime ends it with the
		// goroutine: no goroutine runs in the new namespace afterwards.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("creating network namespace: %w", err)}
			return
		}
		if err := loopbackUp(); err != nil {
			ch <- result{err: err}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			err = fmt.Errorf("opening network namespace: %w", err)
		}
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

// natStartTimeout bounds the wait for a NAT to configure the namespace.
const natStartTimeout = 10 * time.Second

// startNAT starts t for the namespace; waitReady reports when it has
// configured it. The NAT dies with this process (parent-death signal).
func (ns *netns) startNAT(t natTool) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting %s: %w", t.name, err)
	}
	stderr := &bytes.Buffer{}
	cmd := exec.Command(t.path, t.args()...)
	cmd.ExtraFiles = []*os.File{ns.file, w}
	cmd.Stderr = stderr
	// Its own process group: a terminal's ^C is for the builder, which
	// stops the NAT itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = onLockedThread(cmd.Start)
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("starting %s: %w", t.name, err)
	}
	ns.nat, ns.exited, ns.ready = cmd, make(chan struct{}), make(chan error, 1)
	waited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(waited)
		close(ns.exited)
	}()
	go func() {
		defer r.Close()
		got := make(chan error, 1)
		go func() {
			// pasta writes its pid and a newline, slirp4netns "1".
			_, err := bufio.NewReader(r).ReadByte()
			got <- err
		}()
		var err error
		select {
		case err = <-got:
		case <-time.After(natStartTimeout):
			err = fmt.Errorf("not ready after %v", natStartTimeout)
		}
		if err != nil {
			_ = cmd.Process.Kill()
			<-waited
			msg := strings.TrimSpace(stderr.String())
			if msg == "" {
				msg = err.Error()
			}
			err = fmt.Errorf("starting %s: %s", t.name, msg)
		}
		ns.ready <- err
	}()
	return nil
}

// waitReady waits until the NAT has configured the namespace, and returns
// why not when it failed. Call it once.
func (ns *netns) waitReady() error {
	if ns.ready == nil {
		return nil
	}
	return <-ns.ready
}

// signalReady writes a byte to w once the NAT is ready, or nothing when
// it failed, and closes w; the child reading the other end waits for it
// before starting the process (see waitNetwork). The NAT thus starts while
// the child sets the container up. It returns the NAT's error, once known.
func (ns *netns) signalReady(w *os.File) <-chan error {
	errc := make(chan error, 1)
	go func() {
		err := ns.waitReady()
		if err == nil {
			_, err = w.Write([]byte{1})
		}
		w.Close()
		errc <- err
	}()
	return errc
}

// close stops the NAT and closes the namespace, which the kernel frees
// once no process uses it. It does not wait for the NAT to be gone (the
// kernel takes tens of milliseconds to tear its tap device down); a
// goroutine reaps it.
func (ns *netns) close() {
	if ns == nil {
		return
	}
	if ns.nat != nil {
		_ = ns.nat.Process.Kill()
	}
	ns.file.Close()
}

// spawnThread is an OS thread that lives as long as the process and
// starts the processes that must die with it: a parent-death signal fires
// when the thread that forked the child ends, and Go ends threads at will
// unless they are locked to a goroutine that never returns.
var spawnThread struct {
	once sync.Once
	reqs chan func()
}

// onLockedThread runs f on spawnThread and returns its error.
func onLockedThread(f func() error) error {
	spawnThread.once.Do(func() {
		spawnThread.reqs = make(chan func())
		go func() {
			runtime.LockOSThread()
			for req := range spawnThread.reqs {
				req()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnThread.reqs <- func() { errc <- f() }
	return <-errc
}

// containerNetwork returns the network namespace a container of s joins
// when the executor makes it (Network "default" with a NAT installed),
// and nil when the runtime's own handling suffices: none for "host", a
// fresh namespace with only loopback for "none" and for "default"
// without a NAT.
func containerNetwork(s Spec) (*netns, error) {
	t, ok := defaultNAT(s.Network)
	if !ok {
		return nil, nil
	}
	return newNetNS(&t)
}

// defaultNAT returns the NAT a container of network mode mode gets: the
// one findNAT finds for "default" (also when empty). ok is false for
// other modes, and when no NAT is installed.
func defaultNAT(mode string) (_ natTool, ok bool) {
	if mode != "" && mode != NetworkDefault {
		return natTool{}, false
	}
	t, err := findNAT()
	return t, err == nil
}

// resolvConf returns the container's /etc/resolv.conf for network mode
// mode, given the host's: the host's own file for "host" and "none"; for
// "default" with a NAT, the host's search and options lines with the
// NAT's resolver as the only nameserver.
func resolvConf(mode string, host []byte) []byte {
	t, ok := defaultNAT(mode)
	if !ok {
		return host
	}
	var b bytes.Buffer
	for _, l := range strings.Split(string(host), "\n") {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("nameserver " + t.dns + "\n")
	return b.Bytes()
}
