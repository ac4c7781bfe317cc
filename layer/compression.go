package layer

import (
	"fmt"
	"io"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
)

// Compression of a stored layer blob.
type Compression int

// The values of Compression are those of compression.Kind, so that a
// detected kind converts directly.
const (
	// Uncompressed stores the layer tar as is.
	Uncompressed = Compression(compression.None)
	// Gzip stores the layer tar gzip-compressed.
	Gzip = Compression(compression.Gzip)
	// Zstd stores the layer tar zstd-compressed.
	Zstd = Compression(compression.Zstd)
	// Bzip2 is only ever reported by DecompressStream: legacy Docker layers
	// may use it, but no OCI media type exists, so Write refuses it.
	Bzip2 = Compression(compression.Bzip2)
	// Xz is only ever reported by DecompressStream (see Bzip2).
	Xz = Compression(compression.Xz)
)

// ErrUnsupportedCompression is returned for a compression that an operation
// cannot handle (for example Write with Bzip2, an unknown name, or an xz
// stream without the xz program).
var ErrUnsupportedCompression = compression.ErrUnsupported

// String returns the canonical name of c, as accepted by ParseCompression.
func (c Compression) String() string {
	if c < Uncompressed || c > Xz {
		return fmt.Sprintf("Compression(%d)", int(c))
	}
	return compression.Kind(c).String()
}

// MediaType returns the OCI layer media type for a blob stored with c, or ""
// for compressions that have no OCI media type (Bzip2, Xz).
func (c Compression) MediaType() string {
	switch c {
	case Uncompressed:
		return ocispec.MediaTypeImageLayer
	case Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ""
}

// ParseCompression parses a user-supplied compression name: "gzip", "zstd",
// or "none"/"uncompressed". Names are case-insensitive.
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	case "none", "uncompressed":
		return Uncompressed, nil
	}
	return 0, fmt.Errorf("parsing compression %q: %w (want gzip, zstd or uncompressed)", s, ErrUnsupportedCompression)
}

// DecompressStream detects the compression of r from its magic bytes (gzip,
// zstd, bzip2, xz, or none) and returns the decompressed stream together with
// the detected compression. Xz is decoded by the external `xz` program; if it
// is not installed an error wrapping ErrUnsupportedCompression is returned.
// The caller must Close the returned reader; Close does not close r.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	rc, k, err := compression.NewReader(r)
	return rc, Compression(k), err
}
