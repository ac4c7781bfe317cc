package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/builder-project/builder/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// forceLegacyOverlay makes children mount the overlay with mount(2); tests
// set it to cover the fallback.
var forceLegacyOverlay bool

// builtin is the runtime that needs only the kernel.
type builtin struct{}

var _ Executor = builtin{}

func newBuiltin() (Executor, error) { return builtin{}, nil }

// Run implements Executor.
func (builtin) Run(ctx context.Context, s Spec, stdio IO) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := prepare(s)
	if err != nil {
		return err
	}
	defer p.close()
	iso, err := isolateRun(s, p.oci, true)
	if err != nil {
		return err
	}
	defer iso.close()
	cfg := p.config(modeInit)
	cfg.Cgroup, cfg.NoDev = iso.cgroup, !iso.devices
	cfg.NetNS, cfg.NetReady = iso.net != nil, iso.net != nil
	st, res, err := runHelper(ctx, cfg, stdio, helperOptions{
		cloneflags: namespaceFlags(p.oci, iso.net != nil),
		extra:      iso.files(),
		started:    iso.addToCgroup,
		cancel: func(cmd *exec.Cmd) {
			if iso.cgroup != nil {
				_ = iso.cgroup.killAll()
			}
			_ = cmd.Process.Kill()
		},
	})
	return finish(ctx, p, st, iso.natFailure(res), err, nil)
}

// namespaceFlags are the clone flags of the namespaces the built-in
// runtime's init gets. With joinNet it joins a network namespace made for
// it rather than creating one. The cgroup namespace is created by the
// init itself, once it is in its cgroup.
func namespaceFlags(sp *specs.Spec, joinNet bool) uintptr {
	flags := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC)
	if hasNamespace(sp, specs.NetworkNamespace) && !joinNet {
		flags |= syscall.CLONE_NEWNET
	}
	return flags
}

// runIsolation is what a run gets around its namespaces: a cgroup of its
// own (built-in runtime; runc makes its own), and the network namespace
// with its NAT for the default network.
type runIsolation struct {
	cgroup *cgroup
	// devices reports that the cgroup enforces the device rules.
	devices bool
	net     *netns
	// ready is the child's end of the pipe that tells it the NAT is
	// ready, and natErr the NAT's outcome (see netns.signalReady).
	ready  *os.File
	natErr <-chan error
}

// isolateRun creates the cgroup (withCgroup) with sp's limits and device
// rules, and the network namespace of s.
func isolateRun(s Spec, sp *specs.Spec, withCgroup bool) (_ *runIsolation, err error) {
	iso := &runIsolation{}
	defer func() {
		if err != nil {
			iso.close()
		}
	}()
	if withCgroup {
		cg, err := newCgroup("run-" + randomHostname() + randomHostname())
		ok, devices, err := setUpCgroup(cg, err, sp.Linux.Resources)
		if ok {
			iso.cgroup, iso.devices = &cg, devices
		}
		if err != nil {
			return nil, err
		}
	}
	if iso.net, err = containerNetwork(s); err != nil || iso.net == nil {
		return iso, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating network readiness pipe: %w", err)
	}
	iso.ready, iso.natErr = r, iso.net.signalReady(w)
	return iso, nil
}

// addToCgroup moves pid into the run's cgroup, if it has one.
func (iso *runIsolation) addToCgroup(pid int) error {
	if iso.cgroup == nil {
		return nil
	}
	return iso.cgroup.add(pid)
}

// files are the descriptors the child gets from netnsFD on.
func (iso *runIsolation) files() []*os.File {
	if iso.net == nil {
		return nil
	}
	return []*os.File{iso.net.file, iso.ready}
}

// natFailure replaces the child's report that the network could not be
// set up with the NAT's own error.
func (iso *runIsolation) natFailure(res helperResult) helperResult {
	if res.err != errNetworkFailed.Error() || iso.natErr == nil {
		return res
	}
	if err := <-iso.natErr; err != nil {
		res.err = err.Error()
	}
	return res
}

// close kills whatever is left in the cgroup and removes it, and stops the
// network.
func (iso *runIsolation) close() {
	if cg := iso.cgroup; cg != nil {
		// Normally empty by now: the init is gone, and with it its pid
		// namespace.
		if pids, err := cg.procs(); err != nil || len(pids) > 0 {
			_ = cg.killAndWait(10*time.Second, "the run's processes")
		}
		_ = cg.remove()
	}
	iso.net.close()
	if iso.ready != nil {
		iso.ready.Close()
	}
}

