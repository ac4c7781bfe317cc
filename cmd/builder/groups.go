package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// alias is what a management group's subcommand runs: a verb, with
// arguments put before the user's.
type alias struct {
	verb string
	args []string
}

// group is one of docker's management commands (`docker image ls`): its
// subcommands are other names of builder's verbs.
type group struct {
	summary string
	subs    map[string]alias
}

// groups are docker's management commands, as aliases of builder's verbs.
var groups = map[string]group{
	"image": {summary: "Manage images", subs: map[string]alias{
		"build": {verb: "build"}, "history": {verb: "history"}, "import": {verb: "import"},
		"inspect": {verb: "inspect", args: []string{"--type", "image"}}, "load": {verb: "load"},
		"ls": {verb: "images"}, "list": {verb: "images"}, "prune": {verb: "image-prune"},
		"pull": {verb: "pull"}, "push": {verb: "push"}, "rm": {verb: "rmi"}, "remove": {verb: "rmi"},
		"save": {verb: "save"}, "tag": {verb: "tag"},
	}},
	"container": {summary: "Manage containers", subs: map[string]alias{
		"commit": {verb: "commit"}, "diff": {verb: "diff"}, "exec": {verb: "exec"}, "export": {verb: "export"},
		"inspect": {verb: "inspect", args: []string{"--type", "container"}}, "kill": {verb: "kill"},
		"logs": {verb: "logs"}, "ls": {verb: "ps"}, "list": {verb: "ps"}, "ps": {verb: "ps"},
		"rm": {verb: "rm"}, "remove": {verb: "rm"}, "run": {verb: "run"}, "start": {verb: "start"}, "stop": {verb: "stop"},
	}},
	"builder": {summary: "Manage builds and the build cache", subs: map[string]alias{
		"build": {verb: "build"}, "prune": {verb: "cache", args: []string{"prune"}}, "du": {verb: "cache", args: []string{"du"}},
	}},
	"system": {summary: "Manage the store", subs: map[string]alias{
		"prune": {verb: "prune"}, "info": {verb: "info"},
	}},
}

// resolve returns the verb and arguments `builder NAME args...` runs; an
// empty verb means the group's usage was printed.
func (g group) resolve(name string, args []string) (string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		g.usage(os.Stdout, name)
		return "", nil, nil
	}
	a, ok := g.subs[args[0]]
	if !ok || verbs[a.verb].run == nil {
		msg := fmt.Sprintf("unknown command \"%s %s\"", name, args[0])
		if s := suggest(args[0], g.names()); s != "" {
			msg += ": did you mean " + name + " " + s + "?"
		}
		return "", nil, fmt.Errorf("%s (see 'builder %s --help')", msg, name)
	}
	return a.verb, append(slices.Clone(a.args), args[1:]...), nil
}

// names lists the group's subcommands that builder has.
func (g group) names() []string {
	var out []string
	for n, a := range g.subs {
		if verbs[a.verb].run != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (g group) usage(w io.Writer, name string) {
	fmt.Fprintf(w, "Usage:  builder %s COMMAND\n\n%s\n\nCommands:\n", name, g.summary)
	for _, n := range g.names() {
		a := g.subs[n]
		target := strings.Join(append([]string{a.verb}, a.args...), " ")
		fmt.Fprintf(w, "  %-9s %s (builder %s)\n", n, verbs[a.verb].summary, target)
	}
	fmt.Fprintf(w, "\nRun 'builder %s COMMAND --help' for more information on a command.\n", name)
}

// usage prints the list of commands.
func usage() {
	w := os.Stdout
	fmt.Fprint(w, "Usage:  builder [--root DIR] COMMAND [OPTIONS]\n\nBuild container images from Dockerfiles and manage a local image store.\n\nCommands:\n")
	for _, n := range topVerbs() {
		fmt.Fprintf(w, "  %-9s %s\n", n, verbs[n].summary)
	}
	fmt.Fprint(w, "\nManagement commands (docker's names for the commands above):\n")
	for _, n := range groupNames() {
		fmt.Fprintf(w, "  %-9s %s: %s\n", n, groups[n].summary, strings.Join(groups[n].names(), ", "))
	}
	fmt.Fprint(w, "\nGlobal options (before or after the command):\n  --root DIR   store root directory (default $BUILDER_ROOT, else /var/lib/builder for root, else $XDG_DATA_HOME/builder)\n")
	fmt.Fprint(w, "\nRun 'builder help COMMAND' or 'builder COMMAND --help' for a command's options.\n")
}

// suggest returns the name in names nearest to s (a prefix of it, or at
// most two edits away), the first of equally near ones, or "".
func suggest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		d := editDistance(s, n)
		if len(s) >= 3 && strings.HasPrefix(n, s) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
