package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/userns"
)

// readHook, when set (by tests), sees the source path of every entry Copy
// reads.
var readHook func(p string)

// Copy performs a COPY or ADD from srcRoot into dstRoot and returns what it
// wrote. Both roots are directories; nothing outside them is read or
// written. The semantics are Docker's (see the package documentation and
// Options): a directory source copies its contents, a file source becomes
// Dest or goes inside it, missing parents of Dest are created (mode 0755,
// owned like the copied files), existing directories are merged and keep
// their metadata, existing files and symlinks are replaced (never written
// through), a directory that is created takes the metadata of the source
// directory, and symlinks to directories on the way are followed inside
// dstRoot.
func Copy(ctx context.Context, srcRoot, dstRoot string, o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	src, err := os.OpenRoot(srcRoot)
	if err != nil {
		return Result{}, fmt.Errorf("opening source root: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenRoot(dstRoot)
	if err != nil {
		return Result{}, fmt.Errorf("opening destination root: %w", err)
	}
	defer dst.Close()

	c := &copier{ctx: ctx, src: src, dst: dst, o: &o}
	if c.own, err = parseChown(dst, o.Chown); err != nil {
		return Result{}, err
	}
	if c.mode, err = parseChmod(o.Chmod); err != nil {
		return Result{}, err
	}
	if c.w, err = newWalker(ctx, src, &o); err != nil {
		return Result{}, err
	}
	srcs, err := c.w.sources()
	if err != nil {
		return Result{}, err
	}
	destAbs, dirHint := destPath(o.Dest, o.Workdir)
	c.dest = cleanSource(destAbs)
	// Several sources need a directory destination, as in Docker; only
	// directories (whose contents merge into Dest, as BuildKit does) are
	// exempt.
	if len(srcs) > 1 && !dirHint && !o.Parents && slices.ContainsFunc(srcs, func(s *Source) bool { return !s.IsDir }) {
		isDir, err := c.destIsDir()
		if err != nil {
			return Result{}, err
		}
		if !isDir {
			return Result{}, fmt.Errorf("copying to %s: %w", o.Dest, errMultiDest)
		}
	}
	c.dirHint = dirHint || o.Parents || len(srcs) > 1
	for _, s := range srcs {
		if err := c.copySource(s); err != nil {
			return c.res, err
		}
	}
	return c.res, c.finish()
}

// copier is the state of one Copy.
type copier struct {
	ctx     context.Context
	src     *os.Root
	dst     *os.Root
	o       *Options
	w       *walker
	own     owner
	mode    chmodSpec
	dest    string // root-relative destination, not resolved
	dirHint bool   // the destination is a directory
	res     Result
	links   map[inode]string // hardlinked source inodes → destination path
	times   []pendingTime    // directory times, set once their contents are written
}

// inode identifies a source file for hardlink detection.
type inode struct{ dev, ino uint64 }

// pendingTime is a directory modification time to set at the end.
type pendingTime struct {
	path  string
	mtime time.Time
}

// destIsDir reports whether the destination exists as a directory, through
// symlinks.
func (c *copier) destIsDir() (bool, error) {
	p, err := resolveIn(c.dst, c.dest, true, nil)
	if err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, err
	}
	fi, err := c.dst.Lstat(p)
	if err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("stat destination %s: %w", c.o.Dest, err)
	}
	return fi.IsDir(), nil
}

