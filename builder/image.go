package builder

import (
	"context"
	"fmt"
	"time"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Config is an image configuration: the OCI config with Docker's extensions
// (Healthcheck, OnBuild, Shell).
type Config = dockerspec.DockerOCIImage

// stored is an image read back from the store.
type stored struct {
	rec      *store.Image
	manifest ocispec.Manifest
	config   Config
}

func (b *Builder) readImage(ctx context.Context, rec *store.Image) (*stored, error) {
	s := &stored{rec: rec}
	if err := b.st.ReadJSON(ctx, rec.Manifest.Digest, &s.manifest); err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", rec.ID, err)
	}
	if err := b.st.ReadJSON(ctx, s.manifest.Config.Digest, &s.config); err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", rec.ID, err)
	}
	if len(s.manifest.Layers) != len(s.config.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image %s: manifest has %d layers but config has %d diff IDs", rec.ID, len(s.manifest.Layers), len(s.config.RootFS.DiffIDs))
	}
	return s, nil
}

// resolve finds the image a reference names and reads it.
func (b *Builder) resolve(ctx context.Context, ref string) (*stored, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	rec, err := idx.Resolve(ref)
	if err != nil {
		return nil, err
	}
	return b.readImage(ctx, rec)
}

// newImageLayer describes one layer of an image being assembled.
type newImageLayer struct {
	layer.Layer
	Size int64 // uncompressed size, 0 if unknown
}

// commitImage writes config and manifest blobs for cfg and layers, records
// the layers in the index and, unless blobsOnly, the image with tags
// pointing at it. It returns the image ID and the manifest descriptor.
// The config's rootfs is set from layers.
func (b *Builder) commitImage(ctx context.Context, cfg Config, layers []newImageLayer, tags []string, parent digest.Digest, blobsOnly bool) (digest.Digest, ocispec.Descriptor, error) {
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Layers:    []ocispec.Descriptor{},
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		mf.Layers = append(mf.Layers, l.Desc)
	}
	cdesc, err := b.st.WriteJSON(ctx, ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("writing image config: %w", err)
	}
	mf.Config = cdesc
	mdesc, err := b.st.WriteJSON(ctx, ocispec.MediaTypeImageManifest, mf)
	if err != nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("writing image manifest: %w", err)
	}
	now := time.Now().UTC()
	err = b.st.Update(func(idx *store.Index) error {
		for _, l := range layers {
			idx.AddLayer(l.DiffID, l.Size, l.Desc)
		}
		if blobsOnly {
			return nil
		}
		rec := idx.Images[cdesc.Digest]
		if rec == nil {
			rec = &store.Image{ID: cdesc.Digest, Manifest: mdesc, Created: now, Parent: parent}
			idx.Images[cdesc.Digest] = rec
		}
		for _, t := range tags {
			idx.Tags[t] = cdesc.Digest
			rec.LastTagTime = now
		}
		return nil
	})
	if err != nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("recording image: %w", err)
	}
	return cdesc.Digest, mdesc, nil
}

// layerSize returns the uncompressed size of a layer if known, else its blob size.
func layerSize(idx *store.Index, diffID digest.Digest, blob ocispec.Descriptor) int64 {
	if li := idx.Layers[diffID]; li != nil && li.Size > 0 {
		return li.Size
	}
	return blob.Size
}

// readManifest reads the image a manifest descriptor names, whether or not
// the index records it (a build whose result is only exported is not).
func (b *Builder) readManifest(ctx context.Context, desc ocispec.Descriptor) (*stored, error) {
	var mf ocispec.Manifest
	if err := b.st.ReadJSON(ctx, desc.Digest, &mf); err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	return b.readImage(ctx, &store.Image{ID: mf.Config.Digest, Manifest: desc})
}
