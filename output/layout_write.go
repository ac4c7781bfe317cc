package output

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/builder-project/builder/internal/atomicfile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteBlob stores the blob desc describes, from the reader open returns,
// unless a regular file of desc's size is already in its place (it is then
// trusted, and open is not called). The bytes are checked against desc's
// size and digest while they are copied (a mismatch wraps
// store.ErrInvalidDigest) into a hidden temporary file, which is fsynced and
// renamed into place, and the directory fsynced: a blob is never visible
// half-written, and a failed write leaves nothing behind.
func (l *Layout) WriteBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	name, err := blobFile(desc.Digest)
	if err != nil {
		return fmt.Errorf("writing blob to layout %s: %w", l.dir, err)
	}
	var fi os.FileInfo
	if l.withRoot(func(r *os.Root) (err error) { fi, err = r.Stat(filepath.FromSlash(name)); return err }) == nil &&
		fi.Mode().IsRegular() && fi.Size() == desc.Size {
		return nil
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	return l.writeAtomic(name, func(w io.Writer) error {
		return copyVerified(ctx, w, rc, desc.Size, desc.Digest, "blob "+desc.Digest.String())
	})
}

// WriteIndex replaces index.json with idx atomically: a temporary file is
// written, fsynced and renamed over it, and the directory fsynced.
func (l *Layout) WriteIndex(idx ocispec.Index) error {
	data, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", l.path(ocispec.ImageIndexFile), err)
	}
	return l.writeFile(ocispec.ImageIndexFile, data)
}

// writeFile replaces the file name with data atomically.
func (l *Layout) writeFile(name string, data []byte) error {
	return l.writeAtomic(name, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic creates or replaces the file name (slash-separated, inside
// the layout) with what fill writes, atomically and durably (see
// atomicfile.WriteIn). Missing parent directories are created.
func (l *Layout) writeAtomic(name string, fill func(io.Writer) error) error {
	err := l.withRoot(func(r *os.Root) error {
		if err := r.MkdirAll(filepath.FromSlash(path.Dir(name)), 0o755); err != nil {
			return err
		}
		return atomicfile.WriteIn(r, name, 0o644, fill)
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", l.path(name), err)
	}
	return nil
}