// copySource copies one top-level source.
func (c *copier) copySource(s *Source) error {
	c.links = map[inode]string{}
	switch {
	case s.Heredoc:
		d, name, err := c.fileTarget(s.DestName)
		if err != nil {
			return err
		}
		defer d.close()
		return c.writeHeredoc(d, name, s.Data)
	case s.Archive:
		dir, err := c.ensureDir(c.dest)
		if err != nil {
			return err
		}
		if readHook != nil {
			readHook(s.Resolved)
		}
		return c.extract(s, dir)
	}
	// dirs holds the open destination directories of the entries above
	// the current one, each with the Rel of its entry.
	var dirs []placedDir
	defer func() {
		for _, d := range dirs {
			d.close()
		}
	}()
	first := true
	return c.w.walk(s, func(e Entry, at srcAt) error {
		top := first
		first = false
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if readHook != nil {
			readHook(e.Path)
		}
		var parent dstDir
		var name string
		switch {
		case top && !c.o.Parents && !s.IsDir:
			d, name, err := c.fileTarget(s.DestName)
			if err != nil {
				return err
			}
			defer d.close()
			return c.placeFile(d, name, e, at)
		case top && c.dest != "." && (!c.o.Parents || e.Rel == "."):
			// The directory whose contents are copied becomes Dest, or
			// with Parents the directory Dest itself.
			var err error
			if parent, err = c.ensureOpen(relDir(c.dest)); err != nil {
				return err
			}
			defer parent.close()
			name = relBase(c.dest)
		case top:
			// Dest is the root, whose directory source e copies its
			// contents to, or with Parents the directory e goes into.
			d, err := c.ensureOpen(c.dest)
			if err != nil {
				return err
			}
			dirs = append(dirs, placedDir{d, "."})
			if e.Rel == "." {
				return nil
			}
			fallthrough
		default:
			// Entries come parents first: the directories left on the
			// stack that are not above e are done.
			want := relDir(e.Rel)
			for len(dirs) > 0 && dirs[len(dirs)-1].rel != want {
				dirs[len(dirs)-1].close()
				dirs = dirs[:len(dirs)-1]
			}
			if len(dirs) == 0 {
				return fmt.Errorf("copying %s: internal error: no destination for %s", s.Path, want)
			}
			parent, name = dirs[len(dirs)-1].dstDir, relBase(e.Rel)
		}
		if e.Info.IsDir() {
			d, err := c.placeDir(parent, name, e, at)
			if err != nil {
				return err
			}
			dirs = append(dirs, placedDir{d, e.Rel})
			return nil
		}
		return c.placeFile(parent, name, e, at)
	})
}

// placedDir is a destination directory open while the entries below it
// are copied.
type placedDir struct {
	dstDir
	rel string // the Rel of the source entry
}

// fileTarget returns the open directory and the name a single file source
// is written to: inside Dest when Dest is a directory (by its trailing
// slash, by having several sources, or by existing as one), else Dest
// itself.
func (c *copier) fileTarget(name string) (dstDir, string, error) {
	dir := c.dest
	if !c.dirHint {
		isDir, err := c.destIsDir()
		if err != nil {
			return dstDir{}, "", err
		}
		if !isDir {
			dir, name = relDir(c.dest), relBase(c.dest)
		}
	}
	p, err := c.ensureDir(dir)
	if err != nil {
		return dstDir{}, "", err
	}
	if strings.Contains(name, "/") {
		// A heredoc's name may hold "/" and "..": the root resolves
		// them, as for any path.
		full := relJoin(p, name)
		p, name = relDir(full), relBase(full)
	}
	d, err := c.openDst(p)
	return d, name, err
}

// ensureOpen opens the destination directory p, made by ensureDir.
func (c *copier) ensureOpen(p string) (dstDir, error) {
	rp, err := c.ensureDir(p)
	if err != nil {
		return dstDir{}, err
	}
	return c.openDst(rp)
}

