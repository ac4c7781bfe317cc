package output

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// DockerArchive returns an Exporter that streams a docker-archive, the
// docker save format, of its images to w. It is laid out like docker 25's:
// manifest.json (config, familiar RepoTags and layer paths per image), the
// legacy repositories file, and every blob under blobs/sha256/<hex>, plus
// oci-layout and index.json so that the archive is a valid OCI image layout
// as well. Layers are written as the Provider holds them, compressed or not:
// docker load, podman load and skopeo all decompress layer files. An image
// whose manifest is an index is exported as its manifest for the host
// platform. Every blob is read through the Provider and verified.
func DockerArchive(w io.Writer) Exporter {
	return dockerArchive{w: w}
}

type dockerArchive struct{ w io.Writer }

// Export implements Exporter.
func (a dockerArchive) Export(ctx context.Context, p Provider, imgs ...Image) error {
	var (
		entries = []dockerManifestEntry{}
		repos   = map[string]map[string]string{}
		layout  []Image
	)
	for _, img := range imgs {
		desc, m, err := platformManifest(ctx, p, img.Manifest)
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
	pl, err := planLayout(ctx, p, layout)
	if err != nil {
		return err
	}
	tw := newTarWriter(a.w)
	for _, f := range []struct {
		name string
		v    any
	}{{"manifest.json", entries}, {"repositories", repos}, {ocispec.ImageIndexFile, pl.index()}} {
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
	return tw.finish(ctx, p, pl.blobs)
}
