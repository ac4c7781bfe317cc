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

// globals are the flags every verb accepts.
type globals struct {
	root string
}

func (g *globals) open() (*builder.Builder, error) {
	return builder.Open(g.root)
}

func (g *globals) flags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.StringVar(&g.root, "root", builder.DefaultRoot(), "store root directory ($BUILDER_ROOT)")
	fs.SortFlags = false
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

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return nil
	}
	v, ok := verbs[args[0]]
	if !ok {
		usage()
		return fmt.Errorf("unknown command %q", args[0])
	}
	g := &globals{}
	err := v.run(ctx, g, args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	return err
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: builder COMMAND [OPTIONS]\n\nCommands:")
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'builder COMMAND --help' for a command's options.")
}

func printError(err error) {
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
}