// finish removes the stubs and turns a child's outcome into Run's error.
// runtimeErr, when set, explains a non-zero status better than an
// ExitError would (an external runtime's own failure).
func finish(ctx context.Context, p *prepared, st *os.ProcessState, res helperResult, err error, runtimeErr func() error) error {
	cleanupErr := removeStubs(p.spec.Upper, res.cleanup)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	case res.err != "":
		return fmt.Errorf("setting up container: %s", res.err)
	}
	if code := exitCode(st); code != 0 {
		if runtimeErr != nil {
			if err := runtimeErr(); err != nil {
				return err
			}
		}
		return &ExitError{Code: code}
	}
	return cleanupErr
}

// prepared holds a run's defaults and its private temporary directory,
// which has the generated hosts and resolv.conf files, an empty lower when
// needed and the directory the rootfs is mounted on (in the child's mount
// namespace only). For an external runtime it is the bundle too.
type prepared struct {
	spec   Spec
	oci    *specs.Spec
	dir    string
	rootfs string
	// lock holds the lock of a temporary run directory (see makeTempDir).
	lock *os.File
}

func prepare(s Spec) (*prepared, error) { return prepareIn(s, "") }

// prepareIn is prepare with the run directory at dir, which must not exist
// yet ("" makes a temporary one).
func prepareIn(s Spec, dir string) (_ *prepared, err error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if s.Upper == "" || s.Work == "" {
		return nil, errors.New("validating spec: upper and work directories are required")
	}
	var lock *os.File
	if dir == "" {
		dir, lock, err = makeTempDir(runDirPrefix)
	} else {
		err = os.Mkdir(dir, 0o700)
	}
	if err != nil {
		return nil, fmt.Errorf("creating run directory: %w", err)
	}
	p := &prepared{dir: dir, rootfs: filepath.Join(dir, "rootfs"), lock: lock}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if s.Hostname == "" {
		s.Hostname = randomHostname()
	}
	if s.Hosts == "" {
		s.Hosts = filepath.Join(dir, "hosts")
		if err := os.WriteFile(s.Hosts, hostsFile(s.Hostname), 0o644); err != nil {
			return nil, fmt.Errorf("writing hosts file: %w", err)
		}
	}
	if s.ResolvConf == "" {
		b, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading host resolv.conf: %w", err)
		}
		s.ResolvConf = filepath.Join(dir, "resolv.conf")
		if err := os.WriteFile(s.ResolvConf, resolvConf(s.Network, b), 0o644); err != nil {
			return nil, fmt.Errorf("writing resolv.conf: %w", err)
		}
	}
	if len(s.Lowers) == 0 {
		empty := filepath.Join(dir, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return nil, fmt.Errorf("creating empty lower directory: %w", err)
		}
		s.Lowers = []string{empty}
	}
	abs := func(p *string) {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}
	s.Lowers = append([]string(nil), s.Lowers...)
	for i := range s.Lowers {
		abs(&s.Lowers[i])
	}
	abs(&s.Upper)
	abs(&s.Work)
	if err := os.Mkdir(p.rootfs, 0o755); err != nil {
		return nil, fmt.Errorf("creating rootfs mountpoint: %w", err)
	}
	if p.oci, err = s.OCI(); err != nil {
		return nil, err
	}
	clampRlimits(p.oci)
	p.spec = s
	return p, nil
}

func (p *prepared) config(mode string) *initConfig {
	return &initConfig{
		Mode:   mode,
		Spec:   p.oci,
		Rootfs: p.rootfs,
		Lowers: p.spec.Lowers,
		Upper:  p.spec.Upper,
		Work:   p.spec.Work,
		User:   p.spec.User,

		LegacyOverlay: forceLegacyOverlay,
	}
}

// close removes the run directory (see removeRunDir) and releases its
// lock.
func (p *prepared) close() {
	_ = removeRunDir(p.dir)
	if p.lock != nil {
		p.lock.Close()
	}
}

// clampRlimits lowers the spec's limits to the current hard limits when
// the process may not raise them (no CAP_SYS_RESOURCE, as in many CI
// containers, or rootless: raising a hard limit needs the capability in
// the initial user namespace), so that neither runtime fails on setrlimit.
func clampRlimits(sp *specs.Spec) {
	if userns.HasCap(unix.CAP_SYS_RESOURCE) && !userns.Rootless() {
		return
	}
	for i, r := range sp.Process.Rlimits {
		res, ok := rlimitTypes[r.Type]
		if !ok {
			continue
		}
		var cur unix.Rlimit
		if unix.Getrlimit(res, &cur) != nil {
			continue
		}
		sp.Process.Rlimits[i].Hard = min(r.Hard, cur.Max)
		sp.Process.Rlimits[i].Soft = min(r.Soft, sp.Process.Rlimits[i].Hard)
	}
}
