package userns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/builder-project/builder/internal/passwd"
	"golang.org/x/sys/unix"
)

// Environment of a re-executed child.
const (
	// stageEnv marks the child that waits on waitFD for its id maps.
	stageEnv = "_BUILDER_USERNS_WAIT"
	// parentEnv holds the pid of the process that made the namespace,
	// which the child dies with.
	parentEnv = "_BUILDER_USERNS_PARENT"
	// modeEnv is Info.Entered, for the child's own reports.
	modeEnv = "_BUILDER_USERNS"
	// waitFD is the child's end of the pipe its maps are announced on.
	waitFD = 3
)

// Enter runs the current command again in a new user and mount namespace
// when the process is not root, or is root without CAP_SYS_ADMIN (as in a
// container, such as a Kubernetes pod with hostUsers: false), and exits
// with its status. It returns only when there is nothing to do: the
// process is root with CAP_SYS_ADMIN (of any user namespace, rootless
// included), or BUILDER_USERNS=host asks to stay. It must run first
// thing in main, before any other goroutine matters.
//
// Root without CAP_SYS_ADMIN gets a nested namespace that maps every id
// of its own to itself when it has CAP_SETUID and CAP_SETGID (docker's
// and Kubernetes' default capabilities), else 0 alone.
//
// With subordinate ranges for the user in /etc/subuid and /etc/subgid and
// newuidmap and newgidmap on PATH, the namespace maps the user's own ids
// to 0 and the ranges from 1 on (Layout), so that files of many owners
// can be made: the child waits until the maps are written and execs
// itself again, becoming root of the namespace. Otherwise it maps only
// the user's own ids to 0, and a file of any other owner fails with an
// UnmappedError that says what to configure.
func Enter() {
	if os.Getenv(stageEnv) != "" {
		awaitMaps()
	}
	if p := os.Getenv(parentEnv); p != "" {
		os.Unsetenv(parentEnv)
		// An exec that gained capabilities cleared the death signal.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
		if strconv.Itoa(os.Getppid()) != p {
			os.Exit(1) // the parent died before the signal was armed
		}
	}
	if os.Getenv("BUILDER_USERNS") == "host" || (os.Geteuid() == 0 && HasCap(unix.CAP_SYS_ADMIN)) {
		return
	}
	code, err := runInNamespace()
	if errors.Is(err, errNoUserNS) {
		// Commands that need no privileges (images, inspect, save)
		// still work; the others fail on their first mount.
		fmt.Fprintf(os.Stderr, "WARNING: %v; running without one, so building and running containers will fail\n", err)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: entering a user namespace: %v\n", err)
		os.Exit(125)
	}
	os.Exit(code)
}

// errNoUserNS reports that the kernel (or a security module) refuses
// this process a user namespace.
var errNoUserNS = errors.New("cannot create a user namespace")

// awaitMaps is the child's first stage: it waits until the parent wrote
// its id maps, then execs the binary again, which makes it root of the
// namespace with every capability there.
func awaitMaps() {
	os.Unsetenv(stageEnv)
	f := os.NewFile(waitFD, "userns-wait")
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "ok" {
		os.Exit(125) // the parent reported its failure
	}
	if err := syscall.Exec("/proc/self/exe", os.Args, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "Error: re-executing in the user namespace: %v\n", err)
		os.Exit(125)
	}
}

// plan is how the namespace will be mapped.
type plan struct {
	uid, gid   int
	uids, gids Maps
	// helpers are newuidmap and newgidmap, when the maps need them.
	newuidmap, newgidmap string
	// nested is set for root without CAP_SYS_ADMIN; setgroups allows
	// setgroups(2) in the namespace (maps written with CAP_SETGID).
	nested, setgroups bool
}

// makePlan reads the user's subordinate ranges and looks for the helpers.
func makePlan() (plan, error) {
	p := plan{uid: os.Getuid(), gid: os.Getgid()}
	if os.Geteuid() == 0 {
		return nestedPlan(p), nil
	}
	name := userName(p.uid)
	subu, err := SubIDs("/etc/subuid", name, p.uid)
	if err != nil {
		return p, err
	}
	subg, err := SubIDs("/etc/subgid", name, p.uid)
	if err != nil {
		return p, err
	}
	p.uids = Layout(uint32(p.uid), nil)
	p.gids = Layout(uint32(p.gid), nil)
	if len(subu) == 0 || len(subg) == 0 {
		return p, nil
	}
	nu, erru := exec.LookPath("newuidmap")
	ng, errg := exec.LookPath("newgidmap")
	if erru != nil || errg != nil {
		return p, nil
	}
	p.uids, p.gids = Layout(uint32(p.uid), subu), Layout(uint32(p.gid), subg)
	p.newuidmap, p.newgidmap = nu, ng
	return p, nil
}

