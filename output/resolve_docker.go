package output

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"

	"github.com/builder-project/builder/internal/mediatype"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// legacyConfigRE matches a config file of the pre-25 docker-archive layout,
// named by its digest.
var legacyConfigRE = regexp.MustCompile(`^([a-f0-9]{64})\.json$`)

// resolveDocker reads manifest.json and checks every image it lists.
func (l *loader) resolveDocker() ([]*pending, error) {
	data, err := l.files["manifest.json"].contents()
	if err != nil {
		return nil, err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("decoding manifest.json: %w", err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("manifest.json lists no images")
	}
	own, err := l.ociManifests()
	if err != nil {
		return nil, err
	}
	var out []*pending
	for _, e := range entries {
		p, err := l.dockerImage(e, own)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ociManifest is a manifest that a docker 25 archive also holds as a blob.
type ociManifest struct {
	desc ocispec.Descriptor
	m    ocispec.Manifest
	file *archiveFile
}

// ociManifests returns the manifests index.json lists, by config digest,
// when the archive also is an OCI layout. Any problem just means none.
func (l *loader) ociManifests() (map[digest.Digest]ociManifest, error) {
	out := map[digest.Digest]ociManifest{}
	f := l.files[ocispec.ImageIndexFile]
	if f == nil || f.data == nil {
		return out, nil
	}
	var idx ocispec.Index
	if json.Unmarshal(f.data, &idx) != nil {
		return out, nil
	}
	for _, d := range idx.Manifests {
		if !mediatype.IsManifest(d.MediaType) {
			continue
		}
		mf, err := l.blob(d)
		if err != nil {
			return nil, err
		}
		if mf == nil || mf.data == nil {
			continue
		}
		var m ocispec.Manifest
		if json.Unmarshal(mf.data, &m) == nil {
			out[m.Config.Digest] = ociManifest{desc: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: mf.size}, m: m, file: mf}
		}
	}
	return out, nil
}

// dockerImage checks one manifest.json entry: config, layers and diffIDs.
func (l *loader) dockerImage(e dockerManifestEntry, own map[digest.Digest]ociManifest) (*pending, error) {
	cf := l.lookup(e.Config)
	if cf == nil {
		return nil, fmt.Errorf("config %s named in manifest.json is missing from the archive", e.Config)
	}
	if m := legacyConfigRE.FindStringSubmatch(path.Base(cf.name)); m != nil && m[1] != cf.digest.Encoded() {
		return nil, fmt.Errorf("config %s: content hashes to %s", cf.name, cf.digest)
	}
	data, err := cf.contents()
	if err != nil {
		return nil, err
	}
	cfg, err := imageConfig(data, e.Config, len(e.Layers))
	if err != nil {
		return nil, err
	}
	names, err := normalizeNames(e.RepoTags)
	if err != nil {
		return nil, fmt.Errorf("reading RepoTags of %s: %w", e.Config, err)
	}
	p := &pending{Loaded: Loaded{Config: cf.digest, Names: names}, files: []*archiveFile{cf}}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cf.digest, Size: cf.size},
		Layers:    []ocispec.Descriptor{},
	}
	for i, ln := range e.Layers {
		lf := l.lookup(ln)
		if lf == nil {
			return nil, fmt.Errorf("layer %s named in manifest.json is missing from the archive", ln)
		}
		if err := checkLayer(lf, cfg.RootFS.DiffIDs[i]); err != nil {
			return nil, err
		}
		blob := ocispec.Descriptor{MediaType: layerMediaType(lf.comp), Digest: lf.digest, Size: lf.size}
		m.Layers = append(m.Layers, blob)
		p.Layers = append(p.Layers, LayerBlob{DiffID: lf.diffID, Blob: blob, Size: lf.usize})
		p.files = append(p.files, lf)
	}
	if o, ok := own[cf.digest]; ok && sameLayers(o.m.Layers, m.Layers) {
		// docker 25 also stored the manifest: keep it, and its digest.
		for i := range p.Layers {
			p.Layers[i].Blob = o.m.Layers[i]
		}
		p.Manifest = o.desc
		p.files = append(p.files, o.file)
		return p, nil
	}
	mdata, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding manifest of %s: %w", e.Config, err)
	}
	p.manifest = mdata
	p.Manifest = ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(mdata), Size: int64(len(mdata))}
	return p, nil
}

// sameLayers reports whether two layer lists name the same blobs.
func sameLayers(a, b []ocispec.Descriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Digest != b[i].Digest {
			return false
		}
	}
	return true
}
