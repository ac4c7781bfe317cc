package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// plan is one step resolved once against its stage: every input that
// decides the step's result (expanded flags, sources and their checksums,
// mount sources, the shell, the working dir) is fixed in it. The cache key
// is computed from the plan, and the same plan executes the step and
// writes its history, so the key cannot miss an input the execution uses.
// There is one plan type, and one file, per kind of instruction.
type plan interface {
	// key describes the step for the cache key; runStep adds the parent
	// key and the platform.
	key() cache.KeyInput
	// execute performs the step on res: it changes the config and returns
	// the step's layer, nil when the filesystem did not change.
	execute(ctx context.Context, bd *build, res *stageResult, ev Event) (*store.Layer, error)
	// createdBy is the step's history entry.
	createdBy() string
}

// newPlan resolves a step whose variables the scope has expanded.
func (bd *build) newPlan(ctx context.Context, res *stageResult, r *dockerfile.Resolved) (plan, error) {
	switch c := r.Command.(type) {
	case *instructions.RunCommand:
		return bd.newRunPlan(ctx, res, r, c)
	case *instructions.CopyCommand:
		return bd.newCopyPlan(ctx, res, r, copyFrom(c))
	case *instructions.AddCommand:
		return bd.newCopyPlan(ctx, res, r, copyFromAdd(c))
	case *instructions.WorkdirCommand:
		return newWorkdirPlan(res, r, c), nil
	case *instructions.ArgCommand:
		return newArgPlan(c), nil
	default:
		return newMetaPlan(r, c)
	}
}

// runStep resolves one step, then takes it from the cache or executes it.
func (bd *build) runStep(ctx context.Context, s *dockerfile.Stage, res *stageResult, st *dockerfile.Step, ev Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := res.scope.Apply(st)
	if err != nil {
		return err
	}
	p, err := bd.newPlan(ctx, res, r)
	if err != nil {
		return dockerfile.NewError(st.Location, err)
	}
	in := p.key()
	in.Parent, in.Platform = res.key, dockerfile.FormatPlatform(res.platform)
	in.SourceDateEpoch = bd.epochKey()
	key := cache.Key(in)
	if rec, cfg, ok := bd.lookup(ctx, res, key); ok {
		res.cfg = cfg
		if rec.Layer != nil {
			res.layers = append(res.layers, store.Layer{DiffID: rec.Layer.DiffID, Blob: rec.Layer.Desc, Size: rec.Size})
		}
		res.scopeCfg()
		res.key = resultKey(key, rec.Layer)
		bd.count(true)
		ev.Kind = StepCached
		bd.ev.emit(ev)
		return nil
	}
	if err := bd.fetchInputs(ctx, res, p); err != nil {
		return dockerfile.NewError(st.Location, err)
	}
	l, err := p.execute(ctx, bd, res, ev)
	if err != nil {
		return dockerfile.NewError(st.Location, err)
	}
	res.scopeCfg()
	now := bd.now()
	res.cfg.History = append(res.cfg.History, ocispec.History{Created: &now, CreatedBy: p.createdBy(), Comment: historyComment, EmptyLayer: l == nil})
	if l != nil {
		res.layers = append(res.layers, *l)
	}
	rec, err := bd.record(ctx, res, key, p.createdBy(), l)
	if err != nil {
		return fmt.Errorf("recording cache entry: %w", err)
	}
	res.key = resultKey(key, rec.Layer)
	return nil
}

// resultKey is what the steps after a step chain on: its cache key and the
// content it produced. A step re-executed (--no-cache-filter) with other
// output thus invalidates what follows it, and identical output does not.
func resultKey(key digest.Digest, l *cache.LayerRef) digest.Digest {
	if l == nil {
		return key
	}
	return digest.FromString(key.String() + " " + l.DiffID.String())
}

// lookup returns the cache record of key with its decoded config, unless
// the stage is built without the cache. An unreadable record, or one whose
// layer blob is neither stored nor in a registry cache the build imported,
// is a miss.
func (bd *build) lookup(ctx context.Context, res *stageResult, key digest.Digest) (cache.Record, Config, bool) {
	if res.noCache {
		return cache.Record{}, Config{}, false
	}
	rec, remote, ok := bd.findRecord(ctx, key)
	if !ok {
		return cache.Record{}, Config{}, false
	}
	var cfg Config
	if err := json.Unmarshal(rec.Config, &cfg); err != nil {
		return cache.Record{}, Config{}, false
	}
	bd.caches.use(res, rec, remote)
	return rec, cfg, true
}

