package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
)

func init() {
	register("version", "Show the builder version information", cmdVersion)
}

// versionInfo is what version prints, with the field names of docker's
// version --format templates (its Client part).
type versionInfo struct {
	Version, GitCommit, GoVersion, Os, Arch, BuildTime string
}

func cmdVersion(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("version")
	format := fs.StringP("format", "f", "", "format the output with a Go template (e.g. '{{.Version}}'), or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v := versionInfo{Version: "(devel)", GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.GitCommit = s.Value
			case "vcs.time":
				v.BuildTime = s.Value
			}
		}
	}
	if *format == "" {
		*format = "Version:     {{.Version}}\nGo version:  {{.GoVersion}}\n{{if .GitCommit}}Git commit:  {{.GitCommit}}\n{{end}}" +
			"{{if .BuildTime}}Built:       {{.BuildTime}}\n{{end}}OS/Arch:     {{.Os}}/{{.Arch}}"
	}
	return printRows(os.Stdout, *format, "", versionInfo{}, []versionInfo{v})
}
