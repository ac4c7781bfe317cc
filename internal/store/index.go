package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/atomicfile"
)

// Index is a read-only view of the store's table of images, tags and
// layers, as it was when View read it. Changes go through the Store's
// operations (PutImage, Tag, Remove, …), each an atomic update of
// index.json under index.lock; a view never changes after it is taken.
type Index struct {
	images map[digest.Digest]*Image
	tags   map[string]digest.Digest
	layers map[digest.Digest]*LayerInfo
}

// indexFile is index.json on disk. Its keys are the format's contract:
// change them only with indexVersion.
type indexFile struct {
	// Version of the on-disk format.
	Version int `json:"version"`
	// Images by image ID (the config digest).
	Images map[digest.Digest]*Image `json:"images"`
	// Tags maps a normalized reference (docker.io/library/busybox:latest) to an image ID.
	Tags map[string]digest.Digest `json:"tags"`
	// Layers maps a diffID to what is known of that layer.
	Layers map[digest.Digest]*LayerInfo `json:"layers"`
}

// Image is one stored image.
type Image struct {
	// ID is the digest of the image config.
	ID digest.Digest `json:"id"`
	// Manifest describes the image manifest blob.
	Manifest ocispec.Descriptor `json:"manifest"`
	// Created is when the image entered this store.
	Created time.Time `json:"created"`
	// LastTagTime is when a tag was last added to it.
	LastTagTime time.Time `json:"lastTagTime,omitempty"`
	// RepoDigests are name@manifest-digest references it was pulled or pushed as.
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Parent is the image this one was built from, when builder built it.
	Parent digest.Digest `json:"parent,omitempty"`
}

// LayerInfo records the stored forms of one layer, so an export or push
// reuses a compressed blob instead of compressing again.
type LayerInfo struct {
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// Size is the uncompressed size in bytes, 0 when unknown.
	Size int64 `json:"size,omitempty"`
	// Blobs are the stored blobs (compressed or not) whose content is this layer.
	Blobs []ocispec.Descriptor `json:"blobs"`
}

const indexVersion = 1

func newIndex() *Index {
	return &Index{images: map[digest.Digest]*Image{}, tags: map[string]digest.Digest{}, layers: map[digest.Digest]*LayerInfo{}}
}

// View returns a snapshot of the index. Reads need no lock: the file is
// only ever replaced by rename.
func (s *Store) View() (*Index, error) {
	data, err := os.ReadFile(s.path("index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return newIndex(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading index: %w", err)
	}
	idx, err := decodeIndex(data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", s.path("index.json"), err)
	}
	return idx, nil
}

func decodeIndex(data []byte) (*Index, error) {
	var f indexFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Version != indexVersion {
		return nil, fmt.Errorf("index format %d is not supported (want %d)", f.Version, indexVersion)
	}
	idx := newIndex()
	// A null or missing table decodes as nil; keep the empty maps then.
	if f.Images != nil {
		idx.images = f.Images
	}
	if f.Tags != nil {
		idx.tags = f.Tags
	}
	if f.Layers != nil {
		idx.layers = f.Layers
	}
	return idx, nil
}

func (idx *Index) encode() ([]byte, error) {
	return json.MarshalIndent(indexFile{Version: indexVersion, Images: idx.images, Tags: idx.tags, Layers: idx.layers}, "", " ")
}

// update applies fn to a fresh copy of the index under an exclusive
// inter-process lock and writes the result atomically. If fn returns an
// error nothing is written.
func (s *Store) update(fn func(*Index) error) error {
	return s.updateLocked("index.json", func(idx *Index) ([]byte, error) {
		if err := fn(idx); err != nil {
			return nil, err
		}
		data, err := idx.encode()
		if err != nil {
			return nil, fmt.Errorf("encoding index: %w", err)
		}
		return data, nil
	})
}

