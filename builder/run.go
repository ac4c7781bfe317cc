package builder

import (
	"context"
	"fmt"
	"io"

	"github.com/builder-project/builder/executor"
)

// RunOptions configure Run.
type RunOptions struct {
	// Image names the image to run.
	Image string
	// Cmd replaces the image's CMD when non-empty.
	Cmd []string
	// Entrypoint replaces the image's ENTRYPOINT when non-nil.
	Entrypoint []string
	// Env adds KEY=VALUE entries.
	Env []string
	// User and Workdir override the image's when set.
	User, Workdir string
	// Network is "default", "host" or "none".
	Network string
	// Runtime selects the OCI runtime, as in BuildOptions.
	Runtime string
	// Stdin, Stdout and Stderr connect the process.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Run runs a container from a stored image, as docker run --rm does, and
// returns the process's exit code. Its changes are discarded.
func (b *Builder) Run(ctx context.Context, opts RunOptions) (int, error) {
	img, err := b.resolve(ctx, opts.Image)
	if err != nil {
		return 0, err
	}
	c := img.config.Config
	args := append(append([]string(nil), c.Entrypoint...), c.Cmd...)
	if opts.Entrypoint != nil {
		args = append(append([]string(nil), opts.Entrypoint...), c.Cmd...)
	}
	if len(opts.Cmd) > 0 {
		ep := c.Entrypoint
		if opts.Entrypoint != nil {
			ep = opts.Entrypoint
		}
		args = append(append([]string(nil), ep...), opts.Cmd...)
	}
	if len(args) == 0 {
		return 0, fmt.Errorf("no command specified: image %s has no CMD or ENTRYPOINT", opts.Image)
	}
	spec := executor.Spec{Args: args, Env: append(append([]string(nil), c.Env...), opts.Env...), Cwd: c.WorkingDir, User: c.User, Network: opts.Network}
	if opts.User != "" {
		spec.User = opts.User
	}
	if opts.Workdir != "" {
		spec.Cwd = opts.Workdir
	}
	ex, err := b.executor(opts.Runtime)
	if err != nil {
		return 0, err
	}
	lease, err := b.st.Lease()
	if err != nil {
		return 0, err
	}
	defer lease.Release()
	a, err := b.st.Snapshots().Prepare(ctx, "", img.layers)
	if err != nil {
		return 0, err
	}
	defer a.Remove()
	spec.Lowers, spec.Upper, spec.Work = a.Lowers, a.Upper, a.Work
	err = ex.Run(ctx, spec, executor.IO{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr})
	if ee, ok := err.(*executor.ExitError); ok {
		return ee.Code, nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// Reexec runs the container side of the built-in runtime when this process
// was started as one, and reports whether it did. Call it first thing in
// main (and in TestMain of packages whose tests build or run images).
func Reexec() bool { return executor.Init() }
