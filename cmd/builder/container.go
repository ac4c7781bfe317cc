package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/builder-project/builder/builder"
	units "github.com/docker/go-units"
)

func init() {
	register("ps", "List containers", cmdPs)
	register("rm", "Remove one or more containers", cmdRm)
	register("start", "Start a stopped or created container", cmdStart)
	register("stop", "Stop a running container", cmdStop)
	register("kill", "Send a signal to a running container", cmdKill)
	register("exec", "Run a command in a running container", cmdExec)
	register("logs", "Show the output of a container", cmdLogs)
	register("diff", "List the changes of a container's filesystem", cmdDiff)
}

// psRow is one line of ps, with the names docker's --format templates
// (and its --format json) use.
type psRow struct {
	Command, CreatedAt, ID, Image, Labels, Names, RunningFor, State, Status string
}

// psHeader names the columns of a "table" format.
var psHeader = psRow{ID: "CONTAINER ID", Image: "IMAGE", Command: "COMMAND", CreatedAt: "CREATED AT", RunningFor: "CREATED",
	Status: "STATUS", State: "STATE", Names: "NAMES", Labels: "LABELS"}

func newPsRow(s builder.ContainerSummary, noTrunc bool) psRow {
	r := psRow{ID: s.ID, Image: s.Image, CreatedAt: s.Created.Format(dockerTime),
		RunningFor: ago(s.Created), Status: containerStatus(s.State, time.Now()), State: s.State.Status, Names: s.Name}
	cmd := strings.Join(s.Command, " ")
	if !noTrunc {
		r.ID = trunc(s.ID)
		cmd = ellipsize(cmd, 20)
	}
	r.Command = strconv.Quote(cmd)
	var labels []string
	for k, v := range s.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	r.Labels = strings.Join(labels, ",")
	return r
}

// containerStatus is docker's STATUS column.
func containerStatus(st builder.ContainerState, now time.Time) string {
	switch st.Status {
	case "running":
		return "Up " + units.HumanDuration(now.Sub(st.StartedAt))
	case "paused":
		return "Up " + units.HumanDuration(now.Sub(st.StartedAt)) + " (Paused)"
	case "exited":
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(st.FinishedAt)))
	}
	return "Created"
}

func cmdPs(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("ps")
	all := fs.BoolP("all", "a", false, "show all containers (default shows just running)")
	quiet := fs.BoolP("quiet", "q", false, "only display container IDs")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate output")
	filters := fs.StringArrayP("filter", "f", nil, "filter output: id=, name=, status=created|running|paused|exited, ancestor=IMAGE, label=K[=V], exited=CODE")
	format := fs.String("format", "", "output format: table (default), json, or a Go template such as 'table {{.ID}}\\t{{.Names}}'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	list, err := b.Containers(ctx, builder.ContainersOptions{All: *all, Filters: *filters})
	if err != nil {
		return err
	}
	if *quiet {
		for _, s := range list {
			fmt.Println(newPsRow(s, *noTrunc).ID)
		}
		return nil
	}
	rows := make([]psRow, len(list))
	for i, s := range list {
		rows[i] = newPsRow(s, *noTrunc)
	}
	return printRows(os.Stdout, *format, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", psHeader, rows)
}

func cmdRm(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("rm")
	force := fs.BoolP("force", "f", false, "force the removal of a running container (kills it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("\"builder rm\" requires at least 1 argument")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	done, err := b.RemoveContainers(ctx, fs.Args(), *force)
	for _, ref := range done {
		fmt.Println(ref)
	}
	return err
}

func cmdStart(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("start")
	attach := fs.BoolP("attach", "a", false, "attach standard output and error, and wait for the process")
	interactive := fs.BoolP("interactive", "i", false, "attach standard input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder start\" requires exactly 1 argument")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	opts := builder.StartOptions{Container: fs.Arg(0), Attach: *attach || *interactive, Stdout: os.Stdout, Stderr: os.Stderr}
	if *interactive {
		opts.Stdin = os.Stdin
	}
	restore := func() {}
	if opts.Attach {
		c, err := b.InspectContainer(ctx, opts.Container)
		if err != nil {
			return err
		}
		if c.Config.Tty {
			opts.Resize, restore = attachTerminal(*interactive)
		}
	}
	code, err := b.Start(ctx, opts)
	restore()
	if err != nil {
		return processError(err)
	}
	if !opts.Attach {
		fmt.Println(fs.Arg(0))
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

// processError turns a process that could not start into docker's exit
// code for it, after printing why.
func processError(err error) error {
	var se *builder.StartError
	if errors.As(err, &se) {
		printError(err)
		return exitError{code: se.Code}
	}
	return err
}

func cmdStop(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("stop")
	timeout := fs.IntP("time", "t", 10, "seconds to wait before killing the container")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return eachContainer(ctx, g, fs.Args(), "stop", func(b *builder.Builder, ref string) error {
		return b.Stop(ctx, ref, time.Duration(*timeout)*time.Second)
	})
}

func cmdKill(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("kill")
	sig := fs.StringP("signal", "s", "KILL", "signal to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return eachContainer(ctx, g, fs.Args(), "kill", func(b *builder.Builder, ref string) error { return b.Kill(ctx, ref, *sig) })
}

// eachContainer calls fn for each container reference and prints the ones
// it succeeded for, as docker stop and kill do.
func eachContainer(ctx context.Context, g *globals, refs []string, verb string, fn func(*builder.Builder, string) error) error {
	if len(refs) == 0 {
		return fmt.Errorf("\"builder %s\" requires at least 1 argument", verb)
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	var failed error
	for _, ref := range refs {
		if err := fn(b, ref); err != nil {
			printError(err)
			failed = exitError{code: 1}
			continue
		}
		fmt.Println(ref)
	}
	return failed
}

func cmdExec(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("exec")
	fs.SetInterspersed(false)
	interactive := fs.BoolP("interactive", "i", false, "keep standard input open")
	tty := fs.BoolP("tty", "t", false, "allocate a pseudo-terminal")
	envs := fs.StringArrayP("env", "e", nil, "set environment variables")
	user := fs.StringP("user", "u", "", "user name or UID[:GID]")
	workdir := fs.StringP("workdir", "w", "", "working directory inside the container")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return fmt.Errorf("\"builder exec\" requires at least 2 arguments: CONTAINER COMMAND [ARG...]")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	opts := builder.ExecOptions{Container: fs.Arg(0), Cmd: fs.Args()[1:], Env: *envs, User: *user, Workdir: *workdir, Tty: *tty, Stdout: os.Stdout, Stderr: os.Stderr}
	if *interactive {
		opts.Stdin = os.Stdin
	}
	restore := func() {}
	if *tty {
		opts.Resize, restore = attachTerminal(*interactive)
	}
	code, err := b.Exec(ctx, opts)
	restore()
	if err != nil {
		return processError(err)
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

func cmdLogs(ctx context.Context, g *globals, args []string) error {
	return oneContainer(ctx, g, "logs", args, func(b *builder.Builder, ref string) error { return b.Logs(ctx, ref, os.Stdout) })
}

func cmdDiff(ctx context.Context, g *globals, args []string) error {
	return oneContainer(ctx, g, "diff", args, func(b *builder.Builder, ref string) error {
		changes, err := b.Diff(ctx, ref)
		for _, c := range changes {
			fmt.Println(c.Kind, c.Path)
		}
		return err
	})
}
