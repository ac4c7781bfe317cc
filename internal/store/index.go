package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/atomicfile"
)

// Index is the store's table of images, tags and layers. It is read whole
// and replaced whole, atomically, under index.lock.
type Index struct {
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
	return &Index{Version: indexVersion, Images: map[digest.Digest]*Image{}, Tags: map[string]digest.Digest{}, Layers: map[digest.Digest]*LayerInfo{}}
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
	idx := newIndex()
	if err := json.Unmarshal(data, idx); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", s.path("index.json"), err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("index format %d is not supported (want %d)", idx.Version, indexVersion)
	}
	return idx, nil
}

// Update applies fn to the index under an exclusive inter-process lock and
// writes the result atomically. If fn returns an error nothing is written.
func (s *Store) Update(fn func(*Index) error) error {
	lk, err := lockExclusive(s.path("index.lock"))
	if err != nil {
		return err
	}
	defer lk.Unlock()
	idx, err := s.View()
	if err != nil {
		return err
	}
	if err := fn(idx); err != nil {
		return err
	}
	data, err := json.MarshalIndent(idx, "", " ")
	if err != nil {
		return fmt.Errorf("encoding index: %w", err)
	}
	return atomicfile.WriteFile(s.path("index.json"), data, 0o600)
}

// AddLayer records a stored blob as a form of the layer diffID.
func (idx *Index) AddLayer(diffID digest.Digest, size int64, blob ocispec.Descriptor) {
	li := idx.Layers[diffID]
	if li == nil {
		li = &LayerInfo{DiffID: diffID}
		idx.Layers[diffID] = li
	}
	if size > 0 {
		li.Size = size
	}
	for _, b := range li.Blobs {
		if b.Digest == blob.Digest {
			return
		}
	}
	li.Blobs = append(li.Blobs, ocispec.Descriptor{MediaType: blob.MediaType, Digest: blob.Digest, Size: blob.Size})
}

// TagsOf returns the normalized tags that point at id, sorted.
func (idx *Index) TagsOf(id digest.Digest) []string {
	var out []string
	for t, d := range idx.Tags {
		if d == id {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// Resolve finds the image a user's reference names: a full or short image ID
// (sha256:… or hex prefix, unambiguous), a tag, or name@digest. Like docker,
// a name is tried as a reference before as an ID prefix.
func (idx *Index) Resolve(ref string) (*Image, error) {
	if strings.HasPrefix(ref, "sha256:") {
		return idx.byIDPrefix(strings.TrimPrefix(ref, "sha256:"), ref)
	}
	if named, err := NormalizeRef(ref); err == nil {
		if i := strings.Index(named, "@"); i >= 0 {
			repo, dg := named[:i], digest.Digest(named[i+1:])
			for _, img := range idx.Images {
				if img.Manifest.Digest == dg || img.ID == dg {
					return img, nil
				}
				for _, rd := range img.RepoDigests {
					if rd == repo+"@"+dg.String() {
						return img, nil
					}
				}
			}
		} else if id, ok := idx.Tags[named]; ok {
			if img := idx.Images[id]; img != nil {
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
	var found *Image
	for id, img := range idx.Images {
		if strings.HasPrefix(id.Encoded(), prefix) {
			if found != nil {
				return nil, fmt.Errorf("image %q: %w: matches several images", ref, ErrAmbiguous)
			}
			found = img
		}
	}
	if found == nil {
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
	}
	return found, nil
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
