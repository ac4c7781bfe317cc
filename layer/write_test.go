package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
)

// memBlob is an in-memory BlobWriter that records how it was finished.
type memBlob struct {
	buf       bytes.Buffer
	committed bool
	aborted   bool
	size      int64
	expected  digest.Digest
	failWith  error
}

func (m *memBlob) Write(p []byte) (int, error) { return m.buf.Write(p) }

func (m *memBlob) Commit(ctx context.Context, size int64, expected digest.Digest) (ocispec.Descriptor, error) {
	if m.failWith != nil {
		return ocispec.Descriptor{}, m.failWith
	}
	m.committed, m.size, m.expected = true, size, expected
	return ocispec.Descriptor{Digest: digest.FromBytes(m.buf.Bytes()), Size: int64(m.buf.Len())}, nil
}

func (m *memBlob) Abort() error {
	m.aborted = true
	return nil
}

// sampleTar returns a tar mixing random and repetitive content.
func sampleTar(t testing.TB) []byte {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 3<<20)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	text := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 50000)
	return buildTar(t, dir("d"), file("d/random", string(random)), file("d/text", text), file("empty", ""))
}

func TestWrite(t *testing.T) {
	tarData := sampleTar(t)
	wantDiffID := digest.FromBytes(tarData)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			blob := &memBlob{}
			l, err := Write(context.Background(), blob, c, func(w io.Writer) error {
				_, err := w.Write(tarData)
				return err
			})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			stored := blob.buf.Bytes()
			sum := sha256.Sum256(stored)
			wantDigest := digest.NewDigestFromBytes(digest.SHA256, sum[:])
			if l.Desc.Digest != wantDigest || blob.expected != wantDigest {
				t.Errorf("digest = %s (committed with %s), want %s", l.Desc.Digest, blob.expected, wantDigest)
			}
			if l.Desc.Size != int64(len(stored)) || blob.size != int64(len(stored)) {
				t.Errorf("size = %d (committed with %d), want %d", l.Desc.Size, blob.size, len(stored))
			}
			if l.Desc.MediaType != c.MediaType() {
				t.Errorf("media type = %s, want %s", l.Desc.MediaType, c.MediaType())
			}
			if l.DiffID != wantDiffID {
				t.Errorf("diffID = %s, want %s", l.DiffID, wantDiffID)
			}
			rc, got, err := DecompressStream(bytes.NewReader(stored))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got != c {
				t.Errorf("DecompressStream detected %s, want %s", got, c)
			}
			plain, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain, tarData) {
				t.Errorf("decompressed blob differs from the tar")
			}
			if blob.aborted {
				t.Errorf("Abort called after a successful Write")
			}
			// Reproducible: the same input gives the same blob.
			again := &memBlob{}
			l2, err := Write(context.Background(), again, c, func(w io.Writer) error {
				_, err := w.Write(tarData)
				return err
			})
			if err != nil || l2.Desc.Digest != l.Desc.Digest {
				t.Errorf("second Write gave %s (%v), want %s", l2.Desc.Digest, err, l.Desc.Digest)
			}
		})
	}
}

func TestWriteAborts(t *testing.T) {
	genErr := errors.New("boom")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		c    Compression
		gen  func(io.Writer) error
		blob *memBlob
		want error
	}{
		{"gen error gzip", context.Background(), Gzip, func(w io.Writer) error {
			_, _ = w.Write([]byte("partial"))
			return genErr
		}, &memBlob{}, genErr},
		{"gen error zstd", context.Background(), Zstd, func(io.Writer) error { return genErr }, &memBlob{}, genErr},
		{"gen error plain", context.Background(), Uncompressed, func(io.Writer) error { return genErr }, &memBlob{}, genErr},
		{"cancelled", cancelled, Gzip, func(w io.Writer) error {
			_, err := w.Write(make([]byte, 1<<20))
			return err
		}, &memBlob{}, context.Canceled},
		{"commit error", context.Background(), Zstd, func(w io.Writer) error {
			_, err := w.Write([]byte("x"))
			return err
		}, &memBlob{failWith: genErr}, genErr},
		{"unwritable compression", context.Background(), Bzip2, func(io.Writer) error { return nil }, &memBlob{}, ErrUnsupportedCompression},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Write(tc.ctx, tc.blob, tc.c, tc.gen)
			if !errors.Is(err, tc.want) {
				t.Errorf("Write error = %v, want %v", err, tc.want)
			}
			if !tc.blob.aborted {
				t.Errorf("Abort not called")
			}
			if tc.blob.committed {
				t.Errorf("Commit succeeded despite the error")
			}
		})
	}
}

func TestChainID(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	ab := digest.FromString(string(a) + " " + string(b))
	abc := digest.FromString(string(ab) + " " + string(c))
	tests := []struct {
		name string
		in   []digest.Digest
		want digest.Digest
	}{
		{"empty", nil, ""},
		{"one", []digest.Digest{a}, a},
		{"two", []digest.Digest{a, b}, ab},
		{"three", []digest.Digest{a, b, c}, abc},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ChainID(tc.in); got != tc.want {
				t.Errorf("ChainID = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	tests := []struct {
		in      string
		want    Compression
		wantErr bool
	}{
		{"gzip", Gzip, false}, {"ZSTD", Zstd, false}, {"none", Uncompressed, false},
		{"uncompressed", Uncompressed, false}, {"xz", 0, true}, {"", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCompression(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseCompression(%q) = %v, %v", tc.in, got, err)
			}
			if err == nil && got.MediaType() == "" {
				t.Errorf("no media type for %v", got)
			}
		})
	}
	if Gzip.MediaType() != ocispec.MediaTypeImageLayerGzip || Zstd.MediaType() != ocispec.MediaTypeImageLayerZstd ||
		Uncompressed.MediaType() != ocispec.MediaTypeImageLayer {
		t.Errorf("media types wrong")
	}
}

// TestDecompressStream checks the mapping onto internal/compression, which
// holds the detailed tests (TestWrite round-trips the writable kinds).
func TestDecompressStream(t *testing.T) {
	for k := compression.None; k <= compression.Xz; k++ {
		if c := Compression(k); c.String() != k.String() {
			t.Errorf("%v maps to %v", k, c)
		}
	}
	if s := Compression(42).String(); s != "Compression(42)" {
		t.Errorf("unknown compression prints as %q", s)
	}
	rc, got, err := DecompressStream(strings.NewReader("BZh9 not really bzip2"))
	if err != nil || got != Bzip2 {
		t.Fatalf("DecompressStream = %v, %v; want bzip2", got, err)
	}
	rc.Close()
	t.Setenv("PATH", t.TempDir())
	_, got, err = DecompressStream(bytes.NewReader([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}))
	if !errors.Is(err, ErrUnsupportedCompression) || got != Uncompressed {
		t.Errorf("xz without the xz program: %v, %v; want ErrUnsupportedCompression", got, err)
	}
}
