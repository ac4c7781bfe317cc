package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/builder-project/builder/builder"
	"github.com/builder-project/builder/dockerfile"
)

func init() {
	register("build", "Build an image from a Dockerfile", cmdBuild)
}

func cmdBuild(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("build")
	tags := fs.StringArrayP("tag", "t", nil, "name and optionally a tag (name:tag)")
	file := fs.StringP("file", "f", "", "name of the Dockerfile (default CONTEXT/Dockerfile; - reads standard input)")
	buildArgs := fs.StringArray("build-arg", nil, "set a build-time variable (K=V, or K to take it from the environment)")
	target := fs.String("target", "", "build this stage")
	noCache := fs.Bool("no-cache", false, "do not use the cache")
	noCacheFilter := fs.StringArray("no-cache-filter", nil, "do not use the cache for these stages")
	labels := fs.StringArray("label", nil, "set a label on the image (K=V)")
	iidfile := fs.String("iidfile", "", "write the image ID to this file")
	network := fs.String("network", "default", "network of RUN steps: default, none or host")
	outputs := fs.StringArrayP("output", "o", nil, "output: type=image|oci|docker|local|tar,dest=PATH; oci and docker take compression=gzip|zstd|uncompressed,compression-level=N,force-compression=true; local needs an empty or missing dest unless force=true, which merges into it (image entries replace same-named ones, nothing else is deleted)")
	progress := fs.String("progress", "auto", "progress output: "+progressModes)
	quiet := fs.BoolP("quiet", "q", false, "suppress the build output and print the image ID")
	jobs := fs.Int("jobs", 0, "how many stages may build at once (default: all that are ready)")
	runtime := fs.String("runtime", "", "OCI runtime for RUN: builtin (default), runc, crun or a path")
	secrets := fs.StringArray("secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR")
	cacheFrom := fs.StringArray("cache-from", nil, "import build cache: type=local,src=DIR or type=registry,ref=REF (or a bare REF)")
	cacheTo := fs.StringArray("cache-to", nil, "export build cache: type=local,dest=DIR or type=registry,ref=REF[,mode=min|max][,compression=gzip|zstd|uncompressed][,compression-level=N][,force-compression=true][,image-manifest=true][,ignore-error=true]")
	pull := fs.String("pull", builder.PullMissing, "pull images: missing (default), always (--pull) or never (--pull=false)")
	fs.Lookup("pull").NoOptDefVal = builder.PullAlways
	platform := fs.String("platform", "", "build for this platform (os/arch[/variant]); RUN needs the host's")
	reg := registryFlags(fs)
	isolation := isolationFlags(fs)
	push := fs.Bool("push", false, "push the image to its registry (shorthand for --output type=registry)")
	squash := fs.Bool("squash", false, "squash the layers the build adds to its base image into one")
	epoch := fs.String("source-date-epoch", "", "reproducible build: created times and layer mtimes newer than these seconds since 1970 become them (default $SOURCE_DATE_EPOCH)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder build\" requires exactly 1 argument: CONTEXT (a directory)")
	}
	opts := builder.BuildOptions{
		ContextDir: fs.Arg(0), Tags: *tags, Target: *target, NoCache: *noCache, NoCacheFilter: *noCacheFilter,
		Network: *network, Runtime: *runtime, Jobs: *jobs, BuildArgs: map[string]string{}, Labels: map[string]string{},
		Pull: pullPolicy(*pull), Platform: *platform, Registry: reg(), Squash: *squash,
	}
	iso, err := isolation()
	if err != nil {
		return err
	}
	opts.Isolation = iso
	for _, sec := range *secrets {
		id, src, err := parseSecret(sec)
		if err != nil {
			return err
		}
		if opts.Secrets == nil {
			opts.Secrets = map[string]builder.SecretSource{}
		}
		opts.Secrets[id] = src
	}
	if opts.ContextDir == "-" {
		if *file == "-" {
			return fmt.Errorf("cannot read both the context and the Dockerfile from standard input")
		}
		dir, dockerfile, cleanup, err := builder.ContextFromReader(os.Stdin)
		if err != nil {
			return err
		}
		defer cleanup()
		opts.ContextDir = dir
		if dockerfile != nil {
			opts.DockerfileData = dockerfile
			opts.Dockerfile = "Dockerfile"
		}
	}
	for _, a := range *buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		opts.BuildArgs[k] = v
	}
	for _, l := range *labels {
		k, v, _ := strings.Cut(l, "=")
		opts.Labels[k] = v
	}
	if opts.SourceDateEpoch, err = sourceDateEpoch(*epoch, opts.BuildArgs); err != nil {
		return err
	}
	switch *file {
	case "-":
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("reading Dockerfile from standard input: %w", err)
		}
		opts.DockerfileData = data
	case "":
	default:
		opts.Dockerfile = *file
	}
	var stdout *bufio.Writer // an archive or tar written to standard output (dest=-)
	for _, o := range *outputs {
		out, err := builder.ParseOutput(o)
		if err != nil {
			return err
		}
		if out.Dest == "-" {
			if out.Type != builder.OutputTar && out.Type != builder.OutputOCI && out.Type != builder.OutputDocker {
				return fmt.Errorf("--output type=%s cannot write to standard output (dest=-)", out.Type)
			}
			if stdout != nil {
				return fmt.Errorf("--output: only one output can write to standard output")
			}
			if err := checkNotTerminal(os.Stdout); err != nil {
				return err
			}
			stdout = bufio.NewWriterSize(os.Stdout, 1<<20)
			out.Writer = stdout
		}
		opts.Outputs = append(opts.Outputs, out)
	}
	if *push {
		opts.Outputs = append(opts.Outputs, builder.Output{Type: builder.OutputRegistry})
	}
	for _, c := range *cacheFrom {
		src, err := builder.ParseCacheFrom(c)
		if err != nil {
			return fmt.Errorf("--cache-from: %w", err)
		}
		opts.CacheFrom = append(opts.CacheFrom, src)
	}
	for _, c := range *cacheTo {
		dest, err := builder.ParseCacheTo(c)
		if err != nil {
			return fmt.Errorf("--cache-to: %w", err)
		}
		opts.CacheTo = append(opts.CacheTo, dest)
	}
	mode := *progress
	if *quiet {
		mode = "quiet"
	}
	r, err := newRenderer(mode, os.Stderr)
	if err != nil {
		return err
	}
	opts.Progress = r.event
	b, err := g.open()
	if err != nil {
		return err
	}
	res, err := b.Build(ctx, opts)
	r.close(err)
	if err != nil {
		return buildError(err, opts)
	}
	if stdout != nil {
		if err := stdout.Flush(); err != nil {
			return fmt.Errorf("writing the output to standard output: %w", err)
		}
	}
	if *iidfile != "" {
		if err := os.WriteFile(*iidfile, []byte(res.ID.String()), 0o644); err != nil {
			return err
		}
	}
	if mode == "quiet" {
		if stdout == nil { // else standard output holds the tar
			fmt.Println(res.ID)
		}
	} else {
		fmt.Fprintf(os.Stderr, "Successfully built %s\n", strings.TrimPrefix(res.ID.String(), "sha256:")[:12])
		for _, t := range *tags {
			fmt.Fprintf(os.Stderr, "Successfully tagged %s\n", t)
		}
	}
	return nil
}

