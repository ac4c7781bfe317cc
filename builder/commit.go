package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/platform"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CommitOptions configure Commit.
type CommitOptions struct {
	// Container names the container.
	Container string
	// Ref tags the new image; empty leaves it dangling.
	Ref string
	// Author and Message go in the config (author) and the history entry
	// (author, comment).
	Author, Message string
	// Changes are docker --change instructions applied to the container's
	// config (see ImportOptions.Changes).
	Changes []string
	// NoPause leaves a running container running while its upperdir is
	// read (commit --pause=false); by default it is frozen meanwhile, so
	// the layer is a consistent snapshot.
	NoPause bool
	// Squash collapses the container's changes and the layers its image
	// added to its own base image (the image it was built FROM, when the
	// store knows it; otherwise every layer) into one layer.
	Squash bool
}

// emptyLayer is the diffID of a layer tar without entries.
var emptyLayer = digest.FromBytes(make([]byte, 1024))

// Commit turns a container's changes into a new image, as docker commit
// does: the upperdir becomes one new layer on top of the image's layers
// (layer.Diff turns overlay whiteouts and opaque directories into the
// layer's), the container's config (with Changes) the image's, and the
// history gains an entry with the command, author and message. The image's
// Parent is the container's image. A running container is frozen while
// its upperdir is read, and the mount points its runtime made are left
// out, so /etc/hosts, /etc/resolv.conf and volume targets are never
// committed unless a user wrote them (init-layer rule).
//
// The layer is stored once, as a blob: the container keeps using its
// upperdir, so it cannot become the layer's snapshot, which is unpacked
// from the blob when a container or build first uses the new image.
func (b *Builder) Commit(ctx context.Context, opts CommitOptions) (digest.Digest, error) {
	c, err := b.loadContainer(opts.Container)
	if err != nil {
		return "", err
	}
	img, err := b.containerImage(ctx, c)
	if err != nil {
		return "", err
	}
	base := img.config
	base.Config = c.spec.Config
	ic, err := newImageCommit(&base, opts.Ref, opts.Author, opts.Changes)
	if err != nil {
		return "", err
	}
	ic.parent = c.rec.Image
	lease, err := b.st.Lease()
	if err != nil {
		return "", err
	}
	defer lease.Release()
	layers, l, err := b.commitLayers(ctx, c, img, opts)
	if err != nil {
		return "", fmt.Errorf("committing %s: %w", c.name(), err)
	}
	ic.cfg.History = emptyHistoryAbove(ic.cfg.History, len(layers))
	return b.finishCommit(ctx, ic, layers, l, ocispec.History{Author: opts.Author, CreatedBy: strings.Join(c.command(), " "), Comment: opts.Message})
}

// imageCommit is what Commit and CommitRootfs share: the new image's
// config, tags and parent.
type imageCommit struct {
	cfg    Config
	tags   []string
	parent digest.Digest
}

// newImageCommit starts the commit of an image tagged ref (none when
// empty) whose config is a copy of base (nil: an empty one for this
// platform) with author and docker --change instructions applied.
func newImageCommit(base *Config, ref, author string, changes []string) (*imageCommit, error) {
	ic := &imageCommit{}
	if ref != "" {
		tags, err := normalizeTags([]string{ref})
		if err != nil {
			return nil, err
		}
		ic.tags = tags
	}
	if base != nil {
		if err := deepCopy(&ic.cfg, base); err != nil {
			return nil, err
		}
	} else {
		ic.cfg.Platform = platform.Host()
	}
	ic.cfg.Author = author
	return ic, applyChanges(&ic.cfg, changes)
}

// finishCommit records the image of ic: layers, and l on top unless nil,
// with the history entry h dated now.
func (b *Builder) finishCommit(ctx context.Context, ic *imageCommit, layers []store.Layer, l *store.Layer, h ocispec.History) (digest.Digest, error) {
	now := time.Now().UTC()
	ic.cfg.Created, h.Created, h.EmptyLayer = &now, &now, l == nil
	ic.cfg.History = append(ic.cfg.History, h)
	if l != nil {
		layers = append(slices.Clone(layers), *l)
	}
	id, _, err := b.commitImage(ctx, ic.cfg, layers, ic.tags, ic.parent, true)
	return id, err
}

// storedLayer returns l as the store records it, or nil when it is empty.
func storedLayer(l layer.Layer) *store.Layer {
	if l.DiffID == emptyLayer {
		return nil
	}
	return &store.Layer{DiffID: l.DiffID, Blob: l.Desc, Size: l.Size}
}

