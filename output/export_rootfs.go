package output

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/layer"
)

// RootfsDir returns an Exporter that flattens exactly one image into the
// directory dir, which must exist: every layer, base first, is read from
// the Provider, decompressed and applied with layer.Apply in
// layer.DirFormat, so whiteouts delete what they name. For an index, the
// host platform's manifest is used. Applying restores ownership, so it
// needs root. The image's names are ignored.
func RootfsDir(dir string) Exporter {
	return rootfsDir{dir: dir}
}

type rootfsDir struct{ dir string }

// Export implements Exporter.
func (e rootfsDir) Export(ctx context.Context, p Provider, imgs ...Image) error {
	if len(imgs) != 1 {
		return fmt.Errorf("exporting to %s: a root filesystem holds one image, got %d", e.dir, len(imgs))
	}
	desc, m, err := platformManifest(ctx, p, imgs[0].Manifest)
	if err != nil {
		return err
	}
	for i, l := range m.Layers {
		if err := applyLayer(ctx, p, l, e.dir); err != nil {
			return fmt.Errorf("exporting %s to %s: layer %d: %w", desc.Digest, e.dir, i, err)
		}
	}
	return nil
}

// applyLayer unpacks the layer blob l, read from p, onto dir in DirFormat.
func applyLayer(ctx context.Context, p Provider, l ocispec.Descriptor, dir string) error {
	rc, _, err := p.Open(ctx, l.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		return err
	}
	defer plain.Close()
	if _, err := layer.Apply(ctx, dir, plain, layer.ApplyOptions{Format: layer.DirFormat}); err != nil {
		return err
	}
	// Read what the decompressor left, so that the verifying reader reaches
	// EOF and checks the digest.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("reading layer %s: %w", l.Digest, err)
	}
	return nil
}

// RootfsTar returns an Exporter that writes the flattened root filesystem of
// exactly one image to w as a tar: RootfsDir(scratch), then
// layer.DiffDirs of scratch against an empty tree. The caller creates the
// empty directory scratch, on a filesystem that can hold the image, and
// removes it afterwards.
func RootfsTar(w io.Writer, scratch string) Exporter {
	return rootfsTar{w: w, scratch: scratch}
}

type rootfsTar struct {
	w       io.Writer
	scratch string
}

// Export implements Exporter.
func (e rootfsTar) Export(ctx context.Context, p Provider, imgs ...Image) error {
	if err := RootfsDir(e.scratch).Export(ctx, p, imgs...); err != nil {
		return err
	}
	if err := layer.DiffDirs(ctx, "", e.scratch, layer.DiffOptions{}, e.w); err != nil {
		return fmt.Errorf("exporting %s: %w", imgs[0].Manifest.Digest, err)
	}
	return nil
}
