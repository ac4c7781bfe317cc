package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/builder-project/builder/cache"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The exported build cache (--cache-to type=local, --cache-from type=local)
// is an OCI image layout holding one artifact manifest:
//
//	DIR/oci-layout              {"imageLayoutVersion":"1.0.0"}
//	DIR/index.json              one entry per cache manifest (artifactType
//	                            ArtifactTypeCache); entries of other artifacts
//	                            or images are kept as they are
//	DIR/blobs/sha256/<hex>      the manifest, the empty config, the records
//	                            and the layer blobs
//
// The manifest's config is the OCI empty descriptor ({}). Its layers are the
// records, sorted by key (media type MediaTypeCacheRecord, annotated with
// AnnotationCacheKey), followed by the layer blobs they use, sorted by digest
// and listed once each however many records share them (their own layer
// media type, annotated with AnnotationCacheDiffID). A record blob is the JSON
// of a cache.Record without its last-use time, so it names its layer by
// descriptor; the annotations only let a reader pick entries without fetching
// every record. Every blob is reachable from the manifest, so any OCI tool
// that copies artifacts (oras, skopeo) copies the cache whole.
const (
	// MediaTypeCacheRecord is the media type of one build cache record blob.
	MediaTypeCacheRecord = "application/vnd.builder.cache.record.v1+json"
	// ArtifactTypeCache is the artifact type of a build cache manifest.
	ArtifactTypeCache = "application/vnd.builder.cache.v1"
	// AnnotationCacheKey annotates a record descriptor with the record's
	// cache key.
	AnnotationCacheKey = "com.github.builder-project.cache.key"
	// AnnotationCacheDiffID annotates a layer descriptor with the layer's
	// diffID.
	AnnotationCacheDiffID = "com.github.builder-project.cache.diffid"
)

// Bounds of what is read whole from a cache layout.
const (
	maxCacheIndex    = 4 << 20
	maxCacheManifest = 4 << 20
	maxCacheRecord   = 16 << 20
)

// ExportCache writes the build cache records (all of them, or those whose
// keys are in keys when keys != nil) and the layer blobs they use to dir as
// an OCI image layout, in the format described by ArtifactTypeCache's block.
//
// With keys == nil, records whose layer blob is no longer in the store (and
// which a build would therefore not use) are left out; a key in keys that has
// no usable record is an error. Exporting into a directory that already holds
// such a layout merges: the records already there are kept unless exported
// again, blobs already present are not rewritten, and index.json is replaced
// atomically (temporary file, fsync, rename). Blobs that the new index no
// longer reaches are left in place. Concurrent exports into one directory are
// not merged with each other: the last index written wins.
func (b *Builder) ExportCache(ctx context.Context, dir string, keys []digest.Digest) error {
	lease, err := b.st.Lease()
	if err != nil {
		return err
	}
	defer lease.Release()
	recs, err := b.cacheRecordsToExport(ctx, keys)
	if err != nil {
		return fmt.Errorf("exporting cache: %w", err)
	}
	if err := b.writeCacheLayout(ctx, dir, recs); err != nil {
		return fmt.Errorf("exporting cache to %s: %w", dir, err)
	}
	return nil
}

