package builder

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/builder-project/builder/cache"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
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

// Prune removes dangling images (with All, every unused image) and then the
// blobs and snapshots nothing references any more.
func (b *Builder) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	err := b.st.Update(func(idx *store.Index) error {
		for id := range idx.Images {
			tags := idx.TagsOf(id)
			if len(tags) > 0 && !opts.All {
				continue
			}
			for _, t := range tags {
				delete(idx.Tags, t)
				rep.Untagged = append(rep.Untagged, store.FamiliarRef(t))
			}
			delete(idx.Images, id)
			rep.Deleted = append(rep.Deleted, id.String())
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if !opts.KeepCache {
		c := b.cache
		all := opts.CacheUntil == 0 && opts.KeepStorage == 0
		removed, err := c.Prune(ctx, cache.PruneOptions{Until: opts.CacheUntil, KeepStorage: opts.KeepStorage, All: all})
		if err != nil {
			return rep, fmt.Errorf("pruning build cache: %w", err)
		}
		rep.CacheEntries = len(removed)
	}
	n, err := b.collect(ctx)
	rep.Reclaimed = n
	return rep, err
}

// roots are what garbage collection keeps.
type roots struct {
	blobs  map[digest.Digest]bool
	chains map[digest.Digest]bool
}

// imageRoots adds the blobs and snapshot chain IDs of every stored image.
func (b *Builder) imageRoots(ctx context.Context, idx *store.Index, r *roots) error {
	for _, rec := range idx.Images {
		img, err := b.readImage(ctx, rec)
		if err != nil {
			return err
		}
		r.blobs[rec.Manifest.Digest] = true
		r.blobs[img.manifest.Config.Digest] = true
		for _, l := range img.manifest.Layers {
			r.blobs[l.Digest] = true
		}
		for i := range img.config.RootFS.DiffIDs {
			r.chains[layer.ChainID(img.config.RootFS.DiffIDs[:i+1])] = true
		}
	}
	return nil
}

// collect deletes blobs and snapshots that no image or cache record
// references, under the exclusive GC lock, and returns the bytes freed.
func (b *Builder) collect(ctx context.Context) (int64, error) {
	lk, err := b.st.LockGC()
	if err != nil {
		return 0, err
	}
	defer lk.Release()
	idx, err := b.st.View()
	if err != nil {
		return 0, err
	}
	r := &roots{blobs: map[digest.Digest]bool{}, chains: map[digest.Digest]bool{}}
	if err := b.imageRoots(ctx, idx, r); err != nil {
		return 0, fmt.Errorf("collecting garbage: %w", err)
	}
	if err := b.cacheRoots(ctx, r); err != nil {
		return 0, fmt.Errorf("collecting garbage: %w", err)
	}
	blobs, err := b.st.Blobs()
	if err != nil {
		return 0, err
	}
	var freed int64
	for d, size := range blobs {
		if r.blobs[d] {
			continue
		}
		if err := b.st.DeleteBlob(d); err != nil {
			return freed, err
		}
		freed += size
	}
	chains, err := b.st.Snapshots().List()
	if err != nil {
		return freed, err
	}
	for _, c := range chains {
		if r.chains[c] {
			continue
		}
		if err := b.st.Snapshots().Delete(c); err != nil {
			return freed, err
		}
	}
	// Forget stored forms of layers whose blobs are gone.
	err = b.st.Update(func(idx *store.Index) error {
		for diffID, li := range idx.Layers {
			kept := li.Blobs[:0]
			for _, bl := range li.Blobs {
				if r.blobs[bl.Digest] {
					kept = append(kept, bl)
				}
			}
			li.Blobs = kept
			if len(kept) == 0 {
				delete(idx.Layers, diffID)
			}
		}
		return nil
	})
	return freed, err
}

// cacheRoots adds the layer blobs and snapshots build cache records use.
func (b *Builder) cacheRoots(ctx context.Context, r *roots) error {
	c := b.cache
	recs, err := c.List(ctx)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Layer != nil {
			r.blobs[rec.Layer.Desc.Digest] = true
			r.chains[rec.Layer.ChainID] = true
		}
	}
	return nil
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
