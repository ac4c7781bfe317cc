package layer

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression of a stored layer blob.
type Compression int

const (
	// Uncompressed stores the layer tar as is.
	Uncompressed Compression = iota
	// Gzip stores the layer tar gzip-compressed.
	Gzip
	// Zstd stores the layer tar zstd-compressed.
	Zstd
	// Bzip2 is only ever reported by DecompressStream: legacy Docker layers
	// may use it, but no OCI media type exists, so Write refuses it.
	Bzip2
	// Xz is only ever reported by DecompressStream (see Bzip2).
	Xz
)

// ErrUnsupportedCompression is returned for a compression that an operation
// cannot handle (for example Write with Bzip2, or an unknown name).
var ErrUnsupportedCompression = errors.New("unsupported compression")

// String returns the canonical name of c, as accepted by ParseCompression.
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Bzip2:
		return "bzip2"
	case Xz:
		return "xz"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
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

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// DecompressStream detects the compression of r from its magic bytes (gzip,
// zstd, bzip2, xz, or none) and returns the decompressed stream together with
// the detected compression. Xz is decoded by the external `xz` program; if it
// is not installed an error wrapping ErrUnsupportedCompression is returned.
// The caller must Close the returned reader; Close does not close r.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 128<<10)
	head, err := br.Peek(len(magicXz))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("detecting compression: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("opening gzip stream: %w", err)
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("opening zstd stream: %w", err)
		}
		return zstdReadCloser{zr}, Zstd, nil
	case bytes.HasPrefix(head, magicBzip2):
		return io.NopCloser(bzip2.NewReader(br)), Bzip2, nil
	case bytes.HasPrefix(head, magicXz):
		rc, err := xzReader(br)
		if err != nil {
			return nil, 0, err
		}
		return rc, Xz, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error {
	z.Decoder.Close()
	return nil
}

// xzReader decodes r with the xz program: no xz decoder is among our
// dependencies and xz layers are rare (legacy Docker only).
func xzReader(r io.Reader) (io.ReadCloser, error) {
	path, err := exec.LookPath("xz")
	if err != nil {
		return nil, fmt.Errorf("decoding xz stream: %w: the xz program is not installed", ErrUnsupportedCompression)
	}
	cmd := exec.Command(path, "--decompress", "--stdout")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting xz: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting xz: %w", err)
	}
	return &xzReadCloser{cmd: cmd, out: out, stderr: &stderr}, nil
}

type xzReadCloser struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *bytes.Buffer
	done   bool
	err    error
}

func (x *xzReadCloser) Read(p []byte) (int, error) {
	n, err := x.out.Read(p)
	if errors.Is(err, io.EOF) {
		// Report a failed decode instead of a silent, truncated stream.
		if werr := x.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (x *xzReadCloser) wait() error {
	if !x.done {
		x.done = true
		if err := x.cmd.Wait(); err != nil {
			x.err = fmt.Errorf("decoding xz stream: %w: %s", err, strings.TrimSpace(x.stderr.String()))
		}
	}
	return x.err
}

// Close stops xz if it is still running and reports its failure, if any.
func (x *xzReadCloser) Close() error {
	if !x.done {
		_ = x.out.Close()
		if x.cmd.Process != nil {
			_ = x.cmd.Process.Kill()
		}
		_ = x.wait()
		return nil
	}
	return x.err
}
