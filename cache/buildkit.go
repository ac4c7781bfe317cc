package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/mediatype"
)

// In a registry (--cache-to type=registry) the build cache is one image
// manifest, the form BuildKit writes with image-manifest=true and that
// registries refusing artifacts and indexes of blobs (ECR) accept:
//
//   - its config blob has media type MediaTypeCacheConfig and holds
//     BuildKit's cacheconfig.v0 JSON: "layers" lists the layer blobs with
//     the index of their parent layer (-1 for none), "records" lists the
//     cache keys ("digest"), the layer each produced ("layers", BuildKit's
//     name for a record's results) and the record of the step before
//     ("inputs"). Each record also carries, under "builder", what a build
//     needs to reuse it without running the step: the image config after
//     the step, its history entry, the layer's chain ID and size;
//   - its layers are the layer blobs the records use, once each, sorted by
//     digest, with their own media types, each annotated with its diffID
//     under AnnotationUncompressed, as containerd and BuildKit do.
//
// For example (digests shortened):
//
//	{"layers":[{"blob":"sha256:9f8e…","parent":-1,
//	            "annotations":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",
//	                           "diffID":"sha256:54ab…","size":1234,"createdAt":"…"}}],
//	 "records":[{"digest":"sha256:k1…","builder":{"config":{…},"createdBy":"ENV A=1",
//	             "emptyLayer":true,"created":"…","size":0}},
//	            {"digest":"sha256:k2…","layers":[{"layer":0,"createdAt":"…"}],
//	             "inputs":[[{"link":0}]],
//	             "builder":{"config":{…},"createdBy":"RUN …","chainID":"sha256:c…",
//	                        "created":"…","size":4096}}]}
//
// A registry only requires a valid image manifest whose blobs it holds;
// BuildKit itself cannot use the records, whose keys are builder's.
const (
	// MediaTypeCacheConfig is the media type of the config blob of a cache
	// image manifest: BuildKit's cacheconfig.v0.
	MediaTypeCacheConfig = "application/vnd.buildkit.cacheconfig.v0"
	// AnnotationUncompressed annotates a layer descriptor with its diffID.
	AnnotationUncompressed = "containerd.io/uncompressed"
	// MaxConfigSize bounds a cache config blob, which holds every record's
	// image config.
	MaxConfigSize = 64 << 20
)

// cacheConfig mirrors BuildKit's cacheconfig.v0 (CacheConfig in
// solver/remotecache/v1).
type cacheConfig struct {
	Layers  []cacheLayer  `json:"layers"`
	Records []cacheRecord `json:"records"`
}

type cacheLayer struct {
	Blob        digest.Digest     `json:"blob"`
	ParentIndex int               `json:"parent"`
	Annotations *layerAnnotations `json:"annotations,omitempty"`
}

type layerAnnotations struct {
	MediaType string        `json:"mediaType,omitempty"`
	DiffID    digest.Digest `json:"diffID,omitempty"`
	Size      int64         `json:"size,omitempty"`
	CreatedAt time.Time     `json:"createdAt"`
}

type cacheRecord struct {
	Digest  digest.Digest  `json:"digest"`
	Results []cacheResult  `json:"layers,omitempty"`
	Inputs  [][]cacheInput `json:"inputs,omitempty"`
	// Builder is builder's extension; BuildKit ignores it.
	Builder *recordData `json:"builder,omitempty"`
}

type cacheResult struct {
	LayerIndex int       `json:"layer"`
	CreatedAt  time.Time `json:"createdAt"`
}

type cacheInput struct {
	Selector  string `json:"selector,omitempty"`
	LinkIndex int    `json:"link"`
}

// recordData is what a Record holds beyond BuildKit's record.
type recordData struct {
	Config     json.RawMessage `json:"config"`
	CreatedBy  string          `json:"createdBy,omitempty"`
	EmptyLayer bool            `json:"emptyLayer,omitempty"`
	ChainID    digest.Digest   `json:"chainID,omitempty"`
	Created    time.Time       `json:"created"`
	Size       int64           `json:"size"`
}

