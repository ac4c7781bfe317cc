package main

import (
	"context"
	"fmt"
	"os"

	"github.com/builder-project/builder/builder"
)

func init() {
	register("run", "Run a command in a new container from an image", cmdRun)
}

func cmdRun(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("run")
	fs.SetInterspersed(false)
	detach := fs.BoolP("detach", "d", false, "run the container in the background and print its ID")
	interactive := fs.BoolP("interactive", "i", false, "keep standard input open")
	tty := fs.BoolP("tty", "t", false, "allocate a pseudo-terminal")
	rm := fs.Bool("rm", false, "remove the container when it exits (not with -d)")
	name := fs.String("name", "", "name the container (default IMAGE-working-container)")
	network := fs.String("network", "default", "network mode: default, host or none")
	envs := fs.StringArrayP("env", "e", nil, "set environment variables (K=V, or K for the caller's value)")
	user := fs.StringP("user", "u", "", "user name or UID[:GID]")
	workdir := fs.StringP("workdir", "w", "", "working directory inside the container")
	entrypoint := fs.String("entrypoint", "", "override the image's ENTRYPOINT")
	volumes := fs.StringArrayP("volume", "v", nil, "bind mount a host directory: HOSTDIR:DIR[:ro]")
	runtime := fs.String("runtime", "", "runtime: builtin (default); runc, crun or a path run attached and without -t only")
	isolation := isolationFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	iso, err := isolation()
	if err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return fmt.Errorf("\"builder run\" requires at least 1 argument: IMAGE [COMMAND [ARG...]]")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	opts := builder.RunOptions{
		CreateOptions: builder.CreateOptions{
			Image: fs.Arg(0), Name: *name, Cmd: fs.Args()[1:], Env: *envs, User: *user, Workdir: *workdir,
			Network: *network, Volumes: *volumes, Runtime: *runtime, Tty: *tty, Interactive: *interactive, AutoRemove: *rm,
			Isolation: iso,
		},
		Detach: *detach, Stdout: os.Stdout, Stderr: os.Stderr,
	}
	if fs.Changed("entrypoint") {
		opts.Entrypoint = []string{}
		if *entrypoint != "" {
			opts.Entrypoint = []string{*entrypoint}
		}
	}
	if *interactive {
		opts.Stdin = os.Stdin
	}
	restore := func() {}
	if *tty && !*detach {
		opts.Resize, restore = attachTerminal(*interactive)
	}
	res, err := b.Run(ctx, opts)
	restore()
	if err != nil {
		// As docker run: 125 when no process ran, else the process's code.
		printError(err)
		code := res.ExitCode
		if code == 0 {
			code = 125
		}
		return exitError{code: code}
	}
	if *detach {
		fmt.Println(res.ID)
	}
	if res.ExitCode != 0 {
		return exitError{code: res.ExitCode}
	}
	return nil
}
