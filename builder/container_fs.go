package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/copier"
	"github.com/builder-project/builder/internal/userns"
	"github.com/builder-project/builder/layer"
)

// errRootlessMount refuses Mount in a user namespace of the command's own.
var errRootlessMount = errors.New("mount: rootless, each command has a mount namespace of its own, so the mount would be gone when this command exits; use 'builder copy', or 'builder run' with the tools in the image")

// Mount mounts the merged root filesystem of a container on the host, at
// containers/<id>/merged in the store, and returns that path: host tools
// may edit the container's files there, and a later commit picks the
// edits up. It stays mounted until Unmount or RemoveContainers; mounting a
// mounted container returns the same path. A running container cannot be
// mounted, nor a mounted one started: one upperdir must not be mounted
// twice at once.
//
// A process in a user namespace the builder made for itself (rootless,
// see userns.Enter) cannot mount for others: the mount would go with the
// namespace when the process exits, so Mount refuses.
func (b *Builder) Mount(ctx context.Context, ref string) (string, error) {
	if userns.Current().Entered != "" {
		return "", errRootlessMount
	}
	c, err := b.loadContainer(ref)
	if err != nil {
		return "", err
	}
	merged := c.dirs.Merged
	if isMounted(merged) {
		return merged, nil
	}
	if err := b.checkNotRunning(c, "mount"); err != nil {
		return "", err
	}
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return "", err
	}
	lowers := a.Lowers
	if len(lowers) == 0 {
		empty := filepath.Join(c.dirs.Dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", err
		}
		lowers = []string{empty}
	}
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return "", fmt.Errorf("mounting container %s: %w", ref, err)
	}
	ex, err := b.executor(c.spec.Runtime)
	if err != nil {
		return "", err
	}
	if err := mountHost(ex, merged, executor.RootfsMount{Lowers: lowers, Upper: a.Upper, Work: a.Work}); err != nil {
		return "", fmt.Errorf("mounting container %s: %w", ref, err)
	}
	return merged, nil
}

// Unmount unmounts what Mount mounted; it is a no-op when nothing is.
func (b *Builder) Unmount(ctx context.Context, ref string) error {
	c, err := b.loadContainer(ref)
	if err != nil {
		return err
	}
	return b.unmountHost(c.dirs.Merged)
}

// checkNotRunning fails with ErrConflict when c's process runs.
func (b *Builder) checkNotRunning(c *container, what string) error {
	st, err := b.containerState(c)
	if err != nil {
		return err
	}
	if st.Running() {
		return fmt.Errorf("%w: cannot %s container %s: it is %s", ErrConflict, what, c.name(), st.Status)
	}
	return nil
}

// withRoot calls fn with the merged root filesystem of c, writable: the
// host mount when c is mounted; the root its init sees when c runs (see
// withProcessRoot), so that the process sees the change at once; else an
// overlay mounted in a private mount namespace for the duration of fn
// (see executor.WithRootfs).
func (b *Builder) withRoot(c *container, fn func(root string) error) error {
	if isMounted(c.dirs.Merged) {
		return fn(c.dirs.Merged)
	}
	st, err := b.containerState(c)
	if err != nil {
		return err
	}
	if st.Running() && isOCIRuntime(c.spec.Runtime) {
		return errNeedsBuiltinRuntime
	}
	if st.Running() {
		return b.withProcessRoot(c, st.Pid, fn)
	}
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return err
	}
	ex, err := b.executor(c.spec.Runtime)
	if err != nil {
		return err
	}
	return ex.WithRootfs([]executor.RootfsMount{{Lowers: a.Lowers, Upper: a.Upper, Work: a.Work}}, func(roots []string) error {
		return fn(roots[0])
	})
}

// CopyOptions configure Copy.
type CopyOptions struct {
	// Container names the container.
	Container string
	// Sources are host paths, relative to the working directory or
	// absolute; wildcards as in COPY.
	Sources []string
	// Dest is the destination in the container; a relative one is
	// relative to its working directory. COPY's rules apply (a trailing
	// "/" makes it a directory).
	Dest string
	// Chown and Chmod are COPY's --chown and --chmod.
	Chown, Chmod string
}

