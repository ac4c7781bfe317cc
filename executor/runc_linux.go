package executor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ociRuntime runs containers with an external runtime that has runc's
// command line (runc, crun).
type ociRuntime struct {
	name string // as given to New, for messages
	path string // absolute path of the binary
}

var _ Executor = (*ociRuntime)(nil)

func newOCIRuntime(name string) (Executor, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("finding OCI runtime %q: %w", name, err)
	}
	if p, err = filepath.Abs(p); err != nil {
		return nil, fmt.Errorf("finding OCI runtime %q: %w", name, err)
	}
	return &ociRuntime{name: name, path: p}, nil
}

// Run implements Executor. A helper process is created in a new mount and
// pid namespace (and joins the run's network namespace); it mounts the
// overlay on the bundle's rootfs, creates mountpoint stubs, writes
// config.json and execs "<runtime> run". The rootfs mount exists only in
// that mount namespace, and the runtime is pid 1 of that pid namespace,
// with this thread's death as its parent-death signal: when the runtime
// dies, however it dies (this process killed, ctx cancelled), the kernel
// kills every process of the container with it, since the container's
// own pid namespace is nested in the runtime's. What the runtime leaves in
// its state directory then is removed with CleanupRuncState.
func (r *ociRuntime) Run(ctx context.Context, s Spec, stdio IO) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := prepare(s)
	if err != nil {
		return err
	}
	defer p.close()
	iso, err := isolateRun(s, p.oci, false)
	if err != nil {
		return err
	}
	defer iso.close()
	cfg := p.config(modeRuntime)
	cfg.Spec.Root.Path = p.rootfs
	cfg.Runtime = r.path
	cfg.Bundle = p.dir
	cfg.StateDir = filepath.Join(p.dir, runcStateDir)
	cfg.ID = "builder-" + randomHostname()
	cfg.Log = filepath.Join(p.dir, "runtime.log")
	// Relative: the runtime creates it below its own cgroup in each
	// hierarchy.
	cfg.Spec.Linux.CgroupsPath = filepath.Join("builder", cfg.ID)
	if iso.net != nil {
		// The container shares the helper's network namespace.
		cfg.NetNS, cfg.NetReady = true, true
		cfg.Spec.Linux.Namespaces = slices.DeleteFunc(cfg.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
			return ns.Type == specs.NetworkNamespace
		})
	}
	if err := os.Mkdir(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating runtime state directory: %w", err)
	}
	st, res, err := runHelper(ctx, cfg, stdio, helperOptions{
		cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		extra:      iso.files(),
	})
	// "run" deletes the container when it ends normally; a killed runtime
	// leaves its state and cgroups.
	cerr := CleanupRuncState(cfg.StateDir)
	if err := finish(ctx, p, st, iso.natFailure(res), err, func() error { return r.logError(cfg.Log) }); err != nil {
		return err
	}
	return cerr
}

func (r *ociRuntime) command(stateDir string, args ...string) *exec.Cmd {
	return exec.Command(r.path, append([]string{"--root", stateDir}, args...)...)
}

// logError returns the runtime's own error from its JSON log, if any.
func (r *ociRuntime) logError(log string) error {
	f, err := os.Open(log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			msgs = append(msgs, e.Msg)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("running container with %s: %s", r.name, strings.Join(msgs, "; "))
}

// runtimeHelper runs in the re-executed helper: it prepares the rootfs,
// writes the bundle's config.json and execs the runtime. It returns only
// on error.
func runtimeHelper(cfg *initConfig, t *stubTracker, status *os.File) error {
	if err := isolate(cfg, false); err != nil {
		return err
	}
	if err := prepareRootfs(cfg, t); err != nil {
		return err
	}
	// The runtime is pid 1 of a new pid namespace: it must see that
	// namespace's pids in /proc, or it would look at host processes.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc for the runtime: %w", err)
	}
	// The runtime mounts these itself; stubs it would create outside
	// other mounts would land in the upperdir, so create and record them
	// here.
	for _, m := range cfg.Spec.Mounts {
		_, rel, err := t.resolve(m.Destination)
		if err != nil {
			return err
		}
		if t.underMount(rel) {
			continue
		}
		if _, err := t.mountpoint(m.Destination, isFileBind(m)); err != nil {
			return err
		}
	}
	b, err := json.Marshal(cfg.Spec)
	if err != nil {
		return fmt.Errorf("encoding runtime config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Bundle, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("writing runtime config: %w", err)
	}
	writeMessage(status, initMessage{Cleanup: t.entries})
	t.entries = nil
	if err := waitNetwork(cfg); err != nil {
		return err
	}
	argv := []string{filepath.Base(cfg.Runtime), "--root", cfg.StateDir, "--log", cfg.Log, "--log-format", "json",
		"run", "--bundle", cfg.Bundle, cfg.ID}
	err = syscall.Exec(cfg.Runtime, argv, os.Environ())
	return fmt.Errorf("executing %s: %w", cfg.Runtime, err)
}
