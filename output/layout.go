package output

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// Layout is an OCI image layout directory: oci-layout, index.json and
// blobs/sha256/<hex>. Every file is opened through os.Root, so a symlink in
// the directory cannot lead a read or a write outside it. A Layout holds no
// open file and needs no closing. Its methods may run concurrently: blobs
// are content-addressed and appear atomically, but index.json is replaced
// whole, so callers updating it from several places must serialize those
// updates themselves (the last WriteIndex wins).
type Layout struct {
	dir string
}

// OpenLayout opens the existing layout at dir, checking that its oci-layout
// file names version 1.0.0. Errors name the file at fault.
func OpenLayout(dir string) (*Layout, error) {
	l := &Layout{dir: dir}
	data, err := l.readFile(ocispec.ImageLayoutFile, maxJSON)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening layout %s: not an OCI image layout: %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening layout %s: %w", dir, err)
	}
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(data, &lay); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", l.path(ocispec.ImageLayoutFile), err)
	}
	if lay.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("reading %s: unsupported layout version %q (want %s)", l.path(ocispec.ImageLayoutFile), lay.Version, ocispec.ImageLayoutVersion)
	}
	return l, nil
}

// CreateLayout makes dir an OCI image layout, creating dir, blobs/sha256 and
// oci-layout as needed, and opens it. An existing layout is opened as it is;
// its index.json is left alone (a layout without one lists no images).
func CreateLayout(dir string) (*Layout, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating layout %s: %w", dir, err)
	}
	l := &Layout{dir: dir}
	err := l.withRoot(func(r *os.Root) error {
		if err := r.MkdirAll(filepath.Join("blobs", "sha256"), 0o755); err != nil {
			return err
		}
		_, err := r.Stat(ocispec.ImageLayoutFile)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		data, err := layoutVersionFile()
		if err != nil {
			return nil, err
		}
		if err := l.writeFile(ocispec.ImageLayoutFile, data); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("creating layout %s: %w", dir, err)
	}
	return OpenLayout(dir)
}

// Dir returns the layout's directory.
func (l *Layout) Dir() string { return l.dir }

// Index reads and decodes index.json. A missing index.json is an error
// wrapping fs.ErrNotExist.
func (l *Layout) Index(ctx context.Context) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := ctx.Err(); err != nil {
		return idx, err
	}
	data, err := l.readFile(ocispec.ImageIndexFile, maxJSON)
	if err != nil {
		return idx, err
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, fmt.Errorf("decoding %s: %w", l.path(ocispec.ImageIndexFile), err)
	}
	return idx, nil
}

// Open implements Provider. It returns a reader of the blob d and the blob's
// size: the reader stops at the size the file had when opened and, at EOF,
// fails with an error wrapping store.ErrInvalidDigest, naming the file, when
// the bytes read do not hash to d. A missing blob is an error wrapping
// store.ErrNotFound.
func (l *Layout) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	name, err := blobFile(d)
	if err != nil {
		return nil, 0, fmt.Errorf("opening blob in layout %s: %w", l.dir, err)
	}
	f, fi, err := l.openFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("blob %s: %w (%w)", d, store.ErrNotFound, err)
	}
	if err != nil {
		return nil, 0, err
	}
	return newVerifier(ctx, f, fi.Size(), d, l.path(name)), fi.Size(), nil
}

// ReadBlob reads the small blob desc whole, refusing one whose descriptor
// says it is larger than limit bytes, and checks its size and digest against
// desc (a mismatch wraps store.ErrInvalidDigest). Errors name the blob's
// path.
func (l *Layout) ReadBlob(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	name, err := blobFile(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading blob in layout %s: %w", l.dir, err)
	}
	if desc.Size < 0 || desc.Size > limit {
		return nil, fmt.Errorf("reading %s: size %d out of bounds (limit %d)", l.path(name), desc.Size, limit)
	}
	rc, size, err := l.Open(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size != desc.Size {
		return nil, fmt.Errorf("reading %s: %w: %d bytes, want %d", l.path(name), store.ErrInvalidDigest, size, desc.Size)
	}
	// The reader stops at size and checks the digest at EOF.
	return io.ReadAll(rc)
}

// blobFile returns the layout path of the blob d, blobs/sha256/<hex>. Only
// valid sha256 digests have one, so the path never leaves blobs/sha256.
func blobFile(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %q: %v", store.ErrInvalidDigest, d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("%w: %s: unsupported algorithm", store.ErrInvalidDigest, d)
	}
	return blobName(ocispec.Descriptor{Digest: d}), nil
}

// path returns the full path of name, a slash-separated path in the layout,
// for messages.
func (l *Layout) path(name string) string {
	return filepath.Join(l.dir, filepath.FromSlash(name))
}

// withRoot calls fn with the layout directory opened as an os.Root.
func (l *Layout) withRoot(fn func(*os.Root) error) error {
	r, err := os.OpenRoot(l.dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}

// openFile opens the regular file name inside the layout. Errors name it.
func (l *Layout) openFile(name string) (*os.File, fs.FileInfo, error) {
	var f *os.File
	err := l.withRoot(func(r *os.Root) (err error) {
		// O_NONBLOCK keeps a FIFO from blocking the open; it is then refused
		// below. Regular files ignore the flag.
		f, err = r.OpenFile(filepath.FromSlash(name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", l.path(name), err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &notRegularError{mode: fi.Mode()}
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("opening %s: %w", l.path(name), err)
	}
	return f, fi, nil
}

// readFile reads the small file name whole, refusing one over limit bytes.
func (l *Layout) readFile(name string, limit int64) ([]byte, error) {
	f, _, err := l.openFile(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", l.path(name), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("reading %s: larger than %d bytes", l.path(name), limit)
	}
	return data, nil
}

// notRegularError is openFile's error for a file that is not a regular one
// (a directory, a device, a FIFO).
type notRegularError struct{ mode fs.FileMode }

func (e *notRegularError) Error() string {
	return fmt.Sprintf("not a regular file (%s)", e.mode.Type())
}
