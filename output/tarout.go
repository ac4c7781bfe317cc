package output

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"time"

	digest "github.com/opencontainers/go-digest"
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

// blob streams a blob from the store to blobs/<alg>/<hex>. The store's
// reader verifies the digest at EOF, so a corrupted blob fails the write
// instead of producing a bad archive.
func (t *tarWriter) blob(ctx context.Context, st *store.Store, d ocispec.Descriptor) error {
	name := blobName(d)
	if t.seen[name] {
		return nil
	}
	rc, size, err := st.Open(ctx, d.Digest)
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	if d.Size > 0 && size != d.Size {
		return fmt.Errorf("blob %s is %d bytes in the store, its descriptor says %d: %w", d.Digest, size, d.Size, store.ErrInvalidDigest)
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

// close finishes the archive.
func (t *tarWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("finishing archive: %w", err)
	}
	return nil
}

// onlyReader hides any WriterTo or ReaderFrom so that io.CopyBuffer uses
// the buffer and reads through the verifier to EOF.
type onlyReader struct{ io.Reader }

// imageBlobs lists the blobs of one stored image or index, parents before
// children, each once.
type imageBlobs struct {
	descs []ocispec.Descriptor
	seen  map[digest.Digest]bool
}

// walk adds desc and everything it references. Manifests and indexes are
// read from the store to find their children; layers are only listed.
func (b *imageBlobs) walk(ctx context.Context, st *store.Store, desc ocispec.Descriptor, depth int) error {
	if b.seen == nil {
		b.seen = map[digest.Digest]bool{}
	}
	if b.seen[desc.Digest] {
		return nil
	}
	if depth > 4 {
		return fmt.Errorf("index %s nests too deep", desc.Digest)
	}
	b.seen[desc.Digest] = true
	b.descs = append(b.descs, desc)
	mt := desc.MediaType
	if !isManifestType(mt) && !isIndexType(mt) && mt != "" {
		return nil
	}
	data, err := st.ReadBlob(ctx, desc.Digest)
	if err != nil {
		return fmt.Errorf("reading %s: %w", desc.Digest, err)
	}
	if mt == "" {
		mt = sniffMediaType(data)
	}
	switch {
	case isIndexType(mt):
		var idx ocispec.Index
		if err := unmarshal(data, &idx, "index", desc.Digest); err != nil {
			return err
		}
		for _, c := range idx.Manifests {
			if err := b.walk(ctx, st, c, depth+1); err != nil {
				return err
			}
		}
	case isManifestType(mt):
		var m ocispec.Manifest
		if err := unmarshal(data, &m, "manifest", desc.Digest); err != nil {
			return err
		}
		for _, c := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := b.walk(ctx, st, c, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
