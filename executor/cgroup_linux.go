package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/builder-project/builder/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupV2Root, when set, makes new containers use the cgroup v2
// hierarchy mounted there even where a v1 freezer exists: tests set it to
// the unified mount of a hybrid host to cover the v2 code.
var cgroupV2Root string

// cgroup is a container's control group, created for its init and inherited
// by every process of the container. On cgroup v1 it is a directory in the
// freezer hierarchy (to freeze, and to list and kill every process) and one
// in each of the pids, memory, cpu and devices hierarchies that are
// mounted (for limits and the device allow-list), below the creating
// process's own cgroup of each, as runc places a relative cgroupsPath; on
// cgroup v2 it is one directory, whose cgroup.freeze and cgroup.kill need
// no controller. The layout is detected when a container is created and
// recorded in its state, so later processes use the same directories.
type cgroup struct {
	V2    bool     `json:"v2,omitempty"`
	Paths []string `json:"paths"` // the first one freezes and lists
}

// v1Hierarchies are the cgroup v1 hierarchies a container joins when they
// are mounted, the freezer first.
var v1Hierarchies = []string{"freezer", "pids", "memory", "cpu", "devices"}

// newCgroup returns the layout for container id, without creating it:
// cgroup v2 when /sys/fs/cgroup is a unified hierarchy, else the v1
// hierarchies, as on hybrid hosts.
func newCgroup(id string) (cgroup, error) {
	name := filepath.Join("builder", id)
	if cgroupV2Root != "" {
		return cgroup{V2: true, Paths: []string{filepath.Join(cgroupV2Root, name)}}, nil
	}
	if fileExists(filepath.Join(cgroupRoot, "cgroup.controllers")) {
		return cgroup{V2: true, Paths: []string{filepath.Join(cgroupRoot, name)}}, nil
	}
	if !fileExists(filepath.Join(cgroupRoot, "freezer", "cgroup.procs")) {
		return cgroup{}, errors.New("creating cgroup: neither a cgroup v2 hierarchy nor a v1 freezer hierarchy is mounted at " + cgroupRoot)
	}
	own, err := ownCgroups()
	if err != nil {
		return cgroup{}, err
	}
	var c cgroup
	seen := map[string]bool{}
	for _, h := range v1Hierarchies {
		// cpu may be a link to the cpu,cpuacct hierarchy.
		dir, err := filepath.EvalSymlinks(filepath.Join(cgroupRoot, h))
		if err != nil || seen[dir] || !fileExists(filepath.Join(dir, "cgroup.procs")) {
			continue
		}
		seen[dir] = true
		c.Paths = append(c.Paths, filepath.Join(dir, own[h], name))
	}
	return c, nil
}

// ownCgroups maps each v1 controller to the calling process's cgroup in
// its hierarchy, from /proc/self/cgroup.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading own cgroups: %w", err)
	}
	own := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			own[ctrl] = filepath.Clean("/" + parts[2])
		}
	}
	return own, nil
}

// hierarchy returns the v1 hierarchy (its directory name below
// /sys/fs/cgroup, such as "memory" or "cpu,cpuacct") of path p.
func hierarchy(p string) string {
	rel, err := filepath.Rel(cgroupRoot, p)
	if err != nil {
		return ""
	}
	h, _, _ := strings.Cut(rel, "/")
	return h
}

