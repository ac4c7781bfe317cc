package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/builder-project/builder/builder"
)

func init() {
	register("info", "Display what the builder found: rootless or root, id maps, overlay, runtime, seccomp, network, store", cmdInfo)
}

func cmdInfo(_ context.Context, g *globals, args []string) error {
	fs := g.flags("info")
	format := fs.String("format", "", "output format: json, or text (default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("info takes no arguments")
	}
	i := builder.HostInfo(g.root)
	switch *format {
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(i)
	case "", "text":
		printInfo(os.Stdout, i)
		return nil
	}
	return fmt.Errorf("--format %q: want json or text", *format)
}

func printInfo(w io.Writer, i builder.SystemInfo) {
	mode := "root"
	if i.Rootless {
		mode = "rootless"
	}
	fmt.Fprintf(w, "Mode: %s\n", mode)
	fmt.Fprintf(w, "User namespace: %s\n", i.UserNamespace)
	fmt.Fprintf(w, "UID map: %s\n", i.UIDMap)
	fmt.Fprintf(w, "GID map: %s\n", i.GIDMap)
	xattrs := "trusted.overlay.*"
	if i.Overlay == "userxattr" {
		xattrs = "user.overlay.*"
	}
	fmt.Fprintf(w, "Overlay: kernel overlayfs, %s (whiteouts and opaque directories in %s xattrs)\n", i.Overlay, xattrs)
	rt := "builtin"
	names := make([]string, 0, len(i.Runtimes))
	for n := range i.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rt += fmt.Sprintf(", %s (%s)", n, i.Runtimes[n])
	}
	fmt.Fprintf(w, "Runtimes: %s\n", rt)
	sc := "docker's default profile"
	if !i.Seccomp {
		sc = "not supported by the kernel"
	}
	fmt.Fprintf(w, "Seccomp: %s\n", sc)
	if i.NAT != "" {
		fmt.Fprintf(w, "Network: %s (%s)\n", i.NAT, i.NATPath)
	} else {
		fmt.Fprintf(w, "Network: none, RUN has loopback only (%s)\n", i.NATError)
	}
	if i.Cgroup != "" {
		fmt.Fprintf(w, "Cgroups: %s\n", i.Cgroup)
	} else {
		fmt.Fprintf(w, "Cgroups: none: %s; RUN steps and containers run without one: no --memory, --cpus or --pids-limit, and a running container cannot be paused\n", i.CgroupError)
	}
	fmt.Fprintf(w, "Store: %s\n", i.Store)
}
