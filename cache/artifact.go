package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The build cache travels between machines (--cache-to, --cache-from) as one
// OCI artifact manifest, which any OCI image layout or registry can hold:
//
//   - its artifactType is ArtifactType and its config is the OCI empty
//     descriptor ({});
//   - its layers are first the records, sorted by key (media type
//     MediaTypeRecord, annotated with AnnotationKey), then the layer blobs
//     they use, sorted by digest and listed once each however many records
//     share them (their own layer media type, annotated with
//     AnnotationDiffID);
//   - a record blob is the JSON of a Record without its last-use time, so it
//     names its layer by descriptor; the annotations only let a reader pick
//     entries without fetching every record.
//
// Every blob is reachable from the manifest, so any OCI tool that copies
// artifacts (oras, skopeo) copies the cache whole.
const (
	// MediaTypeRecord is the media type of one record blob.
	MediaTypeRecord = "application/vnd.builder.cache.record.v1+json"
	// ArtifactType is the artifact type of a build cache manifest.
	ArtifactType = "application/vnd.builder.cache.v1"
	// AnnotationKey annotates a record descriptor with the record's key.
	AnnotationKey = "com.github.builder-project.cache.key"
	// AnnotationDiffID annotates a layer descriptor with its diffID.
	AnnotationDiffID = "com.github.builder-project.cache.diffid"
)

// Bounds of what ReadArtifact reads whole.
const (
	// MaxManifestSize bounds a cache manifest.
	MaxManifestSize = 4 << 20
	// MaxRecordSize bounds one record blob.
	MaxRecordSize = 16 << 20
)

// Artifact is a set of records encoded as a cache manifest.
type Artifact struct {
	// Manifest is the manifest's JSON and Desc its descriptor (with
	// ArtifactType set).
	Manifest []byte
	Desc     ocispec.Descriptor
	// Blobs holds the small blobs the manifest names besides the layers:
	// the empty config and the record blobs, by digest.
	Blobs map[digest.Digest][]byte
	// Layers are the layer blobs the records use; they stay where they are
	// (the store) and are copied by the caller.
	Layers []ocispec.Descriptor
}

// NewArtifact encodes recs as a cache manifest.
func NewArtifact(recs []Record) (*Artifact, error) {
	recs = append([]Record(nil), recs...)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	empty := ocispec.DescriptorEmptyJSON
	a := &Artifact{Blobs: map[digest.Digest][]byte{empty.Digest: empty.Data}}
	var descs []ocispec.Descriptor
	layers := map[digest.Digest]ocispec.Descriptor{}
	for _, rec := range recs {
		rec.LastUsed = time.Time{} // local state: an unchanged record encodes the same
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("encoding record %s: %w", rec.Key, err)
		}
		d := ocispec.Descriptor{MediaType: MediaTypeRecord, Digest: digest.FromBytes(data), Size: int64(len(data)),
			Annotations: map[string]string{AnnotationKey: rec.Key.String()}}
		a.Blobs[d.Digest] = data
		descs = append(descs, d)
		if l := rec.Layer; l != nil {
			layers[l.Desc.Digest] = ocispec.Descriptor{MediaType: l.Desc.MediaType, Digest: l.Desc.Digest, Size: l.Desc.Size,
				Annotations: map[string]string{AnnotationDiffID: l.DiffID.String()}}
		}
	}
	a.Layers = sortedDescs(layers)
	mf := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       empty,
		Layers:       append(descs, a.Layers...),
	}
	if len(mf.Layers) == 0 {
		mf.Layers = []ocispec.Descriptor{empty} // image-spec: at least one layer, for portability
	}
	data, err := json.Marshal(mf)
	if err != nil {
		return nil, fmt.Errorf("encoding cache manifest: %w", err)
	}
	a.Manifest = data
	a.Desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	return a, nil
}

// IsArtifact reports whether an index entry is a cache manifest.
func IsArtifact(d ocispec.Descriptor) bool { return d.ArtifactType == ArtifactType }

// Fetcher reads one small blob whole, checking it against its descriptor
// and refusing more than limit bytes; errors name where the blob is.
type Fetcher func(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error)

