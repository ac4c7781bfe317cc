package store

import (
	"context"
	"fmt"
	"io"

	"github.com/builder-project/builder/internal/userns"
	"github.com/builder-project/builder/layer"
	digest "github.com/opencontainers/go-digest"
)

// View makes sure every layer of parent (base first) has its committed
// snapshot, unpacking the missing ones from their blobs, and returns the
// snapshot directories topmost first: the lowerdirs of a read-only view
// (COPY --from, a bind mount from a stage). It returns nil for an empty
// parent.
func (sn *Snapshots) View(ctx context.Context, parent []Layer) ([]string, error) {
	chains := chainIDs(parent)
	lowers := make([]string, len(parent))
	for i, chain := range chains {
		dir, ok := sn.Dir(chain)
		if !ok {
			var err error
			if dir, err = sn.unpack(ctx, parent[:i], parent[i]); err != nil {
				return nil, err
			}
		}
		lowers[len(parent)-1-i] = dir
	}
	if len(lowers) == 0 {
		return nil, nil
	}
	return lowers, nil
}

// unpack applies the blob of l in overlay format into an ephemeral active
// snapshot on below and commits it, returning the committed directory.
func (sn *Snapshots) unpack(ctx context.Context, below []Layer, l Layer) (string, error) {
	a, err := sn.create(ctx, "", below)
	if err != nil {
		return "", fmt.Errorf("unpacking layer %s: %w", l.DiffID, err)
	}
	defer a.Remove() // no-op after Commit
	if err := sn.s.applyBlob(ctx, l, a.Upper); err != nil {
		return "", fmt.Errorf("unpacking layer %s: %w", l.DiffID, err)
	}
	return a.Commit(ctx, l.DiffID)
}

// applyBlob unpacks the stored blob of l onto dir in overlay format (with
// user.overlay.* xattrs when rootless, as its overlays mount with
// userxattr), and checks both the blob's digest and the layer's diffID.
func (s *Store) applyBlob(ctx context.Context, l Layer, dir string) error {
	rc, _, err := s.Open(ctx, l.Blob.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", l.Blob.Digest, err)
	}
	// An uncompressed blob's digest is its diffID, which rc verifies.
	diffID := digest.SHA256.Digester()
	var tar io.Reader = io.TeeReader(plain, diffID.Hash())
	if l.Blob.Digest == l.DiffID {
		tar = plain
	}
	_, err = layer.Apply(ctx, dir, tar, layer.ApplyOptions{Format: layer.OverlayFormat, UserXattr: userns.Rootless()})
	plain.Close() // before reading rc directly: a decompressor may read ahead
	if err != nil {
		return err
	}
	// A decompressor may stop at the end of its stream; reading rc to EOF
	// makes it check the blob's digest.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("reading blob %s: %w", l.Blob.Digest, err)
	}
	if got := diffID.Digest(); l.Blob.Digest != l.DiffID && got != l.DiffID {
		return fmt.Errorf("%w: blob %s has diffID %s, expected %s", ErrInvalidDigest, l.Blob.Digest, got, l.DiffID)
	}
	return nil
}
