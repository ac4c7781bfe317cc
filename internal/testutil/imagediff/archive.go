package imagediff

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is an image read from an archive: its config and its layers, bottom
// first.
type Image struct {
	// ConfigDigest is the image ID.
	ConfigDigest digest.Digest
	// Config is the config blob.
	Config []byte
	// Layers are the image's layers in the manifest's order.
	Layers []Layer
}

// Layer is one layer blob and its listing.
type Layer struct {
	// Digest is the blob's digest as the manifest names it.
	Digest digest.Digest
	// Entries are the tar entries in their order.
	Entries []Entry
}

// ReadOCIArchive reads the first image of an OCI image layout archive, as
// `builder save --format oci` writes it.
func ReadOCIArchive(path string) (*Image, error) {
	blobs, err := readTar(path)
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := unmarshal(blobs, "index.json", &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("%s: index.json lists no image", path)
	}
	var mf ocispec.Manifest
	if err := unmarshal(blobs, blobPath(idx.Manifests[0].Digest), &mf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img := &Image{ConfigDigest: mf.Config.Digest, Config: blobs[blobPath(mf.Config.Digest)]}
	if img.Config == nil {
		return nil, fmt.Errorf("%s: config %s missing", path, mf.Config.Digest)
	}
	for _, l := range mf.Layers {
		data, ok := blobs[blobPath(l.Digest)]
		if !ok {
			return nil, fmt.Errorf("%s: layer %s missing", path, l.Digest)
		}
		entries, err := ReadLayer(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", path, l.Digest, err)
		}
		img.Layers = append(img.Layers, Layer{Digest: l.Digest, Entries: entries})
	}
	return img, nil
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

func unmarshal(files map[string][]byte, name string, v any) error {
	data, ok := files[name]
	if !ok {
		return fmt.Errorf("%s missing", name)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %s: %w", name, err)
	}
	return nil
}

// readTar returns the regular files of the tar at path by name.
func readTar(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s in %s: %w", hdr.Name, path, err)
		}
		files[strings.TrimPrefix(hdr.Name, "./")] = data
	}
}
