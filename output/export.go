package output

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// Provider gives verified readers of blobs by digest. The reader Open returns
// must fail instead of reaching io.EOF when the bytes do not hash to d, and
// the size it returns is the blob's. *store.Store and *Layout satisfy it.
type Provider interface {
	Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
}

// Image names one image to export.
type Image struct {
	// Manifest describes the image's manifest (or index) blob, as the
	// Provider holds it. A missing media type is sniffed from the blob.
	Manifest ocispec.Descriptor
	// Names are normalized references (docker.io/library/busybox:latest) to
	// record for the image; it may be empty.
	Names []string
}

// Exporter writes images, read from a Provider, to one destination. What a
// destination records of each image (all of an index, or the host
// platform's manifest; names or not) is told by the constructor's comment.
type Exporter interface {
	Export(ctx context.Context, p Provider, imgs ...Image) error
}

// Compile-time checks that the sources satisfy Provider.
var (
	_ Provider = (*store.Store)(nil)
	_ Provider = (*Layout)(nil)
)

// maxDocument bounds a manifest, index or config read whole from a Provider;
// it is the store's own bound for such blobs. Layers are always streamed.
const maxDocument = 64 << 20

// readAll reads the small blob desc from p whole, refusing one over limit
// bytes, and checks its digest and, when desc gives one, its size.
func readAll(ctx context.Context, p Provider, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	rc, size, err := p.Open(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	switch {
	case desc.Size > 0 && size != desc.Size:
		return nil, fmt.Errorf("blob %s is %d bytes, its descriptor says %d: %w", desc.Digest, size, desc.Size, store.ErrInvalidDigest)
	case size > limit:
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d bytes read whole", desc.Digest, size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(rc, size+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", desc.Digest, err)
	}
	if int64(len(data)) != size || digest.FromBytes(data) != desc.Digest {
		return nil, fmt.Errorf("reading blob %s: %w: got %d bytes hashing to %s", desc.Digest, store.ErrInvalidDigest, len(data), digest.FromBytes(data))
	}
	return data, nil
}

// unmarshal decodes a JSON document, naming it in the error.
func unmarshal(data []byte, v any, what string, d digest.Digest) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %s %s: %w", what, d, err)
	}
	return nil
}
