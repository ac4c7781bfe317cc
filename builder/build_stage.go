package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/platform"
	"github.com/builder-project/builder/internal/store"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// historyComment marks history entries builder wrote, as BuildKit's do.
const historyComment = "buildkit.dockerfile.v0"

// stageResult is the state of a stage while it builds and, once done, what
// dependents read: its config, layers and the cache key of its last step.
type stageResult struct {
	cfg    Config
	layers []store.Layer
	scope  *dockerfile.Scope
	cst    configState
	// key is the cache key of the last step (or of the base).
	key digest.Digest
	// parent is the ID of the base image, if any.
	parent digest.Digest
	// noCache: --no-cache or --no-cache-filter applies to this stage.
	noCache bool
	// platform is the platform the stage is built for.
	platform ocispec.Platform
}

// diffIDs returns the stage's layer diffIDs so far.
func (r *stageResult) diffIDs() []digest.Digest {
	out := make([]digest.Digest, len(r.layers))
	for i, l := range r.layers {
		out[i] = l.DiffID
	}
	return out
}

// runStage builds one stage into bd.results[s].
func (bd *build) runStage(ctx context.Context, s *dockerfile.Stage) error {
	res := bd.result(s)
	res.noCache = bd.opts.NoCache || containsFold(bd.opts.NoCacheFilter, s.Name)
	// FROM is the stage's first step, as in BuildKit's "[build 1/4] FROM
	// alpine": CACHED when the base is stored, run while it is pulled.
	start := time.Now()
	from := Event{Stage: s.DisplayName(), Step: 1, Steps: len(s.Steps) + 1, Name: "FROM " + s.BaseName}
	steps, pulled, err := bd.startStage(ctx, s, res, func() {
		ev := from
		ev.Kind = StepStarted
		bd.ev.emit(ev)
	})
	from.Kind, from.Err, from.Duration = StepDone, err, time.Since(start)
	if err == nil {
		from.Steps = len(steps) + 1
		if !pulled && s.BaseStage == nil && !s.IsScratch() {
			from.Kind, from.Duration = StepCached, 0
		}
	}
	bd.ev.emit(from)
	if err != nil {
		return err
	}
	for i, st := range steps {
		ev := Event{Stage: s.DisplayName(), Step: i + 2, Steps: len(steps) + 1, Name: st.Original}
		if err := bd.runStep(ctx, s, res, st, ev); err != nil {
			return err
		}
	}
	return nil
}

// startStage sets up res from the stage's base and returns the steps to run:
// the base image's ONBUILD triggers first. pulled says whether the base
// image came from a registry; pulling is called before it is pulled.
func (bd *build) startStage(ctx context.Context, s *dockerfile.Stage, res *stageResult, pulling func()) (steps []*dockerfile.Step, pulled bool, err error) {
	steps = s.Steps
	res.platform = bd.target
	if s.Platform != "" {
		p, err := platform.Parse(s.Platform)
		if err != nil {
			return nil, false, dockerfile.NewError(s.Location, fmt.Errorf("FROM --platform: %w", err))
		}
		res.platform = p
	}
	switch {
	case s.BaseStage != nil:
		base := bd.result(s.BaseStage)
		if err := deepCopy(&res.cfg, &base.cfg); err != nil {
			return nil, false, err
		}
		res.layers = append([]store.Layer(nil), base.layers...)
		res.scope = base.scope.Child()
		res.key = base.key
		res.parent = base.parent
	case s.IsScratch():
		res.cfg.Platform = res.platform
		res.scope = bd.g.NewScope(nil)
		res.key = digest.FromString("scratch")
	default:
		img, fresh, err := bd.imagePulling(ctx, s.BaseName, res.platform, pulling)
		if err != nil {
			return nil, fresh, dockerfile.NewError(s.Location, fmt.Errorf("FROM %s: %w", s.BaseName, err))
		}
		pulled = fresh
		res.cfg = img.config
		res.parent = img.rec.ID
		res.key = img.rec.Manifest.Digest
		res.layers = img.layers
		res.scope = bd.g.NewScope(img.config.Config.Env)
		if len(img.config.Config.OnBuild) > 0 {
			trig, err := bd.g.ParseTriggers(s, img.config.Config.OnBuild)
			if err != nil {
				return nil, pulled, err
			}
			steps = append(trig, steps...)
		}
	}
	res.cfg.Config.OnBuild = nil
	res.cfg.Config.Env = res.scope.ImageEnv()
	return steps, pulled, nil
}

// scopeCfg copies the scope's image environment into the config.
func (r *stageResult) scopeCfg() { r.cfg.Config.Env = r.scope.ImageEnv() }

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if s != "" && strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// deepCopy copies src into dst through JSON, so that two stages sharing a
// base never share maps or slices.
func deepCopy(dst, src *Config) error {
	data, err := json.Marshal(src)
	if err != nil {
		return err
	}
	*dst = Config{}
	return json.Unmarshal(data, dst)
}
