package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/platform"
	"github.com/builder-project/builder/internal/store"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// BuildOptions configure Build. The zero value of each optional field means
// docker's default.
type BuildOptions struct {
	// ContextDir is the build context directory.
	ContextDir string
	// Dockerfile is the Dockerfile's path; default ContextDir/Dockerfile.
	Dockerfile string
	// DockerfileData, when non-nil, is the Dockerfile (read from stdin by
	// `-f -`); Dockerfile then only names it in messages.
	DockerfileData []byte
	// Tags name the result; none leaves it dangling.
	Tags []string
	// BuildArgs are --build-arg values.
	BuildArgs map[string]string
	// Target is the stage to build; default the last one.
	Target string
	// NoCache rebuilds every step.
	NoCache bool
	// NoCacheFilter names stages rebuilt without the cache.
	NoCacheFilter []string
	// Labels are added to the final image's config.
	Labels map[string]string
	// Network is the default network of RUN steps: "default" (the host's,
	// as there is no other here), "host" or "none".
	Network string
	// Secrets are the values RUN --mount=type=secret can use, by id.
	Secrets map[string]SecretSource
	// Runtime selects the OCI runtime: "" (built in), "runc", "crun" or a path.
	Runtime string
	// Jobs bounds how many stages build at once; 0 builds every stage as
	// soon as the stages it depends on are done, as BuildKit does.
	Jobs int
	// Progress receives events; nil discards them.
	Progress func(Event)
	// Outputs are where the image goes. None keeps it in the store, tagged
	// with Tags (dangling without); a list without an OutputImage entry
	// writes it only to its outputs (Tags then only name it in archives).
	Outputs []Output
	// CacheFrom are the build caches imported before the build: local
	// layouts (written by ExportCache or CacheTo) and registry caches
	// (see ParseCacheFrom). As in docker, an unusable one is reported as a
	// Warning event, not an error.
	CacheFrom []CacheSource
	// CacheTo are where the build cache is exported after the build: local
	// layouts (every record, see ExportCache) and registry caches (the
	// records of this build's steps, see CacheDest.Mode).
	CacheTo []CacheDest
	// Pull is the pull policy of the images the build names: PullMissing
	// (the default), PullAlways or PullNever.
	Pull string
	// Platform ("os/arch[/variant]") is the platform the image is built
	// for: FROM pulls it and TARGETPLATFORM names it. RUN steps need the
	// host's platform (there is no emulation). Default the host's.
	Platform string
	// Registry configures access to registries (insecure registries, the
	// config file).
	Registry RegistryOptions
	// Isolation sets the seccomp profile and resource limits of RUN steps.
	Isolation
	// Squash collapses the layers the build adds to its base image into
	// one (a file a later step deletes then takes no space). The steps
	// are cached as usual, each with its own layer.
	Squash bool
	// SourceDateEpoch, when set, makes the build reproducible as
	// SOURCE_DATE_EPOCH does in BuildKit: it is the config's created time
	// and that of every history entry the build adds (the base image's
	// are kept), every mtime newer than it in the layers the build makes
	// becomes it (older ones stay), and the Dockerfile sees it as the
	// build arg SOURCE_DATE_EPOCH. Nil takes it from that build arg when
	// BuildArgs sets it, else the build has none. Only whole seconds count.
	SourceDateEpoch *time.Time
}

// BuildResult describes a finished build.
type BuildResult struct {
	// ID is the image ID (config digest).
	ID digest.Digest
	// Manifest describes the image manifest in the store.
	Manifest ocispec.Descriptor
	// Steps and Cached count executed steps and cache hits.
	Steps, Cached int
	// Duration is the wall time of the build.
	Duration time.Duration
}

// build is the state of one Build call.
type build struct {
	b      *Builder
	opts   BuildOptions
	g      *dockerfile.Graph
	exec   executor.Executor
	ev     *emitter
	ignore *dockerfile.Ignore
	// target is the platform of stages without FROM --platform.
	target ocispec.Platform
	// pulls makes stages that need the same image pull it once.
	pulls singleflight.Group

	// caches are the registry caches imported and the records each stage
	// used, for the cache export.
	caches buildCaches

	mu      sync.Mutex
	results map[*dockerfile.Stage]*stageResult
	steps   int
	cached  int
}

