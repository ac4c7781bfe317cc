package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/testutil"
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
	return mixedTar(t, 3<<20, 50000)
}

// mixedTar returns a tar of a file of n random bytes and one of lines
// repetitions of a line of text.
func mixedTar(t testing.TB, n, lines int) []byte {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, n)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	text := strings.Repeat("the quick brown fox jumps over the lazy dog\n", lines)
	return buildTar(t, dir("d"), file("d/random", string(random)), file("d/text", text), file("empty", ""))
}

// writeBytes runs Write of data into a fresh memBlob and returns the blob.
func writeBytes(t *testing.T, data []byte, c Compression, opts ...WriteOption) (*memBlob, Layer) {
	t.Helper()
	blob := &memBlob{}
	l, err := Write(context.Background(), blob, c, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, opts...)
	if err != nil {
		t.Fatalf("Write %s: %v", c, err)
	}
	return blob, l
}

// decompress returns the content of a stored blob.
func decompress(t *testing.T, stored []byte) []byte {
	t.Helper()
	rc, _, err := DecompressStream(bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	plain, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func TestWrite(t *testing.T) {
	tarData := sampleTar(t)
	wantDiffID := digest.FromBytes(tarData)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			blob, l := writeBytes(t, tarData, c)
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
			if l.DiffID != wantDiffID || l.Size != int64(len(tarData)) {
				t.Errorf("diffID = %s, size %d; want %s, %d", l.DiffID, l.Size, wantDiffID, len(tarData))
			}
			rc, got, err := DecompressStream(bytes.NewReader(stored))
			if err != nil || got != c {
				t.Fatalf("DecompressStream detected %s (%v), want %s", got, err, c)
			}
			rc.Close()
			if !bytes.Equal(decompress(t, stored), tarData) {
				t.Errorf("decompressed blob differs from the tar")
			}
			if blob.aborted {
				t.Errorf("Abort called after a successful Write")
			}
			// Reproducible: the same input gives the same blob.
			if _, l2 := writeBytes(t, tarData, c); l2.Desc.Digest != l.Desc.Digest {
				t.Errorf("second Write gave %s, want %s", l2.Desc.Digest, l.Desc.Digest)
			}
		})
	}
}

func TestWriteLevels(t *testing.T) {
	tarData := sampleTar(t)
	digestOf := func(c Compression, opts ...WriteOption) (digest.Digest, int64) {
		blob, l := writeBytes(t, tarData, c, opts...)
		if !bytes.Equal(decompress(t, blob.buf.Bytes()), tarData) {
			t.Fatalf("%s %v: decompressed blob differs from the tar", c, opts)
		}
		return l.Desc.Digest, l.Desc.Size
	}
	for _, tc := range []struct {
		c              Compression
		def, low, high int
	}{{Gzip, 5, 1, 9}, {Zstd, 3, 1, 19}} {
		t.Run(tc.c.String(), func(t *testing.T) {
			def, _ := digestOf(tc.c)
			if d, _ := digestOf(tc.c, WithLevel(tc.def)); d != def {
				t.Errorf("level %d gives %s, the default %s", tc.def, d, def)
			}
			low, lowSize := digestOf(tc.c, WithLevel(tc.low))
			high, highSize := digestOf(tc.c, WithLevel(tc.high))
			if low == def || high == def || highSize >= lowSize {
				t.Errorf("level %d: %s (%d bytes), level %d: %s (%d bytes), default %s", tc.low, low, lowSize, tc.high, high, highSize, def)
			}
		})
	}
	if d, _ := digestOf(Uncompressed, WithLevel(100)); d != digest.FromBytes(tarData) {
		t.Errorf("Uncompressed with a level: %s", d)
	}
	for _, tc := range []struct {
		c     Compression
		level int
	}{{Gzip, -1}, {Gzip, 10}, {Zstd, 0}, {Zstd, 23}} {
		blob := &memBlob{}
		_, err := Write(context.Background(), blob, tc.c, func(io.Writer) error { return nil }, WithLevel(tc.level))
		if err == nil || CheckLevel(tc.c, tc.level) == nil || !blob.aborted {
			t.Errorf("%s level %d: Write error %v, aborted %v", tc.c, tc.level, err, blob.aborted)
		}
	}
}

// TestWriteReproducible checks that a layer spanning several blocks of
// both compressors gives the same blob on any number of cores, that the
// zstd and gzip programs decompress it, and that an empty stream is a
// valid one.
func TestWriteReproducible(t *testing.T) {
	tarData := mixedTar(t, 9<<20, 250000) // 9 MiB random, 11 MiB text: 3 zstd frames
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			var want digest.Digest
			var stored []byte
			for _, procs := range []int{1, 2, 5} {
				prev := runtime.GOMAXPROCS(procs)
				blob, l := writeBytes(t, tarData, c)
				runtime.GOMAXPROCS(prev)
				if want == "" {
					want, stored = l.Desc.Digest, blob.buf.Bytes()
				} else if l.Desc.Digest != want {
					t.Errorf("GOMAXPROCS=%d: %s, want %s", procs, l.Desc.Digest, want)
				}
			}
			if !bytes.Equal(decompress(t, stored), tarData) {
				t.Fatal("decompressed blob differs from the tar")
			}
			tool := map[Compression]string{Gzip: "gzip", Zstd: "zstd"}[c]
			cmd := exec.Command(testutil.RequireTool(t, tool), "-dc")
			cmd.Stdin = bytes.NewReader(stored)
			if out, err := cmd.Output(); err != nil || !bytes.Equal(out, tarData) {
				t.Errorf("%s -dc: %v, %d bytes, want the %d of the tar", tool, err, len(out), len(tarData))
			}
			empty, _ := writeBytes(t, nil, c)
			if plain := decompress(t, empty.buf.Bytes()); len(plain) != 0 {
				t.Errorf("empty stream decompresses to %d bytes", len(plain))
			}
		})
	}
}

// TestWriteGzipHeader checks that a gzip layer's header carries nothing
// that varies: no file name, comment or extra field, a zero mtime (RFC
// 1952: none recorded), and the same OS byte (255, unknown) as Go's gzip.
func TestWriteGzipHeader(t *testing.T) {
	for _, level := range []int{0, 1, 5, 9} {
		blob, _ := writeBytes(t, sampleTar(t), Gzip, WithLevel(level))
		h := blob.buf.Bytes()[:10]
		if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
			t.Fatalf("level %d: not a deflate gzip stream: % x", level, h)
		}
		if flags := h[3]; flags != 0 {
			t.Errorf("level %d: header flags %#x, want 0 (no name, comment or extra field)", level, flags)
		}
		if mtime := h[4:8]; !bytes.Equal(mtime, []byte{0, 0, 0, 0}) {
			t.Errorf("level %d: header mtime % x, want 0", level, mtime)
		}
		if h[9] != 255 {
			t.Errorf("level %d: header OS %d, want 255", level, h[9])
		}
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
