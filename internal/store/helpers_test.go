package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"sort"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newStore opens a store in a fresh temporary directory.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tarEntry is one entry of a test layer: a regular file unless typ is set.
type tarEntry struct {
	name, content string
	typ           byte
}

// writeLayer stores a gzipped layer tar of entries owned by the current
// user (so that unpacking needs no privileges) and returns it.
func writeLayer(t *testing.T, s *Store, entries ...tarEntry) Layer {
	t.Helper()
	raw := layerTar(t, entries...)
	desc, err := s.WriteBlob(context.Background(), ocispec.MediaTypeImageLayerGzip, gzipped(raw, ""))
	if err != nil {
		t.Fatal(err)
	}
	return Layer{DiffID: digest.FromBytes(raw), Blob: desc, Size: int64(len(raw))}
}

// layerTar returns an uncompressed layer tar of entries.
func layerTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.content)), Typeflag: tar.TypeReg,
			Uid: os.Getuid(), Gid: os.Getgid(), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ != 0 {
			hdr.Typeflag, hdr.Mode, hdr.Size = e.typ, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return raw.Bytes()
}

// gzipped compresses data; name goes in the gzip header, so the same data
// gives different blobs.
func gzipped(data []byte, name string) []byte {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Name = name
	zw.Write(data)
	zw.Close()
	return gz.Bytes()
}

// file is a tarEntry of a regular file.
func file(name, content string) tarEntry { return tarEntry{name: name, content: content} }

// testImage is an image written by putImage.
type testImage struct {
	ID       digest.Digest
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []Layer
}

// blobs returns the digests of the image's manifest, config and layers.
func (ti testImage) blobs() []digest.Digest {
	out := []digest.Digest{ti.Manifest.Digest, ti.Config.Digest}
	for _, l := range ti.Layers {
		out = append(out, l.Blob.Digest)
	}
	return out
}

// writeImage stores the config and manifest of an image of layers; author
// makes images with the same layers distinct.
func writeImage(t *testing.T, s *Store, author string, layers ...Layer) testImage {
	t.Helper()
	ctx := context.Background()
	cfg := ocispec.Image{Author: author, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}}
	mf := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		mf.Layers = append(mf.Layers, l.Blob)
	}
	cdesc, err := s.WriteJSON(ctx, ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mf.Config = cdesc
	mdesc, err := s.WriteJSON(ctx, ocispec.MediaTypeImageManifest, mf)
	if err != nil {
		t.Fatal(err)
	}
	return testImage{ID: cdesc.Digest, Manifest: mdesc, Config: cdesc, Layers: layers}
}

// putImage writes an image (see writeImage) and records it with tags.
func putImage(t *testing.T, s *Store, author string, tags []string, layers ...Layer) testImage {
	t.Helper()
	ti := writeImage(t, s, author, layers...)
	if err := s.PutImage(context.Background(), NewImage{ID: ti.ID, Manifest: ti.Manifest, Layers: layers}, tags); err != nil {
		t.Fatal(err)
	}
	return ti
}

// view returns the store's index or fails the test.
func view(t *testing.T, s *Store) *Index {
	t.Helper()
	idx, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// blobSet returns the digests of the stored blobs, sorted.
func blobSet(t *testing.T, s *Store) []digest.Digest {
	t.Helper()
	blobs, err := s.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]digest.Digest, 0, len(blobs))
	for d := range blobs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// sorted returns ds sorted, for comparisons.
func sorted(ds ...digest.Digest) []digest.Digest {
	out := append([]digest.Digest(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// chainOf computes a chain ID by the image-spec definition, independently of
// the store's implementation.
func chainOf(diffIDs ...digest.Digest) digest.Digest {
	chain := diffIDs[0]
	for _, d := range diffIDs[1:] {
		chain = digest.FromString(string(chain) + " " + string(d))
	}
	return chain
}
