package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/filecopy"
	"github.com/builder-project/builder/layer"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// bindMount serves RUN --mount=type=bind. A read-only mount of the context
// binds the context path itself. A mount from another stage or image, or a
// read-write one, gets a private copy of the source, so that the source
// is never changed and writes are discarded with the step, as in BuildKit.
func (mp *mountPlan) bindMount(ctx context.Context, bd *build, spec *executor.Spec) (func(), error) {
	m := mp.m
	var within func(fn func(root string) error) error
	switch {
	case mp.stage != nil, mp.image != nil:
		var lowers []string
		var err error
		if mp.stage != nil {
			from := bd.result(mp.stage)
			lowers, err = bd.b.st.Snapshots().View(ctx, from.layers)
		} else {
			lowers, err = bd.b.st.Snapshots().View(ctx, mp.image.layers)
		}
		if err != nil {
			return nil, err
		}
		within = func(fn func(string) error) error {
			return bd.exec.WithRootfs([]executor.RootfsMount{{Lowers: lowers}}, func(roots []string) error { return fn(roots[0]) })
		}
	case m.ReadOnly:
		spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: mp.hostPath, Destination: m.Target, Options: []string{"rbind", "ro"}})
		return nil, nil
	default:
		within = func(fn func(string) error) error { return fn(bd.opts.ContextDir) }
	}
	dir, release, err := bd.b.st.TempDir("mount-")
	if err != nil {
		return nil, err
	}
	target := filepath.Join(dir, "src")
	if err := within(func(root string) error { return copySource(root, m.Source, target) }); err != nil {
		release()
		return nil, err
	}
	spec.Mounts = append(spec.Mounts, executor.Mount{Type: "bind", Source: target, Destination: m.Target, Options: []string{"rbind", rwOption(m.ReadOnly)}})
	return func() { release() }, nil
}

// copySource copies source, resolved inside root, to target.
func copySource(root, source, target string) error {
	p, err := securejoin.SecureJoin(root, source)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("mount source %q: %w", source, err)
	}
	if !fi.IsDir() {
		return filecopy.File(target, p, fi.Mode().Perm())
	}
	return copyTree(p, target)
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
