package builder

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/internal/registry"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	"github.com/builder-project/builder/output"
	"github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// A registry cache (--cache-to/--cache-from type=registry) is one image
// manifest in the format cache.NewImageManifest defines.
//
// Importing it fetches the manifest and its config, nothing else: the
// records are kept for the build only (buildCaches), and a record whose
// layer blob the store lacks is still a hit when the cache holds the blob.
// The blob is downloaded, and verified, only when something reads the
// layer: a step of the same stage that is not cached (its snapshot), a
// COPY --from or RUN --mount from the stage that is not cached, or the
// final image, whose layers must be in the store. A cached layer nothing
// reads is never downloaded. After the build, the records it used whose
// layers are then stored are added to the local cache.
//
// Exporting compresses the layers the selected records use as a push
// would (each once, the blob kept in the store) and pushes them (HEAD
// first, each once, concurrently, mounted from the build's other
// repositories on the same registry, such as the image's when the build
// pushed it), then the config, then the manifest at the reference.

// remoteLayer is a layer blob a registry cache holds.
type remoteLayer struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
	src    *remoteCache
}

// remoteCache is one registry cache a build imported.
type remoteCache struct {
	ref, repo string
	client    *registry.Client
}

// remoteBlob is an output.Provider serving one blob of a registry cache.
type remoteBlob struct{ rl remoteLayer }

// Open implements output.Provider.
func (b remoteBlob) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if d != b.rl.desc.Digest {
		return nil, 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	rc, err := b.rl.src.client.FetchBlob(ctx, b.rl.src.repo, b.rl.desc)
	if err != nil {
		return nil, 0, err
	}
	return rc, b.rl.desc.Size, nil
}

// registryClient returns a client for a cache source or destination with
// its own registry options, else the build's.
func (bd *build) registryClient(opts *RegistryOptions, progress func(Event)) (*registry.Client, error) {
	o := bd.opts.Registry
	if opts != nil {
		o = *opts
	}
	return o.client(progress)
}

// importRegistryCache reads the records of the registry cache src names
// into the build and returns how many it holds.
func (bd *build) importRegistryCache(ctx context.Context, src CacheSource) (int, error) {
	client, err := bd.registryClient(src.Registry, nil)
	if err != nil {
		return 0, err
	}
	data, desc, err := client.FetchManifest(ctx, src.Ref)
	if err != nil {
		return 0, err
	}
	rc := &remoteCache{ref: src.Ref, repo: repository(src.Ref), client: client}
	fetch := func(ctx context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
		if d.Digest == desc.Digest {
			if int64(len(data)) > limit {
				return nil, fmt.Errorf("manifest %s: %d bytes, more than the %d allowed", d.Digest, len(data), limit)
			}
			return data, nil
		}
		return fetchSmallBlob(ctx, rc, d, limit)
	}
	recs, layers, err := cache.ReadImageManifest(ctx, desc, fetch)
	if err != nil {
		return 0, err
	}
	c := &bd.caches
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote == nil {
		c.remote, c.layers = map[digest.Digest]cache.Record{}, map[digest.Digest]remoteLayer{}
	}
	for k, rec := range recs {
		if _, ok := c.remote[k]; !ok {
			c.remote[k] = rec
		}
	}
	for d, l := range layers {
		if _, ok := c.layers[d]; !ok {
			c.layers[d] = remoteLayer{desc: ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, diffID: diffIDOf(l), src: rc}
		}
	}
	return len(recs), nil
}

// diffIDOf returns the diffID a cache manifest's layer descriptor carries,
// in either form's annotation.
func diffIDOf(l ocispec.Descriptor) digest.Digest {
	if d := l.Annotations[cache.AnnotationUncompressed]; d != "" {
		return digest.Digest(d)
	}
	return digest.Digest(l.Annotations[cache.AnnotationDiffID])
}

