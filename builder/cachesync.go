package builder

import (
	"bytes"
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
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
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
	c, _, err := b.openCache()
	if err != nil {
		return nil, err
	}
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

func bytesOpener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// layoutBlobPath is where the blob d lives in the layout at dir. Only valid
// sha256 digests have one, so the path never leaves dir/blobs/sha256.
func layoutBlobPath(dir string, d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %q: %v", store.ErrInvalidDigest, d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("%w: %s: unsupported algorithm", store.ErrInvalidDigest, d)
	}
	return filepath.Join(dir, "blobs", "sha256", d.Encoded()), nil
}

// writeLayoutBlob stores the blob desc describes in the layout at dir, from
// the reader open returns, unless a file of the right size is already there.
// The bytes are checked against desc while copying, and the blob appears
// only once complete and fsynced.
func writeLayoutBlob(ctx context.Context, dir string, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) (err error) {
	p, err := layoutBlobPath(dir, desc.Digest)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == desc.Size {
		return nil
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+desc.Digest.Encoded()+"-*")
	if err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	dg := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), &ctxReader{ctx: ctx, r: io.LimitReader(rc, desc.Size+1)})
	if err != nil {
		return fmt.Errorf("copying blob %s: %w", desc.Digest, err)
	}
	if n != desc.Size || dg.Digest() != desc.Digest {
		return fmt.Errorf("copying blob %s: %w: got %d bytes hashing to %s, want %d bytes", desc.Digest, store.ErrInvalidDigest, n, dg.Digest(), desc.Size)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing blob %s: %w", desc.Digest, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing blob %s: %w", desc.Digest, err)
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("committing blob %s: %w", desc.Digest, err)
	}
	return syncLayoutDir(filepath.Dir(p))
}

// writeLayoutFile replaces dir/name atomically: temporary file, fsync,
// rename, fsync of the directory.
func writeLayoutFile(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", name, err)
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("replacing %s: %w", name, err)
	}
	return syncLayoutDir(dir)
}

func syncLayoutDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so long copies stop on cancel.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// layoutCache is the build cache found in a layout.
type layoutCache struct {
	// others are the index entries that are not build cache manifests.
	others []ocispec.Descriptor
	// records by key.
	records map[digest.Digest]cache.Record
	// layers are the layer blobs the records use, by digest.
	layers map[digest.Digest]ocispec.Descriptor
}

// readCacheLayout reads and checks the build cache manifests of the layout
// at dir: their records are decoded and validated, their layer blobs only
// described. Every error names the file at fault. With required, a layout
// without a cache manifest is an error.
func readCacheLayout(ctx context.Context, dir string, required bool) (*layoutCache, error) {
	lpath := filepath.Join(dir, ocispec.ImageLayoutFile)
	data, err := readLayoutFile(lpath, maxCacheIndex)
	if err != nil {
		return nil, err
	}
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(data, &lay); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", lpath, err)
	}
	if lay.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("reading %s: unsupported layout version %q", lpath, lay.Version)
	}
	ipath := filepath.Join(dir, ocispec.ImageIndexFile)
	if data, err = readLayoutFile(ipath, maxCacheIndex); err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", ipath, err)
	}
	lc := &layoutCache{records: map[digest.Digest]cache.Record{}, layers: map[digest.Digest]ocispec.Descriptor{}}
	found := false
	for _, d := range idx.Manifests {
		if d.ArtifactType != ArtifactTypeCache {
			lc.others = append(lc.others, d)
			continue
		}
		found = true
		if err := lc.readManifest(ctx, dir, d); err != nil {
			return nil, err
		}
	}
	if !found && required {
		return nil, fmt.Errorf("reading %s: no build cache manifest (artifactType %s)", ipath, ArtifactTypeCache)
	}
	// Every layer must belong to a record, and every record's layer must be
	// listed.
	used := map[digest.Digest]bool{}
	for _, rec := range lc.records {
		if rec.Layer == nil {
			continue
		}
		d := rec.Layer.Desc
		got, ok := lc.layers[d.Digest]
		if !ok || got.Size != d.Size {
			return nil, fmt.Errorf("reading %s: record %s uses layer %s (%d bytes), which no cache manifest lists", ipath, rec.Key, d.Digest, d.Size)
		}
		if a, ok := got.Annotations[AnnotationCacheDiffID]; ok && a != rec.Layer.DiffID.String() {
			return nil, fmt.Errorf("reading %s: layer %s is annotated with diffID %s but record %s says %s", ipath, d.Digest, a, rec.Key, rec.Layer.DiffID)
		}
		used[d.Digest] = true
	}
	for d, desc := range lc.layers {
		if !used[d] {
			p, _ := layoutBlobPath(dir, d)
			return nil, fmt.Errorf("reading %s: unknown entry of media type %q: no record uses it", p, desc.MediaType)
		}
	}
	return lc, nil
}

