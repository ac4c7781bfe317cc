package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/atomicfile"
)

// maxSmallBlob bounds what ReadBlob reads whole: manifests, configs and
// indexes are small; layers are always streamed.
const maxSmallBlob = 64 << 20

func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidDigest, d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("%w: unsupported algorithm %s", ErrInvalidDigest, d.Algorithm())
	}
	return s.path("blobs", "sha256", d.Encoded()), nil
}

// Writer is an ingest in progress. Bytes written are hashed as they go;
// Commit makes the blob visible atomically, Abort discards it.
type Writer struct {
	s      *Store
	dir    string
	f      *os.File
	bw     *bufio.Writer
	h      *hasher
	n      int64
	lock   *fileLock
	closed bool
}

// Ingest starts writing a new blob. Always defer Abort; it is a no-op after
// Commit.
func (s *Store) Ingest(ctx context.Context) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := s.path("ingest", randomID())
	lk, err := tryLockExclusive(dir + ".lock")
	if err != nil {
		return nil, fmt.Errorf("starting ingest: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		lk.Unlock()
		return nil, fmt.Errorf("starting ingest: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		os.RemoveAll(dir)
		lk.Unlock()
		return nil, fmt.Errorf("starting ingest: %w", err)
	}
	return &Writer{s: s, dir: dir, f: f, bw: bufio.NewWriterSize(f, 256<<10), h: newHasher(), lock: lk}, nil
}

// Digest returns the sha256 digest of everything written so far.
func (w *Writer) Digest() digest.Digest { return w.h.Digest() }

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("write to closed ingest")
	}
	n, err := w.bw.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Commit checks the size and digest when given (size ≤ 0 and expected == ""
// skip the checks), fsyncs the data and renames it into place. A blob that
// already exists is success: the returned descriptor describes it, and the
// ingest is discarded. The descriptor has no media type; callers set it.
func (w *Writer) Commit(ctx context.Context, size int64, expected digest.Digest) (ocispec.Descriptor, error) {
	if w.closed {
		return ocispec.Descriptor{}, errors.New("commit of closed ingest")
	}
	defer w.Abort()
	if err := ctx.Err(); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := w.bw.Flush(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing blob: %w", err)
	}
	got := w.h.Digest()
	if size > 0 && size != w.n {
		return ocispec.Descriptor{}, fmt.Errorf("%w: size %d, expected %d", ErrInvalidDigest, w.n, size)
	}
	if expected != "" && expected != got {
		return ocispec.Descriptor{}, fmt.Errorf("%w: got %s, expected %s", ErrInvalidDigest, got, expected)
	}
	if err := w.f.Sync(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("syncing blob: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("closing blob: %w", err)
	}
	desc := ocispec.Descriptor{Digest: got, Size: w.n}
	target, _ := w.s.blobPath(got)
	if _, err := os.Stat(target); err == nil {
		return desc, nil // already there (same content)
	}
	if err := os.Chmod(filepath.Join(w.dir, "data"), 0o444); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := os.Rename(filepath.Join(w.dir, "data"), target); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("committing blob %s: %w", got, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(target)); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// Abort discards the ingest. It is safe to call more than once and after Commit.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.h.stop()
	w.f.Close()
	err := os.RemoveAll(w.dir)
	os.Remove(w.dir + ".lock")
	w.lock.Unlock()
	return err
}

// Has reports whether the blob is stored, with its size: as a file, or as
// a layer that its recipe regenerates.
func (s *Store) Has(d digest.Digest) (int64, bool) {
	p, err := s.blobPath(d)
	if err != nil {
		return 0, false
	}
	fi, err := os.Stat(p)
	if err == nil {
		return fi.Size(), true
	}
	if r, ok := s.readRecipe(d); ok {
		return r.Size, true
	}
	return 0, false
}

// Open returns a reader of the blob that verifies its digest: the final Read
// returns an error instead of io.EOF if the bytes do not match. A layer
// stored as its snapshot (see CommitLayer) is regenerated while it is read.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if r, ok := s.readRecipe(d); ok {
				return s.openRecipe(ctx, d, r)
			}
			return nil, 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("opening blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &verifier{f: f, want: d, h: newHasher(), ctx: ctx}, fi.Size(), nil
}

// verifier reads a blob and checks its digest at EOF: the final Read
// returns an error instead of io.EOF if the bytes do not match. The bytes
// are hashed on another goroutine while the caller works on them (unpacking
// a layer is syscall-bound and leaves the second core to the hash).
type verifier struct {
	f    io.ReadCloser
	want digest.Digest
	h    *hasher
	ctx  context.Context
	done bool
}

func (v *verifier) Read(p []byte) (int, error) {
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.f.Read(p)
	if n > 0 && !v.done {
		v.h.Write(p[:n])
	}
	if err == io.EOF && !v.done {
		v.done = true
		if got := v.h.Digest(); got != v.want {
			return n, fmt.Errorf("%w: blob %s on disk hashes to %s", ErrInvalidDigest, v.want, got)
		}
	}
	return n, err
}

// stop ends the hashing goroutine once it has hashed what it was given.
func (v *verifier) stop() { v.h.stop() }

func (v *verifier) Close() error {
	v.stop()
	return v.f.Close()
}

// ReadBlob reads a small blob (manifest, config, index) whole, verified.
func (s *Store) ReadBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	rc, size, err := s.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxSmallBlob {
		return nil, fmt.Errorf("blob %s is %d bytes, too large to read whole", d, size)
	}
	return io.ReadAll(rc)
}

// WriteBlob stores a small blob and returns its descriptor with mediaType set.
func (s *Store) WriteBlob(ctx context.Context, mediaType string, data []byte) (ocispec.Descriptor, error) {
	w, err := s.Ingest(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := w.Commit(ctx, int64(len(data)), digest.FromBytes(data))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc.MediaType = mediaType
	return desc, nil
}

// WriteJSON marshals v and stores it as a blob of mediaType.
func (s *Store) WriteJSON(ctx context.Context, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encoding %s: %w", mediaType, err)
	}
	return s.WriteBlob(ctx, mediaType, data)
}

// ReadJSON reads a small blob and decodes it into v.
func (s *Store) ReadJSON(ctx context.Context, d digest.Digest, v any) error {
	data, err := s.ReadBlob(ctx, d)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding blob %s: %w", d, err)
	}
	return nil
}

// Blobs lists every committed blob with its size.
func (s *Store) Blobs() (map[digest.Digest]int64, error) {
	entries, err := os.ReadDir(s.path("blobs", "sha256"))
	if err != nil {
		return nil, err
	}
	out := make(map[digest.Digest]int64, len(entries))
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out[d] = fi.Size()
		}
	}
	return out, nil
}

// deleteBlob removes a blob. Callers hold the GC lock exclusively.
func (s *Store) deleteBlob(d digest.Digest) error {
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting blob %s: %w", d, err)
	}
	return nil
}
