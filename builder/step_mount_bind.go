package builder

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/copier"
	"github.com/builder-project/builder/internal/filecopy"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// bindSource is the name of a bind mount's private copy in its directory.
const bindSource = "src"

// bindMount serves RUN --mount=type=bind. The step gets a private copy of
// the source, read-only unless rw, so that the source is never changed and
// writes are discarded with the step, as in BuildKit:
//
//   - from the context, what COPY of the source would read: .dockerignore
//     applies (BuildKit mounts the filtered context it transferred), and
//     files are owned by root, as BuildKit's transfer makes them;
//   - from a stage or an image, the tree as it is there, owners kept.
//
// Special files are recreated in the copy, never opened. The copy costs a
// read and a write of the source, in the store's tmp/, each time the step
// runs (a cache hit runs nothing), where a bind of the context directory
// itself would cost nothing but expose every ignored file.
func (mp *mountPlan) bindMount(ctx context.Context, bd *build, spec *executor.Spec) (func(), error) {
	dir, release, err := bd.b.st.TempDir("mount-")
	if err != nil {
		return nil, err
	}
	if err := mp.copyBindSource(ctx, bd, dir); err != nil {
		release()
		return nil, err
	}
	src := filepath.Join(dir, bindSource)
	spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: src, Destination: mp.m.Target, Options: []string{"rbind", rwOption(mp.m.ReadOnly)}})
	return func() { release() }, nil
}

// copyBindSource copies the mount's source to dir/bindSource.
func (mp *mountPlan) copyBindSource(ctx context.Context, bd *build, dir string) error {
	if mp.stage == nil && mp.image == nil {
		if _, err := copier.Copy(ctx, bd.opts.ContextDir, dir, mp.ctxCopy); err != nil {
			return fmt.Errorf("mount source %q: %w", mp.m.Source, err)
		}
		return nil
	}
	var layers []store.Layer
	if mp.stage != nil {
		layers = bd.result(mp.stage).layers
	} else {
		layers = mp.image.layers
	}
	lowers, err := bd.b.st.Snapshots().View(ctx, layers)
	if err != nil {
		return err
	}
	return bd.exec.WithRootfs([]executor.RootfsMount{{Lowers: lowers}}, func(roots []string) error {
		return copySource(roots[0], mp.m.Source, filepath.Join(dir, bindSource))
	})
}

// copySource copies source, resolved inside root, to target: a directory
// with everything kept (owners, modes, links, special files recreated), a
// regular file with its mode. Any other source is refused, never opened: a
// device node, fifo or socket a stage made means nothing on the host.
func copySource(root, source, target string) error {
	p, err := securejoin.SecureJoin(root, source)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("mount source %q: %w", source, err)
	}
	switch {
	case fi.IsDir():
		return copyTree(p, target)
	case fi.Mode().IsRegular():
		return filecopy.File(target, p, fi.Mode().Perm())
	}
	return fmt.Errorf("mount source %q is a %s: a bind mount from a stage or an image must be a regular file or a directory", source, fileKind(fi.Mode()))
}

// fileKind names the type of a file that is neither regular nor a directory.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "special file"
}

// copyTree copies the directory src to dst with everything kept (owners,
// modes, links), streaming it as a layer through a pipe: layer.DiffDirs
// opens regular files only (device nodes and fifos become tar headers) and
// layer.Apply recreates special files with mknod, so neither opens one. src
// is read on the calling goroutine, which may be the only one that sees its
// mount; dst is a plain host directory written from another goroutine.
func copyTree(src, dst string) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	applied := make(chan error, 1)
	go func() {
		_, err := layer.Apply(context.Background(), dst, pr, layer.ApplyOptions{Format: layer.DirFormat})
		pr.CloseWithError(err)
		applied <- err
	}()
	err := layer.DiffDirs(context.Background(), "", src, layer.DiffOptions{}, pw)
	pw.CloseWithError(err)
	if aerr := <-applied; err == nil {
		err = aerr
	}
	return err
}