// Copy copies host files into a container, with COPY's semantics, as
// buildah copy does. Into a running container it copies through the root
// filesystem its init sees, volumes included, as docker cp does: every
// path resolved inside that root as a chroot would, so that nothing the
// container's process does (a symlink, even a racing one) can lead the copy
// outside it.
func (b *Builder) Copy(ctx context.Context, opts CopyOptions) error {
	c, err := b.loadContainer(opts.Container)
	if err != nil {
		return err
	}
	srcs := make([]string, len(opts.Sources))
	for i, s := range opts.Sources {
		if srcs[i], err = filepath.Abs(s); err != nil {
			return err
		}
		if strings.HasSuffix(s, "/") {
			srcs[i] += "/"
		}
	}
	copts := copier.Options{Sources: srcs, Dest: opts.Dest, Workdir: c.spec.Config.WorkingDir, Chown: opts.Chown, Chmod: opts.Chmod}
	err = b.withRoot(c, func(root string) error {
		_, err := copier.Copy(ctx, "/", root, copts)
		return err
	})
	if err != nil {
		return fmt.Errorf("copying into %s: %w", c.name(), err)
	}
	return nil
}

// exportContainer writes the merged root filesystem of c to w as a tar:
// the container's upperdir over its image's layers, mounted read-only in
// a private mount namespace (so a running or mounted container can be
// exported too).
func (b *Builder) exportContainer(ctx context.Context, w io.Writer, c *container) error {
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return err
	}
	lowers := append([]string{a.Upper}, a.Lowers...)
	if len(lowers) == 1 {
		// A read-only overlay needs two lowers; one alone would be bound
		// as it is, whiteouts and all.
		empty, release, err := b.st.TempDir("export-")
		if err != nil {
			return err
		}
		defer release()
		lowers = append(lowers, empty)
	}
	ex, err := b.executor(c.spec.Runtime)
	if err != nil {
		return err
	}
	err = ex.WithRootfs([]executor.RootfsMount{{Lowers: lowers}}, func(roots []string) error {
		return layer.DiffDirs(ctx, "", roots[0], layer.DiffOptions{}, w)
	})
	if err != nil {
		return fmt.Errorf("exporting container %s: %w", c.name(), err)
	}
	return nil
}

// Change is one line of Diff, as docker diff prints it.
type Change struct {
	// Kind is "A" (added), "C" (changed) or "D" (deleted).
	Kind string `json:"Kind"`
	// Path is absolute in the container.
	Path string `json:"Path"`
}

