package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"runtime"
	"strings"
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
	// Source names the input in history and in errors ("-" for stdin,
	// the file name or URL), as docker records it.
	Source string
}

// Import turns a root filesystem tarball (plain or compressed) into a
// one-layer image, like docker import, and returns the image ID. The tar is
// checked as it streams into the store: input that is not a tar (wrapping
// layer.ErrNotTar), a truncated tar, or an entry layer.Apply would refuse
// (a name or hardlink climbing out of the root, a misused whiteout name, a
// hardlink to nothing earlier in the tarball; wrapping
// layer.ErrInvalidEntry, naming the entry) fails the import with an error
// naming opts.Source, and nothing is stored. An empty archive makes an
// image with one empty layer, as in docker.
func (b *Builder) Import(ctx context.Context, r io.Reader, opts ImportOptions) (string, error) {
	src := opts.Source
	if src == "" {
		src = "-"
	}
	id, err := b.importTar(ctx, r, opts, src)
	if err != nil {
		name := src
		if name == "-" {
			name = "standard input"
		}
		return "", fmt.Errorf("importing %s: %w", name, err)
	}
	return id, nil
}

// ImportURL is Import of the tarball at url (http or https), as docker
// import URL: the download streams into the store, checked as it comes,
// and an answer other than 200 OK is an error naming url. opts.Source
// defaults to url.
func (b *Builder) ImportURL(ctx context.Context, url string, opts ImportOptions) (string, error) {
	if opts.Source == "" {
		opts.Source = url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL
		}
		return "", fmt.Errorf("importing %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("importing %s: %s", url, resp.Status)
	}
	return b.Import(ctx, resp.Body, opts)
}

// IsURL reports whether an import source is an http or https URL rather
// than a file name, as docker import decides.
func IsURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

func (b *Builder) importTar(ctx context.Context, r io.Reader, opts ImportOptions, src string) (string, error) {
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
		return "", err
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
		return "", err
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
