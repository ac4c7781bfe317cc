package output

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// dockerManifestEntry is one element of a docker-archive's manifest.json.
// It is docker's format, not part of the image spec.
type dockerManifestEntry struct {
	// Config is the archive path of the image config.
	Config string `json:"Config"`
	// RepoTags are familiar names (busybox:latest).
	RepoTags []string `json:"RepoTags"`
	// Layers are the archive paths of the layer files, base first.
	Layers []string `json:"Layers"`
}

// WriteDockerArchive streams a docker-archive, the docker save format, of
// imgs to w. It is laid out like docker 25's: manifest.json (config, familiar
// RepoTags and layer paths per image), the legacy repositories file, and
// every blob under blobs/sha256/<hex>, plus oci-layout and index.json so that
// the archive is a valid OCI image layout as well. Layers are written as
// stored, compressed or not: docker load, podman load and skopeo all
// decompress layer files. An image stored as an index is exported as its
// manifest for the host platform.
func WriteDockerArchive(ctx context.Context, st *store.Store, w io.Writer, imgs []Image) error {
	var (
		entries = []dockerManifestEntry{}
		repos   = map[string]map[string]string{}
		layout  []Image
	)
	for _, img := range imgs {
		desc, m, err := platformManifest(ctx, st, img.Manifest)
		if err != nil {
			return err
		}
		layout = append(layout, Image{Manifest: desc, Names: img.Names})
		e := dockerManifestEntry{Config: blobName(m.Config), RepoTags: []string{}, Layers: []string{}}
		for _, l := range m.Layers {
			e.Layers = append(e.Layers, blobName(l))
		}
		for _, n := range img.Names {
			tag := tagOf(n)
			if tag == "" {
				continue // docker-archive names only tags
			}
			fam := store.FamiliarRef(n)
			e.RepoTags = append(e.RepoTags, fam)
			if len(m.Layers) > 0 {
				repo := strings.TrimSuffix(fam, ":"+tag)
				if repos[repo] == nil {
					repos[repo] = map[string]string{}
				}
				repos[repo][tag] = m.Layers[len(m.Layers)-1].Digest.Encoded()
			}
		}
		entries = append(entries, e)
	}
	idx, blobs, err := planLayout(ctx, st, layout)
	if err != nil {
		return err
	}
	tw := newTarWriter(w)
	for _, f := range []struct {
		name string
		v    any
	}{{"manifest.json", entries}, {"repositories", repos}, {ocispec.ImageIndexFile, idx}} {
		if f.name == "repositories" && len(repos) == 0 {
			continue
		}
		data, err := json.Marshal(f.v)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", f.name, err)
		}
		if f.name == ocispec.ImageIndexFile {
			if err := writeLayoutFiles(tw, data); err != nil {
				return err
			}
			continue
		}
		if err := tw.file(f.name, data); err != nil {
			return err
		}
	}
	for _, d := range blobs {
		if err := tw.blob(ctx, st, d); err != nil {
			return err
		}
	}
	return tw.close()
}

// platformManifest reads the manifest that desc names; for an index it
// picks the host platform's manifest.
func platformManifest(ctx context.Context, st *store.Store, desc ocispec.Descriptor) (ocispec.Descriptor, ocispec.Manifest, error) {
	for depth := 0; depth < 4; depth++ {
		data, err := st.ReadBlob(ctx, desc.Digest)
		if err != nil {
			return desc, ocispec.Manifest{}, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
		}
		mt := desc.MediaType
		if mt == "" {
			mt = sniffMediaType(data)
		}
		desc = ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: int64(len(data)), Platform: desc.Platform}
		switch {
		case isManifestType(mt):
			var m ocispec.Manifest
			err := unmarshal(data, &m, "manifest", desc.Digest)
			return desc, m, err
		case isIndexType(mt):
			var idx ocispec.Index
			if err := unmarshal(data, &idx, "index", desc.Digest); err != nil {
				return desc, ocispec.Manifest{}, err
			}
			child, ok := pickPlatform(idx)
			if !ok {
				return desc, ocispec.Manifest{}, fmt.Errorf("index %s has no manifest for %s/%s", desc.Digest, runtime.GOOS, runtime.GOARCH)
			}
			desc = child
		default:
			return desc, ocispec.Manifest{}, fmt.Errorf("blob %s is neither a manifest nor an index (%q)", desc.Digest, mt)
		}
	}
	return desc, ocispec.Manifest{}, fmt.Errorf("index %s nests too deep", desc.Digest)
}
