package output

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// pending is an image resolved from the archive whose blobs are not
// committed yet.
type pending struct {
	Loaded
	files    []*archiveFile // blobs to commit: config and layers first, manifest last
	manifest []byte         // a manifest to write that the archive did not hold
}

// resolve works out the archive's images once it has been read whole, then
// commits their blobs.
func (l *loader) resolve() ([]Loaded, error) {
	var (
		imgs []*pending
		err  error
	)
	switch {
	case l.files["manifest.json"] != nil:
		imgs, err = l.resolveDocker()
	case l.files[ocispec.ImageIndexFile] != nil:
		imgs, err = l.resolveOCI()
	default:
		err = errors.New("archive has neither manifest.json nor index.json: not a docker-archive or OCI image layout")
	}
	if err != nil {
		return nil, err
	}
	imgs = mergeSame(imgs)
	for _, p := range imgs {
		for _, f := range p.files {
			if err := l.commit(f); err != nil {
				return nil, err
			}
		}
		if p.manifest != nil {
			if _, err := l.st.WriteBlob(l.ctx, p.Manifest.MediaType, p.manifest); err != nil {
				return nil, fmt.Errorf("storing manifest of %s: %w", p.Config, err)
			}
		}
	}
	out := make([]Loaded, len(imgs))
	for i, p := range imgs {
		out[i] = p.Loaded
	}
	return out, nil
}

// mergeSame joins entries for the same manifest, keeping every name once.
func mergeSame(imgs []*pending) []*pending {
	var out []*pending
	byDigest := map[digest.Digest]*pending{}
	for _, p := range imgs {
		if q := byDigest[p.Manifest.Digest]; q != nil {
			for _, n := range p.Names {
				if !contains(q.Names, n) {
					q.Names = append(q.Names, n)
				}
			}
			continue
		}
		byDigest[p.Manifest.Digest] = p
		out = append(out, p)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// commit makes one archive file a store blob, whole.
func (l *loader) commit(f *archiveFile) error {
	if f.committed {
		return nil
	}
	if f.w != nil {
		if _, err := f.w.Commit(l.ctx, f.size, f.digest); err != nil {
			return fmt.Errorf("committing %s: %w", f.name, err)
		}
	} else if _, err := l.st.WriteBlob(l.ctx, "", f.data); err != nil {
		return fmt.Errorf("committing %s: %w", f.name, err)
	}
	f.committed = true
	return nil
}

// blob returns the archive file that holds d in an OCI layout, checking its
// size, or nil when the archive does not have it.
func (l *loader) blob(d ocispec.Descriptor) (*archiveFile, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("invalid digest %q: %w", d.Digest, err)
	}
	f := l.lookup(blobName(d))
	if f == nil {
		return nil, nil
	}
	if f.digest != d.Digest {
		return nil, fmt.Errorf("archive file %s: %w: its content hashes to %s", f.name, store.ErrInvalidDigest, f.digest)
	}
	if d.Size > 0 && f.size != d.Size {
		return nil, fmt.Errorf("archive file %s is %d bytes, its descriptor says %d: %w", f.name, f.size, d.Size, store.ErrInvalidDigest)
	}
	return f, nil
}

// smallBlob returns the bytes of a manifest, index or config: from the
// archive, or from the store when the archive leaves it out.
func (l *loader) smallBlob(d ocispec.Descriptor) ([]byte, *archiveFile, error) {
	f, err := l.blob(d)
	if err != nil {
		return nil, nil, err
	}
	if f != nil {
		data, err := f.contents()
		return data, f, err
	}
	if _, ok := l.st.Has(d.Digest); ok {
		data, err := l.st.ReadBlob(l.ctx, d.Digest)
		return data, nil, err
	}
	return nil, nil, fmt.Errorf("blob %s is missing from the archive", d.Digest)
}

// imageConfig decodes a config and checks it lists one diffID per layer.
func imageConfig(data []byte, name string, layers int) (ocispec.Image, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("decoding config %s: %w", name, err)
	}
	if n := len(cfg.RootFS.DiffIDs); n != layers {
		return cfg, fmt.Errorf("config %s lists %d diffIDs for %d layers", name, n, layers)
	}
	return cfg, nil
}

// checkLayer verifies a layer file against the diffID its config lists,
// and that it is a tar layer.Apply would unpack (layer.Validate, run while
// the file was read).
func checkLayer(f *archiveFile, want digest.Digest) error {
	if f.diffErr != nil {
		return fmt.Errorf("decompressing layer %s: %w", f.name, f.diffErr)
	}
	if f.diffID != want {
		return fmt.Errorf("layer %s: %w: its uncompressed content has diffID %s, the config lists %s", f.name, store.ErrInvalidDigest, f.diffID, want)
	}
	if f.layerErr != nil {
		return fmt.Errorf("layer %s: %w", f.name, f.layerErr)
	}
	return nil
}

// normalizeNames normalizes references, reporting the first bad one.
func normalizeNames(refs []string) ([]string, error) {
	var out []string
	for _, r := range refs {
		n, err := store.NormalizeRef(r)
		if err != nil {
			return nil, err
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// annotatedName returns the name an index.json entry gives its image:
// io.containerd.image.name, else ref.name when it is more than a bare tag.
func annotatedName(ann map[string]string) string {
	if n, err := store.NormalizeRef(ann[annotationContainerdName]); err == nil {
		return n
	}
	ref := ann[annotationRefName]
	if !strings.ContainsAny(ref, "/:@") {
		return "" // a bare tag such as "1" or "latest" names no repository
	}
	if n, err := store.NormalizeRef(ref); err == nil {
		return n
	}
	return ""
}
