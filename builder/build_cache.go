package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/copier"
	"github.com/builder-project/builder/layer"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	digest "github.com/opencontainers/go-digest"
)

// openCache opens the build cache records and the context hasher kept in
// the store.
func (b *Builder) openCache() (*cache.Cache, *cache.Hasher, error) {
	c, err := cache.Open(filepath.Join(b.st.Root(), "cache"))
	if err != nil {
		return nil, nil, fmt.Errorf("opening build cache: %w", err)
	}
	h, err := cache.OpenHasher(filepath.Join(b.st.Root(), "cache", "context"))
	if err != nil {
		return nil, nil, fmt.Errorf("opening context index: %w", err)
	}
	return c, h, nil
}

// stepKey computes the cache key of a resolved step on top of res.
//
// Rules (Docker's, see cache.KeyInput): the parent key chains every step to
// everything before it; the instruction is the expanded command, heredoc
// bodies included; RUN also sees the build args in scope and its
// environment, so a changed ARG value invalidates from the first RUN after
// it, while an ARG line itself keys on its names only; COPY and ADD key on a
// checksum of exactly the files they read.
func (bd *build) stepKey(ctx context.Context, res *stageResult, r *dockerfile.Resolved) (digest.Digest, error) {
	in := cache.KeyInput{Parent: res.key, Platform: "linux/" + runtime.GOARCH}
	switch c := r.Command.(type) {
	case *instructions.ArgCommand:
		names := make([]string, len(c.Args))
		for i, a := range c.Args {
			names[i] = a.Key
		}
		in.Instruction = "ARG " + strings.Join(names, " ")
	case *instructions.RunCommand:
		in.Instruction = "RUN " + commandJSON(c)
		for _, a := range r.Args {
			in.Args = append(in.Args, cache.KV{Name: a.Key, Value: a.Value})
		}
		in.Env = r.Env
		in.Flags = []cache.KV{{Name: "network", Value: instructions.GetNetwork(c)}, {Name: "default-network", Value: bd.opts.Network}}
		for i, m := range instructions.GetMounts(c) {
			mk, err := bd.mountKey(ctx, r.Step, i, m)
			if err != nil {
				return "", err
			}
			in.Mounts = append(in.Mounts, mk)
		}
	case *instructions.CopyCommand, *instructions.AddCommand:
		in.Instruction = strings.ToUpper(c.(instructions.Command).Name()) + " " + commandJSON(c)
		sum, err := bd.sourcesKey(ctx, res, r)
		if err != nil {
			return "", err
		}
		in.Sources = sum
		in.Flags = []cache.KV{{Name: "workdir", Value: res.cfg.Config.WorkingDir}}
	default:
		in.Instruction = strings.ToUpper(c.Name()) + " " + commandJSON(c)
	}
	return cache.Key(in), nil
}

// commandJSON renders a buildkit command's exported fields (expanded values,
// flags and heredoc bodies) canonically.
func commandJSON(c any) string {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Sprintf("%#v", c)
	}
	return string(data)
}

// sourcesKey checksums what a COPY or ADD reads: for the context, exactly
// the matched files (names, content, modes, owners; not mtimes), read only
// when their metadata changed since the last build; for another stage or an
// image, that stage's key or the image's manifest digest.
func (bd *build) sourcesKey(ctx context.Context, res *stageResult, r *dockerfile.Resolved) (digest.Digest, error) {
	st := r.Step
	switch {
	case st.FromStage != nil:
		return bd.result(st.FromStage).key, nil
	case st.FromImage != "":
		img, err := bd.b.resolve(ctx, st.FromImage)
		if err != nil {
			return "", err
		}
		return img.rec.Manifest.Digest, nil
	}
	spec := copySpecOf(r.Command)
	opts := bd.copyOptions(res, spec, true)
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
	return bd.hasher.Checksum(ctx, bd.opts.ContextDir, paths, cache.ChecksumOptions{Exclude: bd.excluded(spec)})
}

