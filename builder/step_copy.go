package builder

import (
	"context"
	"fmt"
	"strings"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/copier"
	"github.com/builder-project/builder/internal/store"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	digest "github.com/opencontainers/go-digest"
)

// copySpec is what COPY and ADD share, with every flag of both.
type copySpec struct {
	add      bool
	from     string
	srcs     []string
	dest     string
	chown    string
	chmod    string
	link     bool
	exclude  []string
	parents  bool
	unpack   *bool
	checksum string
	files    []instructions.SourceContent
}

func copyFrom(c *instructions.CopyCommand) copySpec {
	return copySpec{from: c.From, srcs: c.SourcePaths, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod, link: c.Link, exclude: c.ExcludePatterns, parents: c.Parents, files: c.SourceContents}
}

func copyFromAdd(c *instructions.AddCommand) copySpec {
	return copySpec{add: true, srcs: c.SourcePaths, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod, link: c.Link, exclude: c.ExcludePatterns, unpack: c.Unpack, checksum: c.Checksum, files: c.SourceContents}
}

// copyPlan is a COPY or ADD step. Its sources are resolved once: from the
// context, the checksum of exactly the files it reads; from another stage,
// that stage's result key; from an image, its manifest digest.
type copyPlan struct {
	cmd     instructions.Command // *CopyCommand or *AddCommand, expanded
	spec    copySpec
	opts    copier.Options
	stage   *dockerfile.Stage // COPY --from a stage
	image   *stored           // COPY --from an image
	sum     digest.Digest     // what the sources hold
	history string
}

func (bd *build) newCopyPlan(ctx context.Context, res *stageResult, r *dockerfile.Resolved, spec copySpec) (*copyPlan, error) {
	st := r.Step
	p := &copyPlan{cmd: r.Command, spec: spec, stage: st.FromStage, history: copyCreatedBy(spec)}
	fromContext := st.FromStage == nil && st.FromImage == ""
	p.opts = bd.copyOptions(res.cfg.Config.WorkingDir, spec, fromContext)
	switch {
	case st.FromStage != nil:
		p.sum = bd.result(st.FromStage).key
	case st.FromImage != "":
		img, err := bd.image(ctx, st.FromImage, res.platform)
		if err != nil {
			return nil, fmt.Errorf("COPY --from=%s: %w", st.FromImage, err)
		}
		p.image, p.sum = img, img.rec.Manifest.Digest
	default:
		sum, err := bd.contextSum(ctx, p.opts, spec)
		if err != nil {
			return nil, err
		}
		p.sum = sum
	}
	return p, nil
}

func (p *copyPlan) key() cache.KeyInput {
	return cache.KeyInput{
		Instruction: instructionName(p.cmd) + " " + commandJSON(p.cmd),
		Sources:     p.sum,
		Flags:       []cache.KV{{Name: "workdir", Value: p.opts.Workdir}},
	}
}

func (p *copyPlan) createdBy() string { return p.history }

// execute copies the sources into the merged root filesystem of the stage,
// mounted by the executor; a source stage or image is mounted read-only.
func (p *copyPlan) execute(ctx context.Context, bd *build, res *stageResult, ev Event) (*store.Layer, error) {
	var srcLowers []string
	var err error
	switch {
	case p.stage != nil:
		src := bd.result(p.stage)
		srcLowers, err = bd.b.st.Snapshots().View(ctx, src.layers)
	case p.image != nil:
		srcLowers, err = bd.b.st.Snapshots().View(ctx, p.image.layers)
	}
	if err != nil {
		return nil, err
	}
	fromContext := p.stage == nil && p.image == nil
	return bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, _ *logWriter) error {
		mounts := []executor.RootfsMount{{Lowers: lowers, Upper: upper, Work: work}}
		if !fromContext {
			mounts = append(mounts, executor.RootfsMount{Lowers: srcLowers})
		}
		return bd.exec.WithRootfs(mounts, func(roots []string) error {
			srcRoot := bd.opts.ContextDir
			if !fromContext {
				srcRoot = roots[1]
			}
			_, err := copier.Copy(ctx, srcRoot, roots[0], p.opts)
			return err
		})
	})
}

// contextSum checksums what a COPY or ADD reads from the context: exactly
// the matched files (names, content, modes, owners; not mtimes), read only
// when their metadata changed since the last build.
func (bd *build) contextSum(ctx context.Context, opts copier.Options, spec copySpec) (digest.Digest, error) {
	srcs, err := copier.Resolve(ctx, bd.opts.ContextDir, opts)
	if err != nil {
		return "", err
	}
	if len(srcs) == 0 {
		return digest.FromString("no context sources"), nil
	}
	var paths []string
	for _, s := range srcs {
		if s.Heredoc {
			continue // its body is part of the instruction
		}
		p := s.Resolved
		if p == "" {
			p = s.Path
		}
		paths = append(paths, p)
	}
	return bd.b.hasher.Checksum(ctx, bd.opts.ContextDir, paths, cache.ChecksumOptions{Exclude: bd.excluded})
}

// excluded is the .dockerignore filter of context checksums. --exclude
// patterns are left to copier.Resolve at the top level; a file they exclude
// inside a copied directory still counts here, which can only cause an
// extra miss, never a wrong hit.
func (bd *build) excluded(rel string, isDir bool) bool {
	if isDir {
		skip, err := bd.ignore.CanSkipDir(rel)
		return err == nil && skip
	}
	m, err := bd.ignore.Match(rel)
	return err == nil && m
}

// copyOptions turns a copy description into copier options.
func (bd *build) copyOptions(workdir string, spec copySpec, fromContext bool) copier.Options {
	opts := copier.Options{
		Sources: spec.srcs, Dest: spec.dest, Workdir: workdir,
		Chown: spec.chown, Chmod: spec.chmod, Exclude: spec.exclude, Parents: spec.parents,
		Add: spec.add, Link: spec.link, Unpack: spec.unpack, Checksum: spec.checksum,
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

func copyCreatedBy(spec copySpec) string {
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
