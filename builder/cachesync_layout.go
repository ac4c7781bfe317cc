package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/internal/store"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

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
func writeLayoutBlob(ctx context.Context, dir string, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
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
	return writeLayoutAtomic(p, func(w io.Writer) error {
		dg := digest.SHA256.Digester()
		n, err := io.Copy(io.MultiWriter(w, dg.Hash()), &ctxReader{ctx: ctx, r: io.LimitReader(rc, desc.Size+1)})
		if err != nil {
			return fmt.Errorf("copying blob %s: %w", desc.Digest, err)
		}
		if n != desc.Size || dg.Digest() != desc.Digest {
			return fmt.Errorf("copying blob %s: %w: got %d bytes hashing to %s, want %d bytes", desc.Digest, store.ErrInvalidDigest, n, dg.Digest(), desc.Size)
		}
		return nil
	})
}

// writeLayoutFile replaces dir/name with data atomically.
func writeLayoutFile(dir, name string, data []byte) error {
	return writeLayoutAtomic(filepath.Join(dir, name), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeLayoutAtomic creates or replaces the file p with what fill writes:
// a hidden temporary file beside it is filled, fsynced and renamed, then the
// directory is fsynced. On error the temporary file is removed.
func writeLayoutAtomic(p string, fill func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", p, err)
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("replacing %s: %w", p, err)
	}
	return syncLayoutDir(filepath.Dir(p))
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
