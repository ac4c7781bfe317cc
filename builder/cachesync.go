package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/output"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"
)

// The exported build cache (--cache-to type=local, --cache-from type=local)
// is an OCI image layout holding one artifact manifest, in the format the
// cache package defines (cache.NewArtifact). These are its media types,
// for callers that inspect such a layout.
const (
	// MediaTypeCacheRecord is the media type of one build cache record blob.
	MediaTypeCacheRecord = cache.MediaTypeRecord
	// ArtifactTypeCache is the artifact type of a build cache manifest.
	ArtifactTypeCache = cache.ArtifactType
	// AnnotationCacheKey annotates a record descriptor with its cache key.
	AnnotationCacheKey = cache.AnnotationKey
	// AnnotationCacheDiffID annotates a layer descriptor with its diffID.
	AnnotationCacheDiffID = cache.AnnotationDiffID
)

// ExportCache writes the build cache records (all of them, or those whose
// keys are in keys when keys != nil) and the layer blobs they use to dir as
// an OCI image layout.
//
// With keys == nil, records whose layer blob is no longer in the store (and
// which a build would therefore not use) are left out; a key in keys that has
// no usable record is an error. Exporting into a directory that already holds
// such a layout merges: the records already there are kept unless exported
// again, blobs already present are not rewritten, other entries of
// index.json are kept, and index.json is replaced atomically. Blobs that the
// new index no longer reaches are left in place. Concurrent exports into one
// directory are not merged with each other: the last index written wins.
func (b *Builder) ExportCache(ctx context.Context, dir string, keys []digest.Digest) error {
	lease, err := b.st.Lease()
	if err != nil {
		return err
	}
	defer lease.Release()
	recs, err := b.cacheRecordsToExport(ctx, keys)
	if err != nil {
		return fmt.Errorf("exporting cache: %w", err)
	}
	if err := b.writeCacheLayout(ctx, dir, recs); err != nil {
		return fmt.Errorf("exporting cache to %s: %w", dir, err)
	}
	return nil
}

