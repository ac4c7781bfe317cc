package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
)

// CompressionOptions say how the layers of an exported image are
// compressed, with the names of BuildKit's image exporter options. The zero
// value exports every layer as it is stored: built and imported layers
// uncompressed, loaded ones as they came. Save (SaveOptions) and Build's
// oci and docker outputs (Output) take them.
type CompressionOptions struct {
	// Compression is "gzip", "zstd" or "uncompressed" ("none" also
	// works). Each layer is then exported in that compression: a stored
	// blob of it is reused, else the layer is compressed once and the blob
	// kept in the store as another form of the layer, for the next export.
	// The image config, and so the image ID, stays the same; the manifest
	// is a new one, with OCI media types.
	Compression string
	// CompressionLevel is the level of gzip (0 to 9; default 5, which
	// compresses about as well as gzip's 6) or zstd (1 to 22; default 3).
	// Nil is the default. It needs Compression gzip or zstd. Without
	// ForceCompression, a stored blob of the compression is reused
	// whatever level made it.
	CompressionLevel *int
	// ForceCompression compresses every layer again, at CompressionLevel,
	// even one already stored in the compression asked for. It needs
	// Compression. An uncompressed layer is the same bytes however it is
	// made, so a stored one is always reused.
	ForceCompression bool
}

// check reports options that are not valid together.
func (c CompressionOptions) check() error {
	if c.Compression == "" {
		if c.CompressionLevel != nil || c.ForceCompression {
			return errors.New("a compression level or force-compression needs a compression: gzip, zstd or uncompressed")
		}
		return nil
	}
	comp, err := layer.ParseCompression(c.Compression)
	if err != nil {
		return err
	}
	if c.CompressionLevel == nil {
		return nil
	}
	if comp == layer.Uncompressed {
		return errors.New("a compression level needs gzip or zstd compression")
	}
	return layer.CheckLevel(comp, *c.CompressionLevel)
}

// writeOptions returns the layer.Write options of c.
func (c CompressionOptions) writeOptions() []layer.WriteOption {
	if c.CompressionLevel == nil {
		return nil
	}
	return []layer.WriteOption{layer.WithLevel(*c.CompressionLevel)}
}

// compressJobs returns how many layers of one image are compressed at once
// in compression c. layer.Write compresses on every core already, yet on 2
// cores, converting 6 layers of 40 MB took 2.9 s one at a time and 2.3 s two
// at a time with gzip, whose writer leaves cores idle between blocks, but
// 2.6 s and 3.3 s with zstd, which keeps them busy.
func compressJobs(c layer.Compression) int {
	if c == layer.Gzip {
		return 2
	}
	return 1
}

// convert returns the manifest of the image manifest describes with its
// layers in the compression c asks for: same config, so same image ID,
// with OCI media types. A layer with a stored blob of that compression
// reuses it (unless c.ForceCompression); any other is compressed once,
// streamed from its stored form through layer.Write into the store, and
// the new blob is recorded as a form of its layer (store.RecordLayers), so
// that the next export finds it. The new manifest is written to the store.
// With no compression asked for, or when every layer already is as asked,
// convert returns manifest itself. The caller holds a lease on the store,
// since the blobs it writes belong to no image.
func (b *Builder) convert(ctx context.Context, manifest ocispec.Descriptor, c CompressionOptions) (ocispec.Descriptor, error) {
	if c.Compression == "" {
		return manifest, nil
	}
	target, err := layer.ParseCompression(c.Compression)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	idx, err := b.st.View()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	// Errors name the image by its manifest: its ID is not known yet.
	img, err := b.readImage(ctx, idx, store.Image{ID: manifest.Digest, Manifest: manifest})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mf, layers := img.manifest, img.layers
	out := mf
	out.MediaType = ocispec.MediaTypeImageManifest
	if strings.HasPrefix(out.Config.MediaType, "application/vnd.docker.container.image.") {
		out.Config.MediaType = ocispec.MediaTypeImageConfig
	}
	blobs, err := b.inCompression(ctx, layers, target, c)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compressing the layers of %s with %s: %w", store.ShortID(mf.Config.Digest), target, err)
	}
	out.Layers = blobs
	if sameManifest(mf, out) {
		return manifest, nil
	}
	desc, err := b.st.WriteJSON(ctx, ocispec.MediaTypeImageManifest, out)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing the manifest of %s: %w", store.ShortID(mf.Config.Digest), err)
	}
	desc.Platform = manifest.Platform
	return desc, nil
}