// ensureDir resolves p in the destination, creating missing directories
// with mode 0755 owned by the --chown owner, and returns the resolved path.
func (c *copier) ensureDir(p string) (string, error) {
	d, err := resolveIn(c.dst, p, true, func(rel string) error {
		if err := c.dst.Mkdir(rel, 0o755); err != nil {
			return fmt.Errorf("creating directory /%s: %w", rel, err)
		}
		if err := c.setMeta(rel, 0o755); err != nil {
			return err
		}
		if c.o.SourceDateEpoch != nil {
			c.times = append(c.times, pendingTime{rel, *c.o.SourceDateEpoch})
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("creating destination /%s: %w", p, err)
	}
	return d, nil
}

// setMeta sets owner and then mode (chown clears setuid bits) of a
// directory or file just created at p.
func (c *copier) setMeta(p string, mode fs.FileMode) error {
	if err := c.dst.Lchown(p, c.own.uid, c.own.gid); err != nil {
		return fmt.Errorf("changing owner of /%s: %w", p, userns.CheckChown("/"+p, c.own.uid, c.own.gid, err))
	}
	if err := c.dst.Chmod(p, mode); err != nil {
		return fmt.Errorf("changing mode of /%s: %w", p, err)
	}
	return nil
}

// placeDir makes the directory for a source directory entry at name in
// parent and returns it open. An existing directory (or a symlink to one)
// is merged into and keeps its metadata; a new one gets the source's mode
// (after --chmod) and modification time.
func (c *copier) placeDir(parent dstDir, name string, e Entry, at srcAt) (dstDir, error) {
	typ, err := parent.typeOf(name)
	switch {
	case err != nil && isNotExist(err):
		return c.mkdirFrom(parent, name, e, at)
	case err != nil:
		return dstDir{}, fmt.Errorf("stat /%s: %w", parent.join(name), err)
	case typ == fs.ModeDir:
		return parent.openDir(name)
	case typ == fs.ModeSymlink:
		// Copy through a symlink to a directory (moby#41035); never
		// replace it. The symlink is resolved from the root.
		p := parent.join(name)
		t, err := resolveIn(c.dst, p, true, nil)
		if err != nil {
			return dstDir{}, fmt.Errorf("resolving /%s: %w", p, err)
		}
		tfi, err := c.dst.Lstat(t)
		if err != nil && isNotExist(err) {
			td, err := c.ensureOpen(relDir(t))
			if err != nil {
				return dstDir{}, err
			}
			defer td.close()
			return c.mkdirFrom(td, relBase(t), e, at)
		}
		if err != nil {
			return dstDir{}, fmt.Errorf("stat /%s: %w", t, err)
		}
		if tfi.IsDir() {
			return c.openDst(t)
		}
	}
	return dstDir{}, fmt.Errorf("copying %s: cannot copy a directory onto non-directory /%s", e.Path, parent.join(name))
}

// mkdirFrom creates the directory name in parent with the metadata of
// entry e and returns it open.
func (c *copier) mkdirFrom(parent dstDir, name string, e Entry, at srcAt) (dstDir, error) {
	if err := parent.mkdir(name, 0o700); err != nil {
		return dstDir{}, fmt.Errorf("creating directory /%s: %w", parent.join(name), err)
	}
	d, err := parent.openDir(name)
	if err != nil {
		return dstDir{}, err
	}
	if err := c.setOwnerMode(d.f, d.path, c.mode.apply(permBits(e.Info.Mode()), true)); err != nil {
		d.close()
		return dstDir{}, err
	}
	if at.dir != nil {
		_ = copyXattrs(at.dir, d.f) // best effort
	} else {
		c.copyDirXattrs(e.Path, d.f)
	}
	c.times = append(c.times, pendingTime{d.path, c.o.clampTime(e.Info.ModTime())})
	return d, nil
}

// setOwnerMode sets owner and then mode (chown clears setuid bits) of f,
// just created at p.
func (c *copier) setOwnerMode(f *os.File, p string, mode fs.FileMode) error {
	if err := f.Chown(c.own.uid, c.own.gid); err != nil {
		return fmt.Errorf("changing owner of /%s: %w", p, userns.CheckChown("/"+p, c.own.uid, c.own.gid, err))
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("changing mode of /%s: %w", p, err)
	}
	return nil
}

// copyDirXattrs copies the extended attributes of the source directory
// srcPath to out, best effort.
func (c *copier) copyDirXattrs(srcPath string, out *os.File) {
	in, err := c.src.Open(srcPath)
	if err != nil {
		return
	}
	defer in.Close()
	_ = copyXattrs(in, out)
}

// clearTarget removes what is at name in d so that a non-directory can be
// created there. A directory is not replaced by a file: that is an error,
// as in Docker. A symlink is removed, not written through.
func (c *copier) clearTarget(d dstDir, name string) error {
	typ, err := d.typeOf(name)
	switch {
	case err != nil && isNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("stat /%s: %w", d.join(name), err)
	case typ == fs.ModeDir:
		return fmt.Errorf("cannot replace directory /%s with a file", d.join(name))
	}
	if err := d.remove(name); err != nil {
		return fmt.Errorf("replacing /%s: %w", d.join(name), err)
	}
	return nil
}

// create makes the non-directory name in d with mk, which fails with an
// error wrapping fs.ErrExist when something is there. That something is
// then removed with clearTarget and mk runs again; an error of clearTarget
// is reported as copying what (bare if what is empty).
func (c *copier) create(d dstDir, name, what string, mk func() error) error {
	err := mk()
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := c.clearTarget(d, name); err != nil {
		if what == "" {
			return err
		}
		return fmt.Errorf("copying %s: %w", what, err)
	}
	return mk()
}

// finish sets the modification times of the directories created, deepest
// first, now that nothing more is written into them.
func (c *copier) finish() error {
	for i := len(c.times) - 1; i >= 0; i-- {
		t := c.times[i]
		if err := c.dst.Chtimes(t.path, t.mtime, t.mtime); err != nil {
			return fmt.Errorf("setting times of /%s: %w", t.path, err)
		}
	}
	return nil
}