// cacheRecordsToExport returns the records ExportCache writes.
func (b *Builder) cacheRecordsToExport(ctx context.Context, keys []digest.Digest) ([]cache.Record, error) {
	if keys == nil {
		all, err := b.cache.List(ctx)
		if err != nil {
			return nil, err
		}
		var recs []cache.Record
		for _, rec := range all {
			if b.hasLayer(rec.Layer) {
				recs = append(recs, rec)
			}
		}
		return recs, nil
	}
	recs := make([]cache.Record, 0, len(keys))
	for _, key := range keys {
		rec, ok, err := b.cache.Lookup(ctx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("looking up %s: %w", key, ErrNotFound)
		}
		if !b.hasLayer(rec.Layer) {
			return nil, fmt.Errorf("looking up %s: layer blob %s: %w", key, rec.Layer.Desc.Digest, ErrNotFound)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// writeCacheLayout merges recs into the layout at dir, creating it if needed.
func (b *Builder) writeCacheLayout(ctx context.Context, dir string, recs []cache.Record) error {
	merged := map[digest.Digest]cache.Record{}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageIndexFile)); err == nil {
		lay, err := output.OpenLayout(dir)
		if err != nil {
			return fmt.Errorf("merging existing cache: %w", err)
		}
		old, err := readCacheLayout(ctx, lay, false)
		if err != nil {
			return fmt.Errorf("merging existing cache: %w", err)
		}
		merged = old.records
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, rec := range recs {
		merged[rec.Key] = rec
	}
	all := make([]cache.Record, 0, len(merged))
	for _, rec := range merged {
		all = append(all, rec)
	}
	a, err := cache.NewArtifact(all)
	if err != nil {
		return err
	}
	return output.OCILayout(dir, output.WithReplace(cache.IsArtifact)).Export(ctx, artifactProvider{a, b.st}, output.Image{Manifest: a.Desc})
}

// artifactProvider serves a cache artifact's manifest and small blobs from
// memory, and its layer blobs from the store.
type artifactProvider struct {
	a  *cache.Artifact
	st output.Provider
}

// Open implements output.Provider.
func (p artifactProvider) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	data, ok := p.a.Blobs[d]
	if d == p.a.Desc.Digest {
		data, ok = p.a.Manifest, true
	}
	if ok {
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}
	return p.st.Open(ctx, d)
}

// layoutCache is the build cache found in a layout.
type layoutCache struct {
	records map[digest.Digest]cache.Record
	layers  map[digest.Digest]ocispec.Descriptor
}

// readCacheLayout reads and checks every build cache manifest of the layout.
// With required, a layout without one is an error.
func readCacheLayout(ctx context.Context, lay *output.Layout, required bool) (*layoutCache, error) {
	idx, err := lay.Index(ctx)
	if err != nil {
		return nil, err
	}
	lc := &layoutCache{records: map[digest.Digest]cache.Record{}, layers: map[digest.Digest]ocispec.Descriptor{}}
	found := false
	for _, d := range idx.Manifests {
		if !cache.IsArtifact(d) {
			continue
		}
		found = true
		recs, layers, err := cache.ReadArtifact(ctx, d, lay.ReadBlob)
		if err != nil {
			return nil, err
		}
		for k, r := range recs {
			lc.records[k] = r
		}
		for k, l := range layers {
			lc.layers[k] = l
		}
	}
	if !found && required {
		return nil, fmt.Errorf("reading %s: no build cache manifest (artifactType %s)", filepath.Join(lay.Dir(), ocispec.ImageIndexFile), cache.ArtifactType)
	}
	return lc, nil
}

// ImportCache reads a build cache that ExportCache wrote to dir and adds it
// to the local cache, returning how many records it added.
//
// The whole layout is read and checked first (records decoded and
// validated, every entry accounted for); then each layer blob the store
// lacks is copied in, its digest, size and diffID verified while copying;
// the store's layer table learns each layer's diffID and size; and only then
// are the records written. An error at any point therefore leaves no record
// behind (blobs already copied stay until the next prune collects them).
// Records whose key the local cache already holds, with its layer present,
// are kept as they are and not counted.
func (b *Builder) ImportCache(ctx context.Context, dir string) (int, error) {
	lay, err := output.OpenLayout(dir)
	if err != nil {
		return 0, fmt.Errorf("importing cache: %w", err)
	}
	lc, err := readCacheLayout(ctx, lay, true)
	if err != nil {
		return 0, fmt.Errorf("importing cache: %w", err)
	}
	lease, err := b.st.Lease()
	if err != nil {
		return 0, err
	}
	defer lease.Release()
	todo := b.cacheRecordsToImport(ctx, lc)
	idx, err := b.st.View()
	if err != nil {
		return 0, err
	}
	var layers []store.Layer
	seen := map[digest.Digest]bool{}
	for _, rec := range todo {
		l := rec.Layer
		if l == nil || seen[l.Desc.Digest] {
			continue
		}
		seen[l.Desc.Digest] = true
		size, err := importCacheLayer(ctx, b.st, idx, lay, l)
		if err != nil {
			return 0, fmt.Errorf("importing cache: %w", err)
		}
		layers = append(layers, store.Layer{DiffID: l.DiffID, Blob: l.Desc, Size: size})
	}
	if err := b.st.RecordLayers(layers...); err != nil {
		return 0, fmt.Errorf("importing cache: recording layers: %w", err)
	}
	for i, rec := range todo {
		rec.LastUsed = time.Time{} // imported now
		if err := b.cache.Put(ctx, rec); err != nil {
			for _, done := range todo[:i] {
				b.cache.Delete(context.WithoutCancel(ctx), done.Key)
			}
			return 0, fmt.Errorf("importing cache: %w", err)
		}
	}
	return len(todo), nil
}

// cacheRecordsToImport returns the layout's records the local cache lacks
// (or holds without its layer), sorted by key.
func (b *Builder) cacheRecordsToImport(ctx context.Context, lc *layoutCache) []cache.Record {
	var todo []cache.Record
	for k, rec := range lc.records {
		if local, ok, err := b.cache.Lookup(ctx, k); err == nil && ok {
			if b.hasLayer(local.Layer) {
				continue
			}
		}
		todo = append(todo, rec)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Key < todo[j].Key })
	return todo
}

// importCacheLayer makes sure the store holds the layer a record uses and
// returns its uncompressed size. A blob the store already knows as a form
// of that diffID is trusted; anything else is read and checked.
func importCacheLayer(ctx context.Context, st *store.Store, idx *store.Index, lay *output.Layout, l *cache.LayerRef) (int64, error) {
	if _, ok := st.Has(l.Desc.Digest); ok {
		if li, ok := idx.Layer(l.DiffID); ok && li.Size > 0 {
			for _, bl := range li.Blobs {
				if bl.Digest == l.Desc.Digest {
					return li.Size, nil
				}
			}
		}
	}
	return output.ImportLayer(ctx, st, lay, l.Desc, l.DiffID)
}

