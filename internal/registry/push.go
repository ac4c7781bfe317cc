package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/output"
)

// PushOptions configure Push.
type PushOptions struct {
	// MountFrom are repositories (docker.io/library/base, host:5000/x) that
	// may already hold some of the image's blobs. Those on the destination's
	// registry are asked first, and a blob one of them holds is mounted
	// across repositories instead of uploaded; the others are ignored.
	MountFrom []string
}

// Push uploads the image whose manifest or index desc is in p (the store,
// or any output.Provider) to ref, and returns the descriptor pushed. Every
// blob is looked for first (HEAD) and skipped when the repository has it,
// mounted from a MountFrom repository when one has it, and otherwise
// uploaded, Jobs at a time, in chunks when the registry asks for them. The
// layers go first, then the config, then the manifest; for an index, each
// of its manifests (all must be in p) is pushed by digest before the index
// is put at ref. Blobs are read through p, which verifies them, and
// streamed; nothing is recompressed or re-serialized, so the manifest
// digest in the registry is desc's. Progress goes to Options.Progress.
func (c *Client) Push(ctx context.Context, p output.Provider, desc ocispec.Descriptor, ref string, opts PushOptions) (ocispec.Descriptor, error) {
	r, err := parseRef(ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	desc, err = c.push(ctx, p, desc, r, opts)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	return desc, nil
}

// push is Push for a parsed reference.
func (c *Client) push(ctx context.Context, p output.Provider, desc ocispec.Descriptor, r imageRef, opts PushOptions) (ocispec.Descriptor, error) {
	ep, err := c.origin(r)
	if err != nil {
		return desc, err
	}
	bp := &blobPusher{ep: ep}
	scopes := []string{ep.repo.Scope(transport.PushScope)}
	for _, m := range opts.MountFrom {
		fr, err := parseRepo(m)
		if err != nil {
			return desc, err
		}
		if fr.domain != r.domain || fr.path == r.path {
			continue
		}
		f, err := c.origin(fr)
		if err != nil {
			return desc, err
		}
		bp.from = append(bp.from, f)
		scopes = append(scopes, pullScope(f))
	}
	if bp.hc, err = c.client(ctx, ep, scopes...); err != nil {
		return desc, err
	}
	c.progress.status("The push refers to repository [" + r.repo() + "]")
	data, err := readManifest(ctx, p, desc)
	if err != nil {
		return desc, err
	}
	if desc.MediaType == "" {
		desc.MediaType = mediatype.Sniff(data)
	}
	if err := c.pushTree(ctx, p, bp, desc, data, 0); err != nil {
		return desc, unauthorized(err, ep.host())
	}
	if err := putManifest(ctx, bp.hc, ep.ref(r), desc, data); err != nil {
		return desc, unauthorized(err, ep.host())
	}
	c.progress.status(fmt.Sprintf("%s: digest: %s size: %d", r.identifier(), desc.Digest, desc.Size))
	return desc, nil
}

// pushTree pushes what the manifest or index desc (whose bytes are data)
// references: for a manifest its blobs, for an index each manifest in it,
// by digest, with what it references.
func (c *Client) pushTree(ctx context.Context, p output.Provider, bp *blobPusher, desc ocispec.Descriptor, data []byte, depth int) error {
	if mediatype.IsIndex(desc.MediaType) {
		if depth > 2 {
			return fmt.Errorf("index %s: indexes nested too deep", desc.Digest)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("decoding index %s: %w", desc.Digest, err)
		}
		for _, m := range idx.Manifests {
			child, err := readManifest(ctx, p, m)
			if err != nil {
				return fmt.Errorf("index %s: %w", desc.Digest, err)
			}
			if err := c.pushTree(ctx, p, bp, m, child, depth+1); err != nil {
				return err
			}
			if err := putManifest(ctx, bp.hc, bp.ep.repo.Digest(m.Digest.String()), m, child); err != nil {
				return err
			}
		}
		return nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("decoding manifest %s: %w", desc.Digest, err)
	}
	return c.pushBlobs(ctx, p, bp, m)
}

// pushBlobs pushes a manifest's layers, Jobs at a time, then its config.
func (c *Client) pushBlobs(ctx context.Context, p output.Provider, bp *blobPusher, m ocispec.Manifest) error {
	em := c.progress
	var layers []ocispec.Descriptor
	seen := map[digest.Digest]bool{m.Config.Digest: true}
	for _, l := range m.Layers {
		if !seen[l.Digest] && !isNondistributable(l.MediaType) {
			seen[l.Digest] = true
			layers = append(layers, l)
			em.layer(l.Digest, "Preparing")
		}
	}
	for _, l := range layers[min(c.opts.Jobs, len(layers)):] {
		em.layer(l.Digest, "Waiting")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Jobs)
	for _, l := range layers {
		g.Go(func() error {
			status, err := bp.push(gctx, l, opener(gctx, p, l), em)
			if err != nil {
				return fmt.Errorf("pushing layer %s: %w", l.Digest, err)
			}
			em.layer(l.Digest, status)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if _, err := bp.push(ctx, m.Config, opener(ctx, p, m.Config), nil); err != nil {
		return fmt.Errorf("pushing config %s: %w", m.Config.Digest, err)
	}
	return nil
}

// opener returns a function opening desc in p, checking its size.
func opener(ctx context.Context, p output.Provider, desc ocispec.Descriptor) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		rc, size, err := p.Open(ctx, desc.Digest)
		if err != nil {
			return nil, err
		}
		if size != desc.Size {
			rc.Close()
			return nil, fmt.Errorf("blob %s has %d bytes, its descriptor says %d", desc.Digest, size, desc.Size)
		}
		return rc, nil
	}
}

// readManifest reads the manifest or index desc from p, whole: its size
// is checked here and its digest by p.
func readManifest(ctx context.Context, p output.Provider, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxManifestSize {
		return nil, fmt.Errorf("manifest %s: %d bytes is too large", desc.Digest, desc.Size)
	}
	rc, err := opener(ctx, p, desc)()
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	if int64(len(data)) != desc.Size {
		return nil, fmt.Errorf("reading manifest %s: %d bytes, want %d", desc.Digest, len(data), desc.Size)
	}
	return data, nil
}

// PushManifest puts the manifest or index data, described by desc, at ref
// (a tag, or desc's digest): the bytes go as they are, so the registry
// stores desc.Digest. Whatever it references must be in the repository
// already.
func (c *Client) PushManifest(ctx context.Context, ref string, desc ocispec.Descriptor, data []byte) error {
	r, err := parseRef(ref)
	if err != nil {
		return fmt.Errorf("pushing manifest: %w", err)
	}
	if got := digest.FromBytes(data); got != desc.Digest || int64(len(data)) != desc.Size {
		return fmt.Errorf("pushing manifest %s to %s: the bytes given are %s, %d bytes", desc.Digest, r, got, len(data))
	}
	if r.digest != "" && r.digest != desc.Digest {
		return fmt.Errorf("pushing manifest %s to %s: the reference names another digest", desc.Digest, r)
	}
	ep, err := c.origin(r)
	if err != nil {
		return fmt.Errorf("pushing manifest %s to %s: %w", desc.Digest, r, err)
	}
	hc, err := c.client(ctx, ep, ep.repo.Scope(transport.PushScope))
	if err != nil {
		return fmt.Errorf("pushing manifest %s to %s: %w", desc.Digest, r, err)
	}
	if desc.MediaType == "" {
		desc.MediaType = mediatype.Sniff(data)
	}
	if err := putManifest(ctx, hc, ep.ref(r), desc, data); err != nil {
		return fmt.Errorf("pushing manifest to %s: %w", r, unauthorized(err, ep.host()))
	}
	return nil
}

// putManifest puts data, described by desc, at ref.
func putManifest(ctx context.Context, hc *http.Client, ref name.Reference, desc ocispec.Descriptor, data []byte) error {
	if err := remote.Put(ref, rawManifest{data: data, mediaType: desc.MediaType}, remoteOptions(ctx, hc)...); err != nil {
		return fmt.Errorf("putting manifest %s: %w", desc.Digest, err)
	}
	return nil
}

// rawManifest is a manifest's bytes with their media type: what remote.Put
// sends as they are.
type rawManifest struct {
	data      []byte
	mediaType string
}

// RawManifest implements remote.Taggable.
func (m rawManifest) RawManifest() ([]byte, error) { return m.data, nil }

// MediaType gives remote.Put the Content-Type to send.
func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mediaType), nil }