// Diff lists the changes of a container's filesystem against its image,
// as docker diff does, sorted by path. It reads only the upperdir, so its
// cost follows the changes, not the image. A directory holding changes is
// "C"; the content of a directory that replaced one of the image is "A".
// A running container is frozen while its upperdir is read, and the mount
// points its runtime made are left out.
func (b *Builder) Diff(ctx context.Context, ref string) ([]Change, error) {
	c, err := b.loadContainer(ref)
	if err != nil {
		return nil, err
	}
	a, err := b.st.Snapshots().Get(c.rec.ID)
	if err != nil {
		return nil, err
	}
	var out []Change
	err = b.whileFrozen(c, pauseIfPossible, func(stubs map[string]bool) error {
		changes, err := upperChanges(ctx, a.Upper, a.Lowers)
		out = withoutStubs(changes, stubs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing changes of %s: %w", c.name(), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// upperChanges lists the changes the upperdir upper makes to lowers, in
// walk order.
func upperChanges(ctx context.Context, upper string, lowers []string) ([]Change, error) {
	var out []Change
	opaque := map[string]bool{} // directories that replaced one of the image
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		replaced := opaque[filepath.Dir(rel)]
		below := !replaced && existsBelow(lowers, rel)
		switch {
		case isWhiteout(fi):
			if below {
				out = append(out, Change{Kind: "D", Path: "/" + rel})
			}
			return nil
		case replaced:
			opaque[rel] = fi.IsDir()
			out = append(out, Change{Kind: "A", Path: "/" + rel})
		case below:
			opaque[rel] = fi.IsDir() && isOpaque(p)
			out = append(out, Change{Kind: "C", Path: "/" + rel})
		default:
			opaque[rel] = fi.IsDir() // a new directory: all it holds is new
			out = append(out, Change{Kind: "A", Path: "/" + rel})
		}
		return nil
	})
	return out, err
}

// pauseMode says whether whileFrozen freezes a running container.
type pauseMode int

const (
	noPause pauseMode = iota
	// mustPause fails when the container cannot be frozen.
	mustPause
	// pauseIfPossible reads a container that cannot be frozen (rootless
	// without a cgroup) as it runs.
	pauseIfPossible
)

// whileFrozen calls fn with the mount point stubs in c's upperdir: none
// unless c runs, when the runtime says which they are. With pause, a
// running container is frozen meanwhile (cgroup freezer), so that what fn
// reads of the upperdir is one instant of it, and it is thawed afterwards
// whatever happens.
func (b *Builder) whileFrozen(c *container, pause pauseMode, fn func(stubs map[string]bool) error) (err error) {
	st, err := b.containerState(c)
	if err != nil {
		return err
	}
	if !st.Running() {
		return fn(nil)
	}
	rt := b.runtime(c)
	list, err := rt.Stubs(c.dirs.State)
	if err != nil {
		return fmt.Errorf("reading the mount points of running container %s: %w", c.name(), err)
	}
	stubs := map[string]bool{}
	for _, p := range list {
		stubs[strings.Trim(filepath.Clean("/"+p), "/")] = true
	}
	if pause == noPause || st.Status == executor.StatusPaused {
		return fn(stubs)
	}
	defer func() {
		if terr := rt.Thaw(c.dirs.State); terr != nil && !errors.Is(terr, executor.ErrNotRunning) {
			err = errors.Join(err, fmt.Errorf("resuming container %s: %w", c.name(), terr))
		}
	}()
	switch err := rt.Freeze(c.dirs.State); {
	case errors.Is(err, executor.ErrNotRunning):
		// It exited meanwhile: nothing writes, and its init removed
		// the stubs.
	case errors.Is(err, executor.ErrNoFreezer) && pause == pauseIfPossible:
	case err != nil:
		return fmt.Errorf("pausing container %s: %w", c.name(), err)
	}
	return fn(stubs)
}

// withoutStubs drops the changes of stubs, except a stub directory that
// holds other changes.
func withoutStubs(changes []Change, stubs map[string]bool) []Change {
	if len(stubs) == 0 {
		return changes
	}
	var out []Change
	for _, ch := range changes {
		rel := strings.TrimPrefix(ch.Path, "/")
		if stubs[rel] && !slices.ContainsFunc(changes, func(o Change) bool {
			r := strings.TrimPrefix(o.Path, "/")
			return strings.HasPrefix(r, rel+"/") && !stubs[r]
		}) {
			continue
		}
		out = append(out, ch)
	}
	return out
}

// existsBelow reports whether rel (relative to the root) exists in the
// overlay of lowers (topmost first, in overlay format): the first layer
// holding it decides, and a whiteout, an opaque directory or a
// non-directory on its way hides the layers below.
func existsBelow(lowers []string, rel string) bool {
	for _, l := range lowers {
		fi, err := os.Lstat(filepath.Join(l, rel))
		if err == nil {
			return !isWhiteout(fi)
		}
		if hidesBelow(l, rel) {
			return false
		}
	}
	return false
}

// hidesBelow reports whether layer l hides rel in the layers below it
// through one of rel's parent directories.
func hidesBelow(l, rel string) bool {
	for dir := filepath.Dir(rel); dir != "." && dir != "/"; dir = filepath.Dir(dir) {
		p := filepath.Join(l, dir)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || !fi.IsDir() || isOpaque(p) {
			return true
		}
	}
	return false
}