// updateLocked is the frame of every update of a file guarded by
// index.lock (index.json, containers.json): holding the lock exclusively,
// it passes a fresh copy of the index to fn and atomically replaces the
// file name (under the root) with the content fn returns. If fn returns an
// error nothing is written.
func (s *Store) updateLocked(name string, fn func(*Index) ([]byte, error)) error {
	lk, err := lockExclusive(s.path("index.lock"))
	if err != nil {
		return err
	}
	defer lk.Unlock()
	idx, err := s.View()
	if err != nil {
		return err
	}
	data, err := fn(idx)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path(name), data, 0o600)
}

// clone returns a copy of img that shares nothing mutable with the index.
func (img *Image) clone() Image {
	c := *img
	c.RepoDigests = slices.Clone(img.RepoDigests)
	return c
}

// Images returns every image, sorted by ID.
func (idx *Index) Images() []Image {
	out := make([]Image, 0, len(idx.images))
	for _, img := range idx.images {
		out = append(out, img.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Image returns the image with the full ID id.
func (idx *Index) Image(id digest.Digest) (Image, bool) {
	img := idx.images[id]
	if img == nil {
		return Image{}, false
	}
	return img.clone(), true
}

// Tags returns a copy of the tag table: normalized reference → image ID.
func (idx *Index) Tags() map[string]digest.Digest { return maps.Clone(idx.tags) }

// TagsOf returns the normalized tags that point at id, sorted.
func (idx *Index) TagsOf(id digest.Digest) []string {
	var out []string
	for t, d := range idx.tags {
		if d == id {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// Layer returns what is known of the layer diffID: its uncompressed size
// and its stored blobs.
func (idx *Index) Layer(diffID digest.Digest) (LayerInfo, bool) {
	li := idx.layers[diffID]
	if li == nil {
		return LayerInfo{}, false
	}
	c := *li
	c.Blobs = slices.Clone(li.Blobs)
	return c, true
}

// LayerSize returns the uncompressed size of the layer diffID if known, else
// the size of blob, its stored form.
func (idx *Index) LayerSize(diffID digest.Digest, blob ocispec.Descriptor) int64 {
	if li := idx.layers[diffID]; li != nil && li.Size > 0 {
		return li.Size
	}
	return blob.Size
}

// Resolve finds the image a user's reference names: a full or short image ID
// (sha256:… or hex prefix, unambiguous), a tag, or name@digest. Like docker,
// a name is tried as a reference before as an ID prefix.
func (idx *Index) Resolve(ref string) (Image, error) {
	img, err := idx.resolve(ref)
	if err != nil {
		return Image{}, err
	}
	return img.clone(), nil
}

// resolve is Resolve returning the index's own record, for updates.
func (idx *Index) resolve(ref string) (*Image, error) {
	if strings.HasPrefix(ref, "sha256:") {
		return idx.byIDPrefix(strings.TrimPrefix(ref, "sha256:"), ref)
	}
	if named, err := NormalizeRef(ref); err == nil {
		if i := strings.Index(named, "@"); i >= 0 {
			repo, dg := named[:i], digest.Digest(named[i+1:])
			for _, img := range idx.images {
				if img.Manifest.Digest == dg || img.ID == dg || slices.Contains(img.RepoDigests, repo+"@"+dg.String()) {
					return img, nil
				}
			}
		} else if id, ok := idx.tags[named]; ok {
			if img := idx.images[id]; img != nil {
				return img, nil
			}
		}
	}
	if isHex(ref) {
		return idx.byIDPrefix(ref, ref)
	}
	return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
}

func (idx *Index) byIDPrefix(prefix, ref string) (*Image, error) {
	if prefix == "" || !isHex(prefix) {
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
	}
	switch found, n := uniquePrefix(idx.images, prefix, digest.Digest.Encoded); n {
	case 0:
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
	case 1:
		return found, nil
	}
	return nil, fmt.Errorf("image %q: %w: matches several images", ref, ErrAmbiguous)
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
