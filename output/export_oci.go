package output

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// OCIArchive returns an Exporter that streams an OCI image-layout tar of its
// images to w: oci-layout, index.json and blobs/sha256/<hex>, the same files
// OCILayout writes into a directory. index.json has one entry per name (or
// one unnamed entry), annotated with io.containerd.image.name (the full
// name) and org.opencontainers.image.ref.name (the tag only, which is what
// skopeo and umoci look up). An image whose manifest is an index is written
// whole. Blobs are streamed from the Provider and verified as they are read;
// the same images always make the same bytes.
func OCIArchive(w io.Writer) Exporter {
	return ociArchive{w: w}
}

type ociArchive struct{ w io.Writer }

// Export implements Exporter.
func (a ociArchive) Export(ctx context.Context, p Provider, imgs ...Image) error {
	pl, err := planLayout(ctx, p, imgs)
	if err != nil {
		return err
	}
	idxData, err := json.Marshal(pl.index())
	if err != nil {
		return fmt.Errorf("encoding index.json: %w", err)
	}
	tw := newTarWriter(a.w)
	if err := writeLayoutFiles(tw, idxData); err != nil {
		return err
	}
	return tw.finish(ctx, p, pl.blobs)
}

// layoutVersionFile is the content of an oci-layout file.
func layoutVersionFile() ([]byte, error) {
	data, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", ocispec.ImageLayoutFile, err)
	}
	return data, nil
}

// writeLayoutFiles writes oci-layout and index.json.
func writeLayoutFiles(tw *tarWriter, idxData []byte) error {
	layout, err := layoutVersionFile()
	if err != nil {
		return err
	}
	if err := tw.file(ocispec.ImageLayoutFile, layout); err != nil {
		return err
	}
	return tw.file(ocispec.ImageIndexFile, idxData)
}
