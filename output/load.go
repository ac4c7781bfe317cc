package output

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/store"
)

// Loaded is one image read by Load. Its blobs are committed to the store;
// recording it in the index is the caller's job.
type Loaded struct {
	// Manifest describes the image manifest blob (for an index, the
	// manifest picked for the host platform).
	Manifest ocispec.Descriptor
	// Config is the digest of the image config, which is the image ID.
	Config digest.Digest
	// Names are normalized references (docker.io/library/busybox:latest);
	// empty for an image that came without a usable name.
	Names []string
	// Layers are the image's layers, base first.
	Layers []LayerBlob
}

// LayerBlob is one layer of a loaded image.
type LayerBlob struct {
	// DiffID is the digest of the uncompressed layer tar.
	DiffID digest.Digest
	// Blob describes the stored blob, with its media type.
	Blob ocispec.Descriptor
	// Size is the uncompressed size in bytes, 0 when unknown (a layer the
	// store already had and the archive left out).
	Size int64
}

const (
	// smallFile is the size up to which a file is kept in memory instead of
	// an ingest: less than one ingest writer's buffer.
	smallFile = 64 << 10
	// maxJSON bounds the copy kept of a larger file that looks like JSON
	// (a config or manifest, which resolution must parse).
	maxJSON = 8 << 20
	// maxMemory bounds all file contents held in memory at once.
	maxMemory = 512 << 20
)

// Load reads a docker-archive or an OCI image-layout archive from r, plain or
// compressed with gzip, zstd or bzip2 (detected from magic bytes), ingests the
// blobs its images need into st and returns the images.
//
// The kind is told by content: an archive with manifest.json is read as a
// docker-archive (docker 25's, which is also an OCI layout, gets its names
// from manifest.json), one with index.json and oci-layout as an OCI layout.
// Entries may come in any order: every regular file streams into an
// uncommitted ingest as it passes (files under 64 KiB stay in memory
// instead), hashed and, when it is gzip or zstd, decompressed in the same pass
// to learn its diffID, and its content is checked as a layer tar in that
// pass too (layer.Validate): a layer with an entry layer.Apply would refuse
// (a name or hardlink climbing out of the root, a misused whiteout name, a
// hardlink to nothing earlier in the layer) fails the load with an error
// naming the entry and the layer file. Resolution happens at the end of the
// tar:
//
//   - OCI: index.json → manifest, or → nested index → the host platform's
//     manifest. A blob's digest must match its file name and its
//     descriptor's size; a layer's diffID must match the config's. Names come
//     from io.containerd.image.name, else from ref.name when it is more than
//     a bare tag ("busybox:1", "example.com/app"); otherwise the image is
//     returned unnamed.
//   - docker-archive: each layer file's diffID must match the config's
//     rootfs.diff_ids. The manifest is the archive's own when it also holds
//     a matching OCI manifest (docker 25), else a new OCI manifest is written
//     with the layer media types told by content (tar, tar+gzip, tar+zstd).
//     Names are the RepoTags, normalized.
//
// Only after everything checks out are the referenced blobs committed, each
// whole; on error nothing is committed. Load never touches the store's index.
func Load(ctx context.Context, st *store.Store, r io.Reader) ([]Loaded, error) {
	ar, closeFn, err := decompress(r)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	l := &loader{ctx: ctx, st: st, files: map[string]*archiveFile{}, links: map[string]string{}}
	defer l.close()
	if err := l.scan(tar.NewReader(ar)); err != nil {
		return nil, err
	}
	return l.resolve()
}

// decompress detects the archive's compression by its magic bytes.
func decompress(r io.Reader) (io.Reader, func(), error) {
	zr, _, err := compression.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading archive: %w", err)
	}
	return zr, func() { zr.Close() }, nil
}

// layerMediaType is the OCI layer media type for a blob compressed as c.
func layerMediaType(c compression.Kind) string {
	switch c {
	case compression.Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case compression.Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// archiveFile is one regular file seen in the archive.
type archiveFile struct {
	name   string
	size   int64
	digest digest.Digest
	// diffID and usize describe the content once decompressed (the file
	// itself when it is not compressed); diffErr says why they are unknown.
	diffID  digest.Digest
	usize   int64
	diffErr error
	// layerErr says why the decompressed content is not a valid layer
	// tar (layer.Validate); it matters only for a file used as a layer.
	layerErr error
	comp     compression.Kind
	// data holds the content when it is small or looks like JSON.
	data []byte
	// w is the uncommitted ingest of a file too large for data alone.
	w *store.Writer
	// committed is set once the blob is in the store.
	committed bool
}

// loader holds the state of one Load.
type loader struct {
	ctx   context.Context
	st    *store.Store
	files map[string]*archiveFile
	links map[string]string // symlinks and hardlinks: name → target
	mem   int64
	br    *bufio.Reader
	gz    *gzip.Reader
	zd    *zstd.Decoder
}

// close aborts every ingest that was not committed.
func (l *loader) close() {
	for _, f := range l.files {
		if f.w != nil {
			f.w.Abort()
		}
	}
	if l.zd != nil {
		l.zd.Close()
	}
}

// cleanName makes an archive path relative and clean ("./a/../b" → "b").
func cleanName(name string) string {
	return path.Clean("/" + name)[1:]
}

// scan reads the whole tar, ingesting regular files and noting links.
func (l *loader) scan(tr *tar.Reader) error {
	entries := 0
	for {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		entries++
		name := cleanName(hdr.Name)
		if name == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			delete(l.links, name)
			if err := l.readFile(name, hdr.Size, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			l.forget(name)
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target) // relative to the link
			}
			l.links[name] = cleanName(target)
		case tar.TypeLink:
			l.forget(name)
			l.links[name] = cleanName(hdr.Linkname)
		}
	}
	if entries == 0 {
		return errors.New("reading archive: empty or not a tar archive")
	}
	return nil
}

// forget drops an earlier file of the same name: in a tar the last wins.
func (l *loader) forget(name string) {
	if old := l.files[name]; old != nil {
		if old.w != nil {
			old.w.Abort()
		}
		l.mem -= int64(len(old.data))
		delete(l.files, name)
	}
}

// lookup returns the file at name, following links.
func (l *loader) lookup(name string) *archiveFile {
	name = cleanName(name)
	for range 16 {
		if f := l.files[name]; f != nil {
			return f
		}
		target, ok := l.links[name]
		if !ok {
			return nil
		}
		name = target
	}
	return nil
}
