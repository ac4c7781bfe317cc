package main

import (
	"context"
	"fmt"

	"github.com/builder-project/builder/builder"
	"github.com/spf13/pflag"
)

func init() {
	register("from", "Create a working container from an image, without running it", cmdFrom)
	register("copy", "Copy host files into a container", cmdCopy)
	register("config", "Change a container's config (what it runs, what a commit writes)", cmdConfig)
	register("mount", "Mount a container's root filesystem on the host and print its path", cmdMount)
	register("umount", "Unmount a container's root filesystem", cmdUmount)
	register("commit", "Create a new image from a container's changes, or from a directory", cmdCommit)
}

func cmdFrom(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("from")
	name := fs.String("name", "", "name the container (default IMAGE-working-container)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder from\" requires exactly 1 argument: IMAGE")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	c, err := b.Create(ctx, builder.CreateOptions{Image: fs.Arg(0), Name: *name})
	if err != nil {
		return err
	}
	fmt.Println(c.Name)
	return nil
}

func cmdCopy(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("copy")
	chown := fs.String("chown", "", "owner of the copied files: USER[:GROUP]")
	chmod := fs.String("chmod", "", "mode of the copied files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 3 {
		return fmt.Errorf("\"builder copy\" requires at least 3 arguments: CONTAINER SRC... DEST")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	n := fs.NArg()
	return b.Copy(ctx, builder.CopyOptions{Container: fs.Arg(0), Sources: fs.Args()[1 : n-1], Dest: fs.Arg(n - 1), Chown: *chown, Chmod: *chmod})
}

func cmdConfig(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("config")
	cmd := fs.String("cmd", "", "default command: a JSON array, or a command line for the shell")
	entrypoint := fs.String("entrypoint", "", "entrypoint: a JSON array, or a command line for the shell")
	envs := fs.StringArrayP("env", "e", nil, "set KEY=VALUE, or remove KEY-")
	labels := fs.StringArrayP("label", "l", nil, "set KEY=VALUE, or remove KEY-")
	workdir := fs.String("workdir", "", "working directory")
	user := fs.StringP("user", "u", "", "user name or UID[:GID]")
	ports := fs.StringArrayP("port", "p", nil, "expose a port: PORT[/PROTO]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder config\" requires exactly 1 argument: CONTAINER")
	}
	opts := builder.ConfigOptions{Container: fs.Arg(0), Env: *envs, Labels: *labels, Ports: *ports,
		Cmd: changed(fs, "cmd", cmd), Entrypoint: changed(fs, "entrypoint", entrypoint), Workdir: changed(fs, "workdir", workdir), User: changed(fs, "user", user)}
	b, err := g.open()
	if err != nil {
		return err
	}
	return b.ConfigureContainer(ctx, opts)
}

// changed returns v when the flag name was given, else nil.
func changed(fs *pflag.FlagSet, name string, v *string) *string {
	if fs.Changed(name) {
		return v
	}
	return nil
}

func cmdMount(ctx context.Context, g *globals, args []string) error {
	return oneContainer(ctx, g, "mount", args, func(b *builder.Builder, ref string) error {
		dir, err := b.Mount(ctx, ref)
		if err == nil {
			fmt.Println(dir)
		}
		return err
	})
}

func cmdUmount(ctx context.Context, g *globals, args []string) error {
	return oneContainer(ctx, g, "umount", args, func(b *builder.Builder, ref string) error { return b.Unmount(ctx, ref) })
}

// oneContainer parses a verb that takes one container and no flags.
func oneContainer(ctx context.Context, g *globals, verb string, args []string, fn func(*builder.Builder, string) error) error {
	fs := g.flags(verb)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder %s\" requires exactly 1 argument: CONTAINER", verb)
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	return fn(b, fs.Arg(0))
}

func cmdCommit(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("commit")
	author := fs.StringP("author", "a", "", "author (e.g. \"Jane Doe <jane@example.com>\")")
	msg := fs.StringP("message", "m", "", "commit message")
	changes := fs.StringArrayP("change", "c", nil, "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)")
	pause := fs.BoolP("pause", "p", true, "freeze a running container while its changes are read")
	squash := fs.Bool("squash", false, "squash the container's changes and the layers its image added to its base into one layer")
	rootfs := fs.String("rootfs", "", "commit this directory instead of a container (with --base)")
	base := fs.String("base", "", "with --rootfs: the image the directory was made from (default scratch)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	var id fmt.Stringer
	if *rootfs != "" {
		if fs.NArg() > 1 {
			return fmt.Errorf("\"builder commit --rootfs DIR\" takes at most 1 argument: [REPOSITORY[:TAG]]")
		}
		id, err = b.CommitRootfs(ctx, builder.CommitRootfsOptions{Dir: *rootfs, Base: *base, Ref: fs.Arg(0), Author: *author, Message: *msg, Changes: *changes})
	} else {
		if fs.NArg() < 1 || fs.NArg() > 2 {
			return fmt.Errorf("\"builder commit\" requires 1 or 2 arguments: CONTAINER [REPOSITORY[:TAG]]")
		}
		id, err = b.Commit(ctx, builder.CommitOptions{Container: fs.Arg(0), Ref: fs.Arg(1), Author: *author, Message: *msg, Changes: *changes, NoPause: !*pause, Squash: *squash})
	}
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}
