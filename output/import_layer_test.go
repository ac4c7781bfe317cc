package output

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// rawProvider serves fixed bytes for any digest, unverified, so that
// ImportLayer's own checks are what catches a bad blob.
type rawProvider []byte

func (r rawProvider) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	return io.NopCloser(bytes.NewReader(r)), int64(len(r)), nil
}

// checkNothingImported asserts st holds no blob and no ingest.
func checkNothingImported(t *testing.T, st *store.Store, d digest.Digest) {
	t.Helper()
	if _, ok := st.Has(d); ok {
		t.Errorf("blob %s is in the store", d)
	}
	if blobs, err := st.Blobs(); err != nil || len(blobs) != 0 {
		t.Errorf("the store holds %d blobs (%v)", len(blobs), err)
	}
	if entries, err := os.ReadDir(filepath.Join(st.Root(), "ingest")); err != nil || len(entries) != 0 {
		t.Errorf("ingest leftovers %v (%v)", entries, err)
	}
}

func TestImportLayer(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	layers := defaultLayers()
	a := buildImage(t, src, nil, layers, nil)
	dir := filepath.Join(t.TempDir(), "layout")
	exportLayout(t, src, dir, nil, a.Image)
	lay, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("copies", func(t *testing.T) {
		dst := newStore(t)
		for i, desc := range a.layers {
			want := int64(len(layerTar(t, layers[i].files)))
			n, err := ImportLayer(ctx, dst, lay, desc, a.diffIDs[i])
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			if n != want {
				t.Errorf("layer %d: uncompressed size %d, want %d", i, n, want)
			}
			if size, ok := dst.Has(desc.Digest); !ok || size != desc.Size {
				t.Errorf("layer %d: stored %v, %d bytes; want %d", i, ok, size, desc.Size)
			}
			// Present now: the source is not read, the stored blob is checked.
			if n, err := ImportLayer(ctx, dst, rawProvider("unused"), desc, a.diffIDs[i]); err != nil || n != want {
				t.Errorf("layer %d again: %d, %v", i, n, err)
			}
			_, err = ImportLayer(ctx, dst, lay, desc, digest.FromString("wrong"))
			checkErr(t, "a stored blob with another diffID", err, desc.Digest.String(), store.ErrInvalidDigest)
		}
		if entries, err := os.ReadDir(filepath.Join(dst.Root(), "ingest")); err != nil || len(entries) != 0 {
			t.Errorf("ingest leftovers %v (%v)", entries, err)
		}
	})

	gz := a.layers[0]
	blob, err := src.ReadBlob(ctx, gz.Digest)
	if err != nil {
		t.Fatal(err)
	}
	garbage := append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte("not gzip"), 100)...)
	for _, tc := range []struct {
		name   string
		p      Provider
		desc   ocispec.Descriptor
		diffID digest.Digest
		want   string
		is     error
	}{
		{"wrong digest", rawProvider(blob), ocispec.Descriptor{Digest: digest.FromString("other"), Size: gz.Size}, a.diffIDs[0], "hashing to " + gz.Digest.String(), store.ErrInvalidDigest},
		{"wrong size", rawProvider(blob), ocispec.Descriptor{Digest: gz.Digest, Size: gz.Size + 1}, a.diffIDs[0], "want " + strconv.FormatInt(gz.Size+1, 10) + " bytes", store.ErrInvalidDigest},
		{"wrong diffID", rawProvider(blob), gz, digest.FromString("other"), "diffID", store.ErrInvalidDigest},
		{"truncated source", rawProvider(blob[:len(blob)-10]), gz, a.diffIDs[0], "got " + strconv.FormatInt(gz.Size-10, 10) + " bytes", store.ErrInvalidDigest},
		{"longer source", rawProvider(append(append([]byte{}, blob...), 0)), gz, a.diffIDs[0], "got " + strconv.FormatInt(gz.Size+1, 10) + " bytes", store.ErrInvalidDigest},
		{"not decompressible", rawProvider(garbage), ocispec.Descriptor{Digest: digest.FromBytes(garbage), Size: int64(len(garbage))}, a.diffIDs[0], "gzip", nil},
		{"truncated layout file", truncatedLayout(t, dir, gz), gz, a.diffIDs[0], blobName(gz), store.ErrInvalidDigest},
		{"absent from the source", lay, ocispec.Descriptor{Digest: digest.FromString("absent"), Size: 6}, a.diffIDs[0], "not found", store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newStore(t)
			_, err := ImportLayer(ctx, dst, tc.p, tc.desc, tc.diffID)
			checkErr(t, "ImportLayer", err, tc.want, tc.is)
			checkNothingImported(t, dst, tc.desc.Digest)
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		dst := newStore(t)
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := ImportLayer(cancelled, dst, rawProvider(blob), gz, a.diffIDs[0]); !errors.Is(err, context.Canceled) {
			t.Errorf("ImportLayer with a cancelled context: %v", err)
		}
		checkNothingImported(t, dst, gz.Digest)
	})
}

// truncatedLayout copies the layout at dir and cuts the blob desc short in
// the copy, which it returns opened.
func truncatedLayout(t *testing.T, dir string, desc ocispec.Descriptor) *Layout {
	t.Helper()
	cp := extract(t, tarDir(t, dir))
	if err := os.Truncate(filepath.Join(cp, blobName(desc)), desc.Size/2); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLayout(cp)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
