package layer

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/ioctx"
)

// Measure returns the Layer that gen writes, uncompressed, without storing
// it anywhere: its diffID, which is also the digest of the uncompressed
// blob, and its size. A store that can write the same tar again on demand
// (from the directory gen diffs) keeps only that, not the blob.
func Measure(ctx context.Context, gen func(io.Writer) error) (Layer, error) {
	dg := digest.SHA256.Digester()
	count := &countingWriter{w: dg.Hash()}
	buf := bufio.NewWriterSize(ioctx.Writer(ctx, count), bufSize)
	if err := gen(buf); err != nil {
		return Layer{}, fmt.Errorf("generating layer: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return Layer{}, fmt.Errorf("generating layer: %w", err)
	}
	d := dg.Digest()
	return Layer{Desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: count.n}, DiffID: d, Size: count.n}, nil
}
