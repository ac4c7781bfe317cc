package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/store"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// runPlan is a RUN step: the process, its environment, network and mounts,
// resolved against the stage.
type runPlan struct {
	cmd      *instructions.RunCommand // expanded
	argv     []string                 // the process, shell included
	script   *dockerfile.InlineFile   // a "#!" heredoc run as a file
	args     []dockerfile.KeyValue    // build args in scope
	env      []string                 // environment, build args included
	proxyEnv []string                 // proxy args: in the environment, not in the key
	user     string
	cwd      string
	network  string // effective network mode
	security string
	seccomp  string // the build's --security-opt seccomp=, "" for the default
	mounts   []*mountPlan
	history  string
}

func (bd *build) newRunPlan(ctx context.Context, res *stageResult, r *dockerfile.Resolved, c *instructions.RunCommand) (*runPlan, error) {
	if err := canRun(res.platform); err != nil {
		return nil, err
	}
	argv, script, err := dockerfile.RunArgs(c, shellOf(&res.cfg))
	if err != nil {
		return nil, err
	}
	p := &runPlan{
		cmd: c, argv: argv, script: script, args: r.Args, env: r.Env, proxyEnv: kvEnv(bd.g.ProxyEnv),
		user: res.cfg.Config.User, cwd: res.cfg.Config.WorkingDir,
		network: string(instructions.GetNetwork(c)), security: instructions.GetSecurity(c), seccomp: bd.opts.Seccomp,
		history: runCreatedBy(r, argv),
	}
	if p.network == "" || p.network == instructions.NetworkDefault {
		p.network = bd.opts.Network // the build's default (--network)
	}
	if p.network == "" {
		p.network = executor.NetworkDefault
	}
	for i, m := range instructions.GetMounts(c) {
		mp, err := bd.newMountPlan(ctx, res, r.Step, i, m)
		if err != nil {
			return nil, err
		}
		p.mounts = append(p.mounts, mp)
	}
	return p, nil
}

// runKey is the part of a RUN's key that KeyInput has no field for.
type runKey struct {
	Cmd    *instructions.RunCommand `json:"cmd"` // command line, heredoc bodies, flags used
	Argv   []string                 `json:"argv"`
	Script *dockerfile.InlineFile   `json:"script,omitempty"`
	User   string                   `json:"user,omitempty"`
	Cwd    string                   `json:"cwd,omitempty"`
}

func (p *runPlan) key() cache.KeyInput {
	data, err := json.Marshal(runKey{Cmd: p.cmd, Argv: p.argv, Script: p.script, User: p.user, Cwd: p.cwd})
	if err != nil {
		panic("builder: encoding RUN key: " + err.Error()) // strings and bools only
	}
	in := cache.KeyInput{
		Instruction: "RUN " + string(data),
		Env:         p.env,
		Flags:       []cache.KV{{Name: "network", Value: p.network}, {Name: "security", Value: p.security}, {Name: "seccomp", Value: p.seccomp}},
	}
	for _, a := range p.args {
		in.Args = append(in.Args, cache.KV{Name: a.Key, Value: a.Value})
	}
	for _, m := range p.mounts {
		in.Mounts = append(in.Mounts, m.key())
	}
	return in
}

func (p *runPlan) createdBy() string { return p.history }

// execute runs the process in a fresh container on the stage's layers.
func (p *runPlan) execute(ctx context.Context, bd *build, res *stageResult, ev Event) (*store.Layer, error) {
	spec := executor.Spec{Args: p.argv, Env: append(append([]string(nil), p.env...), p.proxyEnv...), Cwd: p.cwd, User: p.user, Network: p.network}
	bd.opts.Isolation.apply(&spec)
	var cleanups []func()
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()
	if p.script != nil {
		dir, release, err := bd.b.st.TempDir("script-")
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { release() })
		f := filepath.Join(dir, p.script.Name)
		if err := os.WriteFile(f, []byte(p.script.Data), 0o755); err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: f, Destination: dockerfile.InlineScriptDir + p.script.Name, Options: []string{"ro"}})
	}
	for _, m := range p.mounts {
		release, err := m.mount(ctx, bd, &spec)
		if release != nil {
			cleanups = append(cleanups, release)
		}
		if err != nil {
			return nil, err
		}
	}
	return bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, logs *logWriter) error {
		spec.Lowers, spec.Upper, spec.Work = lowers, upper, work
		err := bd.exec.Run(ctx, spec, executor.IO{Stdout: logs, Stderr: logs})
		var ee *executor.ExitError
		if errors.As(err, &ee) {
			tail := strings.TrimRight(logs.Tail(), "\n")
			msg := fmt.Sprintf("RUN %s: process %q did not complete successfully: exit code: %d", stepLabel(ev), strings.Join(p.argv, " "), ee.Code)
			if tail != "" {
				msg += "\n" + indent(tail)
			}
			return &StepError{Code: ee.Code, Msg: msg}
		}
		return err
	})
}

// StepError is a RUN step that exited with a non-zero code.
type StepError struct {
	// Code is the exit code of the process.
	Code int
	// Msg describes the step and the tail of its output.
	Msg string
}

// Error implements error.
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
