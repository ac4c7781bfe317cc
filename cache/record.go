package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/atomicfile"
)

// ErrCorrupt is wrapped by errors about a record file that exists but cannot
// be decoded or names another key. Atomic writes never produce one; it means
// outside damage. A caller may treat it as a miss: Put replaces the file.
var ErrCorrupt = errors.New("corrupt cache record")

// Record is what a cached step produced. It is stored as JSON and holds
// digests and descriptors only; the blobs live in the store.
type Record struct {
	// Key is the step's cache key (see Key).
	Key digest.Digest `json:"key"`
	// Layer is the layer the step added, or nil for a step that only
	// changes the image config (ENV, LABEL, WORKDIR of an existing dir...).
	Layer *LayerRef `json:"layer,omitempty"`
	// Config is the image config (ocispec.Image JSON) after the step. It is
	// opaque to this package.
	Config json.RawMessage `json:"config,omitempty"`
	// CreatedBy is the history entry's created_by.
	CreatedBy string `json:"createdBy,omitempty"`
	// EmptyLayer is the history entry's empty_layer.
	EmptyLayer bool `json:"emptyLayer,omitempty"`
	// Created is when the record was first made. Put fills in the current
	// time when it is zero.
	Created time.Time `json:"created"`
	// LastUsed is when the record was last put or looked up. It is kept as
	// the record file's mtime so that a lookup only touches the file; the
	// value stored in the JSON is the one given to Put.
	LastUsed time.Time `json:"lastUsed"`
	// Size is the number of bytes the record keeps alive in the store
	// (usually the layer's size), summed by Usage and KeepStorage.
	Size int64 `json:"size"`
}

// LayerRef names the layer a step produced.
type LayerRef struct {
	// Desc describes the stored (compressed) blob.
	Desc ocispec.Descriptor `json:"desc"`
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// ChainID is the chain ID of the image's layers up to this one, which
	// names the extracted snapshot.
	ChainID digest.Digest `json:"chainID"`
}

// Cache is the persistent key → Record table. It keeps one JSON file per
// key, dir/records/<algorithm>/<encoded>.json, so processes sharing dir never
// contend on a common file. A Cache is safe for concurrent use.
type Cache struct {
	dir string // dir/records
	now func() time.Time
}

// staleTmpAge is how old a temporary file must be before Open (or
// OpenHasher) removes it. No writer keeps a temporary file open for anywhere
// near this long, so a file this old was left behind by a killed process.
const staleTmpAge = time.Hour

// recordsDir is the subdirectory of the cache directory holding records.
const recordsDir = "records"

// Open opens (creating if needed) the cache table stored under dir and
// removes temporary files left behind by killed writers in dir, its records
// directory and each algorithm's directory below that. (OpenHasher does the
// same for its index directory.)
func Open(dir string) (*Cache, error) {
	c := &Cache{dir: filepath.Join(dir, recordsDir), now: time.Now}
	if err := atomicfile.MkdirAllSync(filepath.Join(c.dir, string(digest.SHA256)), 0o700); err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	algs, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	atomicfile.RemoveStale(dir, staleTmpAge, c.now())
	atomicfile.RemoveStale(c.dir, staleTmpAge, c.now())
	for _, a := range algs {
		if a.IsDir() {
			atomicfile.RemoveStale(filepath.Join(c.dir, a.Name()), staleTmpAge, c.now())
		}
	}
	return c, nil
}

// path returns the record file of key after validating the key.
func (c *Cache) path(key digest.Digest) (string, error) {
	if err := key.Validate(); err != nil {
		return "", fmt.Errorf("validating key %q: %w", key, err)
	}
	return filepath.Join(c.dir, key.Algorithm().String(), key.Encoded()+".json"), nil
}

// Lookup returns the record of key. found is false when there is none. On a
// hit it marks the record used by setting its file's mtime to now (best
// effort: a failure to do so is ignored) and returns it with LastUsed set to
// that time.
func (c *Cache) Lookup(ctx context.Context, key digest.Digest) (rec Record, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return Record{}, false, err
	}
	p, err := c.path(key)
	if err != nil {
		return Record{}, false, err
	}
	rec, _, err = readRecord(p, key)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("looking up %s: %w", key, err)
	}
	now := c.now()
	if os.Chtimes(p, now, now) == nil {
		rec.LastUsed = now
	}
	return rec, true, nil
}