// Build builds a Dockerfile and stores the resulting image.
func (b *Builder) Build(ctx context.Context, opts BuildOptions) (*BuildResult, error) {
	start := time.Now()
	ev, closeEv := newEmitter(opts.Progress)
	defer closeEv()
	src, name, err := readDockerfile(opts)
	if err != nil {
		return nil, err
	}
	if opts, err = withSourceDateEpoch(opts); err != nil {
		return nil, err
	}
	target := platform.Host()
	if opts.Platform != "" {
		if target, err = platform.Parse(opts.Platform); err != nil {
			return nil, err
		}
	}
	switch opts.Pull {
	case "", PullMissing, PullAlways, PullNever:
	default:
		return nil, fmt.Errorf("--pull %q: want missing, always or never", opts.Pull)
	}
	g, err := dockerfile.Parse(name, src, dockerfile.Options{BuildArgs: opts.BuildArgs, Target: opts.Target, TargetPlatform: target})
	if err != nil {
		return nil, err
	}
	for _, w := range g.Warnings {
		ev.emit(Event{Kind: Warning, Message: w})
	}
	tags, err := normalizeTags(opts.Tags)
	if err != nil {
		return nil, err
	}
	for _, o := range opts.Outputs {
		if err := o.check(); err != nil {
			return nil, err
		}
	}
	if err := opts.Isolation.check(); err != nil {
		return nil, err
	}
	for _, c := range opts.CacheFrom {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("--cache-from: %w", err)
		}
	}
	for _, c := range opts.CacheTo {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("--cache-to: %w", err)
		}
	}
	if err := checkNetwork(opts.Network); err != nil {
		return nil, err
	}
	if opts.ContextDir == "" {
		return nil, errors.New("no build context directory")
	}
	if fi, err := os.Stat(opts.ContextDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", opts.ContextDir)
	}
	// Every step resolves paths against the context (copies, bind mount
	// sources, checksums), some in other processes or after a chdir: it
	// is absolute from here on.
	if opts.ContextDir, err = filepath.Abs(opts.ContextDir); err != nil {
		return nil, fmt.Errorf("build context %s: %w", opts.ContextDir, err)
	}
	bd := &build{b: b, opts: opts, g: g, ev: ev, target: target, results: map[*dockerfile.Stage]*stageResult{}}
	dfPath := opts.Dockerfile
	if opts.DockerfileData != nil {
		dfPath = ""
	}
	patterns, err := dockerfile.ReadIgnore(opts.ContextDir, dfPath)
	if err != nil {
		return nil, err
	}
	// A store inside the context (build --root ./store .) is never part of
	// it: a COPY or bind mount of the context would copy the store into
	// itself. The pattern comes last, so no "!" line brings it back.
	if rel, ok := storeInContext(opts.ContextDir, b.Root()); ok {
		patterns = append(patterns, rel)
	}
	if bd.ignore, err = dockerfile.NewIgnore(patterns); err != nil {
		return nil, err
	}
	if bd.exec, err = b.executor(opts.Runtime); err != nil {
		return nil, err
	}
	bd.importCaches(ctx)
	if opts.Network == "" || opts.Network == executor.NetworkDefault {
		if err := executor.CheckNetwork(); err != nil {
			ev.emit(Event{Kind: Warning, Message: err.Error()})
		}
	}
	lease, err := b.st.Lease()
	if err != nil {
		return nil, err
	}
	defer lease.Release()

	if err := bd.runStages(ctx); err != nil {
		return nil, err
	}
	final := bd.results[g.Target]
	cfg := final.cfg
	// The image's creation time is that of its last step, so that a fully
	// cached rebuild yields the same image ID; SOURCE_DATE_EPOCH fixes it.
	created := bd.now()
	if n := len(cfg.History); n > 0 && cfg.History[n-1].Created != nil && opts.SourceDateEpoch == nil {
		created = *cfg.History[n-1].Created
	}
	cfg.Created = &created
	if len(opts.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		for k, v := range opts.Labels {
			cfg.Config.Labels[k] = v
		}
	}
	// Layers hit in a registry cache are downloaded now if still missing.
	if err := bd.fetchLayers(ctx, final.layers); err != nil {
		return nil, err
	}
	layers := final.layers
	if opts.Squash {
		if layers, cfg.History, err = b.squash(ctx, opts.Runtime, final.parent, layers, cfg.History, opts.SourceDateEpoch); err != nil {
			return nil, err
		}
	}
	id, mdesc, err := b.commitImage(ctx, cfg, layers, tags, final.parent, keepsImage(opts.Outputs))
	if err != nil {
		return nil, err
	}
	if err := bd.keepRemoteRecords(ctx); err != nil {
		ev.emit(Event{Kind: Warning, Message: err.Error()})
	}
	res := &BuildResult{ID: id, Manifest: mdesc, Steps: bd.steps, Cached: bd.cached, Duration: time.Since(start)}
	ev.emit(Event{Kind: BuildDone, Message: fmt.Sprintf("built %s in %.2fs: %d steps, %d cached", store.ShortID(id), res.Duration.Seconds(), res.Steps+res.Cached, res.Cached)})
	for _, o := range opts.Outputs {
		if err := b.export(ctx, o, id, mdesc, tags, PushOptions{RegistryOptions: opts.Registry, Progress: ev.emit}); err != nil {
			return nil, err
		}
	}
	if err := bd.exportCaches(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

func readDockerfile(opts BuildOptions) ([]byte, string, error) {
	name := opts.Dockerfile
	if opts.DockerfileData != nil {
		if name == "" {
			name = "Dockerfile"
		}
		return opts.DockerfileData, name, nil
	}
	if name == "" {
		name = filepath.Join(opts.ContextDir, "Dockerfile")
	}
	src, err := os.ReadFile(name)
	if err != nil {
		return nil, "", fmt.Errorf("reading Dockerfile: %w", err)
	}
	display := name
	if rel, err := filepath.Rel(opts.ContextDir, name); err == nil && !filepath.IsAbs(rel) && rel != "" && rel[0] != '.' {
		display = rel
	}
	return src, display, nil
}

// runStages builds every needed stage, each as soon as the stages it depends
// on are done, at most Jobs at a time when Jobs is set.
func (bd *build) runStages(ctx context.Context) error {
	needed := bd.g.Needed()
	jobs := bd.opts.Jobs
	if jobs <= 0 {
		jobs = len(needed) // all at once, as BuildKit does
	}
	sem := make(chan struct{}, jobs)
	done := map[*dockerfile.Stage]chan struct{}{}
	for _, s := range needed {
		done[s] = make(chan struct{})
		bd.results[s] = &stageResult{}
	}
	eg, ctx := errgroup.WithContext(ctx)
	for _, s := range needed {
		eg.Go(func() error {
			for _, d := range s.Deps {
				select {
				case <-done[d]:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			defer func() { <-sem }()
			if err := bd.runStage(ctx, s); err != nil {
				return err
			}
			close(done[s])
			return nil
		})
	}
	return eg.Wait()
}

// result returns the finished result of a stage this stage depends on.
func (bd *build) result(s *dockerfile.Stage) *stageResult {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	return bd.results[s]
}

func (bd *build) count(cached bool) {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	if cached {
		bd.cached++
	} else {
		bd.steps++
	}
}

// storeInContext returns the path of the store root relative to the
// context directory, as an ignore pattern, when the store lies inside it.
func storeInContext(contextDir, root string) (string, bool) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if real, err := filepath.EvalSymlinks(contextDir); err == nil {
		contextDir = real
	}
	rel, err := filepath.Rel(contextDir, abs)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	// Ignore patterns treat *, ?, [ and \ as special: match them literally.
	var b strings.Builder
	for _, r := range filepath.ToSlash(rel) {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String(), true
}

// checkNetwork refuses a --network other than default, none or host.
func checkNetwork(mode string) error {
	switch mode {
	case "", executor.NetworkDefault, executor.NetworkNone, executor.NetworkHost:
		return nil
	}
	return fmt.Errorf("--network %q: want default, none or host", mode)
}
