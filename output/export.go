package output

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// Image names one stored image for export.
type Image struct {
	// Manifest describes the image's manifest (or index) blob in the store.
	Manifest ocispec.Descriptor
	// Names are normalized references (docker.io/library/busybox:latest) to
	// record for the image; it may be empty.
	Names []string
}

// WriteOCIArchive streams an OCI image-layout tar of imgs to w: oci-layout,
// index.json and blobs/sha256/<hex>. index.json has one entry per name
// (or one unnamed entry), annotated with io.containerd.image.name (the full
// name) and org.opencontainers.image.ref.name (the tag only, which is what
// skopeo and umoci look up). An image whose manifest is an index is written
// whole. Blobs are streamed from the store and verified as they are read.
func WriteOCIArchive(ctx context.Context, st *store.Store, w io.Writer, imgs []Image) error {
	idx, blobs, err := planLayout(ctx, st, imgs)
	if err != nil {
		return err
	}
	idxData, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding index.json: %w", err)
	}
	tw := newTarWriter(w)
	if err := writeLayoutFiles(tw, idxData); err != nil {
		return err
	}
	for _, d := range blobs {
		if err := tw.blob(ctx, st, d); err != nil {
			return err
		}
	}
	return tw.close()
}

// planLayout reads the images' manifests and returns the index.json of a
// layout holding them, and every blob to write.
func planLayout(ctx context.Context, st *store.Store, imgs []Image) (ocispec.Index, []ocispec.Descriptor, error) {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	var b imageBlobs
	for _, img := range imgs {
		desc, err := describe(ctx, st, img.Manifest)
		if err != nil {
			return idx, nil, err
		}
		if err := b.walk(ctx, st, desc, 0); err != nil {
			return idx, nil, fmt.Errorf("collecting blobs of %s: %w", desc.Digest, err)
		}
		idx.Manifests = append(idx.Manifests, indexEntries(desc, img.Names)...)
	}
	return idx, b.descs, nil
}

// describe returns a clean descriptor of a stored manifest: media type
// (sniffed if missing), digest, size and platform, without annotations.
func describe(ctx context.Context, st *store.Store, d ocispec.Descriptor) (ocispec.Descriptor, error) {
	out := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}
	if out.MediaType != "" && out.Size > 0 {
		return out, nil
	}
	data, err := st.ReadBlob(ctx, d.Digest)
	if err != nil {
		return out, fmt.Errorf("reading manifest %s: %w", d.Digest, err)
	}
	out.Size = int64(len(data))
	if out.MediaType == "" {
		out.MediaType = sniffMediaType(data)
	}
	if out.MediaType == "" {
		return out, fmt.Errorf("blob %s is neither a manifest nor an index", d.Digest)
	}
	return out, nil
}

// indexEntries returns the index.json entries for one image: one per name,
// or a single unnamed one.
func indexEntries(desc ocispec.Descriptor, names []string) []ocispec.Descriptor {
	if len(names) == 0 {
		return []ocispec.Descriptor{desc}
	}
	out := make([]ocispec.Descriptor, 0, len(names))
	for _, n := range names {
		d := desc
		d.Annotations = map[string]string{annotationContainerdName: n}
		if tag := tagOf(n); tag != "" {
			d.Annotations[annotationRefName] = tag
		}
		out = append(out, d)
	}
	return out
}

// writeLayoutFiles writes oci-layout and index.json.
func writeLayoutFiles(tw *tarWriter, idxData []byte) error {
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("encoding oci-layout: %w", err)
	}
	if err := tw.file(ocispec.ImageLayoutFile, layout); err != nil {
		return err
	}
	return tw.file(ocispec.ImageIndexFile, idxData)
}

// unmarshal decodes a JSON document, naming it in the error.
func unmarshal(data []byte, v any, what string, d digest.Digest) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %s %s: %w", what, d, err)
	}
	return nil
}