// ReadArtifact decodes and checks the cache manifest desc names: every
// record is fetched, decoded and validated, every layer is used by a record
// and every record's layer is listed with a matching diffID. It returns the
// records by key and the layers they use by digest.
func ReadArtifact(ctx context.Context, desc ocispec.Descriptor, fetch Fetcher) (map[digest.Digest]Record, map[digest.Digest]ocispec.Descriptor, error) {
	mf, err := fetchManifest(ctx, desc, fetch)
	if err != nil {
		return nil, nil, err
	}
	if mf.MediaType != ocispec.MediaTypeImageManifest || mf.ArtifactType != ArtifactType {
		return nil, nil, fmt.Errorf("manifest %s is not a build cache manifest (mediaType %q, artifactType %q)", desc.Digest, mf.MediaType, mf.ArtifactType)
	}
	records := map[digest.Digest]Record{}
	layers := map[digest.Digest]ocispec.Descriptor{}
	for _, d := range mf.Layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := d.Digest.Validate(); err != nil {
			return nil, nil, fmt.Errorf("cache manifest %s: entry %q: %w", desc.Digest, d.Digest, err)
		}
		switch {
		case d.MediaType == MediaTypeRecord:
			rec, err := readArtifactRecord(ctx, d, fetch)
			if err != nil {
				return nil, nil, err
			}
			records[rec.Key] = rec
		case d.MediaType == ocispec.MediaTypeEmptyJSON:
			// the placeholder layer of an empty cache
		case d.Size <= 0:
			return nil, nil, fmt.Errorf("cache manifest %s: entry %s has size %d", desc.Digest, d.Digest, d.Size)
		default:
			layers[d.Digest] = d
		}
	}
	used := map[digest.Digest]bool{}
	for _, rec := range records {
		if rec.Layer == nil {
			continue
		}
		d := rec.Layer.Desc
		got, ok := layers[d.Digest]
		if !ok || got.Size != d.Size {
			return nil, nil, fmt.Errorf("cache manifest %s: record %s uses layer %s (%d bytes), which it does not list", desc.Digest, rec.Key, d.Digest, d.Size)
		}
		if a, ok := got.Annotations[AnnotationDiffID]; ok && a != rec.Layer.DiffID.String() {
			return nil, nil, fmt.Errorf("cache manifest %s: layer %s is annotated with diffID %s but record %s says %s", desc.Digest, d.Digest, a, rec.Key, rec.Layer.DiffID)
		}
		used[d.Digest] = true
	}
	for d, l := range layers {
		if !used[d] {
			return nil, nil, fmt.Errorf("cache manifest %s: entry %s of media type %q: no record uses it", desc.Digest, d, l.MediaType)
		}
	}
	return records, layers, nil
}

// readArtifactRecord fetches and validates one record blob.
func readArtifactRecord(ctx context.Context, d ocispec.Descriptor, fetch Fetcher) (Record, error) {
	data, err := fetch(ctx, d, MaxRecordSize)
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("decoding cache record %s: %w", d.Digest, err)
	}
	if err := rec.check(); err != nil {
		return Record{}, fmt.Errorf("cache record %s: %w", d.Digest, err)
	}
	if k, ok := d.Annotations[AnnotationKey]; ok && k != rec.Key.String() {
		return Record{}, fmt.Errorf("cache record %s: annotated with key %s but holds %s", d.Digest, k, rec.Key)
	}
	rec.LastUsed = time.Time{}
	return rec, nil
}

// check rejects a record a build could not use.
func (rec Record) check() error {
	if err := rec.Key.Validate(); err != nil {
		return fmt.Errorf("invalid key %q: %w", rec.Key, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(rec.Config, &cfg); err != nil {
		return fmt.Errorf("record %s: invalid image config: %w", rec.Key, err)
	}
	if rec.Size < 0 {
		return fmt.Errorf("record %s: negative size %d", rec.Key, rec.Size)
	}
	if rec.EmptyLayer != (rec.Layer == nil) {
		return fmt.Errorf("record %s: emptyLayer is %v but layer is %v", rec.Key, rec.EmptyLayer, rec.Layer)
	}
	if l := rec.Layer; l != nil {
		for _, d := range []digest.Digest{l.Desc.Digest, l.DiffID, l.ChainID} {
			if err := d.Validate(); err != nil {
				return fmt.Errorf("record %s: invalid layer digest %q: %w", rec.Key, d, err)
			}
		}
		if l.Desc.Digest.Algorithm() != digest.SHA256 || l.Desc.Size <= 0 {
			return fmt.Errorf("record %s: unsupported layer descriptor %s (%d bytes)", rec.Key, l.Desc.Digest, l.Desc.Size)
		}
	}
	return nil
}
