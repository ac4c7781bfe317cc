package builder

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/builder-project/builder/cache"

	"github.com/builder-project/builder/internal/store"
	digest "github.com/opencontainers/go-digest"
)

// PruneOptions configure Prune.
type PruneOptions struct {
	// All removes every image not used by a working container, not only
	// dangling ones.
	All bool
	// KeepCache leaves the build cache alone (image pruning only).
	KeepCache bool
	// CacheUntil removes only cache entries unused for longer than this.
	CacheUntil time.Duration
	// KeepStorage removes least recently used cache entries until the
	// cache holds at most this many bytes; 0 means no limit.
	KeepStorage int64
}

// PruneReport says what Prune removed.
type PruneReport struct {
	// Deleted are the removed image IDs.
	Deleted []string
	// Untagged are the tags removed with them.
	Untagged []string
	// CacheEntries is how many build cache entries were removed.
	CacheEntries int
	// Reclaimed is the disk space freed, in bytes.
	Reclaimed int64
}

// Prune removes dangling images (with All, every unused image) and the
// build cache the options select, and then the blobs and snapshots nothing
// references any more. An image a container was created from is never
// removed (the store's Prune spares it).
func (b *Builder) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	removed, err := b.st.Prune(opts.All)
	if err != nil {
		return rep, err
	}
	rep.Untagged = removed.Untagged
	for _, id := range removed.Deleted {
		rep.Deleted = append(rep.Deleted, id.String())
	}
	if !opts.KeepCache {
		all := opts.CacheUntil == 0 && opts.KeepStorage == 0
		gone, err := b.cache.Prune(ctx, cache.PruneOptions{Until: opts.CacheUntil, KeepStorage: opts.KeepStorage, All: all})
		if err != nil {
			return rep, fmt.Errorf("pruning build cache: %w", err)
		}
		rep.CacheEntries = len(gone)
	}
	rep.Reclaimed, err = b.collect(ctx)
	return rep, err
}

// CachePruneOptions configure PruneCache, as docker's builder prune.
type CachePruneOptions struct {
	// All removes the entries whose layer an image holds too; without it
	// only the others go (docker's dangling build cache), which are the
	// ones whose removal frees space.
	All bool
	// Until removes only entries unused for longer than this.
	Until time.Duration
	// KeepStorage removes least recently used entries until the cache
	// holds at most this many bytes; 0 means no limit.
	KeepStorage int64
}

// PruneCache removes the build cache entries opts select (every one, of
// those All allows, when neither Until nor KeepStorage is set), then the
// data nothing references any more. It returns how many entries went and
// the bytes freed. Images are left alone.
func (b *Builder) PruneCache(ctx context.Context, opts CachePruneOptions) (int, int64, error) {
	co := cache.PruneOptions{Until: opts.Until, KeepStorage: opts.KeepStorage, All: opts.Until == 0 && opts.KeepStorage == 0}
	if !opts.All {
		held, err := b.imageLayers(ctx)
		if err != nil {
			return 0, 0, err
		}
		co.Spare = func(r cache.Record) bool { return r.Layer == nil || held[r.Layer.DiffID] }
	}
	gone, err := b.cache.Prune(ctx, co)
	if err != nil {
		return 0, 0, fmt.Errorf("pruning build cache: %w", err)
	}
	reclaimed, err := b.collect(ctx)
	return len(gone), reclaimed, err
}

// imageLayers returns the diffIDs of the layers of every stored image.
func (b *Builder) imageLayers(ctx context.Context) (map[digest.Digest]bool, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	held := map[digest.Digest]bool{}
	for _, rec := range idx.Images() {
		img, err := b.readImage(ctx, idx, rec)
		if err != nil {
			return nil, err
		}
		for _, l := range img.layers {
			held[l.DiffID] = true
		}
	}
	return held, nil
}

// collect deletes the blobs and snapshots that no image and no build cache
// record references, and returns the bytes freed.
func (b *Builder) collect(ctx context.Context) (int64, error) {
	recs, err := b.cache.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("collecting garbage: %w", err)
	}
	roots := store.Roots{Blobs: map[digest.Digest]bool{}, Chains: map[digest.Digest]bool{}}
	for _, rec := range recs {
		if rec.Layer != nil {
			roots.Blobs[rec.Layer.Desc.Digest] = true
			roots.Chains[rec.Layer.ChainID] = true
		}
	}
	return b.st.Collect(ctx, roots)
}

// CacheEntry is one build cache record, for `builder cache ls`.
type CacheEntry struct {
	Key        string    `json:"Key"`
	CreatedBy  string    `json:"CreatedBy"`
	Size       int64     `json:"Size"`
	Created    time.Time `json:"Created"`
	LastUsed   time.Time `json:"LastUsed"`
	EmptyLayer bool      `json:"EmptyLayer"`
}

// CacheEntries lists the build cache, most recently used first.
func (b *Builder) CacheEntries(ctx context.Context) ([]CacheEntry, error) {
	c := b.cache
	recs, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]CacheEntry, 0, len(recs))
	for _, r := range recs {
		out = append(out, CacheEntry{Key: r.Key.String(), CreatedBy: r.CreatedBy, Size: r.Size, Created: r.Created, LastUsed: r.LastUsed, EmptyLayer: r.EmptyLayer})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}
