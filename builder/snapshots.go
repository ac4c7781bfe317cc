package builder

import (
	"context"
	"fmt"

	"github.com/builder-project/builder/layer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// applyBlob unpacks the layer blob d onto dir in the given format.
func (b *Builder) applyBlob(ctx context.Context, d digest.Digest, dir string, f layer.Format) error {
	rc, _, err := b.st.Open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		return err
	}
	defer plain.Close()
	_, err = layer.Apply(ctx, dir, plain, layer.ApplyOptions{Format: f})
	return err
}

// lowerDirs makes sure every layer of an image has its snapshot, unpacking
// the missing ones, and returns the snapshot dirs topmost first, ready to be
// overlay lowerdirs.
func (b *Builder) lowerDirs(ctx context.Context, layers []ocispec.Descriptor, diffIDs []digest.Digest) ([]string, error) {
	sn := b.st.Snapshots()
	dirs := make([]string, len(layers))
	for i := range layers {
		chain := layer.ChainID(diffIDs[:i+1])
		dir, ok := sn.Dir(chain)
		if !ok {
			a, err := sn.Prepare(ctx, "")
			if err != nil {
				return nil, err
			}
			if err := b.applyBlob(ctx, layers[i].Digest, a.Upper, layer.OverlayFormat); err != nil {
				a.Remove()
				return nil, fmt.Errorf("unpacking layer %s: %w", layers[i].Digest, err)
			}
			if dir, err = a.Commit(chain); err != nil {
				return nil, err
			}
		}
		dirs[len(layers)-1-i] = dir
	}
	return dirs, nil
}
