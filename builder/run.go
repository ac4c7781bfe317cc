package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/builder-project/builder/executor"
	"github.com/moby/sys/signal"
)

// RunOptions configure Run: the new container, and how its process runs.
type RunOptions struct {
	CreateOptions
	// Detach starts the process in the background and returns once it
	// runs (run -d); its output goes to the container's log (Logs). It
	// cannot be combined with AutoRemove.
	Detach bool
	// Stdin, Stdout and Stderr connect the process when it is attached.
	// With Tty, Stdin and Stdout carry its terminal: the caller puts its
	// own terminal in raw mode, so that ^C reaches the process.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize carries the caller's terminal size (rows, columns) to the
	// process's terminal (Tty): sizes waiting when it starts give its
	// initial size.
	Resize <-chan [2]uint16
}

// RunResult says which container Run created and how its process ended.
type RunResult struct {
	ID, Name string
	// ExitCode is the process's exit status (0 when detached): 128+N when
	// killed by signal N, 127 when the command was not found, 126 when it
	// could not be executed.
	ExitCode int
}

// errDetachedAutoRemove refuses run -d --rm: nothing of builder is left
// running to remove a detached container when its process exits.
var errDetachedAutoRemove = errors.New("--rm cannot be combined with -d: builder has no daemon to remove a detached container when it exits; run it attached, or remove it with 'builder rm -f'")

// Run creates a container from a stored image and runs its command, as
// docker run does. Unless AutoRemove, the container and its changes are
// kept after the process exits, for Commit, Diff, Start and the rest. A
// process that cannot start is reported as an error with the exit code
// docker gives it (125, 126 or 127).
func (b *Builder) Run(ctx context.Context, opts RunOptions) (RunResult, error) {
	if opts.AutoRemove && opts.Detach {
		return RunResult{ExitCode: 125}, errDetachedAutoRemove
	}
	if isOCIRuntime(opts.Runtime) && (opts.Detach || opts.Tty) {
		return RunResult{ExitCode: 125}, fmt.Errorf("--runtime %s: %w", opts.Runtime, errNeedsBuiltinRuntime)
	}
	created, err := b.Create(ctx, opts.CreateOptions)
	if err != nil {
		return RunResult{ExitCode: 125}, err
	}
	res := RunResult{ID: created.ID, Name: created.Name}
	c, err := b.loadContainer(created.ID)
	if err != nil {
		return res, err
	}
	st, err := b.start(ctx, c, opts.Detach, executor.IO{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Resize: opts.Resize})
	res.ExitCode = st.ExitCode
	return res, err
}

// StartOptions configure Start.
type StartOptions struct {
	// Container names the container.
	Container string
	// Attach waits for the process and connects its streams (start -a);
	// without it, the process runs in the background.
	Attach bool
	// Stdin, Stdout, Stderr and Resize connect an attached process, as in
	// RunOptions.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16
}

// Start starts the process of a container that is not running, with the
// container's config, and returns its exit code when attached.
func (b *Builder) Start(ctx context.Context, opts StartOptions) (int, error) {
	c, err := b.loadContainer(opts.Container)
	if err != nil {
		return 0, err
	}
	st, err := b.start(ctx, c, !opts.Attach, executor.IO{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Resize: opts.Resize})
	return st.ExitCode, err
}

