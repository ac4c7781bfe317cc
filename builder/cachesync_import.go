package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

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
	lc, err := readCacheLayout(ctx, dir, true)
	if err != nil {
		return 0, fmt.Errorf("importing cache: %w", err)
	}
	lease, err := b.st.Lease()
	if err != nil {
		return 0, err
	}
	defer lease.Release()
	c := b.cache
	keys := make([]digest.Digest, 0, len(lc.records))
	for k := range lc.records {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var todo []cache.Record
	for _, k := range keys {
		local, ok, err := c.Lookup(ctx, k)
		if err == nil && ok {
			if local.Layer == nil {
				continue
			}
			if _, has := b.st.Has(local.Layer.Desc.Digest); has {
				continue
			}
		}
		todo = append(todo, lc.records[k])
	}

	idx, err := b.st.View()
	if err != nil {
		return 0, err
	}
	sizes := map[digest.Digest]int64{}           // uncompressed size by blob digest
	checked := map[digest.Digest]digest.Digest{} // verified diffID by blob digest
	for _, rec := range todo {
		l := rec.Layer
		if l == nil {
			continue
		}
		if d, done := checked[l.Desc.Digest]; done {
			if d != l.DiffID {
				return 0, fmt.Errorf("importing cache: record %s gives layer %s diffID %s, another record %s", rec.Key, l.Desc.Digest, l.DiffID, d)
			}
			continue
		}
		n, err := b.importCacheLayer(ctx, idx, dir, l.Desc, l.DiffID)
		if err != nil {
			return 0, fmt.Errorf("importing cache: %w", err)
		}
		sizes[l.Desc.Digest], checked[l.Desc.Digest] = n, l.DiffID
	}
	err = b.st.Update(func(idx *store.Index) error {
		for _, rec := range todo {
			if l := rec.Layer; l != nil {
				idx.AddLayer(l.DiffID, sizes[l.Desc.Digest], l.Desc)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("importing cache: recording layers: %w", err)
	}
	for i, rec := range todo {
		rec.LastUsed = time.Time{} // imported now
		if err := c.Put(ctx, rec); err != nil {
			for _, done := range todo[:i] {
				c.Delete(context.WithoutCancel(ctx), done.Key)
			}
			return 0, fmt.Errorf("importing cache: %w", err)
		}
	}
	return len(todo), nil
}

// importCacheLayer makes sure the store holds the layer blob desc with the
// given diffID, copying it from the layout when missing, and returns its
// uncompressed size. A blob the store already has is trusted when the store
// already knows it as a form of diffID, and read to check otherwise.
func (b *Builder) importCacheLayer(ctx context.Context, idx *store.Index, dir string, desc ocispec.Descriptor, diffID digest.Digest) (int64, error) {
	if _, ok := b.st.Has(desc.Digest); ok {
		if li := idx.Layers[diffID]; li != nil && li.Size > 0 {
			for _, bl := range li.Blobs {
				if bl.Digest == desc.Digest {
					return li.Size, nil
				}
			}
		}
		rc, _, err := b.st.Open(ctx, desc.Digest)
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		got, n, err := diffIDOf(rc)
		if err != nil {
			return 0, fmt.Errorf("checking stored blob %s: %w", desc.Digest, err)
		}
		if got != diffID {
			return 0, fmt.Errorf("checking stored blob %s: its diffID is %s, the cache says %s", desc.Digest, got, diffID)
		}
		return n, nil
	}

	p, err := layoutBlobPath(dir, desc.Digest)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("reading layer: %w", err)
	}
	defer f.Close()
	w, err := b.st.Ingest(ctx)
	if err != nil {
		return 0, err
	}
	defer w.Abort()
	// The blob goes to the store and, through a pipe, to a goroutine that
	// decompresses and hashes it, so both digests come from one read.
	pr, pw := io.Pipe()
	type result struct {
		diffID digest.Digest
		n      int64
		err    error
	}
	done := make(chan result, 1)
	go func() {
		d, n, err := diffIDOf(pr)
		pr.CloseWithError(err)
		done <- result{d, n, err}
	}()
	dg := digest.SHA256.Digester()
	n, cerr := io.Copy(io.MultiWriter(w, dg.Hash(), pw), &ctxReader{ctx: ctx, r: io.LimitReader(f, desc.Size+1)})
	pw.CloseWithError(cerr)
	res := <-done
	if cerr == nil {
		cerr = res.err
	}
	if n != desc.Size || dg.Digest() != desc.Digest {
		return 0, fmt.Errorf("reading %s: %w: got %d bytes hashing to %s, want %d bytes", p, store.ErrInvalidDigest, n, dg.Digest(), desc.Size)
	}
	if cerr != nil {
		return 0, fmt.Errorf("reading %s: %w", p, cerr)
	}
	if res.diffID != diffID {
		return 0, fmt.Errorf("reading %s: its diffID is %s, the record says %s", p, res.diffID, diffID)
	}
	if _, err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	return res.n, nil
}

// diffIDOf returns the digest and size of the uncompressed content of the
// layer blob r, reading r to its end.
func diffIDOf(r io.Reader) (digest.Digest, int64, error) {
	plain, _, err := layer.DecompressStream(r)
	if err != nil {
		return "", 0, err
	}
	defer plain.Close()
	dg := digest.SHA256.Digester()
	n, err := io.Copy(dg.Hash(), plain)
	if err != nil {
		return "", 0, fmt.Errorf("decompressing layer: %w", err)
	}
	// Drain what follows the compressed stream: a verifying reader checks
	// at EOF, and a pipe's writer must not block.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", 0, err
	}
	return dg.Digest(), n, nil
}