// excluded is the .dockerignore and --exclude filter for context checksums.
func (bd *build) excluded(spec copySpec) func(rel string, isDir bool) bool {
	// --exclude patterns are left to copier.Resolve at the top level; a
	// file they exclude inside a copied directory still counts here, which
	// can only cause an extra miss, never a wrong hit.
	return func(rel string, isDir bool) bool {
		if isDir {
			if skip, err := bd.ignore.CanSkipDir(rel); err == nil && skip {
				return true
			}
		} else if m, err := bd.ignore.Match(rel); err == nil && m {
			return true
		}
		return false
	}
}

// mountKey describes a RUN --mount for the cache key. A secret contributes
// only its id, never its value.
func (bd *build) mountKey(ctx context.Context, st *dockerfile.Step, i int, m *instructions.Mount) (cache.MountKey, error) {
	mk := cache.MountKey{Type: string(m.Type), Target: m.Target, ReadOnly: m.ReadOnly}
	switch m.Type {
	case instructions.MountTypeCache:
		mk.ID, mk.Sharing = m.CacheID, string(m.CacheSharing)
	case instructions.MountTypeSecret:
		if m.CacheID != "" {
			mk.ID = m.CacheID
		}
		mk.Required = m.Required
	case instructions.MountTypeBind:
		mk.Source = m.Source
		for _, src := range st.Mounts {
			switch {
			case src.Index != i:
			case src.Stage != nil:
				mk.From = bd.result(src.Stage).key
			case src.Image != "":
				img, err := bd.b.resolve(ctx, src.Image)
				if err != nil {
					return mk, err
				}
				mk.From = img.rec.Manifest.Digest
			}
		}
		if mk.From == "" {
			sum, err := bd.hasher.Checksum(ctx, bd.opts.ContextDir, []string{cleanRel(m.Source)}, cache.ChecksumOptions{})
			if err != nil {
				return mk, err
			}
			mk.From = sum
		}
	case instructions.MountTypeTmpfs:
		mk.Size = fmt.Sprint(m.SizeLimit)
	}
	return mk, nil
}

func cleanRel(p string) string {
	p = filepath.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

// lookup returns the cache record of key, unless the stage is built
// without the cache.
// The record comes with its decoded config; an unreadable record or one
// whose layer blob was pruned is a miss.
func (bd *build) lookup(ctx context.Context, res *stageResult, key digest.Digest) (cache.Record, Config, bool) {
	if res.noCache {
		return cache.Record{}, Config{}, false
	}
	rec, ok, err := bd.cache.Lookup(ctx, key)
	if err != nil || !ok {
		return cache.Record{}, Config{}, false
	}
	if rec.Layer != nil {
		if _, ok := bd.b.st.Has(rec.Layer.Desc.Digest); !ok {
			return cache.Record{}, Config{}, false
		}
	}
	var cfg Config
	if err := json.Unmarshal(rec.Config, &cfg); err != nil {
		return cache.Record{}, Config{}, false
	}
	return rec, cfg, true
}

// applyRecord makes res what it was after the cached step.
func (bd *build) applyRecord(res *stageResult, rec cache.Record, cfg Config) {
	res.cfg = cfg
	if rec.Layer != nil {
		res.layers = append(res.layers, newImageLayer{Layer: layerOf(rec.Layer), Size: rec.Size})
	}
}

// record stores what a step produced under key.
func (bd *build) record(ctx context.Context, res *stageResult, key digest.Digest, out stepOutcome) error {
	data, err := json.Marshal(res.cfg)
	if err != nil {
		return err
	}
	rec := cache.Record{Key: key, Config: data, CreatedBy: out.createdBy, EmptyLayer: out.layer == nil, Created: time.Now().UTC()}
	if out.layer != nil {
		rec.Layer = &cache.LayerRef{Desc: out.layer.Desc, DiffID: out.layer.DiffID, ChainID: chainOf(res)}
		rec.Size = out.layer.Size
	}
	return bd.cache.Put(ctx, rec)
}

func layerOf(l *cache.LayerRef) layer.Layer { return layer.Layer{Desc: l.Desc, DiffID: l.DiffID} }

func chainOf(res *stageResult) digest.Digest { return layer.ChainID(res.diffIDs()) }