// fetchSmallBlob reads the blob d of a registry cache whole, refusing one
// larger than limit. The client's reader checks its size and digest.
func fetchSmallBlob(ctx context.Context, rc *remoteCache, d ocispec.Descriptor, limit int64) ([]byte, error) {
	if d.Size > limit || d.Size < 0 {
		return nil, fmt.Errorf("blob %s: %d bytes, more than the %d allowed", d.Digest, d.Size, limit)
	}
	r, err := rc.client.FetchBlob(ctx, rc.repo, d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d.Digest, err)
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("reading blob %s: %d bytes, want %d", d.Digest, len(data), d.Size)
	}
	return data, nil
}

// remoteRecord returns a registry cache's record of key.
func (c *buildCaches) remoteRecord(key digest.Digest) (cache.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.remote[key]
	return rec, ok
}

// remoteLayer returns where a registry cache holds the blob d.
func (c *buildCaches) remoteLayer(d digest.Digest) (remoteLayer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rl, ok := c.layers[d]
	return rl, ok
}

// hasRemote reports whether a registry cache holds the blob of l.
func (c *buildCaches) hasRemote(l *cache.LayerRef) bool {
	if l == nil {
		return false
	}
	_, ok := c.remoteLayer(l.Desc.Digest)
	return ok
}