// NewImageManifest encodes recs as a cache image manifest. parents maps a
// record's key to the key of the record of the step before it, where there
// is one (nil is none): it gives the records' inputs and the layers'
// parents. The result's Blobs hold the config blob; its Layers are the
// layer blobs, which the caller pushes from where they are.
func NewImageManifest(recs []Record, parents map[digest.Digest]digest.Digest) (*Artifact, error) {
	recs = append([]Record(nil), recs...)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	byKey := map[digest.Digest]int{}
	for i, rec := range recs {
		if _, dup := byKey[rec.Key]; dup {
			return nil, fmt.Errorf("encoding cache manifest: record %s given twice", rec.Key)
		}
		byKey[rec.Key] = i
	}
	// One layer entry per chain: the same blob on two different parents is
	// two entries, as in BuildKit.
	entries := map[digest.Digest]int{}
	var cfg cacheConfig
	blobs := map[digest.Digest]ocispec.Descriptor{}
	for _, rec := range recs {
		if err := rec.check(); err != nil {
			return nil, fmt.Errorf("encoding cache manifest: %w", err)
		}
		l := rec.Layer
		if l == nil {
			continue
		}
		if _, ok := entries[l.ChainID]; !ok {
			entries[l.ChainID] = len(cfg.Layers)
			cfg.Layers = append(cfg.Layers, cacheLayer{Blob: l.Desc.Digest, ParentIndex: -1,
				Annotations: &layerAnnotations{MediaType: l.Desc.MediaType, DiffID: l.DiffID, Size: l.Desc.Size, CreatedAt: rec.Created.UTC()}})
		}
		blobs[l.Desc.Digest] = ocispec.Descriptor{MediaType: l.Desc.MediaType, Digest: l.Desc.Digest, Size: l.Desc.Size,
			Annotations: map[string]string{AnnotationUncompressed: l.DiffID.String()}}
	}
	for _, rec := range recs {
		r := cacheRecord{Digest: rec.Key, Builder: &recordData{Config: rec.Config, CreatedBy: rec.CreatedBy, EmptyLayer: rec.EmptyLayer, Created: rec.Created.UTC(), Size: rec.Size}}
		if p, ok := byKey[parents[rec.Key]]; ok {
			r.Inputs = [][]cacheInput{{{LinkIndex: p}}}
		}
		if l := rec.Layer; l != nil {
			i := entries[l.ChainID]
			r.Builder.ChainID = l.ChainID
			r.Results = []cacheResult{{LayerIndex: i, CreatedAt: rec.Created.UTC()}}
			if p := parentLayer(recs, byKey, parents, rec.Key); p != nil && identity.ChainID([]digest.Digest{p.ChainID, l.DiffID}) == l.ChainID {
				cfg.Layers[i].ParentIndex = entries[p.ChainID]
			}
		}
		cfg.Records = append(cfg.Records, r)
	}
	cdata, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding cache config: %w", err)
	}
	cdesc := ocispec.Descriptor{MediaType: MediaTypeCacheConfig, Digest: digest.FromBytes(cdata), Size: int64(len(cdata))}
	a := &Artifact{Blobs: map[digest.Digest][]byte{cdesc.Digest: cdata}, Layers: sortedDescs(blobs)}
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cdesc,
		Layers:    a.Layers,
	}
	if len(mf.Layers) == 0 {
		empty := ocispec.DescriptorEmptyJSON
		a.Blobs[empty.Digest] = empty.Data
		mf.Layers = []ocispec.Descriptor{{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size}}
	}
	if a.Manifest, err = json.Marshal(mf); err != nil {
		return nil, fmt.Errorf("encoding cache manifest: %w", err)
	}
	a.Desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(a.Manifest), Size: int64(len(a.Manifest))}
	return a, nil
}

// parentLayer returns the layer of the nearest record before key that has
// one, or nil.
func parentLayer(recs []Record, byKey map[digest.Digest]int, parents map[digest.Digest]digest.Digest, key digest.Digest) *LayerRef {
	for range recs { // a chain is at most as long as the records; this bounds a cycle
		i, ok := byKey[parents[key]]
		if !ok {
			return nil
		}
		if recs[i].Layer != nil {
			return recs[i].Layer
		}
		key = recs[i].Key
	}
	return nil
}

// ReadImageManifest decodes and checks the build cache manifest desc names,
// in either form: the image manifest NewImageManifest writes, or the
// artifact NewArtifact writes (which oras or skopeo may have copied to a
// registry). Like ReadArtifact, it returns the records by key and the layer
// descriptors they use by digest; nothing is fetched but the manifest, the
// config and, for the artifact form, the record blobs, each bounded.
//
// Every record is validated, and every layer descriptor must be used by a
// layer entry and carry its diffID. Records without builder's data (written
// by BuildKit) are skipped; a cache holding only those is an error.
func ReadImageManifest(ctx context.Context, desc ocispec.Descriptor, fetch Fetcher) (map[digest.Digest]Record, map[digest.Digest]ocispec.Descriptor, error) {
	mf, err := fetchManifest(ctx, desc, fetch)
	if err != nil {
		return nil, nil, err
	}
	if mf.ArtifactType == ArtifactType {
		return ReadArtifact(ctx, desc, fetch)
	}
	if !mediatype.IsManifest(mf.MediaType) || mf.Config.MediaType != MediaTypeCacheConfig {
		return nil, nil, fmt.Errorf("manifest %s is not a build cache manifest (mediaType %q, config mediaType %q; want an image manifest with config %s)",
			desc.Digest, mf.MediaType, mf.Config.MediaType, MediaTypeCacheConfig)
	}
	layers := map[digest.Digest]ocispec.Descriptor{}
	for _, d := range mf.Layers {
		if d.MediaType == ocispec.MediaTypeEmptyJSON {
			continue // the placeholder layer of a cache without layers
		}
		if err := d.Digest.Validate(); err != nil {
			return nil, nil, fmt.Errorf("cache manifest %s: layer %q: %w", desc.Digest, d.Digest, err)
		}
		if d.Size <= 0 {
			return nil, nil, fmt.Errorf("cache manifest %s: layer %s has size %d", desc.Digest, d.Digest, d.Size)
		}
		if err := digest.Digest(d.Annotations[AnnotationUncompressed]).Validate(); err != nil {
			return nil, nil, fmt.Errorf("cache manifest %s: layer %s: annotation %s: %w", desc.Digest, d.Digest, AnnotationUncompressed, err)
		}
		layers[d.Digest] = d
	}
	if err := mf.Config.Digest.Validate(); err != nil {
		return nil, nil, fmt.Errorf("cache manifest %s: config %q: %w", desc.Digest, mf.Config.Digest, err)
	}
	if mf.Config.Size > MaxConfigSize {
		return nil, nil, fmt.Errorf("cache manifest %s: config %s has %d bytes, more than the %d allowed", desc.Digest, mf.Config.Digest, mf.Config.Size, MaxConfigSize)
	}
	cdata, err := fetch(ctx, mf.Config, MaxConfigSize)
	if err != nil {
		return nil, nil, err
	}
	var cfg cacheConfig
	if err := json.Unmarshal(cdata, &cfg); err != nil {
		return nil, nil, fmt.Errorf("decoding cache config %s: %w", mf.Config.Digest, err)
	}
	recs, err := cfg.records(layers)
	if err != nil {
		return nil, nil, fmt.Errorf("cache config %s: %w", mf.Config.Digest, err)
	}
	return recs, layers, nil
}

