package compression

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Kind is the compression of a stream as told by its first bytes.
type Kind int

const (
	// None is a stream that starts with none of the known magic numbers.
	None Kind = iota
	// Gzip is a gzip stream (RFC 1952).
	Gzip
	// Zstd is a Zstandard frame (RFC 8878).
	Zstd
	// Bzip2 is a bzip2 stream.
	Bzip2
	// Xz is an xz stream; NewReader decodes it with the external xz program.
	Xz
)

// String returns the lower-case name of k: "uncompressed", "gzip", "zstd",
// "bzip2" or "xz".
func (k Kind) String() string {
	switch k {
	case None:
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
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MagicLen is the number of leading bytes that Detect needs to recognise
// every Kind: the length of the longest magic number (xz's).
const MagicLen = 6

// ErrUnsupported is returned (wrapped) for a stream that is recognised but
// cannot be decoded here: xz when the xz program is not installed.
var ErrUnsupported = errors.New("unsupported compression")

var magics = []struct {
	kind  Kind
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte("BZh")},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// Detect returns the Kind of a stream that starts with head. head may hold
// fewer than MagicLen bytes (a short stream); a magic number that head cuts
// short is not recognised, so such a stream is None.
func Detect(head []byte) Kind {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.kind
		}
	}
	return None
}

// NewReader detects the compression of r from its first MagicLen bytes and
// returns the decompressed stream together with the detected Kind; a stream
// of Kind None is returned as it is. The caller must Close the returned
// reader, which releases the decoder; Close does not close r. On error the
// Kind is None and no reader is returned.
//
// Decoding errors surface from Read. An xz stream is decoded by the external
// xz program; if it is not installed, NewReader returns an error wrapping
// ErrUnsupported.
func NewReader(r io.Reader) (io.ReadCloser, Kind, error) {
	br := bufio.NewReaderSize(r, 128<<10)
	head, err := br.Peek(MagicLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, None, fmt.Errorf("detecting compression: %w", err)
	}
	k := Detect(head)
	var rc io.ReadCloser
	switch k {
	case Gzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, None, fmt.Errorf("opening gzip stream: %w", err)
		}
		rc = zr
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, None, fmt.Errorf("opening zstd stream: %w", err)
		}
		rc = zstdReadCloser{zr}
	case Bzip2:
		rc = io.NopCloser(bzip2.NewReader(br))
	case Xz:
		if rc, err = xzReader(br); err != nil {
			return nil, None, err
		}
	default:
		rc = io.NopCloser(br)
	}
	return rc, k, nil
}

type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error {
	z.Decoder.Close()
	return nil
}