// start runs c's process on its persistent snapshot, and removes c once
// an attached process has exited if c was created with AutoRemove.
func (b *Builder) start(ctx context.Context, c *container, detach bool, stdio executor.IO) (ContainerState, error) {
	if c.spec.AutoRemove && detach {
		return ContainerState{}, errDetachedAutoRemove
	}
	st, err := b.startProcess(ctx, c, detach, stdio)
	if c.spec.AutoRemove && !errors.Is(err, ErrConflict) {
		if rerr := b.removeContainer(context.WithoutCancel(ctx), c.rec.ID, true); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return st, err
}

func (b *Builder) startProcess(ctx context.Context, c *container, detach bool, stdio executor.IO) (ContainerState, error) {
	if err := b.checkNotRunning(c, "start"); err != nil {
		return ContainerState{}, err
	}
	if isMounted(c.dirs.Merged) {
		return ContainerState{}, fmt.Errorf("%w: container %s is mounted on the host (builder mount): umount it first", ErrConflict, c.name())
	}
	args := c.command()
	if len(args) == 0 {
		return ContainerState{ExitCode: 125}, fmt.Errorf("no command specified: container %s has no CMD or ENTRYPOINT", c.name())
	}
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return ContainerState{}, err
	}
	cfg := c.spec.Config
	var stopSignal syscall.Signal
	if cfg.StopSignal != "" {
		if stopSignal, err = signal.ParseSignal(cfg.StopSignal); err != nil {
			return ContainerState{}, fmt.Errorf("container %s: STOPSIGNAL: %w", c.name(), err)
		}
	}
	spec := executor.Spec{
		Lowers: a.Lowers, Upper: a.Upper, Work: a.Work,
		Args: args, Env: cfg.Env, Cwd: cfg.WorkingDir, User: cfg.User,
		Hostname: shortContainerID(c.rec.ID), Network: c.spec.Network,
	}
	c.spec.Isolation.apply(&spec)
	for _, v := range c.spec.Volumes {
		m := executor.Mount{Type: "bind", Source: v.Source, Destination: v.Destination}
		if v.ReadOnly {
			m.Options = []string{"ro"}
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	run := executor.ContainerConfig{Spec: spec, ID: c.rec.ID, StateDir: c.dirs.State, Terminal: c.spec.Tty, Detach: detach, StopSignal: stopSignal}
	st, err := b.runtime(c).Start(ctx, c.spec.Runtime, run, stdio)
	if err == nil && st.Status == executor.StatusExited && st.StartedAt.IsZero() {
		// The init could not start the process, and said why on its
		// stderr (in the log when detached).
		switch st.ExitCode {
		case 127:
			err = fmt.Errorf("starting container %s: %s: command not found", c.name(), args[0])
		case 126:
			err = fmt.Errorf("starting container %s: %s: cannot be executed", c.name(), args[0])
		}
	}
	if err != nil && st.ExitCode != 0 {
		return st, &StartError{Code: st.ExitCode, Err: err}
	}
	return st, err
}

// StartError reports that a container's process could not be started;
// Code is the exit status docker gives that (125, 126 or 127).
type StartError struct {
	Code int
	Err  error
}

// Error implements error.
func (e *StartError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// ExecOptions configure Exec.
type ExecOptions struct {
	// Container names a running container.
	Container string
	// Cmd is the process's argv.
	Cmd []string
	// Env adds KEY=VALUE entries to the container's environment.
	Env []string
	// Workdir and User override the container's.
	Workdir, User string
	// Tty runs the process on a pseudo-terminal.
	Tty bool
	// Stdin, Stdout, Stderr and Resize connect the process, as in
	// RunOptions.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16
}

// Exec runs one more process in a running container and returns its exit
// code, as docker exec does.
func (b *Builder) Exec(ctx context.Context, opts ExecOptions) (int, error) {
	c, err := b.loadContainer(opts.Container)
	if err != nil {
		return 0, err
	}
	if len(opts.Cmd) == 0 {
		return 0, errors.New("exec: no command given")
	}
	cfg := c.spec.Config
	p := executor.ProcessSpec{Args: opts.Cmd, Env: addEnv(cfg.Env, opts.Env), Cwd: cfg.WorkingDir, User: cfg.User, Terminal: opts.Tty}
	if opts.Workdir != "" {
		p.Cwd = workdirPath(cfg.WorkingDir, opts.Workdir)
	}
	if opts.User != "" {
		p.User = opts.User
	}
	code, err := b.runtime(c).Exec(ctx, c.dirs.State, p, executor.IO{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Resize: opts.Resize})
	return code, notRunning(c, err)
}

// Stop stops a running container as docker stop does: its stop signal
// (STOPSIGNAL, default SIGTERM), then SIGKILL after timeout.
func (b *Builder) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	c, err := b.loadContainer(ref)
	if err != nil {
		return err
	}
	return b.runtime(c).Stop(ctx, c.dirs.State, timeout)
}

// Kill sends a signal (a name such as "KILL" or "SIGHUP", or a number;
// default SIGKILL) to a running container's process.
func (b *Builder) Kill(ctx context.Context, ref, sig string) error {
	c, err := b.loadContainer(ref)
	if err != nil {
		return err
	}
	if sig == "" {
		sig = "KILL"
	}
	s, err := signal.ParseSignal(sig)
	if err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	return notRunning(c, b.runtime(c).Kill(c.dirs.State, s))
}

// Logs writes to w what a container's process printed while it ran
// detached (run -d, start without Attach): its stdout and stderr
// interleaved, or its terminal's output.
func (b *Builder) Logs(ctx context.Context, ref string, w io.Writer) error {
	c, err := b.loadContainer(ref)
	if err != nil {
		return err
	}
	return b.runtime(c).Logs(c.dirs.State, w)
}

// Reexec runs the container side of the built-in runtime when this process
// was started as one, and reports whether it did. Call it first thing in
// main (and in TestMain of packages whose tests build or run images).
func Reexec() bool { return executor.Init() }
