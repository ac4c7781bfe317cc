package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/layer"
)

// ErrDirNotEmpty is wrapped by the errors of RootfsDir and CheckRootfsDir
// for a destination that holds something, without WithForce.
var ErrDirNotEmpty = errors.New("directory is not empty")

// RootfsDirOption configures RootfsDir.
type RootfsDirOption func(*rootfsDir)

// WithForce lets RootfsDir write into a directory that is not empty: an
// entry of the image replaces the entry of the same name in the directory
// (a directory of the image merges into a directory there, taking its mode,
// owner and times), and everything else the directory holds is kept. The
// image's whiteouts never delete anything in it.
func WithForce() RootfsDirOption {
	return func(e *rootfsDir) { e.force = true }
}

// RootfsDir returns an Exporter that flattens exactly one image into the
// directory dir, created if missing, which must be empty unless WithForce
// is given: every layer, base first, is read from the Provider,
// decompressed and applied with layer.Apply in layer.DirFormat, so that
// whiteouts delete what lower layers put there, into a fresh directory
// next to dir (on the same filesystem; inside dir when dir is a mount
// point). Only once the image is complete are its entries moved into dir,
// each with one rename that never replaces anything (see WithForce), so
// that the whiteouts of an image never touch what dir held before, and a
// failed export leaves dir as it was. dir's own mode, owner and times are
// kept. For an index, the host platform's manifest is used. Applying
// restores ownership, so it needs root. The image's names are ignored.
func RootfsDir(dir string, opts ...RootfsDirOption) Exporter {
	e := rootfsDir{dir: dir}
	for _, o := range opts {
		o(&e)
	}
	return e
}

type rootfsDir struct {
	dir   string
	force bool
}

// CheckRootfsDir returns the error RootfsDir(dir, opts...) would return
// for its destination before reading any layer: dir is not a directory, or
// is not empty (ErrDirNotEmpty) without WithForce. A missing dir is fine.
func CheckRootfsDir(dir string, opts ...RootfsDirOption) error {
	return RootfsDir(dir, opts...).(rootfsDir).check()
}

func (e rootfsDir) check() error {
	dir := e.dir
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if e.force {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%s: %w", dir, ErrDirNotEmpty)
	}
	return nil
}

// Export implements Exporter.
func (e rootfsDir) Export(ctx context.Context, p Provider, imgs ...Image) error {
	if len(imgs) != 1 {
		return fmt.Errorf("exporting to %s: a root filesystem holds one image, got %d", e.dir, len(imgs))
	}
	if err := e.check(); err != nil {
		return fmt.Errorf("exporting to %s: %w", e.dir, err)
	}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return fmt.Errorf("exporting to %s: %w", e.dir, err)
	}
	staging, err := stagingDir(e.dir)
	if err != nil {
		return fmt.Errorf("exporting to %s: %w", e.dir, err)
	}
	defer os.RemoveAll(staging)
	if err := applyImage(ctx, p, imgs[0], staging); err != nil {
		return fmt.Errorf("exporting to %s: %w", e.dir, err)
	}
	if err := moveEntries(staging, e.dir, e.force); err != nil {
		return fmt.Errorf("exporting to %s: %w", e.dir, err)
	}
	return nil
}

// applyImage applies the layers of img, base first, onto dir in DirFormat.
func applyImage(ctx context.Context, p Provider, img Image, dir string) error {
	desc, m, err := platformManifest(ctx, p, img.Manifest)
	if err != nil {
		return err
	}
	for i, l := range m.Layers {
		if err := applyLayer(ctx, p, l, dir); err != nil {
			return fmt.Errorf("exporting %s: layer %d: %w", desc.Digest, i, err)
		}
	}
	return nil
}

// applyLayer unpacks the layer blob l, read from p, onto dir in DirFormat.
func applyLayer(ctx context.Context, p Provider, l ocispec.Descriptor, dir string) error {
	rc, err := openLayer(ctx, p, l)
	if err != nil {
		return err
	}
	defer rc.Close()
	// Apply reads rc to its end, so the blob's digest is checked.
	_, err = layer.Apply(ctx, dir, rc, layer.ApplyOptions{Format: layer.DirFormat})
	return err
}

// openLayer opens the layer blob l, read from p, decompressed. Reading it
// to its end reads the blob to its end too, so that the Provider verifies
// the blob's digest even when the compressed stream ends early.
func openLayer(ctx context.Context, p Provider, l ocispec.Descriptor) (io.ReadCloser, error) {
	rc, _, err := p.Open(ctx, l.Digest)
	if err != nil {
		return nil, err
	}
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("reading layer %s: %w", l.Digest, err)
	}
	return &layerReader{plain: plain, blob: rc, digest: l.Digest.String()}, nil
}

// layerReader reads a decompressed layer and, at its end, the rest of the
// blob.
type layerReader struct {
	plain, blob io.ReadCloser
	digest      string
}

func (r *layerReader) Read(b []byte) (int, error) {
	n, err := r.plain.Read(b)
	if errors.Is(err, io.EOF) {
		if _, derr := io.Copy(io.Discard, r.blob); derr != nil {
			return n, fmt.Errorf("reading layer %s: %w", r.digest, derr)
		}
	}
	return n, err
}

func (r *layerReader) Close() error {
	r.plain.Close()
	return r.blob.Close()
}

// RootfsTar returns an Exporter that writes the flattened root filesystem of
// exactly one image to w as a tar, streamed from its layers by
// layer.Flatten: each path as the topmost layer left it, whiteouts and
// opaque directories applied, hard links kept. Nothing is unpacked, so it
// needs no privilege and no scratch space; each layer is read twice. For
// an index, the host platform's manifest is used.
func RootfsTar(w io.Writer) Exporter {
	return rootfsTar{w: w}
}

type rootfsTar struct {
	w io.Writer
}

// Export implements Exporter.
func (e rootfsTar) Export(ctx context.Context, p Provider, imgs ...Image) error {
	if len(imgs) != 1 {
		return fmt.Errorf("exporting a root filesystem: it holds one image, got %d", len(imgs))
	}
	desc, m, err := platformManifest(ctx, p, imgs[0].Manifest)
	if err != nil {
		return err
	}
	layers := make([]layer.Opener, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = func() (io.ReadCloser, error) { return openLayer(ctx, p, l) }
	}
	if err := layer.Flatten(ctx, e.w, layers); err != nil {
		return fmt.Errorf("exporting %s: %w", desc.Digest, err)
	}
	return nil
}