// readRecord reads and decodes a record file. LastUsed is taken from the
// file's mtime, which is also returned for callers that re-check it.
func readRecord(p string, want digest.Digest) (Record, time.Time, error) {
	f, err := os.Open(p)
	if err != nil {
		return Record{}, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Record{}, time.Time{}, fmt.Errorf("reading %s: %w", p, err)
	}
	var rec Record
	if err := json.NewDecoder(f).Decode(&rec); err != nil {
		return Record{}, time.Time{}, fmt.Errorf("decoding %s: %w: %v", p, ErrCorrupt, err)
	}
	if rec.Key != want {
		return Record{}, time.Time{}, fmt.Errorf("decoding %s: %w: holds key %s", p, ErrCorrupt, rec.Key)
	}
	rec.LastUsed = fi.ModTime()
	return rec, fi.ModTime(), nil
}

// Put stores rec under rec.Key, replacing any record there. The write is
// atomic: concurrent Puts of the same key (from goroutines or processes) all
// succeed and the last one wins. Zero Created and LastUsed are set to now;
// a non-zero LastUsed becomes the record's last use (as for an imported
// record).
func (c *Cache) Put(ctx context.Context, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := c.path(rec.Key)
	if err != nil {
		return fmt.Errorf("putting record: %w", err)
	}
	now := c.now()
	if rec.Created.IsZero() {
		rec.Created = now
	}
	if rec.LastUsed.IsZero() {
		rec.LastUsed = now
	}
	if rec.Size < 0 {
		return fmt.Errorf("putting record %s: negative size %d", rec.Key, rec.Size)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding record %s: %w", rec.Key, err)
	}
	if err := atomicfile.MkdirAllSync(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("putting record %s: %w", rec.Key, err)
	}
	// A record holds build-arg values: it is readable by its owner only.
	if err := atomicfile.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("putting record %s: %w", rec.Key, err)
	}
	// The mtime carries LastUsed. Setting it after the rename keeps the
	// temporary file's mtime fresh (Open removes old temporary files); a
	// crash in between only makes the record look recently used.
	if err := os.Chtimes(p, rec.LastUsed, rec.LastUsed); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("putting record %s: setting last use: %w", rec.Key, err)
	}
	return nil
}

// List returns every record, in no particular order. Records that vanish
// while listing are skipped; an undecodable record is an error wrapping
// ErrCorrupt.
func (c *Cache) List(ctx context.Context) ([]Record, error) {
	var recs []Record
	err := c.walk(ctx, func(p string, key digest.Digest) error {
		rec, _, err := readRecord(p, key)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	return recs, nil
}

// walk calls fn for every record file with the key its name encodes.
func (c *Cache) walk(ctx context.Context, fn func(path string, key digest.Digest) error) error {
	algs, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		dir := filepath.Join(c.dir, a.Name())
		names, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := n.Name()
			if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
				continue
			}
			key := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), strings.TrimSuffix(name, ".json"))
			if key.Validate() != nil {
				continue
			}
			if err := fn(filepath.Join(dir, name), key); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the record of key. Deleting a missing record is not an
// error.
func (c *Cache) Delete(ctx context.Context, key digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := c.path(key)
	if err != nil {
		return fmt.Errorf("deleting record: %w", err)
	}
	if err := removeSync(p); err != nil {
		return fmt.Errorf("deleting record %s: %w", key, err)
	}
	return nil
}

// removeSync removes a file, ignoring a missing one, and fsyncs its
// directory.
func removeSync(p string) error {
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(p))
}

// Usage returns the number of records and the sum of their sizes.
func (c *Cache) Usage(ctx context.Context) (count int, size int64, err error) {
	recs, err := c.List(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("computing usage: %w", err)
	}
	for _, r := range recs {
		size += r.Size
	}
	return len(recs), size, nil
}
