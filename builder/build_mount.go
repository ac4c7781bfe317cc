package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/layer"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// bindMount serves RUN --mount=type=bind. A read-only mount of the context
// binds the context path itself. A mount from another stage or image, or a
// read-write one, gets a private copy of the source, so that the source
// is never changed and writes are discarded with the step, as in BuildKit.
func (bd *build) bindMount(ctx context.Context, res *stageResult, st *dockerfile.Step, i int, m *instructions.Mount) (executor.Mount, func(), error) {
	var src *dockerfile.MountSource
	for j := range st.Mounts {
		if st.Mounts[j].Index == i {
			src = &st.Mounts[j]
		}
	}
	if src == nil || (src.Stage == nil && src.Image == "") {
		p, err := securejoin.SecureJoin(bd.opts.ContextDir, m.Source)
		if err != nil {
			return executor.Mount{}, nil, err
		}
		if _, err := os.Stat(p); err != nil {
			return executor.Mount{}, nil, fmt.Errorf("mount source %q: %w", m.Source, err)
		}
		if m.ReadOnly {
			return executor.Mount{Type: "bind", Source: p, Destination: m.Target, Options: []string{"rbind", "ro"}}, nil, nil
		}
		return bd.privateCopy(m, func(fn func(string) error) error { return fn(bd.opts.ContextDir) })
	}
	var lowers []string
	var err error
	if src.Stage != nil {
		from := bd.result(src.Stage)
		lowers, err = bd.b.lowerDirs(ctx, layerDescs(from.layers), from.diffIDs())
	} else {
		img, rerr := bd.b.resolve(ctx, src.Image)
		if rerr != nil {
			return executor.Mount{}, nil, fmt.Errorf("--mount from=%s: %w", src.Image, rerr)
		}
		lowers, err = bd.b.lowerDirs(ctx, img.manifest.Layers, img.config.RootFS.DiffIDs)
	}
	if err != nil {
		return executor.Mount{}, nil, err
	}
	return bd.privateCopy(m, func(fn func(string) error) error {
		return executor.WithRootfs([]executor.RootfsMount{{Lowers: lowers}}, func(roots []string) error { return fn(roots[0]) })
	})
}

// privateCopy copies m.Source from the root that within provides into a
// temporary directory and binds that copy.
func (bd *build) privateCopy(m *instructions.Mount, within func(func(root string) error) error) (executor.Mount, func(), error) {
	dir, release, err := bd.b.st.TempDir("mount-")
	if err != nil {
		return executor.Mount{}, nil, err
	}
	target := filepath.Join(dir, "src")
	err = within(func(root string) error {
		p, err := securejoin.SecureJoin(root, m.Source)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("mount source %q: %w", m.Source, err)
		}
		if !fi.IsDir() {
			return copyFileTo(p, target, fi)
		}
		return copyTree(p, target)
	})
	if err != nil {
		release()
		return executor.Mount{}, nil, err
	}
	opts := []string{"rbind", "rw"}
	if m.ReadOnly {
		opts = []string{"rbind", "ro"}
	}
	return executor.Mount{Type: "bind", Source: target, Destination: m.Target, Options: opts}, func() { release() }, nil
}

// copyTree copies the directory src to dst with everything kept (owners,
// modes, links), streaming it as a layer through a pipe. src is read on the
// calling goroutine, which may be the only one that sees its mount; dst is
// a plain host directory written from another goroutine.
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

func copyFileTo(src, dst string, fi os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