// commitLayers returns the layers a commit of c keeps from its image and
// the new layer on top (nil when nothing changed).
func (b *Builder) commitLayers(ctx context.Context, c *container, img *stored, opts CommitOptions) ([]store.Layer, *store.Layer, error) {
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return nil, nil, err
	}
	var (
		base []store.Layer
		l    *store.Layer
	)
	pause := mustPause
	if opts.NoPause {
		pause = noPause
	}
	err = b.whileFrozen(c, pause, func(stubs map[string]bool) error {
		base, l, err = b.upperLayer(ctx, c, a, img, stubs, opts.Squash)
		return err
	})
	return base, l, err
}

// upperLayer writes the layer of the upperdir of a, c's snapshot, without
// stubs (squashed with the layers img added to its base with squash), and
// returns the layers it goes on.
func (b *Builder) upperLayer(ctx context.Context, c *container, a *store.Active, img *stored, stubs map[string]bool, squash bool) ([]store.Layer, *store.Layer, error) {
	upper := func(w io.Writer) error {
		return filterLayer(w, stubs, func(w io.Writer) error {
			return layer.Diff(ctx, a.Upper, layer.DiffOptions{Lowers: a.Lowers}, w)
		})
	}
	base := img.layers
	var gen func(io.Writer) error = upper
	if squash {
		n := b.squashBase(ctx, img.rec.ID, img.layers)
		base = slices.Clone(img.layers[:n])
		gen = func(w io.Writer) error {
			return b.squashLayer(ctx, c.spec.Runtime, base, img.layers[n:], upper, nil, w)
		}
	} else if entries, err := os.ReadDir(a.Upper); err != nil || len(entries) == 0 {
		return base, nil, err
	}
	l, err := b.writeLayer(ctx, gen)
	if err != nil {
		return nil, nil, err
	}
	return base, storedLayer(l), nil
}

// emptyHistoryAbove marks the history entries of the layers above the
// first n as empty: their layers were squashed into a new one.
func emptyHistoryAbove(history []ocispec.History, n int) []ocispec.History {
	out := append([]ocispec.History(nil), history...)
	for i := range out {
		if out[i].EmptyLayer {
			continue
		}
		if n > 0 {
			n--
			continue
		}
		out[i].EmptyLayer = true
	}
	return out
}

// CommitRootfsOptions configure CommitRootfs.
type CommitRootfsOptions struct {
	// Dir is the root filesystem to commit, a plain directory.
	Dir string
	// Base names the image Dir was made from; empty means scratch.
	Base string
	// Ref, Author, Message and Changes are as in CommitOptions.
	Ref, Author, Message string
	Changes              []string
}

// CommitRootfs commits a plain directory as an image: the layer is what
// turns Base's root filesystem into Dir (layer.DiffDirs against a
// read-only view of Base's snapshots), on top of Base's layers.
func (b *Builder) CommitRootfs(ctx context.Context, opts CommitRootfsOptions) (digest.Digest, error) {
	if fi, err := os.Stat(opts.Dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("committing %s: not a directory", opts.Dir)
	}
	var (
		baseCfg *Config // nil: scratch
		layers  []store.Layer
		parent  digest.Digest
	)
	if opts.Base != "" {
		img, err := b.resolve(ctx, opts.Base)
		if err != nil {
			return "", err
		}
		baseCfg, layers, parent = &img.config, img.layers, img.rec.ID
	}
	ic, err := newImageCommit(baseCfg, opts.Ref, opts.Author, opts.Changes)
	if err != nil {
		return "", err
	}
	ic.parent = parent
	lease, err := b.st.Lease()
	if err != nil {
		return "", err
	}
	defer lease.Release()
	lowers, err := b.st.Snapshots().View(ctx, layers)
	if err != nil {
		return "", err
	}
	ex, err := b.executor("")
	if err != nil {
		return "", err
	}
	var l layer.Layer
	err = ex.WithRootfs([]executor.RootfsMount{{Lowers: lowers}}, func(roots []string) error {
		l, err = b.writeLayer(ctx, func(w io.Writer) error {
			return layer.DiffDirs(ctx, roots[0], opts.Dir, layer.DiffOptions{}, w)
		})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("committing %s: %w", opts.Dir, err)
	}
	return b.finishCommit(ctx, ic, layers, storedLayer(l), ocispec.History{Author: opts.Author, CreatedBy: "builder commit --rootfs " + opts.Dir, Comment: opts.Message})
}
