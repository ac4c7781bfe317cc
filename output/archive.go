package output

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// epoch is the modification time of every entry we write, so that the same
// images always make the same bytes.
var epoch = time.Unix(0, 0).UTC()

// tarWriter writes archive entries once each: directories are created on
// first use and a blob shared by several images is written once.
type tarWriter struct {
	tw   *tar.Writer
	seen map[string]bool
	buf  []byte
}

func newTarWriter(w io.Writer) *tarWriter {
	return &tarWriter{tw: tar.NewWriter(w), seen: map[string]bool{}}
}

// dirs writes the parent directories of name that are not written yet.
func (t *tarWriter) dirs(name string) error {
	dir := path.Dir(name)
	if dir == "." || t.seen[dir+"/"] {
		return nil
	}
	if err := t.dirs(dir); err != nil {
		return err
	}
	t.seen[dir+"/"] = true
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", hdr.Name, err)
	}
	return nil
}

// file writes a regular file with the given content.
func (t *tarWriter) file(name string, data []byte) error {
	if t.seen[name] {
		return nil
	}
	if err := t.dirs(name); err != nil {
		return err
	}
	t.seen[name] = true
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := t.tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// blob streams a blob from p to blobs/<alg>/<hex>. The Provider's reader
// verifies the digest at EOF, so a corrupted blob fails the write instead of
// producing a bad archive.
func (t *tarWriter) blob(ctx context.Context, p Provider, d ocispec.Descriptor) error {
	name := blobName(d)
	if t.seen[name] {
		return nil
	}
	rc, size, err := p.Open(ctx, d.Digest)
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	if d.Size > 0 && size != d.Size {
		return fmt.Errorf("blob %s is %d bytes at the source, its descriptor says %d: %w", d.Digest, size, d.Size, store.ErrInvalidDigest)
	}
	if err := t.dirs(name); err != nil {
		return err
	}
	t.seen[name] = true
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if t.buf == nil {
		t.buf = make([]byte, 1<<20)
	}
	if _, err := io.CopyBuffer(t.tw, onlyReader{rc}, t.buf); err != nil {
		return fmt.Errorf("writing blob %s: %w", d.Digest, err)
	}
	return nil
}

// finish streams blobs from p, then ends the archive.
func (t *tarWriter) finish(ctx context.Context, p Provider, blobs []ocispec.Descriptor) error {
	for _, d := range blobs {
		if err := t.blob(ctx, p, d); err != nil {
			return err
		}
	}
	return t.close()
}

// close ends the archive.
func (t *tarWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("finishing archive: %w", err)
	}
	return nil
}

// onlyReader hides any WriterTo or ReaderFrom so that io.CopyBuffer uses
// the buffer and reads through the verifier to EOF.
type onlyReader struct{ io.Reader }
