// Package executortest provides Fake, an in-process executor.Executor for
// tests of code that runs build steps: it needs no root, no namespaces and
// no overlayfs, so scheduling, caching, image config and error reporting can
// be tested by any user on any machine.
//
// Fake does not isolate anything and runs no program. A RUN step's process
// is played by a Handler, by default Script, a tiny interpreter of the shell
// commands tests use ("echo hi > /f", "sleep 0.2", "exit 3"), which writes
// into the step's upperdir as if it were the root filesystem. What lands in
// the upperdir is the step's change, exactly as with a real overlay.
package executortest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/filecopy"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// Handler plays the process of one RUN step. root is the directory that
// stands for the container's root filesystem (the upperdir): everything
// the handler writes below it becomes the step's layer. Returning an
// *executor.ExitError reports a non-zero exit status.
type Handler func(ctx context.Context, s executor.Spec, root string, stdio executor.IO) error

// Fake is an in-process executor.Executor. The zero value runs every RUN
// step through Script. It is safe for concurrent use.
type Fake struct {
	// Handler plays each RUN step; nil means Script.
	Handler Handler

	mu   sync.Mutex
	runs []executor.Spec
}

var _ executor.Executor = (*Fake)(nil)

// Run implements executor.Executor: it records s and calls the Handler with
// the upperdir as the root.
func (f *Fake) Run(ctx context.Context, s executor.Spec, stdio executor.IO) error {
	f.mu.Lock()
	f.runs = append(f.runs, s)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Upper == "" {
		return fmt.Errorf("fake executor: spec has no upperdir")
	}
	if s.Cwd != "" {
		if err := mkdirIn(s.Upper, s.Cwd); err != nil {
			return err
		}
	}
	h := f.Handler
	if h == nil {
		h = Script
	}
	return h(ctx, s, s.Upper, stdio)
}

// Runs returns the specs Run was called with, in call order.
func (f *Fake) Runs() []executor.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]executor.Spec(nil), f.runs...)
}

// WithRootfs implements executor.Executor without mounting anything. A
// writable root (Upper set) is its upperdir itself, so file work lands in
// the step's change; the lowers are not visible through it. A read-only
// root (Upper empty) is a temporary copy of the lowers merged bottom to
// top, removed afterwards.
func (f *Fake) WithRootfs(mounts []executor.RootfsMount, fn func(roots []string) error) error {
	roots := make([]string, len(mounts))
	for i, m := range mounts {
		if m.Upper != "" {
			roots[i] = m.Upper
			continue
		}
		dir, err := os.MkdirTemp("", "fake-rootfs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		for j := len(m.Lowers) - 1; j >= 0; j-- {
			if err := mergeInto(dir, m.Lowers[j]); err != nil {
				return fmt.Errorf("fake executor: merging %s: %w", m.Lowers[j], err)
			}
		}
		roots[i] = dir
	}
	return fn(roots)
}

// mergeInto copies the tree src over dst, as one more overlay layer would
// show it: a 0:0 character device (an overlay whiteout) deletes the path.
func mergeInto(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeCharDevice != 0:
			return os.RemoveAll(target)
		case d.IsDir():
			return os.MkdirAll(target, fi.Mode().Perm()|0o700)
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.RemoveAll(target)
			return os.Symlink(link, target)
		case fi.Mode().IsRegular():
			os.RemoveAll(target)
			return filecopy.File(target, p, fi.Mode().Perm())
		}
		return nil
	})
}

// mkdirIn creates the container path p (and its parents) inside root.
func mkdirIn(root, p string) error {
	host, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return err
	}
	return os.MkdirAll(host, 0o755)
}
