package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// runCommand executes a RUN step in a fresh container on the stage's layers.
func (bd *build) runCommand(ctx context.Context, s *dockerfile.Stage, res *stageResult, r *dockerfile.Resolved, c *instructions.RunCommand, ev Event) (stepOutcome, error) {
	argv, script, err := dockerfile.RunArgs(c, shellOf(&res.cfg))
	if err != nil {
		return stepOutcome{}, err
	}
	out := stepOutcome{createdBy: runCreatedBy(r, argv)}
	network := instructions.GetNetwork(c)
	if network == "" {
		network = bd.opts.Network
	}
	env := append(r.Env, kvEnv(bd.g.ProxyEnv)...)
	spec := executor.Spec{Args: argv, Env: env, Cwd: res.cfg.Config.WorkingDir, User: res.cfg.Config.User, Network: network}

	var cleanups []func()
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()
	if script != nil {
		dir, release, err := bd.b.st.TempDir("script-")
		if err != nil {
			return out, err
		}
		cleanups = append(cleanups, func() { release() })
		p := filepath.Join(dir, script.Name)
		if err := os.WriteFile(p, []byte(script.Data), 0o755); err != nil {
			return out, err
		}
		spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: p, Destination: dockerfile.InlineScriptDir + script.Name, Options: []string{"ro"}})
	}
	for i, m := range instructions.GetMounts(c) {
		if m.Type == instructions.MountTypeSecret {
			release, err := bd.secretMount(m, &spec)
			if release != nil {
				cleanups = append(cleanups, release)
			}
			if err != nil {
				return out, err
			}
			continue
		}
		em, release, err := bd.runMount(ctx, res, r.Step, i, m)
		if err != nil {
			return out, err
		}
		if release != nil {
			cleanups = append(cleanups, release)
		}
		spec.Mounts = append(spec.Mounts, em)
	}
	layer, err := bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, logs *logWriter) error {
		spec.Lowers, spec.Upper, spec.Work = lowers, upper, work
		err := bd.exec.Run(ctx, spec, executor.IO{Stdout: logs, Stderr: logs})
		var ee *executor.ExitError
		if errors.As(err, &ee) {
			tail := strings.TrimRight(logs.Tail(), "\n")
			msg := fmt.Sprintf("RUN %s: process %q did not complete successfully: exit code: %d", stepLabel(ev), strings.Join(argv, " "), ee.Code)
			if tail != "" {
				msg += "\n" + indent(tail)
			}
			return &StepError{Code: ee.Code, Msg: msg}
		}
		return err
	})
	out.layer = layer
	return out, err
}

// StepError is a RUN step that exited with a non-zero code.
type StepError struct {
	// Code is the exit code of the process.
	Code int
	// Msg describes the step and the tail of its output.
	Msg string
}

func (e *StepError) Error() string { return e.Msg }

func stepLabel(ev Event) string { return fmt.Sprintf("[%s %d/%d]", ev.Stage, ev.Step, ev.Steps) }

func indent(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// runCreatedBy renders a RUN for history as BuildKit does: the build args
// it sees, then the command.
func runCreatedBy(r *dockerfile.Resolved, argv []string) string {
	s := "RUN "
	if len(r.Args) > 0 {
		parts := make([]string, len(r.Args))
		for i, a := range r.Args {
			parts[i] = a.String()
		}
		s += fmt.Sprintf("|%d %s ", len(parts), strings.Join(parts, " "))
	}
	return s + strings.Join(argv, " ") + " # buildkit"
}

func kvEnv(kvs []dockerfile.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.String()
	}
	return out
}