// fetchManifest fetches and decodes the manifest desc names.
func fetchManifest(ctx context.Context, desc ocispec.Descriptor, fetch Fetcher) (ocispec.Manifest, error) {
	var mf ocispec.Manifest
	data, err := fetch(ctx, desc, MaxManifestSize)
	if err != nil {
		return mf, err
	}
	if err := json.Unmarshal(data, &mf); err != nil {
		return mf, fmt.Errorf("decoding cache manifest %s: %w", desc.Digest, err)
	}
	return mf, nil
}

// records checks the config against the manifest's layers and returns its
// records.
func (cfg *cacheConfig) records(layers map[digest.Digest]ocispec.Descriptor) (map[digest.Digest]Record, error) {
	named := map[digest.Digest]bool{}
	for i, l := range cfg.Layers {
		d, ok := layers[l.Blob]
		if !ok {
			return nil, fmt.Errorf("layer %d: blob %q is not in the manifest", i, l.Blob)
		}
		if l.ParentIndex < -1 || l.ParentIndex >= len(cfg.Layers) || l.ParentIndex == i {
			return nil, fmt.Errorf("layer %d: parent %d out of range", i, l.ParentIndex)
		}
		if a := l.Annotations; a != nil && a.DiffID != "" && a.DiffID.String() != d.Annotations[AnnotationUncompressed] {
			return nil, fmt.Errorf("layer %d: diffID %s, but the manifest annotates blob %s with %s", i, a.DiffID, l.Blob, d.Annotations[AnnotationUncompressed])
		}
		named[l.Blob] = true
	}
	for d := range layers {
		if !named[d] {
			return nil, fmt.Errorf("manifest layer %s: no layer entry names it", d)
		}
	}
	recs := map[digest.Digest]Record{}
	skipped := 0
	for _, r := range cfg.Records {
		if err := r.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("record %q: %w", r.Digest, err)
		}
		for _, in := range r.Inputs {
			for _, link := range in {
				if link.LinkIndex < 0 || link.LinkIndex >= len(cfg.Records) {
					return nil, fmt.Errorf("record %s: input link %d out of range", r.Digest, link.LinkIndex)
				}
			}
		}
		if r.Builder == nil {
			skipped++
			continue
		}
		if _, dup := recs[r.Digest]; dup {
			return nil, fmt.Errorf("record %s listed twice", r.Digest)
		}
		b := r.Builder
		rec := Record{Key: r.Digest, Config: b.Config, CreatedBy: b.CreatedBy, EmptyLayer: b.EmptyLayer, Created: b.Created, Size: b.Size}
		switch len(r.Results) {
		case 0:
		case 1:
			i := r.Results[0].LayerIndex
			if i < 0 || i >= len(cfg.Layers) {
				return nil, fmt.Errorf("record %s: layer %d out of range", r.Digest, i)
			}
			d := layers[cfg.Layers[i].Blob]
			rec.Layer = &LayerRef{Desc: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size},
				DiffID: digest.Digest(d.Annotations[AnnotationUncompressed]), ChainID: b.ChainID}
		default:
			return nil, fmt.Errorf("record %s: %d results, builder writes one at most", r.Digest, len(r.Results))
		}
		if err := rec.check(); err != nil {
			return nil, err
		}
		recs[rec.Key] = rec
	}
	if len(recs) == 0 && skipped > 0 {
		return nil, fmt.Errorf("none of its %d records was written by builder (a BuildKit cache?)", skipped)
	}
	return recs, nil
}

// sortedDescs returns the descriptors of m sorted by digest.
func sortedDescs(m map[digest.Digest]ocispec.Descriptor) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out
}
