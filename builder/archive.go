package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/output"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArchiveFormat selects the tarball format of Save.
type ArchiveFormat string

// Archive formats.
const (
	// DockerArchive is docker save's format, readable by docker, podman and skopeo.
	DockerArchive ArchiveFormat = "docker"
	// OCIArchive is a tarred OCI image layout.
	OCIArchive ArchiveFormat = "oci"
)

// archiveExporter returns the exporter of an archive format writing to w.
func archiveExporter(format ArchiveFormat, w io.Writer) (output.Exporter, error) {
	switch format {
	case DockerArchive, "":
		return output.DockerArchive(w), nil
	case OCIArchive:
		return output.OCIArchive(w), nil
	}
	return nil, fmt.Errorf("unknown archive format %q (want docker or oci)", format)
}

// Save writes the images refs name to w as one archive, with their layers
// as they are stored. A ref that is a tag names its image in the archive; an
// image ID leaves it unnamed. It is SaveWith with only a format.
func (b *Builder) Save(ctx context.Context, w io.Writer, format ArchiveFormat, refs []string) error {
	return b.SaveWith(ctx, w, SaveOptions{Format: format}, refs)
}

// SaveOptions configures SaveWith.
type SaveOptions struct {
	// Format is the archive format; empty means DockerArchive.
	Format ArchiveFormat
	// CompressionOptions say how the layers are compressed in the
	// archive; the zero value writes them as they are stored.
	CompressionOptions
}

// SaveWith writes the images refs name to w as one archive, as Save does,
// with the layers compressed as opts ask (see CompressionOptions).
func (b *Builder) SaveWith(ctx context.Context, w io.Writer, opts SaveOptions, refs []string) error {
	if err := opts.check(); err != nil {
		return err
	}
	exp, err := archiveExporter(opts.Format, w)
	if err != nil {
		return err
	}
	if opts.Compression != "" {
		// Compressing writes blobs that no image references yet.
		lease, err := b.st.Lease()
		if err != nil {
			return err
		}
		defer lease.Release()
	}
	idx, err := b.st.View()
	if err != nil {
		return err
	}
	// An image named twice (X X, or a tag and its ID) is written once,
	// with every name given.
	var imgs []output.Image
	at := map[digest.Digest]int{}
	for _, ref := range refs {
		rec, err := idx.Resolve(ref)
		if err != nil {
			return err
		}
		var name string
		if n, err := store.NormalizeRef(ref); err == nil && idx.Tags()[n] == rec.ID {
			name = n
		} else if !isIDRef(ref, rec) {
			return fmt.Errorf("saving %s: not a tag of image %s", ref, store.ShortID(rec.ID))
		}
		i, seen := at[rec.ID]
		if !seen {
			img := output.Image{Manifest: rec.Manifest}
			if img.Manifest, err = b.convert(ctx, rec.Manifest, opts.CompressionOptions); err != nil {
				return fmt.Errorf("saving %s: %w", ref, err)
			}
			i = len(imgs)
			at[rec.ID] = i
			imgs = append(imgs, img)
		}
		if name != "" && !slices.Contains(imgs[i].Names, name) {
			imgs[i].Names = append(imgs[i].Names, name)
		}
	}
	return exp.Export(ctx, b.st, imgs...)
}

func isIDRef(ref string, rec store.Image) bool {
	s := ref
	if len(s) > 7 && s[:7] == "sha256:" {
		s = s[7:]
	}
	return len(s) > 0 && len(s) <= 64 && rec.ID.Encoded()[:len(s)] == s
}

// LoadedImage reports one image Load stored.
type LoadedImage struct {
	ID    string
	Names []string // familiar names; empty for an untagged image
}

// Load reads a docker-archive or OCI archive (plain or compressed) and stores
// its images, moving tags that pointed elsewhere.
func (b *Builder) Load(ctx context.Context, r io.Reader) ([]LoadedImage, error) {
	return b.load(ctx, func(st *store.Store) ([]output.Loaded, error) { return output.Load(ctx, st, r) })
}

// LoadLayout stores the images of the OCI image layout directory dir, as
// Load does for an archive.
func (b *Builder) LoadLayout(ctx context.Context, dir string) ([]LoadedImage, error) {
	return b.load(ctx, func(st *store.Store) ([]output.Loaded, error) { return output.LoadLayout(ctx, st, dir) })
}

// load runs an importer under a lease and records what it brought in.
func (b *Builder) load(ctx context.Context, read func(*store.Store) ([]output.Loaded, error)) ([]LoadedImage, error) {
	lease, err := b.st.Lease()
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	loaded, err := read(b.st)
	if err != nil {
		return nil, err
	}
	var out []LoadedImage
	for _, l := range loaded {
		img := store.NewImage{ID: l.Config, Manifest: l.Manifest}
		for _, lb := range l.Layers {
			img.Layers = append(img.Layers, store.Layer{DiffID: lb.DiffID, Blob: lb.Blob, Size: lb.Size})
		}
		if err := b.st.PutImage(ctx, img, l.Names); err != nil {
			return out, fmt.Errorf("recording image %s: %w", l.Config, err)
		}
		li := LoadedImage{ID: l.Config.String()}
		for _, n := range l.Names {
			li.Names = append(li.Names, store.FamiliarRef(n))
		}
		out = append(out, li)
	}
	return out, nil
}

// Export writes a flattened root filesystem to w as a tar: a container's
// merged one (its changes over its image), as docker export does, when a
// container has that name or ID; else the image's, with every layer's
// whiteouts applied.
func (b *Builder) Export(ctx context.Context, w io.Writer, ref string) error {
	c, err := b.loadContainer(ref)
	if err == nil {
		return b.exportContainer(ctx, w, c)
	}
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	img, err := b.resolve(ctx, ref)
	if err != nil {
		return err
	}
	return b.exportTo(ctx, img.rec.Manifest, output.RootfsTar(w))
}

// ExportDir writes the flattened root filesystem of the image ref names into
// the directory dir, which must be empty or missing: the image is unpacked
// next to it and moved in once complete (see output.RootfsDir), so that
// nothing dir held is ever deleted.
func (b *Builder) ExportDir(ctx context.Context, dir, ref string) error {
	img, err := b.resolve(ctx, ref)
	if err != nil {
		return err
	}
	return b.exportTo(ctx, img.rec.Manifest, output.RootfsDir(dir))
}

// exportTo runs exp on the image manifest names.
func (b *Builder) exportTo(ctx context.Context, manifest ocispec.Descriptor, exp output.Exporter) error {
	if err := exp.Export(ctx, b.st, output.Image{Manifest: manifest}); err != nil {
		return fmt.Errorf("exporting %s: %w", store.ShortID(manifest.Digest), err)
	}
	return nil
}
