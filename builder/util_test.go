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
	rc, _, err := b.st.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var out []string
	tr := tar.NewReader(plain)
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
