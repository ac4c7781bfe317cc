package copier

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
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
		parent, name, err := c.fileTarget(s.DestName)
		if err != nil {
			return err
		}
		return c.writeHeredoc(parent, name, s.Data)
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
	entries, err := c.w.entries(s)
	if err != nil {
		return err
	}
	dirs := map[string]string{}
	for i, e := range entries {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if readHook != nil {
			readHook(e.Path)
		}
		var parent, name string
		switch {
		case i == 0 && !c.o.Parents && !s.IsDir:
			if parent, name, err = c.fileTarget(s.DestName); err != nil {
				return err
			}
		case i == 0 && (!c.o.Parents || e.Rel == "."):
			// The directory whose contents are copied becomes Dest, or
			// with Parents the directory Dest itself.
			if c.dest == "." {
				dirs[e.Rel] = "."
				continue
			}
			if parent, err = c.ensureDir(relDir(c.dest)); err != nil {
				return err
			}
			name = relBase(c.dest)
		case i == 0:
			if dirs["."], err = c.ensureDir(c.dest); err != nil {
				return err
			}
			fallthrough
		default:
			var ok bool
			if parent, ok = dirs[relDir(e.Rel)]; !ok {
				return fmt.Errorf("copying %s: internal error: no destination for %s", s.Path, relDir(e.Rel))
			}
			name = relBase(e.Rel)
		}
		if e.Info.IsDir() {
			d, err := c.placeDir(parent, name, e)
			if err != nil {
				return err
			}
			dirs[e.Rel] = d
			continue
		}
		if err := c.placeFile(parent, name, e); err != nil {
			return err
		}
	}
	return nil
}

// fileTarget returns the directory and name a single file source is
// written to: inside Dest when Dest is a directory (by its trailing slash,
// by having several sources, or by existing as one), else Dest itself.
func (c *copier) fileTarget(name string) (string, string, error) {
	if !c.dirHint {
		isDir, err := c.destIsDir()
		if err != nil {
			return "", "", err
		}
		if !isDir {
			parent, err := c.ensureDir(relDir(c.dest))
			return parent, relBase(c.dest), err
		}
	}
	dir, err := c.ensureDir(c.dest)
	return dir, name, err
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
		return fmt.Errorf("changing owner of /%s: %w", p, err)
	}
	if err := c.dst.Chmod(p, mode); err != nil {
		return fmt.Errorf("changing mode of /%s: %w", p, err)
	}
	return nil
}

// placeDir makes the directory for a source directory entry at parent/name
// and returns its resolved path. An existing directory (or a symlink to
// one) is merged into and keeps its metadata; a new one gets the source's
// mode (after --chmod) and modification time.
func (c *copier) placeDir(parent, name string, e Entry) (string, error) {
	p := relJoin(parent, name)
	fi, err := c.dst.Lstat(p)
	switch {
	case err != nil && isNotExist(err):
		return p, c.mkdirFrom(p, e)
	case err != nil:
		return "", fmt.Errorf("stat /%s: %w", p, err)
	case fi.IsDir():
		return p, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		// Copy through a symlink to a directory (moby#41035); never
		// replace it.
		t, err := resolveIn(c.dst, p, true, nil)
		if err != nil {
			return "", fmt.Errorf("resolving /%s: %w", p, err)
		}
		tfi, err := c.dst.Lstat(t)
		if err != nil && isNotExist(err) {
			if _, err := c.ensureDir(relDir(t)); err != nil {
				return "", err
			}
			return t, c.mkdirFrom(t, e)
		}
		if err != nil {
			return "", fmt.Errorf("stat /%s: %w", t, err)
		}
		if tfi.IsDir() {
			return t, nil
		}
	}
	return "", fmt.Errorf("copying %s: cannot copy a directory onto non-directory /%s", e.Path, p)
}

// mkdirFrom creates the directory p with the metadata of entry e.
func (c *copier) mkdirFrom(p string, e Entry) error {
	if err := c.dst.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("creating directory /%s: %w", p, err)
	}
	if err := c.setMeta(p, c.mode.apply(permBits(e.Info.Mode()), true)); err != nil {
		return err
	}
	c.copyDirXattrs(e.Path, p)
	c.times = append(c.times, pendingTime{p, c.o.clampTime(e.Info.ModTime())})
	return nil
}

// copyDirXattrs copies a directory's extended attributes, best effort.
func (c *copier) copyDirXattrs(srcPath, dstPath string) {
	in, err := c.src.Open(srcPath)
	if err != nil {
		return
	}
	defer in.Close()
	out, err := c.dst.Open(dstPath)
	if err != nil {
		return
	}
	defer out.Close()
	_ = copyXattrs(in, out)
}

