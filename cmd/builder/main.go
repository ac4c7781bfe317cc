// Command builder builds container images from Dockerfiles and manages a
// local image store, with docker's verbs and flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/builder-project/builder/builder"
	"github.com/spf13/pflag"
)

// verb is one subcommand: it parses its own flags from args.
type verb struct {
	summary string
	run     func(ctx context.Context, g *globals, args []string) error
}

var verbs = map[string]verb{}

func register(name, summary string, run func(ctx context.Context, g *globals, args []string) error) {
	verbs[name] = verb{summary: summary, run: run}
}

// globals are the flags every verb accepts, before the verb or after it.
type globals struct {
	root string
}

func (g *globals) open() (*builder.Builder, error) {
	return builder.Open(g.root)
}

// flags returns the flag set of the verb name, holding the global flags
// (their defaults are what was given before the verb) and printing the
// verb's help (help.go) on -h.
func (g *globals) flags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	root := g.root
	if root == "" {
		root = builder.DefaultRoot()
	}
	fs.StringVar(&g.root, "root", root, "store root directory ($BUILDER_ROOT)")
	fs.SortFlags = false
	fs.Usage = func() { printVerbHelp(os.Stdout, name, fs) }
	return fs
}

// exitError carries a process exit code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	if reexec() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		printError(err)
		os.Exit(1)
	}
}

// run parses the global flags before the verb, as docker, podman and
// buildah do (`builder --root DIR images`), then runs the verb, which may
// be named through one of docker's management groups (`image ls`).
func run(ctx context.Context, args []string) error {
	g := &globals{}
	args, err := g.parseLeading(args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		usage()
		return nil
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "--help":
		usage()
		return nil
	case "-v", "--version":
		name = "version"
	case "help":
		if len(rest) == 0 {
			usage()
			return nil
		}
		name, rest = rest[0], append(rest[1:], "--help")
	}
	if grp, ok := groups[name]; ok {
		if name, rest, err = grp.resolve(name, rest); err != nil || name == "" {
			return err
		}
	}
	v, ok := verbs[name]
	if !ok {
		return unknownCommand(name)
	}
	err = v.run(ctx, g, rest)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	return err
}

// parseLeading consumes the global flags before the verb and returns the
// arguments from the verb on.
func (g *globals) parseLeading(args []string) ([]string, error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		a := args[0]
		switch {
		case a == "--root":
			if len(args) < 2 {
				return nil, fmt.Errorf("flag needs an argument: --root")
			}
			g.root, args = args[1], args[2:]
		case strings.HasPrefix(a, "--root="):
			g.root, args = strings.TrimPrefix(a, "--root="), args[1:]
		case a == "-h" || a == "--help" || a == "-v" || a == "--version":
			return args, nil
		default:
			return nil, fmt.Errorf("unknown flag %s before the command (see 'builder --help')", a)
		}
	}
	return args, nil
}

// unknownCommand is the one-line error for a verb that does not exist,
// naming the nearest one.
func unknownCommand(name string) error {
	if s := suggest(name, commandNames()); s != "" {
		return fmt.Errorf("unknown command %q: did you mean %s? (see 'builder --help')", name, s)
	}
	return fmt.Errorf("unknown command %q (see 'builder --help')", name)
}

// commandNames lists what may follow "builder": verbs, then groups (a
// verb wins a tie: imags is images, not image).
func commandNames() []string {
	return append(append(topVerbs(), "help"), groupNames()...)
}

// topVerbs returns the verbs usage lists, sorted: all but those reached
// through a group only (image-prune is "image prune").
func topVerbs() []string {
	var names []string
	for n := range verbs {
		if !strings.Contains(n, "-") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// groupNames returns the management commands, sorted.
func groupNames() []string {
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func printError(err error) {
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
}
