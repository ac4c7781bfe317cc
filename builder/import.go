package builder

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Ref tags the new image; empty leaves it dangling.
	Ref string
	// Changes are docker --change instructions (CMD, ENTRYPOINT, ENV, EXPOSE,
	// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) applied to the config.
	Changes []string
	// Message becomes the history comment.
	Message string
	// Source names the input in history ("-" for stdin), as docker records it.
	Source string
}

// Import turns a root filesystem tarball (plain or compressed) into a
// one-layer image, like docker import, and returns the image ID. A tarball
// with an entry layer.Apply would refuse (a name or hardlink climbing out of
// the root, a misused whiteout name, a hardlink to nothing earlier in the
// tarball) is refused with an error naming the entry, and nothing is stored.
func (b *Builder) Import(ctx context.Context, r io.Reader, opts ImportOptions) (string, error) {
	var tags []string
	if opts.Ref != "" {
		t, err := normalizeTags([]string{opts.Ref})
		if err != nil {
			return "", err
		}
		tags = t
	}
	now := time.Now().UTC()
	cfg := Config{}
	cfg.Created = &now
	cfg.Platform = ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if err := applyChanges(&cfg, opts.Changes); err != nil {
		return "", err
	}
	plain, _, err := layer.DecompressStream(r)
	if err != nil {
		return "", fmt.Errorf("importing: %w", err)
	}
	defer plain.Close()
	lease, err := b.st.Lease()
	if err != nil {
		return "", err
	}
	defer lease.Release()
	// The tar is validated as it is stored, in one pass: an entry that
	// layer.Apply would refuse fails the import before anything is
	// committed.
	l, err := b.writeLayer(ctx, func(w io.Writer) error {
		return layer.Validate(io.TeeReader(plain, w))
	})
	if err != nil {
		return "", fmt.Errorf("importing: %w", err)
	}
	src := opts.Source
	if src == "" {
		src = "-"
	}
	cfg.History = []ocispec.History{{Created: &now, CreatedBy: "builder import " + src, Comment: opts.Message}}
	id, _, err := b.commitImage(ctx, cfg, []store.Layer{{DiffID: l.DiffID, Blob: l.Desc, Size: l.Size}}, tags, "", true)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// localCompression is how layers are stored locally. Layers that stay on
// this machine are not compressed; a push compresses once and records the
// compressed blob beside the diffID.
const localCompression = layer.Uncompressed

// writeLayer streams the tar gen writes into a new layer blob.
func (b *Builder) writeLayer(ctx context.Context, gen func(io.Writer) error) (layer.Layer, error) {
	w, err := b.st.Ingest(ctx)
	if err != nil {
		return layer.Layer{}, err
	}
	return layer.Write(ctx, w, localCompression, gen)
}