// buildCaches is what one build knows of caches besides the local one: the
// records and layers of the registry caches it imported, and the records
// each stage used or produced, for the export.
type buildCaches struct {
	mu sync.Mutex
	// remote are the records of the registry caches imported, by key; the
	// first cache listed wins.
	remote map[digest.Digest]cache.Record
	// layers are the layers those records use, by blob digest: where to
	// download each when a step needs it.
	layers map[digest.Digest]remoteLayer
	// used are the records of each stage's steps, in order: cache hits
	// and new records alike. fromRemote marks the keys of hits on a
	// registry cache's record.
	used       map[*stageResult][]cache.Record
	fromRemote map[digest.Digest]bool
	// fetches makes stages that need the same layer download it once.
	fetches singleflight.Group
}

// use notes that a step of the stage res used rec, from a registry cache
// when remote.
func (c *buildCaches) use(res *stageResult, rec cache.Record, remote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used == nil {
		c.used, c.fromRemote = map[*stageResult][]cache.Record{}, map[digest.Digest]bool{}
	}
	c.used[res] = append(c.used[res], rec)
	if remote {
		c.fromRemote[rec.Key] = true
	}
}

// stageRecords returns the records the stage s used, in order.
func (bd *build) stageRecords(s *dockerfile.Stage) []cache.Record {
	bd.caches.mu.Lock()
	defer bd.caches.mu.Unlock()
	return bd.caches.used[bd.results[s]]
}

// exportRecords returns the records a registry export in mode receives,
// and for each the key of the record of the step before it (which may be
// in the stage it is built FROM).
func (bd *build) exportRecords(mode string) ([]cache.Record, map[digest.Digest]digest.Digest) {
	stages := bd.g.Needed()
	if mode != CacheModeMax {
		stages = nil
		for s := bd.g.Target; s != nil; s = s.BaseStage {
			stages = append(stages, s)
		}
	}
	var recs []cache.Record
	parents := map[digest.Digest]digest.Digest{}
	seen := map[digest.Digest]bool{}
	for _, s := range stages {
		prev := digest.Digest("")
		for base := s.BaseStage; base != nil && prev == ""; base = base.BaseStage {
			if used := bd.stageRecords(base); len(used) > 0 {
				prev = used[len(used)-1].Key
			}
		}
		for _, rec := range bd.stageRecords(s) {
			if prev != "" && prev != rec.Key {
				parents[rec.Key] = prev
			}
			prev = rec.Key
			if !seen[rec.Key] {
				seen[rec.Key] = true
				recs = append(recs, rec)
			}
		}
	}
	return recs, parents
}

// importCaches imports each of the build's cache sources; an unusable one
// is a warning.
func (bd *build) importCaches(ctx context.Context) {
	for _, src := range bd.opts.CacheFrom {
		var n int
		var err error
		where := src.Dir
		if src.kind() == CacheRegistry {
			where = src.Ref
			n, err = bd.importRegistryCache(ctx, src)
		} else {
			n, err = bd.b.ImportCache(ctx, src.Dir)
		}
		if err != nil {
			bd.ev.emit(Event{Kind: Warning, Message: fmt.Sprintf("importing cache from %s: %v", where, err)})
		} else if src.kind() == CacheRegistry {
			bd.ev.emit(Event{Kind: Info, Message: fmt.Sprintf("found %d cache entries in %s", n, where)})
		} else {
			bd.ev.emit(Event{Kind: Info, Message: fmt.Sprintf("imported %d cache entries from %s", n, where)})
		}
	}
}

// exportCaches exports the cache to each of the build's destinations.
func (bd *build) exportCaches(ctx context.Context) error {
	for _, dest := range bd.opts.CacheTo {
		var err error
		where := dest.Dir
		if dest.kind() == CacheRegistry {
			where = dest.Ref
			err = bd.exportRegistryCache(ctx, dest)
		} else {
			err = bd.b.ExportCache(ctx, dest.Dir, nil)
		}
		switch {
		case err != nil && dest.IgnoreError:
			bd.ev.emit(Event{Kind: Warning, Message: fmt.Sprintf("exporting cache to %s: %v", where, err)})
		case err != nil:
			return fmt.Errorf("exporting cache to %s: %w", where, err)
		}
	}
	return nil
}