// findRecord returns the record of key a build can use, preferring one
// whose layer needs no download: the local cache's when its layer blob is
// stored, else a registry cache's (remote) whose layer is stored or in that
// cache, else the local one when a registry cache holds its layer.
func (bd *build) findRecord(ctx context.Context, key digest.Digest) (rec cache.Record, remote, ok bool) {
	local, found, err := bd.b.cache.Lookup(ctx, key)
	found = found && err == nil
	if found && bd.b.hasLayer(local.Layer) {
		return local, false, true
	}
	if r, ok := bd.caches.remoteRecord(key); ok && (bd.b.hasLayer(r.Layer) || bd.caches.hasRemote(r.Layer)) {
		return r, true, true
	}
	if found && bd.caches.hasRemote(local.Layer) {
		return local, false, true
	}
	return cache.Record{}, false, false
}

// hasLayer reports whether the store holds the blob of a cache record's
// layer l (or l is nil: the record has no layer).
func (b *Builder) hasLayer(l *cache.LayerRef) bool {
	if l == nil {
		return true
	}
	_, ok := b.st.Has(l.Desc.Digest)
	return ok
}

// fetchInputs downloads the layers a step that is not cached reads and
// only a registry cache holds: its stage's, and those of the stages it
// copies or mounts from. A step that only changes the config reads none.
func (bd *build) fetchInputs(ctx context.Context, res *stageResult, p plan) error {
	var layers []store.Layer
	switch p := p.(type) {
	case *metaPlan, *argPlan:
		return nil
	case *copyPlan:
		if p.stage != nil {
			layers = append(layers, bd.result(p.stage).layers...)
		}
	case *runPlan:
		for _, m := range p.mounts {
			if m.stage != nil {
				layers = append(layers, bd.result(m.stage).layers...)
			}
		}
	}
	return bd.fetchLayers(ctx, append(layers, res.layers...))
}

// record stores what a step produced under key and returns the record.
func (bd *build) record(ctx context.Context, res *stageResult, key digest.Digest, createdBy string, l *store.Layer) (cache.Record, error) {
	data, err := json.Marshal(res.cfg)
	if err != nil {
		return cache.Record{}, err
	}
	rec := cache.Record{Key: key, Config: data, CreatedBy: createdBy, EmptyLayer: l == nil, Created: time.Now().UTC()}
	if l != nil {
		rec.Layer = &cache.LayerRef{Desc: l.Blob, DiffID: l.DiffID, ChainID: identity.ChainID(res.diffIDs())}
		rec.Size = l.Size
	}
	if err := bd.b.cache.Put(ctx, rec); err != nil {
		return cache.Record{}, err
	}
	bd.caches.use(res, rec, false)
	return rec, nil
}

// withSnapshot prepares an active snapshot on the stage's layers, calls fn
// with its lowers, upper and work dirs, and turns what fn left in the
// upperdir into the step's layer (nil when nothing changed). Step events
// are reported around it.
func (bd *build) withSnapshot(ctx context.Context, res *stageResult, ev Event, fn func(lowers []string, upper, work string, logs *logWriter) error) (*store.Layer, error) {
	start := time.Now()
	ev.Kind = StepStarted
	bd.ev.emit(ev)
	bd.count(false)
	l, err := bd.snapshotStep(ctx, res, ev, fn)
	ev.Kind, ev.Duration, ev.Err = StepDone, time.Since(start), err
	bd.ev.emit(ev)
	return l, err
}

func (bd *build) snapshotStep(ctx context.Context, res *stageResult, ev Event, fn func(lowers []string, upper, work string, logs *logWriter) error) (*store.Layer, error) {
	a, err := bd.b.st.Snapshots().Prepare(ctx, "", res.layers)
	if err != nil {
		return nil, err
	}
	defer a.Remove() // a no-op once committed
	if err := fn(a.Lowers, a.Upper, a.Work, &logWriter{e: bd.ev, base: ev}); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(a.Upper)
	if err != nil || len(entries) == 0 {
		return nil, err // an empty upperdir gives no layer
	}
	if epoch := bd.opts.SourceDateEpoch; epoch != nil {
		// Clamped in the snapshot itself, so that the tar its recipe
		// writes again, and the next steps, see the same times.
		if err := layer.ClampTimes(ctx, a.Upper, *epoch); err != nil {
			return nil, err
		}
	}
	// The layer is stored once, as its snapshot: the store regenerates
	// the tar from it when the blob is read (store.Active.CommitLayer).
	l, err := layer.Measure(ctx, func(w io.Writer) error {
		return layer.Diff(ctx, a.Upper, layer.DiffOptions{Lowers: a.Lowers}, w)
	})
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	sl := store.Layer{DiffID: l.DiffID, Blob: l.Desc, Size: l.Size}
	if _, err := a.CommitLayer(ctx, sl); err != nil {
		return nil, err
	}
	return &sl, nil
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

// instructionName is the upper-case name of a command ("COPY").
func instructionName(c instructions.Command) string { return strings.ToUpper(c.Name()) }
