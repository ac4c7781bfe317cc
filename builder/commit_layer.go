package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// filterLayer writes to w the layer tar gen writes, without the entries
// of stubs (paths relative to the root): the mount points a runtime made
// in a running container's upperdir. A stub directory is left out only
// when nothing below it is kept, so a user's file next to /etc/hosts
// keeps its /etc. With no stubs, gen writes to w directly.
func filterLayer(w io.Writer, stubs map[string]bool, gen func(io.Writer) error) error {
	if len(stubs) == 0 {
		return gen(w)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen(pw)) }()
	err := excludeEntries(pr, w, stubs)
	pr.CloseWithError(err) // stops gen if the filter failed
	return err
}

// excludeEntries copies the tar r to w without the entries named in
// exclude, holding back excluded directories until an entry below them is
// kept. The tar must list a directory before what it holds, as
// layer.Diff does.
func excludeEntries(r io.Reader, w io.Writer, exclude map[string]bool) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	var pending []*tar.Header // excluded directories, outermost first
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("filtering layer: %w", err)
		}
		name := tarName(hdr)
		for len(pending) > 0 && !strings.HasPrefix(name, tarName(pending[len(pending)-1])+"/") {
			pending = pending[:len(pending)-1]
		}
		if exclude[name] {
			if hdr.Typeflag == tar.TypeDir {
				pending = append(pending, hdr)
			}
			continue
		}
		for _, p := range append(pending, hdr) {
			if err := tw.WriteHeader(p); err != nil {
				return fmt.Errorf("filtering layer: %w", err)
			}
		}
		pending = nil
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("filtering layer: %w", err)
		}
	}
	return tw.Close()
}

func tarName(hdr *tar.Header) string { return strings.Trim(path.Clean("/"+hdr.Name), "/") }

// squashBase returns how many of layers, the layers of the image id,
// belong to the image it was built from (its Parent), when the store
// knows that image and its layers are a prefix of layers; else 0.
func (b *Builder) squashBase(ctx context.Context, id digest.Digest, layers []store.Layer) int {
	idx, err := b.st.View()
	if err != nil {
		return 0
	}
	rec, ok := idx.Image(id)
	if !ok {
		return 0
	}
	return b.parentLayers(ctx, idx, rec.Parent, layers)
}

// parentLayers returns how many of layers are those of the image parent:
// all of parent's layers if they are a prefix of layers, else 0.
func (b *Builder) parentLayers(ctx context.Context, idx *store.Index, parent digest.Digest, layers []store.Layer) int {
	rec, ok := idx.Image(parent)
	if parent == "" || !ok {
		return 0
	}
	p, err := b.readImage(ctx, idx, rec)
	if err != nil || len(p.layers) > len(layers) {
		return 0
	}
	for i, l := range p.layers {
		if l.DiffID != layers[i].DiffID {
			return 0
		}
	}
	return len(p.layers)
}

// squashLayer writes to w the one layer that the layers top, then the
// layer extra writes (if not nil), make together on top of base. It
// replays them, in order, onto an overlay of base's snapshots with a
// fresh upperdir (mounted in a private mount namespace), and diffs that
// upperdir: a file that a later layer deletes is simply gone, and the
// kernel turns deletions of base's files into whiteouts. The cost follows
// the size of the squashed layers, not of base.
func (b *Builder) squashLayer(ctx context.Context, runtime string, base, top []store.Layer, extra func(io.Writer) error, epoch *time.Time, w io.Writer) error {
	lowers, err := b.st.Snapshots().View(ctx, base)
	if err != nil {
		return err
	}
	dir, release, err := b.st.TempDir("squash-")
	if err != nil {
		return err
	}
	defer release()
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	ex, err := b.executor(runtime)
	if err != nil {
		return err
	}
	err = ex.WithRootfs([]executor.RootfsMount{{Lowers: lowers, Upper: upper, Work: work}}, func(roots []string) error {
		for _, l := range top {
			if err := b.applyBlob(ctx, roots[0], l); err != nil {
				return err
			}
		}
		if extra == nil {
			return nil
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(extra(pw)) }()
		_, err := layer.Apply(ctx, roots[0], pr, layer.ApplyOptions{})
		pr.CloseWithError(err)
		return err
	})
	if err != nil {
		return fmt.Errorf("squashing layers: %w", err)
	}
	return layer.Diff(ctx, upper, layer.DiffOptions{Lowers: lowers, SourceDateEpoch: epoch}, w)
}

// applyBlob applies the stored layer l onto the directory root.
func (b *Builder) applyBlob(ctx context.Context, root string, l store.Layer) error {
	rc, _, err := b.st.Open(ctx, l.Blob.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	plain, _, err := layer.DecompressStream(rc)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", l.DiffID, err)
	}
	defer plain.Close()
	if _, err := layer.Apply(ctx, root, plain, layer.ApplyOptions{}); err != nil {
		return fmt.Errorf("applying layer %s: %w", l.DiffID, err)
	}
	return nil
}

// squash collapses the layers above those of parent (every layer when
// parent is unknown) into one, for build --squash: their history entries
// become empty and one entry is added for the new layer, dated as the
// last one so that a cached rebuild gives the same image. epoch, when set,
// clamps the new layer's mtimes (SOURCE_DATE_EPOCH).
func (b *Builder) squash(ctx context.Context, runtime string, parent digest.Digest, layers []store.Layer, history []ocispec.History, epoch *time.Time) ([]store.Layer, []ocispec.History, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, nil, err
	}
	n := b.parentLayers(ctx, idx, parent, layers)
	if len(layers)-n < 2 {
		return layers, history, nil
	}
	l, err := b.writeLayer(ctx, func(w io.Writer) error {
		return b.squashLayer(ctx, runtime, layers[:n], layers[n:], nil, epoch, w)
	})
	if err != nil {
		return nil, nil, err
	}
	out := slices.Clone(layers[:n])
	sl := storedLayer(l)
	h := ocispec.History{CreatedBy: "builder build --squash", Comment: fmt.Sprintf("merged %d layers", len(layers)-n), EmptyLayer: sl == nil}
	if len(history) > 0 {
		h.Created = history[len(history)-1].Created
	}
	if sl != nil {
		out = append(out, *sl)
	}
	return out, append(emptyHistoryAbove(history, n), h), nil
}
