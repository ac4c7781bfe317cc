package executor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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

// Run implements Executor. A helper process unshares a mount namespace,
// mounts the overlay on the bundle's rootfs, creates mountpoint stubs,
// writes config.json and execs "<runtime> run", so the rootfs mount exists
// only in that namespace and vanishes with the container.
func (r *ociRuntime) Run(ctx context.Context, s Spec, stdio IO) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := prepare(s)
	if err != nil {
		return err
	}
	defer p.close()
	cfg := p.config(modeRuntime)
	cfg.Spec.Root.Path = p.rootfs
	cfg.Runtime = r.path
	cfg.Bundle = p.dir
	cfg.StateDir = filepath.Join(p.dir, "state")
	cfg.ID = "builder-" + randomHostname()
	cfg.Log = filepath.Join(p.dir, "runtime.log")
	if err := os.Mkdir(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating runtime state directory: %w", err)
	}
	cancel := func(cmd *exec.Cmd) {
		// Until the runtime has created the container there is nothing to
		// kill, so keep trying while the helper lives.
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			for i := 0; i < 50; i++ {
				_ = r.command(cfg.StateDir, "kill", cfg.ID, "KILL").Run()
				if cmd.Process.Signal(syscall.Signal(0)) != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			_ = cmd.Process.Kill()
		}()
		<-exited
	}
	st, res, err := runHelper(ctx, cfg, syscall.CLONE_NEWNS, stdio, cancel)
	// "run" deletes the container when it ends normally; a forced delete
	// covers a killed or failed runtime.
	_ = r.command(cfg.StateDir, "delete", "-f", cfg.ID).Run()
	return finish(ctx, p, st, res, err, func() error { return r.logError(cfg.Log) })
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
	if err := prepareRootfs(cfg, t); err != nil {
		return err
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
	argv := []string{filepath.Base(cfg.Runtime), "--root", cfg.StateDir, "--log", cfg.Log, "--log-format", "json",
		"run", "--bundle", cfg.Bundle, cfg.ID}
	err = syscall.Exec(cfg.Runtime, argv, os.Environ())
	return fmt.Errorf("executing %s: %w", cfg.Runtime, err)
}