// buildError renders a Dockerfile error with the lines it points at.
func buildError(err error, opts builder.BuildOptions) error {
	var de *dockerfile.Error
	if !errors.As(err, &de) || de.StartLine <= 0 {
		return err
	}
	src := opts.DockerfileData
	if src == nil {
		name := opts.Dockerfile
		if name == "" {
			name = filepath.Join(opts.ContextDir, "Dockerfile")
		}
		src, _ = os.ReadFile(name)
	}
	lines := strings.Split(string(src), "\n")
	fmt.Fprintln(os.Stderr, "------")
	end := de.EndLine
	if end < de.StartLine {
		end = de.StartLine
	}
	for n := max(1, de.StartLine-2); n <= min(len(lines), end+1); n++ {
		mark := "  "
		if n >= de.StartLine && n <= end {
			mark = ">>>"
		}
		fmt.Fprintf(os.Stderr, " %3s %4d | %s\n", mark, n, lines[n-1])
	}
	fmt.Fprintln(os.Stderr, "------")
	var se *builder.StepError
	if errors.As(err, &se) {
		printError(err)
		return exitError{code: 1}
	}
	return err
}

// parseSecret parses docker's --secret value: id=ID with src=FILE (also
// source=, or type=file) or env=VAR (type=env); a bare id reads $ID.
func parseSecret(s string) (string, builder.SecretSource, error) {
	var id, typ, src, env string
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "id":
			id = v
		case "type":
			typ = v
		case "src", "source":
			src = v
		case "env":
			env = v
		default:
			return "", builder.SecretSource{}, fmt.Errorf("--secret %q: unknown key %q", s, k)
		}
	}
	if id == "" {
		return "", builder.SecretSource{}, fmt.Errorf("--secret %q: id= is required", s)
	}
	switch {
	case typ == "env" || env != "":
		if env == "" {
			env = src
		}
		if env == "" {
			env = id
		}
		return id, builder.SecretSource{Env: env}, nil
	case src != "":
		return id, builder.SecretSource{File: src}, nil
	}
	return id, builder.SecretSource{Env: id}, nil
}

// pullPolicy maps --pull's values, docker's booleans included, to a policy.
func pullPolicy(v string) string {
	switch strings.ToLower(v) {
	case "true":
		return builder.PullAlways
	case "false":
		return builder.PullNever
	}
	return v
}

// sourceDateEpoch returns the build's SOURCE_DATE_EPOCH: --source-date-epoch,
// else a --build-arg SOURCE_DATE_EPOCH (which the build reads itself), else
// the environment's, as buildx passes it; nil for none.
func sourceDateEpoch(flag string, buildArgs map[string]string) (*time.Time, error) {
	if flag == "" {
		if _, ok := buildArgs[builder.SourceDateEpochArg]; ok {
			return nil, nil
		}
		if flag = os.Getenv("SOURCE_DATE_EPOCH"); flag == "" {
			return nil, nil
		}
		t, err := builder.ParseSourceDateEpoch(flag)
		if err != nil {
			return nil, fmt.Errorf("environment variable %w", err)
		}
		return &t, nil
	}
	t, err := builder.ParseSourceDateEpoch(flag)
	if err != nil {
		return nil, fmt.Errorf("--source-date-epoch: %w", err)
	}
	return &t, nil
}
