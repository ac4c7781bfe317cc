package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/ioctx"
	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/platform"
	"github.com/builder-project/builder/internal/store"
)

// PullOptions configure Pull.
type PullOptions struct {
	// Platform is the platform picked from a multi-platform image; nil is
	// the host's (linux/GOARCH, with arm64's variant v8). A single-platform
	// image is pulled whatever its platform.
	Platform *ocispec.Platform
	// AllTags pulls every tag of the repository; the reference must then
	// name neither tag nor digest.
	AllTags bool
}

// Pulled is one image brought into the store. Pull records it itself
// (store.PutImage with the normalized tag when the reference had one, and
// store.SetRepoDigests with repo@digest), so the caller only reports it.
type Pulled struct {
	// Ref is the normalized reference pulled: docker.io/library/app:1 or
	// docker.io/library/app@sha256:….
	Ref string
	// ID is the image ID, the digest of its config.
	ID digest.Digest
	// Manifest describes the platform manifest stored, with its platform
	// when it came from an index.
	Manifest ocispec.Descriptor
	// RepoDigest is repo@digest of what the reference resolved to: the
	// index's digest for a multi-platform image, as docker records it.
	RepoDigest string
	// Layers are the image's layers, base first, as stored: the blobs as
	// pulled, with their diffIDs and uncompressed sizes.
	Layers []store.Layer
	// Fresh is false when everything was already in the store ("Image is
	// up to date").
	Fresh bool
}

