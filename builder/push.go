package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/builder-project/builder/internal/registry"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushOptions configure Push.
type PushOptions struct {
	RegistryOptions
	// CompressionOptions say how layers go up. The zero value pushes
	// compressed layers as they are stored (a pulled image keeps its
	// manifest digest) and compresses uncompressed ones with gzip, as
	// docker does. Each compression happens once: the blob is kept for the
	// next push.
	CompressionOptions
	// AllTags pushes every tag of the repository ref names.
	AllTags bool
	// Progress receives Transfer events; nil discards them.
	Progress func(Event)
}

// PushResult is one image Push uploaded.
type PushResult struct {
	// Ref is the normalized reference pushed to.
	Ref string
	// Digest and Size describe the manifest pushed.
	Digest digest.Digest
	Size   int64
}

// Push uploads the image ref names to its registry, or to dest when given,
// as docker push does: the registry is asked for each blob first and only
// what it lacks goes up, mounted from another repository of the same
// registry when one of them holds it, several at once; the manifest last.
// The pushed reference is recorded in the image's RepoDigests.
func (b *Builder) Push(ctx context.Context, ref, dest string, opts PushOptions) ([]PushResult, error) {
	if err := opts.CompressionOptions.check(); err != nil {
		return nil, err
	}
	targets, err := b.pushTargets(ref, dest, opts.AllTags)
	if err != nil {
		return nil, err
	}
	c, err := opts.client(opts.Progress)
	if err != nil {
		return nil, err
	}
	lease, err := b.st.Lease()
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	var out []PushResult
	for _, t := range targets {
		r, err := b.pushImage(ctx, c, t.image, t.dest, opts.CompressionOptions)
		if err != nil {
			return out, fmt.Errorf("pushing %s: %w", store.FamiliarRef(t.dest), err)
		}
		out = append(out, r)
	}
	return out, nil
}

type pushTarget struct {
	image store.Image
	dest  string
}

// pushTargets returns what Push uploads where: ref's image to dest (or
// ref), or with allTags every tag of ref's repository.
func (b *Builder) pushTargets(ref, dest string, allTags bool) ([]pushTarget, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	if allTags {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return nil, fmt.Errorf("invalid reference %q: %w", ref, err)
		}
		repo := named.Name()
		var out []pushTarget
		for tag, id := range idx.Tags() {
			if n, err := reference.ParseNormalizedNamed(tag); err == nil && n.Name() == repo {
				img, _ := idx.Image(id)
				out = append(out, pushTarget{image: img, dest: tag})
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no tag of %s in the store: %w", repo, ErrNotFound)
		}
		return out, nil
	}
	img, err := idx.Resolve(ref)
	if err != nil {
		return nil, err
	}
	if dest == "" {
		dest = ref
	}
	full, err := store.NormalizeRef(dest)
	if err != nil {
		return nil, err
	}
	return []pushTarget{{image: img, dest: full}}, nil
}

// pushImage uploads one stored image to dest and records the repo digest.
func (b *Builder) pushImage(ctx context.Context, c *registry.Client, img store.Image, dest string, comp CompressionOptions) (PushResult, error) {
	manifest, err := b.pushManifest(ctx, img.Manifest, comp)
	if err != nil {
		return PushResult{}, err
	}
	desc, err := c.Push(ctx, b.st, manifest, dest, registry.PushOptions{MountFrom: b.mountCandidates(img)})
	if err != nil {
		return PushResult{}, err
	}
	named, _ := reference.ParseNormalizedNamed(dest)
	if named != nil {
		// A build pushed but not kept is in no image record to note it in.
		err := b.st.SetRepoDigests(img.ID, named.Name()+"@"+desc.Digest.String())
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return PushResult{}, err
		}
	}
	return PushResult{Ref: dest, Digest: desc.Digest, Size: desc.Size}, nil
}

// pushManifest returns the manifest to push for a stored one: itself when
// its layers are all compressed and no compression is asked for, else the
// manifest of the layers in the compression asked for (gzip by default).
func (b *Builder) pushManifest(ctx context.Context, manifest ocispec.Descriptor, comp CompressionOptions) (ocispec.Descriptor, error) {
	if comp.Compression == "" {
		var mf ocispec.Manifest
		if err := b.st.ReadJSON(ctx, manifest.Digest, &mf); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("reading manifest %s: %w", manifest.Digest, err)
		}
		compressed := true
		for _, l := range mf.Layers {
			if c, known := blobCompression(l.MediaType); !known || c == layer.Uncompressed {
				compressed = false
			}
		}
		if compressed {
			return manifest, nil
		}
		comp.Compression = layer.Gzip.String()
	}
	return b.convert(ctx, manifest, comp)
}

// mountCandidates are the repositories an image's blobs may already be in:
// those it, and the image it was built from, were pulled from or pushed to.
func (b *Builder) mountCandidates(img store.Image) []string {
	repos := map[string]bool{}
	add := func(refs []string) {
		for _, r := range refs {
			if repo, _, ok := strings.Cut(r, "@"); ok {
				repos[repo] = true
			}
		}
	}
	add(img.RepoDigests)
	if idx, err := b.st.View(); err == nil && img.Parent != "" {
		if parent, ok := idx.Image(img.Parent); ok {
			add(parent.RepoDigests)
		}
	}
	out := make([]string, 0, len(repos))
	for r := range repos {
		out = append(out, r)
	}
	return out
}

// pushBuilt pushes a just-built image, which may be in no tag, to refs.
func (b *Builder) pushBuilt(ctx context.Context, img store.Image, refs []string, opts PushOptions) error {
	c, err := opts.client(opts.Progress)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if _, err := b.pushImage(ctx, c, img, ref, opts.CompressionOptions); err != nil {
			return fmt.Errorf("pushing %s: %w", store.FamiliarRef(ref), err)
		}
	}
	return nil
}
