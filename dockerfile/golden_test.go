package dockerfile

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenOptions are fixed so golden files do not depend on the host.
func goldenOptions(t *testing.T, dir string) Options {
	t.Helper()
	opts := Options{
		BuildPlatform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		BuildArgs:     map[string]string{},
	}
	// Optional "args" file: one KEY=VALUE per line; "target=NAME" sets
	// the target. A file that exists but cannot be read fails the case
	// rather than running it with the wrong options.
	dt, err := os.ReadFile(filepath.Join(dir, "args"))
	if errors.Is(err, fs.ErrNotExist) {
		return opts
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(dt)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			t.Fatalf("%s/args: line %q is not KEY=VALUE", dir, line)
		}
		if k == "target" {
			opts.Target = v
		} else {
			opts.BuildArgs[k] = v
		}
	}
	return opts
}

func TestGraphGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/graph/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			g, err := Parse("Dockerfile", src, goldenOptions(t, dir))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			compareGolden(t, filepath.Join(dir, "graph.golden"), dumpGraph(t, g))
		})
	}
}

func TestNegativeGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/negative/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no negative cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse("Dockerfile", src, goldenOptions(t, dir))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			got := fmt.Sprintf("%s\nlines %d-%d\n", err.Error(), de.StartLine, de.EndLine)
			compareGolden(t, filepath.Join(dir, "error.golden"), got)
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s mismatch\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// dumpGraph renders g as stable text: stages, deps, needed order and steps
// with their line ranges, visible args and resolved sources.
func dumpGraph(t *testing.T, g *Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "target: %s\n", g.Target.DisplayName())
	var needed []string
	for _, s := range g.Needed() {
		needed = append(needed, s.DisplayName())
	}
	fmt.Fprintf(&b, "needed: %s\n", strings.Join(needed, " "))
	keys := make([]string, 0, len(g.Directives))
	for k := range g.Directives {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "directive: %s=%s\n", k, g.Directives[k])
	}
	if g.EscapeToken != '\\' {
		fmt.Fprintf(&b, "escape: %c\n", g.EscapeToken)
	}
	for _, kv := range g.MetaArgs {
		fmt.Fprintf(&b, "meta: %s\n", kv)
	}
	for _, w := range g.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	for _, s := range g.Stages {
		fmt.Fprintf(&b, "\nstage %d %s: FROM %s", s.Index, s.DisplayName(), s.BaseName)
		if s.BaseStage != nil {
			fmt.Fprintf(&b, " (stage %d)", s.BaseStage.Index)
		}
		if s.Platform != "" {
			fmt.Fprintf(&b, " platform=%s", s.Platform)
		}
		fmt.Fprintf(&b, " @%s\n", s.Location)
		var deps []string
		for _, d := range s.Deps {
			deps = append(deps, d.DisplayName())
		}
		if len(deps) > 0 {
			fmt.Fprintf(&b, "  deps: %s\n", strings.Join(deps, " "))
		}
		for _, st := range s.Steps {
			fmt.Fprintf(&b, "  %s %s\n", st.Location, st.Original)
			if st.Trigger {
				b.WriteString("    trigger\n")
			}
			if len(st.Args) > 0 {
				var args []string
				for _, a := range st.Args {
					args = append(args, a.String())
				}
				fmt.Fprintf(&b, "    args: %s\n", strings.Join(args, " "))
			}
			if st.FromStage != nil {
				fmt.Fprintf(&b, "    from stage: %s\n", st.FromStage.DisplayName())
			}
			if st.FromImage != "" {
				fmt.Fprintf(&b, "    from image: %s\n", st.FromImage)
			}
			for _, m := range st.Mounts {
				if m.Stage != nil {
					fmt.Fprintf(&b, "    mount %d from stage: %s\n", m.Index, m.Stage.DisplayName())
				} else {
					fmt.Fprintf(&b, "    mount %d from image: %s\n", m.Index, m.Image)
				}
			}
			dumpBodies(&b, st.Command)
		}
	}
	return b.String()
}

// dumpBodies prints heredoc bodies so golden files prove they are reachable.
func dumpBodies(b *strings.Builder, c instructions.Command) {
	switch c := c.(type) {
	case *instructions.RunCommand:
		for _, f := range c.Files {
			fmt.Fprintf(b, "    heredoc %s chomp=%v: %q\n", f.Name, f.Chomp, f.Data)
		}
	case *instructions.CopyCommand:
		for _, f := range c.SourceContents {
			fmt.Fprintf(b, "    heredoc %s expand=%v: %q\n", f.Path, f.Expand, f.Data)
		}
	case *instructions.AddCommand:
		for _, f := range c.SourceContents {
			fmt.Fprintf(b, "    heredoc %s expand=%v: %q\n", f.Path, f.Expand, f.Data)
		}
	}
}