// dir returns the cgroup's directory where controller's files are: the
// one directory on v2, the one in controller's hierarchy on v1 ("" when
// that hierarchy is not used).
func (c cgroup) dir(controller string) string {
	if c.V2 {
		return c.Paths[0]
	}
	for _, p := range c.Paths {
		for _, ctrl := range strings.Split(hierarchy(p), ",") {
			if ctrl == controller {
				return p
			}
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// create makes the cgroup's directories; existing ones are reused.
func (c cgroup) create() error {
	for _, p := range c.Paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("creating cgroup: %w", err)
		}
	}
	return nil
}

// add moves process pid (all its threads) into the cgroup.
func (c cgroup) add(pid int) error {
	for _, p := range c.Paths {
		if err := os.WriteFile(filepath.Join(p, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", p, err)
		}
	}
	return nil
}

// procs lists the processes in the cgroup; a cgroup that does not exist
// (any more) has none.
func (c cgroup) procs() ([]int, error) {
	if len(c.Paths) == 0 {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(c.Paths[0], "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing processes of cgroup: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// frozen reports whether the cgroup is frozen or freezing.
func (c cgroup) frozen() (bool, error) {
	if len(c.Paths) == 0 {
		return false, nil
	}
	if c.V2 {
		v, err := c.event("frozen")
		return v == "1", err
	}
	b, err := os.ReadFile(filepath.Join(c.Paths[0], "freezer.state"))
	if err != nil {
		return false, fmt.Errorf("reading freezer state: %w", err)
	}
	s := string(bytes.TrimSpace(b))
	return s == "FROZEN" || s == "FREEZING", nil
}

// event returns the value of key in cgroup.events (v2).
func (c cgroup) event(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(c.Paths[0], "cgroup.events"))
	if err != nil {
		return "", fmt.Errorf("reading cgroup events: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == key {
			return v, nil
		}
	}
	return "", nil
}

// freezeTimeout bounds waiting for the kernel to freeze or thaw a cgroup.
const freezeTimeout = 10 * time.Second

// setFrozen freezes or thaws the cgroup and waits until the kernel reports
// it done: FROZEN in the v1 freezer.state (which passes through FREEZING
// while tasks are being stopped; the request is repeated then, as runc
// does), or "frozen 1" in the v2 cgroup.events. A freeze that does not
// complete is undone.
func (c cgroup) setFrozen(frozen bool) error {
	if len(c.Paths) == 0 {
		if !frozen {
			return nil
		}
		return ErrNoFreezer
	}
	file, value, done := "freezer.state", "THAWED", func() (bool, error) {
		f, err := c.frozen()
		return !f, err
	}
	switch {
	case c.V2 && frozen:
		file, value, done = "cgroup.freeze", "1", func() (bool, error) {
			v, err := c.event("frozen")
			return v == "1", err
		}
	case c.V2:
		file, value, done = "cgroup.freeze", "0", func() (bool, error) {
			v, err := c.event("frozen")
			return v == "0", err
		}
	case frozen:
		value, done = "FROZEN", func() (bool, error) {
			b, err := os.ReadFile(filepath.Join(c.Paths[0], "freezer.state"))
			return string(bytes.TrimSpace(b)) == "FROZEN", err
		}
	}
	verb := map[bool]string{true: "freezing", false: "thawing"}[frozen]
	deadline := time.Now().Add(freezeTimeout)
	for i := 0; ; i++ {
		if i%10 == 0 {
			if err := os.WriteFile(filepath.Join(c.Paths[0], file), []byte(value), 0); err != nil {
				return fmt.Errorf("%s cgroup: %w", verb, err)
			}
		}
		ok, err := done()
		if err != nil {
			return fmt.Errorf("%s cgroup: %w", verb, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if frozen {
				_ = c.setFrozen(false)
			}
			return fmt.Errorf("%s cgroup: not done after %v", verb, freezeTimeout)
		}
		time.Sleep(time.Duration(min(i+1, 10)) * time.Millisecond)
	}
}

// signalAll sends sig to every process of the cgroup but except (0 for
// none). The cgroup is frozen meanwhile, so no process can fork a new one
// the list would miss. It is thawed afterwards unless it was frozen before
// and sig is not SIGKILL (a v1 frozen task dies only once thawed).
func (c cgroup) signalAll(sig syscall.Signal, except int) error {
	wasFrozen, err := c.frozen()
	if err != nil {
		return err
	}
	if !wasFrozen {
		if err := c.setFrozen(true); err != nil {
			return err
		}
	}
	pids, err := c.procs()
	for _, pid := range pids {
		if pid != except {
			if kerr := unix.Kill(pid, sig); kerr != nil && !errors.Is(kerr, unix.ESRCH) && err == nil {
				err = fmt.Errorf("signalling pid %d: %w", pid, kerr)
			}
		}
	}
	if !wasFrozen || sig == syscall.SIGKILL {
		if terr := c.setFrozen(false); err == nil {
			err = terr
		}
	}
	return err
}

// killAll kills every process of the cgroup: with cgroup.kill on v2, which
// also catches processes forked meanwhile, else through signalAll.
func (c cgroup) killAll() error {
	if len(c.Paths) == 0 || !fileExists(c.Paths[0]) {
		return nil
	}
	if c.V2 {
		err := os.WriteFile(filepath.Join(c.Paths[0], "cgroup.kill"), []byte("1"), 0)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				return fmt.Errorf("killing cgroup: %w", err)
			}
			return nil
		}
		// Kernels before 5.14 have no cgroup.kill.
	}
	return c.signalAll(syscall.SIGKILL, 0)
}

// waitEmpty polls until the cgroup has no process left or ctx is done.
func (c cgroup) waitEmpty(ctx context.Context) error {
	return poll(ctx, func() (bool, error) {
		pids, err := c.procs()
		return len(pids) == 0, err
	})
}

// killAndWait kills every process of the cgroup (killAll), then waits up
// to d for the cgroup to empty; a failure of the wait is returned as
// "waiting for what: …".
func (c cgroup) killAndWait(d time.Duration, what string) error {
	if err := c.killAll(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := c.waitEmpty(ctx); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// remove deletes the cgroup's directories, retrying while the kernel still
// counts exiting processes in it.
func (c cgroup) remove() error {
	var errs []error
	for _, p := range c.Paths {
		err := retryBusy(func() error { return unix.Rmdir(p) })
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func retryBusy(f func() error) error {
	var err error
	for range 200 {
		if err = f(); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// poll calls done every few milliseconds until it reports true, returns an
// error, or ctx is done.
func poll(ctx context.Context, done func() (bool, error)) error {
	for i := 0; ; i++ {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(min(i+1, 20)) * time.Millisecond):
		}
	}
}

// withoutCgroup reports whether a run may go on without a cgroup after
// creating one failed with err: only a rootless process (userns.Rootless)
// that may not create cgroups where root's builder does, and that asks
// for no limits. (A cgroup delegated by systemd is not used yet.) The run
// is then still killed whole through its pid namespace, and devices stay
// out of reach because a user namespace cannot create them and mounts in
// it are nodev.
func withoutCgroup(err error, r *specs.LinuxResources) bool {
	if !userns.Rootless() || !(errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS)) {
		return false
	}
	return r == nil || !((r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0) ||
		(r.CPU != nil && r.CPU.Quota != nil && *r.CPU.Quota > 0) ||
		(r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0))
}

// setUpCgroup creates cg, the layout newCgroup returned with err, and
// applies r's limits and device rules to it (setResources, whose devices
// it returns). Where the layout or the cgroup cannot be made but
// withoutCgroup allows running without one, cg is removed again and ok is
// false, without an error. When ok is true the cgroup exists, even if
// applying r failed.
func setUpCgroup(cg cgroup, err error, r *specs.LinuxResources) (ok, devices bool, _ error) {
	if err == nil {
		err = cg.create()
	}
	if err != nil {
		_ = cg.remove()
		if withoutCgroup(err, r) {
			return false, false, nil
		}
		if userns.Rootless() && errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w: rootless, resource limits need write access to the builder cgroup (a cgroup delegated by systemd is not used yet)", err)
		}
		return false, false, err
	}
	devices, err = cg.setResources(r)
	return true, devices, err
}
