package output

import (
	"context"
	"fmt"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/platform"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// plan is what an OCI image layout holding some images consists of: the
// index.json entries naming them and every blob they reference.
type plan struct {
	// entries are the index.json entries: one per name, or one unnamed.
	entries []ocispec.Descriptor
	// blobs lists each blob once, parents before children.
	blobs []ocispec.Descriptor
}

// index returns the index.json of a layout holding only the plan's images.
func (pl plan) index() ocispec.Index {
	return newIndex(pl.entries)
}

// newIndex returns an image index listing entries.
func newIndex(entries []ocispec.Descriptor) ocispec.Index {
	if entries == nil {
		entries = []ocispec.Descriptor{}
	}
	return ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
}

// planLayout reads the images' manifests from p and returns the layout that
// holds them. An image whose manifest is an index is planned whole.
func planLayout(ctx context.Context, p Provider, imgs []Image) (plan, error) {
	var (
		pl plan
		b  imageBlobs
	)
	for _, img := range imgs {
		desc, err := describe(ctx, p, img.Manifest)
		if err != nil {
			return pl, err
		}
		if err := b.walk(ctx, p, desc, 0); err != nil {
			return pl, fmt.Errorf("collecting blobs of %s: %w", desc.Digest, err)
		}
		pl.entries = append(pl.entries, indexEntries(desc, img.Names)...)
	}
	pl.blobs = b.descs
	uniqueRefNames(pl.entries)
	return pl, nil
}

// uniqueRefNames gives each entry its own org.opencontainers.image.ref.name:
// an entry whose tag another entry also has is named by its full name
// instead (docker.io/library/app:latest), so that skopeo's and podman's
// oci-archive:FILE:NAME find each image.
func uniqueRefNames(entries []ocispec.Descriptor) {
	count := map[string]int{}
	for _, e := range entries {
		if r := e.Annotations[annotationRefName]; r != "" {
			count[r]++
		}
	}
	for _, e := range entries {
		if r := e.Annotations[annotationRefName]; r != "" && count[r] > 1 {
			e.Annotations[annotationRefName] = e.Annotations[annotationContainerdName]
		}
	}
}

// describe returns a clean descriptor of a manifest: media type (sniffed if
// missing), digest, size and platform, without annotations.
func describe(ctx context.Context, p Provider, d ocispec.Descriptor) (ocispec.Descriptor, error) {
	out := ocispec.Descriptor{MediaType: d.MediaType, ArtifactType: d.ArtifactType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}
	if out.MediaType != "" && out.Size > 0 {
		return out, nil
	}
	data, err := readAll(ctx, p, d, maxDocument)
	if err != nil {
		return out, fmt.Errorf("reading manifest %s: %w", d.Digest, err)
	}
	out.Size = int64(len(data))
	if out.MediaType == "" {
		out.MediaType = mediatype.Sniff(data)
	}
	if out.MediaType == "" {
		return out, fmt.Errorf("blob %s is neither a manifest nor an index", d.Digest)
	}
	return out, nil
}

// indexEntries returns the index.json entries for one image: one per name,
// or a single unnamed one. A named entry carries io.containerd.image.name
// (the full name) and org.opencontainers.image.ref.name (the tag only, which
// is what skopeo and umoci look up).
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

// imageBlobs lists the blobs of images or indexes, parents before children,
// each once.
type imageBlobs struct {
	descs []ocispec.Descriptor
	seen  map[digest.Digest]bool
}

// walk adds desc and everything it references. Manifests and indexes are
// read from p to find their children; layers are only listed.
func (b *imageBlobs) walk(ctx context.Context, p Provider, desc ocispec.Descriptor, depth int) error {
	if b.seen == nil {
		b.seen = map[digest.Digest]bool{}
	}
	if b.seen[desc.Digest] {
		return nil
	}
	if depth > 4 {
		return fmt.Errorf("index %s nests too deep", desc.Digest)
	}
	b.seen[desc.Digest] = true
	b.descs = append(b.descs, desc)
	mt := desc.MediaType
	if !mediatype.IsManifest(mt) && !mediatype.IsIndex(mt) && mt != "" {
		return nil
	}
	data, err := readAll(ctx, p, desc, maxDocument)
	if err != nil {
		return fmt.Errorf("reading %s: %w", desc.Digest, err)
	}
	if mt == "" {
		mt = mediatype.Sniff(data)
	}
	var children []ocispec.Descriptor
	switch {
	case mediatype.IsIndex(mt):
		var idx ocispec.Index
		if err := unmarshal(data, &idx, "index", desc.Digest); err != nil {
			return err
		}
		children = idx.Manifests
	case mediatype.IsManifest(mt):
		var m ocispec.Manifest
		if err := unmarshal(data, &m, "manifest", desc.Digest); err != nil {
			return err
		}
		children = append([]ocispec.Descriptor{m.Config}, m.Layers...)
	}
	for _, c := range children {
		if err := b.walk(ctx, p, c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// platformManifest reads the manifest that desc names from p; for an index
// it picks the host platform's manifest. It returns the manifest's clean
// descriptor (media type, digest, size, platform) and the manifest.
func platformManifest(ctx context.Context, p Provider, desc ocispec.Descriptor) (ocispec.Descriptor, ocispec.Manifest, error) {
	for depth := 0; depth < 4; depth++ {
		data, err := readAll(ctx, p, desc, maxDocument)
		if err != nil {
			return desc, ocispec.Manifest{}, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
		}
		mt := desc.MediaType
		if mt == "" {
			mt = mediatype.Sniff(data)
		}
		desc = ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: int64(len(data)), Platform: desc.Platform}
		switch {
		case mediatype.IsManifest(mt):
			var m ocispec.Manifest
			err := unmarshal(data, &m, "manifest", desc.Digest)
			return desc, m, err
		case mediatype.IsIndex(mt):
			var idx ocispec.Index
			if err := unmarshal(data, &idx, "index", desc.Digest); err != nil {
				return desc, ocispec.Manifest{}, err
			}
			child, err := platform.Pick(idx, hostPlatform)
			if err != nil {
				return desc, ocispec.Manifest{}, fmt.Errorf("index %s: %w", desc.Digest, err)
			}
			desc = child
		default:
			return desc, ocispec.Manifest{}, fmt.Errorf("blob %s is neither a manifest nor an index (%q)", desc.Digest, mt)
		}
	}
	return desc, ocispec.Manifest{}, fmt.Errorf("index %s nests too deep", desc.Digest)
}
