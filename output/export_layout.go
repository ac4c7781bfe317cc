package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayoutOption configures OCILayout.
type LayoutOption func(*layoutOptions)

type layoutOptions struct {
	replace []func(ocispec.Descriptor) bool
}

// WithReplace makes OCILayout drop every existing index.json entry for which
// match returns true, besides those it drops anyway (see OCILayout). It may
// be given several times; an entry any matcher matches is dropped.
func WithReplace(match func(ocispec.Descriptor) bool) LayoutOption {
	return func(o *layoutOptions) { o.replace = append(o.replace, match) }
}

// OCILayout returns an Exporter that adds its images to the OCI image layout
// at dir, creating dir and the layout as needed. It writes the blobs and
// index.json entries OCIArchive would put in a tar, and merges them with
// what the layout holds:
//
//   - a blob already present (a regular file of the right size) is not
//     rewritten; a new one is verified while copied and appears atomically;
//   - the new index.json keeps the existing entries, in their order, except
//     those that name an image written now (an equal
//     org.opencontainers.image.ref.name or io.containerd.image.name
//     annotation), those equal to an unnamed entry written now, and those a
//     WithReplace matcher selects; the new entries follow;
//   - oci-layout is written if missing; index.json is replaced last, and
//     atomically, so a failed export leaves the old index in force.
//
// Blobs that no entry references any more are left in place; exporting the
// same images again writes an identical index.json.
func OCILayout(dir string, opts ...LayoutOption) Exporter {
	e := ociLayout{dir: dir}
	for _, o := range opts {
		o(&e.opts)
	}
	return e
}

type ociLayout struct {
	dir  string
	opts layoutOptions
}

// Export implements Exporter.
func (e ociLayout) Export(ctx context.Context, p Provider, imgs ...Image) error {
	pl, err := planLayout(ctx, p, imgs)
	if err != nil {
		return err
	}
	l, err := CreateLayout(e.dir)
	if err != nil {
		return err
	}
	old, err := l.Index(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Children first, so that every blob present has its children present.
	for i := len(pl.blobs) - 1; i >= 0; i-- {
		d := pl.blobs[i]
		open := func() (io.ReadCloser, error) {
			rc, _, err := p.Open(ctx, d.Digest)
			return rc, err
		}
		if err := l.WriteBlob(ctx, d, open); err != nil {
			return err
		}
	}
	idx := newIndex(nil)
	for _, d := range old.Manifests {
		if !e.replaced(d, pl.entries) {
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	idx.Manifests = append(idx.Manifests, pl.entries...)
	if err := l.WriteIndex(idx); err != nil {
		return fmt.Errorf("exporting to layout %s: %w", e.dir, err)
	}
	return nil
}

// replaced reports whether the existing entry old gives way to the entries
// written now.
func (e ociLayout) replaced(old ocispec.Descriptor, now []ocispec.Descriptor) bool {
	for _, match := range e.opts.replace {
		if match(old) {
			return true
		}
	}
	for _, d := range now {
		for _, key := range []string{annotationRefName, annotationContainerdName} {
			if n := old.Annotations[key]; n != "" && n == d.Annotations[key] {
				return true
			}
		}
		if len(d.Annotations) == 0 && len(old.Annotations) == 0 && old.Digest == d.Digest {
			return true
		}
	}
	return false
}
