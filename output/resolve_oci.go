package output

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/platform"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// errNotImage marks an index.json entry that is not an image (an artifact
// or an unknown document); it is skipped.
var errNotImage = errors.New("not an image")

// resolveOCI reads oci-layout and index.json and checks every image listed.
func (l *loader) resolveOCI() ([]*pending, error) {
	lf := l.files[ocispec.ImageLayoutFile]
	if lf == nil {
		return nil, errors.New("archive has index.json but no oci-layout: not an OCI image layout")
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(lf.data, &layout); err != nil {
		return nil, fmt.Errorf("decoding oci-layout: %w", err)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("oci-layout version %q is not supported (want %s)", layout.Version, ocispec.ImageLayoutVersion)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(l.files[ocispec.ImageIndexFile].data, &idx); err != nil {
		return nil, fmt.Errorf("decoding index.json: %w", err)
	}
	var out []*pending
	for _, d := range idx.Manifests {
		p, err := l.ociImage(d, 0)
		if errors.Is(err, errNotImage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n := annotatedName(d.Annotations); n != "" {
			p.Names = []string{n}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no images")
	}
	return out, nil
}

// ociImage follows d to an image manifest, through nested indexes to the
// host platform's manifest, and checks the image.
func (l *loader) ociImage(d ocispec.Descriptor, depth int) (*pending, error) {
	if depth > 4 {
		return nil, fmt.Errorf("index %s nests too deep", d.Digest)
	}
	if d.MediaType != "" && !mediatype.IsManifest(d.MediaType) && !mediatype.IsIndex(d.MediaType) {
		return nil, errNotImage
	}
	data, mf, err := l.smallBlob(d)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", d.Digest, err)
	}
	mt := d.MediaType
	if mt == "" {
		mt = mediatype.Sniff(data)
	}
	if mediatype.IsIndex(mt) {
		var idx ocispec.Index
		if err := unmarshal(data, &idx, "index", d.Digest); err != nil {
			return nil, err
		}
		child, err := platform.Pick(idx, hostPlatform)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		return l.ociImage(child, depth+1)
	}
	if !mediatype.IsManifest(mt) {
		return nil, errNotImage
	}
	var m ocispec.Manifest
	if err := unmarshal(data, &m, "manifest", d.Digest); err != nil {
		return nil, err
	}
	if !mediatype.IsConfig(m.Config.MediaType) {
		return nil, errNotImage
	}
	p := &pending{Loaded: Loaded{
		Manifest: ocispec.Descriptor{MediaType: mt, Digest: d.Digest, Size: int64(len(data)), Platform: d.Platform},
		Config:   m.Config.Digest,
	}}
	cdata, cf, err := l.smallBlob(m.Config)
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", d.Digest, err)
	}
	if cf != nil {
		p.files = append(p.files, cf)
	}
	cfg, err := imageConfig(cdata, m.Config.Digest.String(), len(m.Layers))
	if err != nil {
		return nil, err
	}
	for i, ld := range m.Layers {
		lf, err := l.blob(ld)
		if err != nil {
			return nil, err
		}
		lb := LayerBlob{DiffID: cfg.RootFS.DiffIDs[i], Blob: ld}
		switch {
		case lf != nil:
			if err := checkLayer(lf, lb.DiffID); err != nil {
				return nil, err
			}
			lb.Size = lf.usize
			p.files = append(p.files, lf)
		default:
			if _, ok := l.st.Has(ld.Digest); !ok {
				return nil, fmt.Errorf("layer %s is missing from the archive", blobName(ld))
			}
		}
		p.Layers = append(p.Layers, lb)
	}
	if mf != nil {
		p.files = append(p.files, mf)
	}
	return p, nil
}