// readManifest adds the entries of one cache manifest to lc.
func (lc *layoutCache) readManifest(ctx context.Context, dir string, desc ocispec.Descriptor) error {
	data, p, err := readLayoutBlob(dir, desc, maxCacheManifest)
	if err != nil {
		return err
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(data, &mf); err != nil {
		return fmt.Errorf("decoding %s: %w", p, err)
	}
	if mf.MediaType != ocispec.MediaTypeImageManifest || mf.ArtifactType != ArtifactTypeCache {
		return fmt.Errorf("reading %s: not a build cache manifest (mediaType %q, artifactType %q)", p, mf.MediaType, mf.ArtifactType)
	}
	for _, d := range mf.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		bp, err := layoutBlobPath(dir, d.Digest)
		if err != nil {
			return fmt.Errorf("reading %s: entry: %w", p, err)
		}
		switch {
		case d.MediaType == MediaTypeCacheRecord:
			rec, err := readCacheRecord(dir, d)
			if err != nil {
				return err
			}
			if k, ok := d.Annotations[AnnotationCacheKey]; ok && k != rec.Key.String() {
				return fmt.Errorf("reading %s: annotated with key %s but holds %s", bp, k, rec.Key)
			}
			lc.records[rec.Key] = rec
		case d.MediaType == ocispec.MediaTypeEmptyJSON:
			// the placeholder layer of an empty cache
		case d.Size <= 0:
			return fmt.Errorf("reading %s: entry %s has size %d", p, d.Digest, d.Size)
		default:
			lc.layers[d.Digest] = d
		}
	}
	return nil
}

// readCacheRecord reads and validates one record blob.
func readCacheRecord(dir string, desc ocispec.Descriptor) (cache.Record, error) {
	data, p, err := readLayoutBlob(dir, desc, maxCacheRecord)
	if err != nil {
		return cache.Record{}, err
	}
	var rec cache.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return cache.Record{}, fmt.Errorf("decoding %s: %w", p, err)
	}
	if err := checkCacheRecord(rec); err != nil {
		return cache.Record{}, fmt.Errorf("reading %s: %w", p, err)
	}
	rec.LastUsed = time.Time{}
	return rec, nil
}

