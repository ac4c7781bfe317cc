package builder

import (
	"archive/tar"
	"context"
	"io"
	"testing"

	"github.com/builder-project/builder/layer"
	digest "github.com/opencontainers/go-digest"
)

// layerEntries lists the tar entry names of a stored layer blob.
func layerEntries(t *testing.T, b *Builder, d digest.Digest) []string {
	t.Helper()
	tr := layerTar(t, b, d)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

// layerTar reads the stored layer blob d as a tar stream, closed when the
// test ends.
func layerTar(t *testing.T, b *Builder, d digest.Digest) *tar.Reader {
	t.Helper()
	rc, _, err := b.st.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	return tar.NewReader(plain)
}