// userName returns the name /etc/passwd gives uid, or uid as a number.
// (os/user would link the C library into every package that uses this
// one, and the executor's binary must stay static.)
func userName(uid int) string {
	users, err := passwd.ReadIn("/", "/etc/passwd", passwd.ParsePasswd)
	if u, ok := passwd.UserByUID(users, uint32(uid)); err == nil && ok {
		return u.Name
	}
	return strconv.Itoa(uid)
}

// nestedPlan maps a namespace inside the current one for its root: every
// id the current namespace maps, to itself, when it may write such maps
// (CAP_SETUID and CAP_SETGID), else 0 alone.
func nestedPlan(p plan) plan {
	p.nested = true
	p.uids, p.gids = Layout(0, nil), Layout(0, nil)
	if !HasCap(unix.CAP_SETUID) || !HasCap(unix.CAP_SETGID) {
		return p
	}
	c := Current()
	if len(c.UIDs) == 0 || len(c.GIDs) == 0 {
		return p
	}
	self := func(m Maps) Maps {
		out := make(Maps, len(m))
		for i, r := range m {
			out[i] = IDMap{Inside: r.Inside, Outside: r.Inside, Size: r.Size}
		}
		return out
	}
	p.uids, p.gids = self(c.UIDs), self(c.GIDs)
	p.setgroups = true
	return p
}

// HasCap reports whether capability c (unix.CAP_*) is in the process's
// effective set; false when it cannot be read.
func HasCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}

// toSys converts m for os/exec.
func toSys(m Maps) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, r := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(r.Inside), HostID: int(r.Outside), Size: int(r.Size)}
	}
	return out
}

// runInNamespace starts the child in its namespaces, maps them, forwards
// signals to it and returns its exit status.
func runInNamespace() (int, error) {
	p, err := makePlan()
	if err != nil {
		return 0, err
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	// The death signal follows the thread that starts the child.
	runtime.LockOSThread()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	cmd.Env = append(os.Environ(), parentEnv+"="+strconv.Itoa(os.Getpid()))
	var w *os.File
	if p.newuidmap == "" {
		mode := "single"
		if p.nested {
			mode = "nested"
		}
		cmd.Env = append(cmd.Env, modeEnv+"="+mode)
		cmd.SysProcAttr.UidMappings = toSys(p.uids)
		cmd.SysProcAttr.GidMappings = toSys(p.gids)
		cmd.SysProcAttr.GidMappingsEnableSetgroups = p.setgroups
	} else {
		var r *os.File
		if r, w, err = os.Pipe(); err != nil {
			return 0, err
		}
		defer r.Close()
		defer w.Close()
		cmd.ExtraFiles = []*os.File{r}
		cmd.Env = append(cmd.Env, modeEnv+"=subids", stageEnv+"=1")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EINVAL) {
			return 0, fmt.Errorf("%w: %w (unprivileged user namespaces must be allowed: sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or an AppArmor restriction)", errNoUserNS, err)
		}
		return 0, err
	}
	if w != nil {
		err := p.writeMaps(cmd.Process.Pid)
		if err == nil {
			_, err = w.Write([]byte("ok"))
		}
		w.Close()
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, err
		}
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// writeMaps runs newuidmap and newgidmap for pid.
func (p plan) writeMaps(pid int) error {
	for _, h := range []struct {
		tool string
		m    Maps
	}{{p.newuidmap, p.uids}, {p.newgidmap, p.gids}} {
		args := []string{strconv.Itoa(pid)}
		for _, r := range h.m {
			args = append(args, strconv.FormatUint(uint64(r.Inside), 10), strconv.FormatUint(uint64(r.Outside), 10), strconv.FormatUint(uint64(r.Size), 10))
		}
		if out, err := exec.Command(h.tool, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %v: %w: %s", h.tool, args, err, out)
		}
	}
	return nil
}
