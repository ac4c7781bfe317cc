package main

import (
	"context"
	"fmt"
	"os"

	"github.com/builder-project/builder/builder"
)

func init() {
	register("run", "Run a command in a new container from an image (changes are discarded)", cmdRun)
}

func cmdRun(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("run")
	fs.SetInterspersed(false)
	rm := fs.Bool("rm", true, "remove the container when it exits (always: containers are not kept yet)")
	network := fs.String("network", "default", "network mode: default, host or none")
	envs := fs.StringArrayP("env", "e", nil, "set environment variables")
	user := fs.StringP("user", "u", "", "user name or UID[:GID]")
	workdir := fs.StringP("workdir", "w", "", "working directory inside the container")
	entrypoint := fs.String("entrypoint", "", "override the image's ENTRYPOINT")
	runtime := fs.String("runtime", "", "OCI runtime: builtin (default), runc, crun or a path")
	interactive := fs.BoolP("interactive", "i", false, "keep standard input open")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_ = rm
	if fs.NArg() < 1 {
		return fmt.Errorf("\"builder run\" requires at least 1 argument: IMAGE [COMMAND [ARG...]]")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	opts := builder.RunOptions{Image: fs.Arg(0), Cmd: fs.Args()[1:], Env: *envs, User: *user, Workdir: *workdir, Network: *network, Runtime: *runtime, Stdout: os.Stdout, Stderr: os.Stderr}
	if fs.Changed("entrypoint") {
		opts.Entrypoint = []string{}
		if *entrypoint != "" {
			opts.Entrypoint = []string{*entrypoint}
		}
	}
	if *interactive {
		opts.Stdin = os.Stdin
	}
	code, err := b.Run(ctx, opts)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}
