package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"github.com/builder-project/builder/internal/testutil"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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

func TestDecompressStream(t *testing.T) {
	plain := []byte(strings.Repeat("layer data ", 1000))
	external := func(tool string, args ...string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			cmd := exec.Command(testutil.RequireTool(t, tool), args...)
			cmd.Stdin = bytes.NewReader(plain)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	viaWrite := func(c Compression) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			blob := &memBlob{}
			if _, err := Write(context.Background(), blob, c, func(w io.Writer) error {
				_, err := w.Write(plain)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return blob.buf.Bytes()
		}
	}
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		want Compression
		out  []byte
	}{
		{"plain", func(*testing.T) []byte { return plain }, Uncompressed, plain},
		{"empty", func(*testing.T) []byte { return nil }, Uncompressed, []byte{}},
		{"short", func(*testing.T) []byte { return []byte{0x1f} }, Uncompressed, []byte{0x1f}},
		{"gzip", viaWrite(Gzip), Gzip, plain},
		{"zstd", viaWrite(Zstd), Zstd, plain},
		{"bzip2", external("bzip2", "-c"), Bzip2, plain},
		{"xz", external("xz", "-c"), Xz, plain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, got, err := DecompressStream(bytes.NewReader(tc.data(t)))
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if got != tc.want || !bytes.Equal(out, tc.out) {
				t.Errorf("DecompressStream = %v, %d bytes; want %v, %d bytes", got, len(out), tc.want, len(tc.out))
			}
		})
	}
	t.Run("corrupt xz", func(t *testing.T) {
		testutil.RequireTool(t, "xz")
		rc, _, err := DecompressStream(bytes.NewReader(append(append([]byte{}, magicXz...), "garbage"...)))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); err == nil {
			t.Errorf("reading a corrupt xz stream succeeded")
		}
	})
}
