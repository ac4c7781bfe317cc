package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/copier"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copySpec is what COPY and ADD share.
type copySpec struct {
	add     bool
	from    string
	srcs    []string
	dest    string
	chown   string
	chmod   string
	link    bool
	exclude []string
	parents bool
	files   []instructions.SourceContent
}

func copyFrom(c *instructions.CopyCommand) copySpec {
	return copySpec{from: c.From, srcs: c.SourcePaths, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod, link: c.Link, exclude: c.ExcludePatterns, parents: c.Parents, files: c.SourceContents}
}

func copyFromAdd(c *instructions.AddCommand) copySpec {
	return copySpec{add: true, srcs: c.SourcePaths, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod, link: c.Link, exclude: c.ExcludePatterns, files: c.SourceContents}
}

// copySource is where a COPY reads from: the context directory, or the
// layers of a stage or image mounted read-only.
type copySource struct {
	dir    string   // a plain directory (the context)
	lowers []string // snapshot dirs, topmost first, when reading a rootfs
	ignore bool     // apply .dockerignore (context only)
}

func (bd *build) copySourceFor(ctx context.Context, r *dockerfile.Resolved, spec copySpec) (copySource, error) {
	st := r.Step
	switch {
	case st.FromStage != nil:
		src := bd.result(st.FromStage)
		lo, err := bd.b.lowerDirs(ctx, layerDescs(src.layers), src.diffIDs())
		return copySource{lowers: lo}, err
	case st.FromImage != "":
		img, err := bd.b.resolve(ctx, st.FromImage)
		if err != nil {
			return copySource{}, fmt.Errorf("COPY --from=%s: %w (builder has no registry access yet: load or import the image first)", st.FromImage, err)
		}
		lo, err := bd.b.lowerDirs(ctx, img.manifest.Layers, img.config.RootFS.DiffIDs)
		return copySource{lowers: lo}, err
	}
	return copySource{dir: bd.opts.ContextDir, ignore: true}, nil
}

// copyCommand executes COPY or ADD: the sources are copied into the merged
// root filesystem of the stage, mounted in a private mount namespace.
func (bd *build) copyCommand(ctx context.Context, res *stageResult, r *dockerfile.Resolved, spec copySpec, ev Event) (stepOutcome, error) {
	out := stepOutcome{createdBy: copyCreatedBy(r, spec)}
	src, err := bd.copySourceFor(ctx, r, spec)
	if err != nil {
		return out, err
	}
	opts := bd.copyOptions(res, spec, src.ignore)
	l, err := bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, _ *logWriter) error {
		mounts := []executor.RootfsMount{{Lowers: lowers, Upper: upper, Work: work}}
		if src.dir == "" {
			mounts = append(mounts, executor.RootfsMount{Lowers: src.lowers})
		}
		return executor.WithRootfs(mounts, func(roots []string) error {
			srcRoot := src.dir
			if srcRoot == "" {
				srcRoot = roots[1]
			}
			_, err := copier.Copy(ctx, srcRoot, roots[0], opts)
			return err
		})
	})
	out.layer = l
	return out, err
}

// workdirCommand creates the WORKDIR directory, as docker does; the step has
// a layer only when the directory did not exist.
func (bd *build) workdirCommand(ctx context.Context, res *stageResult, r *dockerfile.Resolved, ev Event) (stepOutcome, error) {
	out := stepOutcome{createdBy: createdBy(r)}
	wd := res.cfg.Config.WorkingDir
	l, err := bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, _ *logWriter) error {
		return executor.WithRootfs([]executor.RootfsMount{{Lowers: lowers, Upper: upper, Work: work}}, func(roots []string) error {
			root, err := os.OpenRoot(roots[0])
			if err != nil {
				return err
			}
			defer root.Close()
			rel := strings.TrimPrefix(wd, "/")
			if rel == "" {
				return nil
			}
			return root.MkdirAll(rel, 0o755)
		})
	})
	out.layer = l
	return out, err
}

func copyCreatedBy(r *dockerfile.Resolved, spec copySpec) string {
	name := "COPY"
	if spec.add {
		name = "ADD"
	}
	var flags []string
	if spec.from != "" {
		flags = append(flags, "--from="+spec.from)
	}
	if spec.chown != "" {
		flags = append(flags, "--chown="+spec.chown)
	}
	if spec.chmod != "" {
		flags = append(flags, "--chmod="+spec.chmod)
	}
	parts := append([]string{name}, flags...)
	parts = append(parts, spec.srcs...)
	parts = append(parts, spec.dest)
	return strings.Join(parts, " ") + " # buildkit"
}

func layerDescs(ls []newImageLayer) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, len(ls))
	for i, l := range ls {
		out[i] = l.Desc
	}
	return out
}

// commitUpper turns an upperdir into the step's layer and commits the
// snapshot under the new chain ID. An empty upperdir gives no layer.
func (bd *build) commitUpper(ctx context.Context, res *stageResult, a *store.Active, lowers []string) (*newImageLayer, bool, error) {
	entries, err := os.ReadDir(a.Upper)
	if err != nil {
		return nil, false, err
	}
	if len(entries) == 0 {
		return nil, false, nil
	}
	l, size, err := bd.b.writeLayer(ctx, func(w io.Writer) error {
		return layer.Diff(ctx, a.Upper, layer.DiffOptions{Lowers: lowers}, w)
	})
	if err != nil {
		return nil, false, fmt.Errorf("writing layer: %w", err)
	}
	chain := layer.ChainID(append(res.diffIDs(), l.DiffID))
	if _, err := a.Commit(chain); err != nil {
		return nil, false, err
	}
	if err := bd.b.st.Update(func(idx *store.Index) error {
		idx.AddLayer(l.DiffID, size, l.Desc)
		return nil
	}); err != nil {
		return nil, true, err
	}
	return &newImageLayer{Layer: l, Size: size}, true, nil
}

// copySpecOf returns the copy description of a COPY or ADD command.
func copySpecOf(c instructions.Command) copySpec {
	if a, ok := c.(*instructions.AddCommand); ok {
		return copyFromAdd(a)
	}
	return copyFrom(c.(*instructions.CopyCommand))
}

// copyOptions turns a copy description into copier options for the stage.
func (bd *build) copyOptions(res *stageResult, spec copySpec, fromContext bool) copier.Options {
	opts := copier.Options{
		Sources: spec.srcs, Dest: spec.dest, Workdir: res.cfg.Config.WorkingDir,
		Chown: spec.chown, Chmod: spec.chmod, Exclude: spec.exclude, Parents: spec.parents,
		Add: spec.add, Link: spec.link,
	}
	for _, f := range spec.files {
		opts.Heredocs = append(opts.Heredocs, copier.Heredoc{Name: f.Path, Data: f.Data})
	}
	if fromContext {
		opts.Ignore = bd.ignore.Match
		opts.CanSkipDir = bd.ignore.CanSkipDir
	}
	return opts
}