// cacheRecordsToExport returns the records ExportCache writes.
func (b *Builder) cacheRecordsToExport(ctx context.Context, keys []digest.Digest) ([]cache.Record, error) {
	c := b.cache
	usable := func(rec cache.Record) bool {
		if rec.Layer == nil {
			return true
		}
		_, ok := b.st.Has(rec.Layer.Desc.Digest)
		return ok
	}
	if keys == nil {
		all, err := c.List(ctx)
		if err != nil {
			return nil, err
		}
		var recs []cache.Record
		for _, rec := range all {
			if usable(rec) {
				recs = append(recs, rec)
			}
		}
		return recs, nil
	}
	recs := make([]cache.Record, 0, len(keys))
	for _, key := range keys {
		rec, ok, err := c.Lookup(ctx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("looking up %s: %w", key, ErrNotFound)
		}
		if !usable(rec) {
			return nil, fmt.Errorf("looking up %s: layer blob %s: %w", key, rec.Layer.Desc.Digest, ErrNotFound)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// writeCacheLayout merges recs into the layout at dir, creating it if needed.
func (b *Builder) writeCacheLayout(ctx context.Context, dir string, recs []cache.Record) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("creating layout: %w", err)
	}
	old := &layoutCache{records: map[digest.Digest]cache.Record{}, layers: map[digest.Digest]ocispec.Descriptor{}}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageIndexFile)); err == nil {
		if old, err = readCacheLayout(ctx, dir, false); err != nil {
			return fmt.Errorf("merging existing cache: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	merged := old.records
	for _, rec := range recs {
		merged[rec.Key] = rec
	}
	keys := make([]digest.Digest, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })

	var recDescs []ocispec.Descriptor
	layers := map[digest.Digest]ocispec.Descriptor{}
	for _, k := range keys {
		rec := merged[k]
		data, err := encodeCacheRecord(rec)
		if err != nil {
			return err
		}
		desc := ocispec.Descriptor{MediaType: MediaTypeCacheRecord, Digest: digest.FromBytes(data), Size: int64(len(data)),
			Annotations: map[string]string{AnnotationCacheKey: k.String()}}
		if err := writeLayoutBlob(ctx, dir, desc, bytesOpener(data)); err != nil {
			return err
		}
		recDescs = append(recDescs, desc)
		if l := rec.Layer; l != nil {
			layers[l.Desc.Digest] = ocispec.Descriptor{MediaType: l.Desc.MediaType, Digest: l.Desc.Digest, Size: l.Desc.Size,
				Annotations: map[string]string{AnnotationCacheDiffID: l.DiffID.String()}}
		}
	}
	layerDescs := make([]ocispec.Descriptor, 0, len(layers))
	for _, d := range layers {
		layerDescs = append(layerDescs, d)
	}
	sort.Slice(layerDescs, func(i, j int) bool { return layerDescs[i].Digest < layerDescs[j].Digest })
	for _, d := range layerDescs {
		open := func() (io.ReadCloser, error) {
			rc, _, err := b.st.Open(ctx, d.Digest)
			return rc, err
		}
		if err := writeLayoutBlob(ctx, dir, d, open); err != nil {
			return err
		}
	}

	empty := ocispec.DescriptorEmptyJSON
	if err := writeLayoutBlob(ctx, dir, empty, bytesOpener(empty.Data)); err != nil {
		return err
	}
	mf := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactTypeCache,
		Config:       empty,
		Layers:       append(recDescs, layerDescs...),
	}
	if len(mf.Layers) == 0 {
		mf.Layers = []ocispec.Descriptor{empty} // image-spec: at least one layer, for portability
	}
	mdata, err := json.Marshal(mf)
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactTypeCache,
		Digest: digest.FromBytes(mdata), Size: int64(len(mdata))}
	if err := writeLayoutBlob(ctx, dir, mdesc, bytesOpener(mdata)); err != nil {
		return err
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: append(old.others, mdesc),
	}
	idata, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding index: %w", err)
	}
	layoutData, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ocispec.ImageLayoutFile, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); errors.Is(err, fs.ErrNotExist) {
		if err := writeLayoutFile(dir, ocispec.ImageLayoutFile, layoutData); err != nil {
			return err
		}
	}
	return writeLayoutFile(dir, ocispec.ImageIndexFile, idata)
}

// encodeCacheRecord is the blob of rec. The last-use time is local state and
// is left out, so exporting an unchanged record again gives the same blob.
func encodeCacheRecord(rec cache.Record) ([]byte, error) {
	rec.LastUsed = time.Time{}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding record %s: %w", rec.Key, err)
	}
	return data, nil
}
