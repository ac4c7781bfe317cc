package builder

import (
	"context"
	"fmt"
	"time"

	"github.com/builder-project/builder/internal/store"
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
	rec      store.Image
	manifest ocispec.Manifest
	config   Config
	// layers pairs each layer blob with its diffID and uncompressed size.
	layers []store.Layer
}

// readImage reads the manifest and config of rec; idx gives the layers'
// uncompressed sizes.
func (b *Builder) readImage(ctx context.Context, idx *store.Index, rec store.Image) (*stored, error) {
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
	for i, l := range s.manifest.Layers {
		d := s.config.RootFS.DiffIDs[i]
		s.layers = append(s.layers, store.Layer{DiffID: d, Blob: l, Size: idx.LayerSize(d, l)})
	}
	return s, nil
}

// created is when the image was made: its config's date, else when the
// store recorded it.
func (s *stored) created() time.Time {
	if s.config.Created != nil {
		return *s.config.Created
	}
	return s.rec.Created
}

// size is the sum of the image's uncompressed layer sizes.
func (s *stored) size() int64 {
	var n int64
	for _, l := range s.layers {
		n += l.Size
	}
	return n
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
	return b.readImage(ctx, idx, rec)
}

// commitImage writes config and manifest blobs for cfg and layers, and
// records the image with tags pointing at it, or, unless keep, only its
// layers (an image that is exported but not kept). The config's rootfs is
// set from layers. It returns the image ID and the manifest descriptor.
func (b *Builder) commitImage(ctx context.Context, cfg Config, layers []store.Layer, tags []string, parent digest.Digest, keep bool) (digest.Digest, ocispec.Descriptor, error) {
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Layers:    []ocispec.Descriptor{},
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		mf.Layers = append(mf.Layers, l.Blob)
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
	if keep {
		err = b.st.PutImage(ctx, store.NewImage{ID: cdesc.Digest, Manifest: mdesc, Parent: parent, Layers: layers}, tags)
	} else {
		err = b.st.RecordLayers(layers...)
	}
	if err != nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("recording image: %w", err)
	}
	return cdesc.Digest, mdesc, nil
}