// fetchLayers makes the store hold the blob of each layer of layers that
// only a registry cache holds, downloading them concurrently, each verified
// (digest, size and diffID in one pass) before it is committed. Layers
// whose blobs are stored, or that no registry cache holds, are left alone.
func (bd *build) fetchLayers(ctx context.Context, layers []store.Layer) error {
	bd.caches.mu.Lock()
	none := len(bd.caches.layers) == 0
	bd.caches.mu.Unlock()
	if none {
		return nil
	}
	var todo []remoteLayer
	for _, l := range layers {
		if _, ok := bd.b.st.Has(l.Blob.Digest); ok {
			continue
		}
		if rl, ok := bd.caches.remoteLayer(l.Blob.Digest); ok {
			todo = append(todo, rl)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, rl := range todo {
		g.Go(func() error {
			_, err, _ := bd.caches.fetches.Do(rl.desc.Digest.String(), func() (any, error) { return nil, bd.fetchLayer(gctx, rl) })
			return err
		})
	}
	return g.Wait()
}

// fetchLayer downloads one layer of a registry cache into the store and
// records it as a form of its diffID.
func (bd *build) fetchLayer(ctx context.Context, rl remoteLayer) error {
	if _, ok := bd.b.st.Has(rl.desc.Digest); ok {
		return nil // another stage fetched it
	}
	size, err := output.ImportLayer(ctx, bd.b.st, remoteBlob{rl}, rl.desc, rl.diffID)
	if err == nil {
		err = bd.b.st.RecordLayers(store.Layer{DiffID: rl.diffID, Blob: rl.desc, Size: size})
	}
	if err != nil {
		return fmt.Errorf("fetching cached layer %s from cache %s: %w", rl.desc.Digest, rl.src.ref, err)
	}
	bd.ev.emit(Event{Kind: Info, Message: fmt.Sprintf("fetched cached layer %s (%s) from %s", store.ShortID(rl.desc.Digest), units.HumanSize(float64(rl.desc.Size)), rl.src.ref)})
	return nil
}

// keepRemoteRecords adds to the local cache the registry cache records the
// build used whose layers the store now holds, so that the next build
// hits without the registry.
func (bd *build) keepRemoteRecords(ctx context.Context) error {
	c := &bd.caches
	c.mu.Lock()
	var recs []cache.Record
	for _, used := range c.used {
		for _, rec := range used {
			if c.fromRemote[rec.Key] {
				recs = append(recs, rec)
			}
		}
	}
	c.mu.Unlock()
	for _, rec := range recs {
		if !bd.b.hasLayer(rec.Layer) {
			continue
		}
		rec.LastUsed = time.Time{} // used now: Put sets it
		if err := bd.b.cache.Put(ctx, rec); err != nil {
			return fmt.Errorf("recording cache entry %s: %w", rec.Key, err)
		}
	}
	return nil
}

// exportRegistryCache pushes the records dest.Mode selects, and the layers
// they use, to dest.Ref as one cache image manifest.
func (bd *build) exportRegistryCache(ctx context.Context, dest CacheDest) error {
	recs, parents := bd.exportRecords(dest.Mode)
	client, err := bd.registryClient(dest.Registry, bd.ev.emit)
	if err != nil {
		return err
	}
	if recs, err = bd.compressLayers(ctx, recs, dest.CompressionOptions); err != nil {
		return err
	}
	a, err := cache.NewImageManifest(recs, parents)
	if err != nil {
		return err
	}
	bd.ev.emit(Event{Kind: Info, Message: fmt.Sprintf("exporting %d cache entries (mode=%s) to %s", len(recs), cmp.Or(dest.Mode, CacheModeMin), dest.Ref)})
	_, err = client.Push(ctx, artifactProvider{a, cacheBlobs{bd}}, a.Desc, dest.Ref, registry.PushOptions{MountFrom: bd.mountFrom()})
	return err
}

// mountFrom returns the repositories a cache push may mount blobs from:
// those of the registry caches imported, of the image's tags and of the
// outputs that pushed the image.
func (bd *build) mountFrom() []string {
	var repos []string
	for _, src := range bd.opts.CacheFrom {
		if src.kind() == CacheRegistry {
			repos = append(repos, repository(src.Ref))
		}
	}
	refs := slices.Clone(bd.opts.Tags)
	for _, o := range bd.opts.Outputs {
		if names, err := o.pushRefs(nil); o.pushes() && err == nil {
			refs = append(refs, names...)
		}
	}
	for _, r := range refs {
		repos = append(repos, repository(r))
	}
	slices.Sort(repos)
	return slices.Compact(slices.DeleteFunc(repos, func(r string) bool { return r == "" }))
}

// cacheBlobs serves the layer blobs of a cache export: from the store, else
// from the registry cache that holds them.
type cacheBlobs struct{ bd *build }

// Open implements output.Provider.
func (p cacheBlobs) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if rl, ok := p.bd.caches.remoteLayer(d); ok {
		if _, stored := p.bd.b.st.Has(d); !stored {
			return remoteBlob{rl}.Open(ctx, d)
		}
	}
	return p.bd.b.st.Open(ctx, d)
}

// compressLayers returns recs with each stored layer in the compression
// c asks for (see CacheDest.CompressionOptions), compressing each layer
// that needs it once, through compressLayer, and recording the blobs made
// as forms of their layers.
func (bd *build) compressLayers(ctx context.Context, recs []cache.Record, c CompressionOptions) ([]cache.Record, error) {
	target := layer.Gzip // by default, uncompressed layers go up as a push sends them
	if c.Compression != "" {
		target, _ = layer.ParseCompression(c.Compression) // checked by CacheDest.check
	}
	forms := map[digest.Digest]ocispec.Descriptor{} // diffID → blob to push
	var todo []store.Layer
	for _, rec := range recs {
		l := rec.Layer
		if l == nil || !bd.b.hasLayer(l) {
			continue // a layer only a registry cache holds goes as it is there
		}
		if _, seen := forms[l.DiffID]; seen {
			continue
		}
		forms[l.DiffID] = l.Desc
		if cur, known := blobCompression(l.Desc.MediaType); c.Compression == "" && known && cur != layer.Uncompressed {
			continue
		}
		todo = append(todo, store.Layer{DiffID: l.DiffID, Blob: l.Desc})
	}
	blobs, err := bd.b.inCompression(ctx, todo, target, c)
	if err != nil {
		return nil, fmt.Errorf("compressing cached layers with %s: %w", target, err)
	}
	for i, d := range blobs {
		forms[todo[i].DiffID] = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	}
	out := slices.Clone(recs)
	for i, rec := range out {
		if rec.Layer == nil {
			continue
		}
		if d, ok := forms[rec.Layer.DiffID]; ok && d.Digest != rec.Layer.Desc.Digest {
			nl := *rec.Layer
			nl.Desc = d
			out[i].Layer = &nl
		}
	}
	return out, nil
}