// inCompression returns the blob of each layer in compression target: the
// layer's own blob or another stored form of it when pickBlob may reuse
// one, else a blob compressed now, once, from its stored form (at most
// compressJobs(target) at a time) and recorded as a form of the layer
// (store.RecordLayers), so that the next export finds it. The caller holds
// a lease on the store, since the blobs it writes belong to no image. A
// blob compressed now keeps the annotations of the layer's blob.
func (b *Builder) inCompression(ctx context.Context, layers []store.Layer, target layer.Compression, c CompressionOptions) ([]ocispec.Descriptor, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	out := make([]ocispec.Descriptor, len(layers))
	var (
		mu   sync.Mutex
		made []store.Layer
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(compressJobs(target))
	for i, l := range layers {
		li, _ := idx.Layer(l.DiffID)
		li.DiffID = l.DiffID
		reuse, src, ok := b.pickBlob(li, l.Blob, target, c.ForceCompression)
		if ok {
			out[i] = reuse
			continue
		}
		eg.Go(func() error {
			nl, err := b.compressLayer(ectx, l.DiffID, src, target, c.writeOptions())
			if err != nil {
				return err
			}
			out[i] = ocispec.Descriptor{MediaType: nl.Blob.MediaType, Digest: nl.Blob.Digest, Size: nl.Blob.Size, Annotations: l.Blob.Annotations}
			mu.Lock()
			made = append(made, nl)
			mu.Unlock()
			return nil
		})
	}
	err = eg.Wait()
	// The blobs made are worth keeping even if another layer failed.
	if len(made) > 0 {
		err = errors.Join(err, b.st.RecordLayers(made...))
	}
	return out, err
}

// pickBlob returns the stored blob of the layer li that an export in
// compression c reuses: cur, the image's own blob, or another form of the
// layer, with c's media type. Unless it finds one (ok), it returns the blob
// to compress from: an uncompressed form if one is stored, else cur.
func (b *Builder) pickBlob(li store.LayerInfo, cur ocispec.Descriptor, c layer.Compression, force bool) (reuse, src ocispec.Descriptor, ok bool) {
	reusable := func(d ocispec.Descriptor) bool {
		dc, known := blobCompression(d.MediaType)
		return known && dc == c && (!force || c == layer.Uncompressed)
	}
	if reusable(cur) {
		cur.MediaType = c.MediaType()
		return cur, ocispec.Descriptor{}, true
	}
	src = cur
	for _, d := range li.Blobs {
		if _, stored := b.st.Has(d.Digest); !stored {
			continue
		}
		if reusable(d) {
			return ocispec.Descriptor{MediaType: c.MediaType(), Digest: d.Digest, Size: d.Size, Annotations: cur.Annotations}, ocispec.Descriptor{}, true
		}
		if dc, known := blobCompression(d.MediaType); known && dc == layer.Uncompressed {
			src = d
		}
	}
	return ocispec.Descriptor{}, src, false
}

// compressLayer writes the layer diffID, read from the stored blob src
// (compressed or not), into the store in compression c, and returns it as
// the store records it.
func (b *Builder) compressLayer(ctx context.Context, diffID digest.Digest, src ocispec.Descriptor, c layer.Compression, opts []layer.WriteOption) (store.Layer, error) {
	rc, _, err := b.st.Open(ctx, src.Digest)
	if err != nil {
		return store.Layer{}, err
	}
	defer rc.Close()
	w, err := b.st.Ingest(ctx)
	if err != nil {
		return store.Layer{}, err
	}
	if src.Digest == diffID {
		// rc is the verified uncompressed tar: its digest is the diffID.
		opts = append(opts[:len(opts):len(opts)], layer.WithDiffID(diffID))
	}
	l, err := layer.Write(ctx, w, c, func(tw io.Writer) error {
		plain, _, err := layer.DecompressStream(rc)
		if err != nil {
			return err
		}
		defer plain.Close()
		_, err = io.Copy(tw, plain)
		return err
	}, opts...)
	if err != nil {
		return store.Layer{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if l.DiffID != diffID {
		return store.Layer{}, fmt.Errorf("layer %s: blob %s holds layer %s", diffID, src.Digest, l.DiffID)
	}
	return store.Layer{DiffID: diffID, Blob: l.Desc, Size: l.Size}, nil
}

// blobCompression returns the compression of a layer blob from its OCI or
// Docker media type, and whether the media type tells.
func blobCompression(mediaType string) (layer.Compression, bool) {
	switch {
	case strings.HasSuffix(mediaType, "+gzip"), strings.HasSuffix(mediaType, ".tar.gzip"):
		return layer.Gzip, true
	case strings.HasSuffix(mediaType, "+zstd"), strings.HasSuffix(mediaType, ".tar.zstd"):
		return layer.Zstd, true
	case strings.HasSuffix(mediaType, ".tar"):
		return layer.Uncompressed, true
	}
	return 0, false
}

// sameManifest reports whether b has the media types and blobs of a.
func sameManifest(a, b ocispec.Manifest) bool {
	if a.MediaType != b.MediaType || a.Config.MediaType != b.Config.MediaType || len(a.Layers) != len(b.Layers) {
		return false
	}
	for i := range a.Layers {
		if a.Layers[i].Digest != b.Layers[i].Digest || a.Layers[i].MediaType != b.Layers[i].MediaType {
			return false
		}
	}
	return true
}