// Pull brings the image ref names into st and records it, with its
// tag when ref has one: "app" pulls docker.io/library/app:latest. An index
// resolves to opts.Platform. Only the blobs st lacks are fetched, Jobs at a
// time; each is checked against its size and digest, and each layer against
// its diffID from the config, in the pass that streams it into a store
// ingest, and committed as soon as it is complete, so that pulling again
// after a failure fetches only the rest. Blobs are stored as pulled: the
// manifest, the index when there is one, the config and the compressed
// layers keep their digests. The image recorded is the platform manifest's,
// as docker records it; the index blob is stored beside it, though
// store.Collect, which keeps an image's manifest and what that references,
// does not keep the index. Progress goes to Options.Progress.
func (c *Client) Pull(ctx context.Context, st *store.Store, ref string, opts PullOptions) ([]Pulled, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	refs := []imageRef{r}
	if opts.AllTags {
		if refs, err = c.allTags(ctx, ref); err != nil {
			return nil, fmt.Errorf("pulling %s: %w", ref, err)
		}
	}
	want := hostPlatform()
	if opts.Platform != nil {
		want = *opts.Platform
	}
	lease, err := st.Lease()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer lease.Release()
	var out []Pulled
	for _, r := range refs {
		p, err := c.pullOne(ctx, st, r, want)
		if err != nil {
			return out, fmt.Errorf("pulling %s: %w", r, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// allTags returns a reference to each tag of the repository name.
func (c *Client) allTags(ctx context.Context, name string) ([]imageRef, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, err
	}
	if !reference.IsNameOnly(named) {
		return nil, fmt.Errorf("a tag or digest cannot be used with all tags")
	}
	tags, err := c.ListTags(ctx, name)
	if err != nil {
		return nil, err
	}
	r, _ := parseRepo(name)
	refs := make([]imageRef, len(tags))
	for i, t := range tags {
		refs[i] = imageRef{domain: r.domain, path: r.path, tag: t}
	}
	return refs, nil
}

// pulling is the state of one image's pull.
type pulling struct {
	st  *store.Store
	src []endpoint
	// small are the manifest and index bytes, committed last.
	small map[digest.Digest][]byte
	fresh bool
}

// pullOne pulls the image r names, resolving an index to want.
func (c *Client) pullOne(ctx context.Context, st *store.Store, r imageRef, want ocispec.Platform) (Pulled, error) {
	em := c.progress
	em.status("Pulling from " + r.path)
	eps, err := c.endpoints(r, true)
	if err != nil {
		return Pulled{}, err
	}
	data, top, src, err := c.fetchManifest(ctx, eps, r)
	if err != nil {
		return Pulled{}, err
	}
	pl := &pulling{st: st, src: src, small: map[digest.Digest][]byte{top.Digest: data}}
	mdesc := top
	if mediatype.IsIndex(top.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return Pulled{}, fmt.Errorf("decoding index %s: %w", top.Digest, err)
		}
		if mdesc, err = platform.Pick(idx, want); err != nil {
			return Pulled{}, err
		}
		child, got, _, err := c.fetchManifest(ctx, src, r.withDigest(mdesc.Digest))
		if err != nil {
			return Pulled{}, err
		}
		if got.Size != mdesc.Size {
			return Pulled{}, fmt.Errorf("fetching manifest %s: %w: %d bytes, the index says %d", mdesc.Digest, store.ErrInvalidDigest, got.Size, mdesc.Size)
		}
		if mdesc.MediaType == "" {
			mdesc.MediaType = got.MediaType
		}
		pl.small[mdesc.Digest] = child
		data = child
	}
	if err := checkManifestType(mdesc.MediaType); err != nil {
		return Pulled{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Pulled{}, fmt.Errorf("decoding manifest %s: %w", mdesc.Digest, err)
	}
	if !mediatype.IsConfig(m.Config.MediaType) {
		return Pulled{}, fmt.Errorf("manifest %s is not a container image: its config is %q", mdesc.Digest, m.Config.MediaType)
	}
	if err := c.pullBlob(ctx, pl, m.Config); err != nil {
		return Pulled{}, err
	}
	var cfg ocispec.Image
	if err := st.ReadJSON(ctx, m.Config.Digest, &cfg); err != nil {
		return Pulled{}, fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return Pulled{}, fmt.Errorf("image %s: the manifest has %d layers, the config %d diffIDs", m.Config.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	layers, err := c.pullLayers(ctx, pl, m.Layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return Pulled{}, err
	}
	for d, b := range pl.small {
		if err := commitBytes(ctx, pl, d, b); err != nil {
			return Pulled{}, err
		}
	}

	id := m.Config.Digest
	var tags []string
	if r.digest == "" {
		tags = []string{r.String()}
	}
	if err := st.PutImage(ctx, store.NewImage{ID: id, Manifest: mdesc, Layers: layers}, tags); err != nil {
		return Pulled{}, fmt.Errorf("recording image %s: %w", id, err)
	}
	repoDigest := r.repo() + "@" + top.Digest.String()
	if err := st.SetRepoDigests(id, repoDigest); err != nil {
		return Pulled{}, fmt.Errorf("recording image %s: %w", id, err)
	}
	em.status("Digest: " + top.Digest.String())
	if pl.fresh {
		em.status("Status: Downloaded newer image for " + r.familiar())
	} else {
		em.status("Status: Image is up to date for " + r.familiar())
	}
	return Pulled{Ref: r.String(), ID: id, Manifest: mdesc, RepoDigest: repoDigest, Layers: layers, Fresh: pl.fresh}, nil
}

// pullBlob brings the small blob desc (a config) into the store unless it
// is there, verified.
func (c *Client) pullBlob(ctx context.Context, pl *pulling, desc ocispec.Descriptor) error {
	if _, ok := pl.st.Has(desc.Digest); ok {
		return nil
	}
	if desc.Size > maxManifestSize {
		return fmt.Errorf("fetching blob %s: %d bytes is too large", desc.Digest, desc.Size)
	}
	rc, err := c.openBlob(ctx, pl.src, desc)
	if err != nil {
		return fmt.Errorf("fetching blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	if err := ingest(ctx, pl.st, desc, rc); err != nil {
		return fmt.Errorf("fetching blob %s: %w", desc.Digest, err)
	}
	pl.fresh = true
	return nil
}

// commitBytes stores data as the blob d unless the store has it.
func commitBytes(ctx context.Context, pl *pulling, d digest.Digest, data []byte) error {
	if _, ok := pl.st.Has(d); ok {
		return nil
	}
	if err := ingest(ctx, pl.st, ocispec.Descriptor{Digest: d, Size: int64(len(data))}, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("storing manifest %s: %w", d, err)
	}
	pl.fresh = true
	return nil
}

// ingest copies r into a store ingest and commits it if it has desc's size
// and digest; otherwise nothing becomes visible.
func ingest(ctx context.Context, st *store.Store, desc ocispec.Descriptor, r io.Reader) error {
	w, err := st.Ingest(ctx)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := io.Copy(w, ioctx.Reader(ctx, io.LimitReader(r, desc.Size+1))); err != nil {
		return err
	}
	_, err = w.Commit(ctx, desc.Size, desc.Digest)
	return err
}