// checkCacheRecord rejects a record a build could not use.
func checkCacheRecord(rec cache.Record) error {
	if err := rec.Key.Validate(); err != nil {
		return fmt.Errorf("invalid key %q: %w", rec.Key, err)
	}
	var cfg Config
	if err := json.Unmarshal(rec.Config, &cfg); err != nil {
		return fmt.Errorf("record %s: invalid image config: %w", rec.Key, err)
	}
	if rec.Size < 0 {
		return fmt.Errorf("record %s: negative size %d", rec.Key, rec.Size)
	}
	if rec.EmptyLayer != (rec.Layer == nil) {
		return fmt.Errorf("record %s: emptyLayer is %v but a layer is %s", rec.Key, rec.EmptyLayer, map[bool]string{true: "given", false: "missing"}[rec.Layer != nil])
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

// readLayoutFile reads a small file whole, refusing one over limit bytes.
func readLayoutFile(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading layout: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("reading %s: larger than %d bytes", p, limit)
	}
	return data, nil
}

// readLayoutBlob reads a small blob whole and checks it against desc. It
// also returns the blob's path, for messages.
func readLayoutBlob(dir string, desc ocispec.Descriptor, limit int64) ([]byte, string, error) {
	p, err := layoutBlobPath(dir, desc.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("reading layout %s: %w", dir, err)
	}
	if desc.Size < 0 || desc.Size > limit {
		return nil, p, fmt.Errorf("reading %s: size %d out of bounds (limit %d)", p, desc.Size, limit)
	}
	data, err := readLayoutFile(p, desc.Size)
	if err != nil {
		return nil, p, err
	}
	if int64(len(data)) != desc.Size || digest.FromBytes(data) != desc.Digest {
		return nil, p, fmt.Errorf("reading %s: %w: content does not match %s (%d bytes)", p, store.ErrInvalidDigest, desc.Digest, desc.Size)
	}
	return data, p, nil
}

// ImportCache reads a build cache that ExportCache wrote to dir and adds it
// to the local cache, returning how many records it added.
//
// The whole layout is read and checked first (records decoded and
// validated, every entry accounted for); then each layer blob the store
// lacks is copied in, its digest, size and diffID verified while copying;
// the store's layer table learns each layer's diffID and size; and only then
// are the records written. An error at any point therefore leaves no record
// behind (blobs already copied stay until the next prune collects them).
// Records whose key the local cache already holds, with its layer present,
// are kept as they are and not counted.
func (b *Builder) ImportCache(ctx context.Context, dir string) (int, error) {
	lc, err := readCacheLayout(ctx, dir, true)
	if err != nil {
		return 0, fmt.Errorf("importing cache: %w", err)
	}
	lease, err := b.st.Lease()
	if err != nil {
		return 0, err
	}
	defer lease.Release()
	c, _, err := b.openCache()
	if err != nil {
		return 0, err
	}
	keys := make([]digest.Digest, 0, len(lc.records))
	for k := range lc.records {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var todo []cache.Record
	for _, k := range keys {
		local, ok, err := c.Lookup(ctx, k)
		if err == nil && ok {
			if local.Layer == nil {
				continue
			}
			if _, has := b.st.Has(local.Layer.Desc.Digest); has {
				continue
			}
		}
		todo = append(todo, lc.records[k])
	}

	idx, err := b.st.View()
	if err != nil {
		return 0, err
	}
	sizes := map[digest.Digest]int64{} // uncompressed size by blob digest
	for _, rec := range todo {
		l := rec.Layer
		if l == nil {
			continue
		}
		if _, done := sizes[l.Desc.Digest]; done {
			continue
		}
		n, err := b.importCacheLayer(ctx, idx, dir, l.Desc, l.DiffID)
		if err != nil {
			return 0, fmt.Errorf("importing cache: %w", err)
		}
		sizes[l.Desc.Digest] = n
	}
	err = b.st.Update(func(idx *store.Index) error {
		for _, rec := range todo {
			if l := rec.Layer; l != nil {
				idx.AddLayer(l.DiffID, sizes[l.Desc.Digest], l.Desc)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("importing cache: recording layers: %w", err)
	}
	for i, rec := range todo {
		rec.LastUsed = time.Time{} // imported now
		if err := c.Put(ctx, rec); err != nil {
			for _, done := range todo[:i] {
				c.Delete(context.WithoutCancel(ctx), done.Key)
			}
			return 0, fmt.Errorf("importing cache: %w", err)
		}
	}
	return len(todo), nil
}

// importCacheLayer makes sure the store holds the layer blob desc with the
// given diffID, copying it from the layout when missing, and returns its
// uncompressed size. A blob the store already has is trusted when the store
// already knows it as a form of diffID, and read to check otherwise.
func (b *Builder) importCacheLayer(ctx context.Context, idx *store.Index, dir string, desc ocispec.Descriptor, diffID digest.Digest) (int64, error) {
	if _, ok := b.st.Has(desc.Digest); ok {
		if li := idx.Layers[diffID]; li != nil && li.Size > 0 {
			for _, bl := range li.Blobs {
				if bl.Digest == desc.Digest {
					return li.Size, nil
				}
			}
		}
		rc, _, err := b.st.Open(ctx, desc.Digest)
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		got, n, err := diffIDOf(rc)
		if err != nil {
			return 0, fmt.Errorf("checking stored blob %s: %w", desc.Digest, err)
		}
		if got != diffID {
			return 0, fmt.Errorf("checking stored blob %s: its diffID is %s, the cache says %s", desc.Digest, got, diffID)
		}
		return n, nil
	}

	p, err := layoutBlobPath(dir, desc.Digest)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("reading layer: %w", err)
	}
	defer f.Close()
	w, err := b.st.Ingest(ctx)
	if err != nil {
		return 0, err
	}
	defer w.Abort()
	// The blob goes to the store and, through a pipe, to a goroutine that
	// decompresses and hashes it, so both digests come from one read.
	pr, pw := io.Pipe()
	type result struct {
		diffID digest.Digest
		n      int64
		err    error
	}
	done := make(chan result, 1)
	go func() {
		d, n, err := diffIDOf(pr)
		pr.CloseWithError(err)
		done <- result{d, n, err}
	}()
	_, cerr := io.Copy(io.MultiWriter(w, pw), &ctxReader{ctx: ctx, r: io.LimitReader(f, desc.Size+1)})
	pw.CloseWithError(cerr)
	res := <-done
	if cerr == nil {
		cerr = res.err
	}
	if cerr != nil {
		return 0, fmt.Errorf("reading %s: %w", p, cerr)
	}
	if _, err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	if res.diffID != diffID {
		// Committed, but nothing refers to it: the next prune removes it.
		return 0, fmt.Errorf("reading %s: its diffID is %s, the record says %s", p, res.diffID, diffID)
	}
	return res.n, nil
}

// diffIDOf returns the digest and size of the uncompressed content of the
// layer blob r, reading r to its end.
func diffIDOf(r io.Reader) (digest.Digest, int64, error) {
	plain, _, err := layer.DecompressStream(r)
	if err != nil {
		return "", 0, err
	}
	defer plain.Close()
	dg := digest.SHA256.Digester()
	n, err := io.Copy(dg.Hash(), plain)
	if err != nil {
		return "", 0, fmt.Errorf("decompressing layer: %w", err)
	}
	// Drain what follows the compressed stream: a verifying reader checks
	// at EOF, and a pipe's writer must not block.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", 0, err
	}
	return dg.Digest(), n, nil
}