// runMount turns one RUN --mount into an executor mount.
func (bd *build) runMount(ctx context.Context, res *stageResult, st *dockerfile.Step, i int, m *instructions.Mount) (executor.Mount, func(), error) {
	switch m.Type {
	case instructions.MountTypeTmpfs:
		opts := []string{"nosuid", "nodev"}
		if m.SizeLimit > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", m.SizeLimit))
		}
		return executor.Mount{Type: "tmpfs", Destination: m.Target, Options: opts}, nil, nil
	case instructions.MountTypeCache:
		id := m.CacheID
		if id == "" {
			id = m.Target
		}
		locked := m.CacheSharing == instructions.MountSharingLocked || m.CacheSharing == instructions.MountSharingPrivate
		dir, release, err := bd.b.st.CacheMount(id, locked)
		if err != nil {
			return executor.Mount{}, nil, err
		}
		opts := []string{"rbind", "rw"}
		if m.ReadOnly {
			opts = []string{"rbind", "ro"}
		}
		return executor.Mount{Type: "bind", Source: dir, Destination: m.Target, Options: opts}, release, nil
	case instructions.MountTypeBind:
		return bd.bindMount(ctx, res, st, i, m)
	default:
		return executor.Mount{}, nil, fmt.Errorf("RUN --mount=type=%s is not supported", m.Type)
	}
}

// withSnapshot prepares an active snapshot on the stage's layers, calls fn
// with its lowers, upper and work dirs, and turns what fn left in the
// upperdir into the step's layer (nil when nothing changed). Step events
// are reported around it.
func (bd *build) withSnapshot(ctx context.Context, res *stageResult, ev Event, fn func(lowers []string, upper, work string, logs *logWriter) error) (*newImageLayer, error) {
	start := time.Now()
	ev.Kind = StepStarted
	bd.ev.emit(ev)
	bd.count(false)
	lo, err := bd.b.lowerDirs(ctx, layerDescs(res.layers), res.diffIDs())
	if err != nil {
		return nil, err
	}
	a, err := bd.b.st.Snapshots().Prepare(ctx, "")
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			a.Remove()
		}
	}()
	logs := &logWriter{e: bd.ev, base: ev}
	err = fn(lo, a.Upper, a.Work, logs)
	if err == nil {
		var l *newImageLayer
		l, committed, err = bd.commitUpper(ctx, res, a, lo)
		if err == nil {
			ev.Kind, ev.Duration = StepDone, time.Since(start)
			bd.ev.emit(ev)
			return l, nil
		}
	}
	ev.Kind, ev.Duration, ev.Err = StepDone, time.Since(start), err
	bd.ev.emit(ev)
	return nil, err
}

// SecretSource is where a --secret value comes from: a file or an
// environment variable of the builder process.
type SecretSource struct {
	File string
	Env  string
}

// secretMount exposes a build secret to a RUN step: as a read-only file
// (mode 0400 unless mode= says otherwise) at target (default
// /run/secrets/<id>), and/or as an environment variable with env=. The
// value never enters a layer, the config, the history or the cache key.
func (bd *build) secretMount(m *instructions.Mount, spec *executor.Spec) (func(), error) {
	id := m.CacheID
	if id == "" && m.Target != "" {
		id = path.Base(m.Target)
	}
	src, ok := bd.opts.Secrets[id]
	if !ok {
		if m.Required {
			return nil, fmt.Errorf("secret %q is required but was not provided (use --secret id=%s,src=FILE)", id, id)
		}
		return nil, nil
	}
	var value []byte
	var err error
	if src.Env != "" {
		v, set := os.LookupEnv(src.Env)
		if !set {
			return nil, fmt.Errorf("secret %q: environment variable %s is not set", id, src.Env)
		}
		value = []byte(v)
	} else if value, err = os.ReadFile(src.File); err != nil {
		return nil, fmt.Errorf("reading secret %q: %w", id, err)
	}
	if m.Env != nil {
		name := *m.Env
		if name == "" {
			name = id
		}
		spec.Env = append(spec.Env, name+"="+string(value))
		if m.Target == "" {
			return nil, nil
		}
	}
	target := m.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	dir, release, err := bd.b.st.TempDir("secret-")
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o400)
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode)
	}
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, value, mode); err != nil {
		release()
		return nil, err
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if err := os.Chown(file, uid, gid); err != nil {
		release()
		return nil, err
	}
	os.Chmod(file, mode) // WriteFile's mode is filtered by the umask
	spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: file, Destination: target, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	return func() { release() }, nil
}
