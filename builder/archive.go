package builder

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	"github.com/builder-project/builder/output"
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

// Save writes the images refs name to w as one archive.
func (b *Builder) Save(ctx context.Context, w io.Writer, format ArchiveFormat, refs []string) error {
	idx, err := b.st.View()
	if err != nil {
		return err
	}
	var imgs []output.Image
	for _, ref := range refs {
		rec, err := idx.Resolve(ref)
		if err != nil {
			return err
		}
		img := output.Image{Manifest: rec.Manifest}
		if n, err := store.NormalizeRef(ref); err == nil && idx.Tags[n] == rec.ID {
			img.Names = []string{n}
		} else if !isIDRef(ref, rec) {
			return fmt.Errorf("saving %s: not a tag of image %s", ref, shortID(rec.ID))
		}
		imgs = append(imgs, img)
	}
	switch format {
	case DockerArchive, "":
		return output.WriteDockerArchive(ctx, b.st, w, imgs)
	case OCIArchive:
		return output.WriteOCIArchive(ctx, b.st, w, imgs)
	default:
		return fmt.Errorf("unknown archive format %q (want docker or oci)", format)
	}
}

func isIDRef(ref string, rec *store.Image) bool {
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
	lease, err := b.st.Lease()
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	loaded, err := output.Load(ctx, b.st, r)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var out []LoadedImage
	err = b.st.Update(func(idx *store.Index) error {
		for _, l := range loaded {
			for _, lb := range l.Layers {
				idx.AddLayer(lb.DiffID, lb.Size, lb.Blob)
			}
			rec := idx.Images[l.Config]
			if rec == nil {
				rec = &store.Image{ID: l.Config, Manifest: l.Manifest, Created: now}
				idx.Images[l.Config] = rec
			}
			li := LoadedImage{ID: l.Config.String()}
			for _, n := range l.Names {
				idx.Tags[n] = l.Config
				rec.LastTagTime = now
				li.Names = append(li.Names, store.FamiliarRef(n))
			}
			out = append(out, li)
		}
		return nil
	})
	return out, err
}

// Export writes the flattened root filesystem of the image ref names to w as
// a tar, with every layer's whiteouts applied.
func (b *Builder) Export(ctx context.Context, w io.Writer, ref string) error {
	img, err := b.resolve(ctx, ref)
	if err != nil {
		return err
	}
	return b.exportTar(ctx, w, img)
}

// ExportManifest is Export for the image a manifest descriptor names, such
// as BuildResult.Manifest.
func (b *Builder) ExportManifest(ctx context.Context, w io.Writer, manifest ocispec.Descriptor) error {
	img, err := b.readManifest(ctx, manifest)
	if err != nil {
		return err
	}
	return b.exportTar(ctx, w, img)
}

func (b *Builder) exportTar(ctx context.Context, w io.Writer, img *stored) error {
	dir, release, err := b.st.TempDir("export-")
	if err != nil {
		return err
	}
	defer release()
	if err := b.unpackInto(ctx, img, dir); err != nil {
		return err
	}
	if err := layer.DiffDirs(ctx, "", dir, layer.DiffOptions{}, w); err != nil {
		return fmt.Errorf("exporting %s: %w", shortID(img.rec.ID), err)
	}
	return nil
}

// unpackInto applies every layer of img onto dir, whiteouts applied.
func (b *Builder) unpackInto(ctx context.Context, img *stored, dir string) error {
	for i, l := range img.manifest.Layers {
		if err := b.applyBlob(ctx, l.Digest, dir, layer.DirFormat); err != nil {
			return fmt.Errorf("exporting %s to %s: layer %d: %w", shortID(img.rec.ID), dir, i, err)
		}
	}
	return nil
}

// SaveManifest writes the image a manifest descriptor names (such as
// BuildResult.Manifest) to w as one archive naming it tags.
func (b *Builder) SaveManifest(ctx context.Context, w io.Writer, format ArchiveFormat, manifest ocispec.Descriptor, tags []string) error {
	names, err := normalizeTags(tags)
	if err != nil {
		return err
	}
	imgs := []output.Image{{Manifest: manifest, Names: names}}
	if format == OCIArchive {
		return output.WriteOCIArchive(ctx, b.st, w, imgs)
	}
	return output.WriteDockerArchive(ctx, b.st, w, imgs)
}

// ExportDir writes the flattened root filesystem of the image ref names into
// the directory dir.
func (b *Builder) ExportDir(ctx context.Context, dir, ref string) error {
	img, err := b.resolve(ctx, ref)
	if err != nil {
		return err
	}
	return b.unpackInto(ctx, img, dir)
}

// ExportManifestDir is ExportDir for the image a manifest descriptor names.
func (b *Builder) ExportManifestDir(ctx context.Context, dir string, manifest ocispec.Descriptor) error {
	img, err := b.readManifest(ctx, manifest)
	if err != nil {
		return err
	}
	return b.unpackInto(ctx, img, dir)
}
