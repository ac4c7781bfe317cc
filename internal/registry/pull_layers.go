package registry

import (
	"context"
	"fmt"
	"io"
	"slices"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/output"
)

// pullLayers brings the layers descs, whose diffIDs the config gives, into
// the store, Jobs at a time, and returns them as the store records them.
// A layer the store already records with this blob is not read at all; a
// blob stored but not recorded as this layer is read from the store to
// check its diffID. Each fetched blob is committed as soon as it is
// verified, whatever happens to the others.
func (c *Client) pullLayers(ctx context.Context, pl *pulling, descs []ocispec.Descriptor, diffIDs []digest.Digest) ([]store.Layer, error) {
	em := c.progress
	idx, err := pl.st.View()
	if err != nil {
		return nil, err
	}
	layers := make([]store.Layer, len(descs))
	first := map[string]int{} // blob and diffID → first layer with them
	var todo []int
	for i, d := range descs {
		layers[i] = store.Layer{DiffID: diffIDs[i], Blob: d}
		key := d.Digest.String() + " " + diffIDs[i].String()
		if _, dup := first[key]; dup {
			continue
		}
		first[key] = i
		_, stored := pl.st.Has(d.Digest)
		if info, ok := idx.Layer(diffIDs[i]); stored && ok && slices.ContainsFunc(info.Blobs, func(b ocispec.Descriptor) bool { return b.Digest == d.Digest }) {
			layers[i].Size = info.Size
			em.layer(d.Digest, "Already exists")
			continue
		}
		if stored {
			em.layer(d.Digest, "Already exists")
		} else {
			em.layer(d.Digest, "Pulling fs layer")
		}
		todo = append(todo, i)
	}
	for _, i := range todo[min(c.opts.Jobs, len(todo)):] {
		if _, stored := pl.st.Has(descs[i].Digest); !stored {
			em.layer(descs[i].Digest, "Waiting")
		}
	}

	fetched := make([]bool, len(descs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Jobs)
	for _, i := range todo {
		g.Go(func() error {
			d := descs[i]
			_, stored := pl.st.Has(d.Digest)
			n, err := output.ImportLayer(gctx, pl.st, &layerSource{c: c, src: pl.src, desc: d}, d, diffIDs[i])
			if err != nil {
				return fmt.Errorf("pulling layer %s: %w", d.Digest, err)
			}
			layers[i].Size = n
			if !stored {
				fetched[i] = true
				em.layer(d.Digest, "Download complete")
				em.layer(d.Digest, "Pull complete")
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, d := range descs {
		layers[i].Size = layers[first[d.Digest.String()+" "+diffIDs[i].String()]].Size
	}
	if slices.Contains(fetched, true) {
		pl.fresh = true
	}
	return layers, nil
}

// layerSource is the output.Provider ImportLayer reads one layer blob from:
// the registry, with progress reported as docker does.
type layerSource struct {
	c    *Client
	src  []endpoint
	desc ocispec.Descriptor
}

// Open implements output.Provider for the one blob it serves. The reader
// verifies size and digest (see blobReader).
func (s *layerSource) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if d != s.desc.Digest {
		return nil, 0, fmt.Errorf("blob %s: %w", d, store.ErrNotFound)
	}
	rc, err := s.c.openBlob(ctx, s.src, s.desc)
	if err != nil {
		return nil, 0, err
	}
	em := s.c.progress
	pr := &progressReader{r: rc, e: em, d: d, status: "Downloading", total: s.desc.Size,
		done: func() { em.layer(d, "Verifying Checksum") }}
	return readCloser{pr, rc}, s.desc.Size, nil
}

// readCloser joins a reader and the closer of what it reads.
type readCloser struct {
	io.Reader
	io.Closer
}