// clearTarget removes what is at p so that a non-directory can be created
// there. A directory is not replaced by a file: that is an error, as in
// Docker. A symlink is removed, not written through.
func (c *copier) clearTarget(p string) error {
	fi, err := c.dst.Lstat(p)
	switch {
	case err != nil && isNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("stat /%s: %w", p, err)
	case fi.IsDir():
		return fmt.Errorf("cannot replace directory /%s with a file", p)
	}
	if err := c.dst.Remove(p); err != nil {
		return fmt.Errorf("replacing /%s: %w", p, err)
	}
	return nil
}

// placeFile copies a non-directory entry to parent/name.
func (c *copier) placeFile(parent, name string, e Entry) error {
	p := relJoin(parent, name)
	if err := c.clearTarget(p); err != nil {
		return fmt.Errorf("copying %s: %w", e.Path, err)
	}
	mtime := c.o.clampTime(e.Info.ModTime())
	mode := e.Info.Mode()
	switch {
	case mode.IsRegular():
		return c.copyRegular(p, e, mtime)
	case mode&fs.ModeSymlink != 0:
		target, err := c.src.Readlink(e.Path)
		if err != nil {
			return fmt.Errorf("reading symlink %s: %w", e.Path, err)
		}
		if err := c.dst.Symlink(target, p); err != nil {
			return fmt.Errorf("creating symlink /%s: %w", p, err)
		}
		if err := c.dst.Lchown(p, c.own.uid, c.own.gid); err != nil {
			return fmt.Errorf("changing owner of /%s: %w", p, err)
		}
		if err := lchtimes(c.dst, p, mtime); err != nil {
			return err
		}
	case mode&(fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0:
		_, _, _, rdev, _ := statInfo(e.Info)
		if err := mknod(c.dst, p, mode, rdev); err != nil {
			return err
		}
		if err := c.setMeta(p, c.mode.apply(permBits(mode), false)); err != nil {
			return err
		}
		if err := c.dst.Chtimes(p, mtime, mtime); err != nil {
			return fmt.Errorf("setting times of /%s: %w", p, err)
		}
	default:
		return nil // sockets are not copied
	}
	c.res.Files++
	return nil
}

// copyRegular copies a regular file, or links it to an earlier copy of the
// same source inode.
func (c *copier) copyRegular(p string, e Entry, mtime time.Time) error {
	dev, ino, nlink, _, ok := statInfo(e.Info)
	key := inode{dev, ino}
	if ok && nlink > 1 {
		if first, seen := c.links[key]; seen {
			if err := c.dst.Link(first, p); err != nil {
				return fmt.Errorf("linking /%s to /%s: %w", p, first, err)
			}
			c.res.Files++
			return nil
		}
	}
	in, err := c.src.OpenFile(e.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", e.Path, err)
	}
	defer in.Close()
	n, err := c.writeFile(p, in, c.own, c.mode.apply(permBits(e.Info.Mode()), false), mtime, in)
	if err != nil {
		return err
	}
	if ok && nlink > 1 {
		c.links[key] = p
	}
	c.res.Files++
	c.res.Bytes += n
	return nil
}

// writeFile creates the regular file p (which must not exist) from r with
// the given owner, mode and mtime, and the xattrs of xattrSrc
// when it is not nil.
func (c *copier) writeFile(p string, r io.Reader, own owner, mode fs.FileMode, mtime time.Time, xattrSrc *os.File) (int64, error) {
	out, err := c.dst.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fmt.Errorf("creating /%s: %w", p, err)
	}
	// File to file, io.Copy uses copy_file_range; cancellation is checked
	// between entries.
	n, err := io.Copy(out, r)
	if err == nil {
		err = out.Chown(own.uid, own.gid)
	}
	if err == nil {
		err = out.Chmod(mode)
	}
	if err == nil && xattrSrc != nil {
		err = copyXattrs(xattrSrc, out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("writing /%s: %w", p, err)
	}
	if err := c.dst.Chtimes(p, mtime, mtime); err != nil {
		return n, fmt.Errorf("setting times of /%s: %w", p, err)
	}
	return n, nil
}

// writeHeredoc writes an inline file (mode 0644 before --chmod).
func (c *copier) writeHeredoc(parent, name, data string) error {
	p := relJoin(parent, name)
	if err := c.clearTarget(p); err != nil {
		return fmt.Errorf("copying heredoc %s: %w", name, err)
	}
	now := c.o.clampTime(time.Now())
	n, err := c.writeFile(p, strings.NewReader(data), c.own, c.mode.apply(0o644, false), now, nil)
	if err != nil {
		return err
	}
	c.res.Files++
	c.res.Bytes += n
	return nil
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
