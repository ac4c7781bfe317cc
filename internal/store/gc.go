package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// GCLock is held shared by every build and exclusively by garbage
// collection, so a collection never deletes what a running build has just
// written but not yet referenced.
type GCLock struct{ l *fileLock }

// Lease takes the GC lock shared. Release it when the build ends.
func (s *Store) Lease() (*GCLock, error) {
	l, err := lockShared(s.path("gc.lock"))
	if err != nil {
		return nil, err
	}
	return &GCLock{l: l}, nil
}

// LockGC takes the GC lock exclusively, waiting for running builds.
func (s *Store) LockGC() (*GCLock, error) {
	l, err := lockExclusive(s.path("gc.lock"))
	if err != nil {
		return nil, err
	}
	return &GCLock{l: l}, nil
}

// Release drops the lock.
func (g *GCLock) Release() error { return g.l.Unlock() }

// Roots are blobs and committed snapshots a garbage collection keeps besides
// those of images: the build cache's layers and snapshots, for example.
// Nil maps are empty.
type Roots struct {
	// Blobs are blob digests to keep.
	Blobs map[digest.Digest]bool
	// Chains are chain IDs of committed snapshots to keep.
	Chains map[digest.Digest]bool
}

func newRoots() Roots {
	return Roots{Blobs: map[digest.Digest]bool{}, Chains: map[digest.Digest]bool{}}
}

// add keeps the blobs of layers and the snapshot of every prefix of them.
func (r Roots) add(layers []Layer) {
	for _, l := range layers {
		r.Blobs[l.Blob.Digest] = true
	}
	for _, c := range chainIDs(layers) {
		r.Chains[c] = true
	}
}

// Collect deletes the blobs and committed snapshots nothing references, and
// returns the bytes freed: deleted blobs plus the files of deleted
// snapshots. It waits for the GC lock exclusively, so no build runs
// meanwhile. It keeps, for every image, its manifest (an index's child
// manifests too, those stored), config and layers, and the snapshot of
// every prefix of its layer stack; the parents of persistent active
// snapshots; and extra. Layer records whose blobs are gone are forgotten.
func (s *Store) Collect(ctx context.Context, extra Roots) (freed int64, err error) {
	lk, err := s.LockGC()
	if err != nil {
		return 0, fmt.Errorf("collecting garbage: %w", err)
	}
	defer lk.Release()
	keep, err := s.roots(ctx, extra)
	if err != nil {
		return 0, fmt.Errorf("collecting garbage: %w", err)
	}
	freed, err = s.deleteUnreferenced(ctx, keep)
	// Forget deleted blobs even after an error, so no layer record names a
	// blob that is gone.
	if ferr := s.forgetMissingBlobs(); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if err != nil {
		return freed, fmt.Errorf("collecting garbage: %w", err)
	}
	return freed, nil
}

// roots returns what images, containers and persistent snapshots
// reference, plus extra.
func (s *Store) roots(ctx context.Context, extra Roots) (Roots, error) {
	r := newRoots()
	for d := range extra.Blobs {
		r.Blobs[d] = true
	}
	for c := range extra.Chains {
		r.Chains[c] = true
	}
	idx, err := s.View()
	if err != nil {
		return Roots{}, err
	}
	seen := map[digest.Digest]bool{}
	for _, img := range idx.images {
		if err := s.keepManifest(ctx, img.Manifest.Digest, r, seen); err != nil {
			return Roots{}, fmt.Errorf("image %s: %w", img.ID, err)
		}
	}
	if err := s.keepContainers(ctx, r, seen); err != nil {
		return Roots{}, err
	}
	entries, err := os.ReadDir(s.path("active"))
	if err != nil {
		return Roots{}, fmt.Errorf("listing active snapshots: %w", err)
	}
	for _, e := range entries {
		dir := s.path("active", e.Name())
		if !e.IsDir() || !isPersistent(dir) {
			continue
		}
		parent, err := readMarker(dir)
		if err != nil {
			return Roots{}, err
		}
		r.add(parent)
	}
	s.keepRecipeSnapshots(r)
	return r, nil
}

// keepManifest adds to r the manifest d and what it references: an index's
// stored children, or a manifest's config, layers and layer stack.
func (s *Store) keepManifest(ctx context.Context, d digest.Digest, r Roots, seen map[digest.Digest]bool) error {
	if seen[d] {
		return nil
	}
	seen[d] = true
	r.Blobs[d] = true
	var m struct {
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    ocispec.Descriptor   `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := s.ReadJSON(ctx, d, &m); err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	for _, c := range m.Manifests {
		if _, ok := s.Has(c.Digest); !ok {
			continue // a platform that was never pulled
		}
		if err := s.keepManifest(ctx, c.Digest, r, seen); err != nil {
			return err
		}
	}
	if m.Config.Digest == "" {
		return nil
	}
	r.Blobs[m.Config.Digest] = true
	for _, l := range m.Layers {
		r.Blobs[l.Digest] = true
	}
	if !isImageConfig(m.Config.MediaType) {
		return nil // an artifact: it has no layer stack
	}
	var cfg ocispec.Image
	if err := s.ReadJSON(ctx, m.Config.Digest, &cfg); err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	for _, c := range identity.ChainIDs(cfg.RootFS.DiffIDs) {
		r.Chains[c] = true
	}
	return nil
}

func isImageConfig(mediaType string) bool {
	return mediaType == "" || mediaType == ocispec.MediaTypeImageConfig || strings.HasPrefix(mediaType, "application/vnd.docker.container.image.")
}

// deleteUnreferenced deletes the blobs and committed snapshots keep does
// not name, under the GC lock, and returns the bytes freed.
func (s *Store) deleteUnreferenced(ctx context.Context, keep Roots) (int64, error) {
	blobs, err := s.Blobs()
	if err != nil {
		return 0, fmt.Errorf("listing blobs: %w", err)
	}
	var freed int64
	for d, size := range blobs {
		if keep.Blobs[d] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		if err := s.deleteBlob(d); err != nil {
			return freed, err
		}
		freed += size
	}
	if err := s.removeRecipes(keep); err != nil {
		return freed, err
	}
	sn := s.Snapshots()
	chains, err := sn.List()
	if err != nil {
		return freed, err
	}
	for _, c := range chains {
		if keep.Chains[c] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		n, err := sn.delete(c)
		if err != nil {
			return freed, err
		}
		freed += n
	}
	return freed, nil
}

// forgetMissingBlobs drops from the layer records the blobs no longer
// stored, and the records left with none.
func (s *Store) forgetMissingBlobs() error {
	return s.update(func(idx *Index) error {
		for diffID, li := range idx.layers {
			kept := li.Blobs[:0]
			for _, b := range li.Blobs {
				if _, ok := s.Has(b.Digest); ok {
					kept = append(kept, b)
				}
			}
			li.Blobs = kept
			if len(kept) == 0 {
				delete(idx.layers, diffID)
			}
		}
		return nil
	})
}
