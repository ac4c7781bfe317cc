package copier

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/builder-project/builder/internal/userns"
)

// placeFile copies a non-directory entry to name in d.
func (c *copier) placeFile(d dstDir, name string, e Entry, at srcAt) error {
	mtime := c.o.clampTime(e.Info.ModTime())
	mode := e.Info.Mode()
	switch {
	case mode.IsRegular():
		return c.copyRegular(d, name, e, at, mtime)
	case mode&fs.ModeSymlink != 0:
		var target string
		var err error
		if at.parent != nil {
			target, err = readlinkAt(at.parent, relBase(e.Path))
		} else {
			target, err = c.src.Readlink(e.Path)
		}
		if err != nil {
			return fmt.Errorf("reading symlink %s: %w", e.Path, err)
		}
		if err := c.writeSymlink(d, name, e.Path, target, c.own, mtime); err != nil {
			return err
		}
	case mode&(fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0:
		if err := c.clearTarget(d, name); err != nil {
			return fmt.Errorf("copying %s: %w", e.Path, err)
		}
		p := d.join(name)
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
		// Sockets are not copied, but what was there is still removed.
		if err := c.clearTarget(d, name); err != nil {
			return fmt.Errorf("copying %s: %w", e.Path, err)
		}
		return nil
	}
	c.res.Files++
	return nil
}

// writeSymlink creates the symlink name -> target in d, replacing what is
// there, owned by own and with modification time mtime.
func (c *copier) writeSymlink(d dstDir, name, what, target string, own owner, mtime time.Time) error {
	err := c.create(d, name, what, func() error {
		if err := d.symlink(target, name); err != nil {
			return fmt.Errorf("creating symlink /%s: %w", d.join(name), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := d.lchown(name, own.uid, own.gid); err != nil {
		return fmt.Errorf("changing owner of /%s: %w", d.join(name), userns.CheckChown("/"+d.join(name), own.uid, own.gid, err))
	}
	if err := d.lchtimes(name, mtime); err != nil {
		return fmt.Errorf("setting times of /%s: %w", d.join(name), err)
	}
	return nil
}

// copyRegular copies a regular file, or links it to an earlier copy of the
// same source inode.
func (c *copier) copyRegular(d dstDir, name string, e Entry, at srcAt, mtime time.Time) error {
	dev, ino, nlink, _, ok := statInfo(e.Info)
	key := inode{dev, ino}
	if ok && nlink > 1 {
		if first, seen := c.links[key]; seen {
			if err := c.link(d, name, e.Path, first); err != nil {
				return err
			}
			c.res.Files++
			return nil
		}
	}
	var in *os.File
	var err error
	if at.parent != nil {
		in, err = openAt(at.parent, relBase(e.Path), os.O_RDONLY, 0)
	} else {
		in, err = c.src.OpenFile(e.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", e.Path, err)
	}
	defer in.Close()
	n, err := c.writeFile(d, name, e.Path, in, c.own, c.mode.apply(permBits(e.Info.Mode()), false), mtime, in)
	if err != nil {
		return err
	}
	if ok && nlink > 1 {
		c.links[key] = d.join(name)
	}
	c.res.Files++
	c.res.Bytes += n
	return nil
}

// link makes name in d a hardlink of the root-relative path target,
// replacing what is there.
func (c *copier) link(d dstDir, name, what, target string) error {
	return c.create(d, name, what, func() error {
		if err := c.dst.Link(target, d.join(name)); err != nil {
			return fmt.Errorf("linking /%s to /%s: %w", d.join(name), target, err)
		}
		return nil
	})
}

// writeFile creates the regular file name in d from r, replacing what is
// there (see create), with the given owner, mode and mtime, and the xattrs
// of xattrSrc when it is not nil.
func (c *copier) writeFile(d dstDir, name, what string, r io.Reader, own owner, mode fs.FileMode, mtime time.Time, xattrSrc *os.File) (int64, error) {
	var out *os.File
	err := c.create(d, name, what, func() (err error) {
		if out, err = d.create(name, 0o600); err != nil {
			return fmt.Errorf("creating /%s: %w", d.join(name), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// File to file, io.Copy uses copy_file_range; cancellation is checked
	// between entries.
	n, err := io.Copy(out, r)
	if err == nil {
		err = userns.CheckChown("/"+d.join(name), own.uid, own.gid, out.Chown(own.uid, own.gid))
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
		return n, fmt.Errorf("writing /%s: %w", d.join(name), err)
	}
	if err := d.lchtimes(name, mtime); err != nil {
		return n, fmt.Errorf("setting times of /%s: %w", d.join(name), err)
	}
	return n, nil
}

// writeHeredoc writes an inline file (mode 0644 before --chmod).
func (c *copier) writeHeredoc(d dstDir, name, data string) error {
	now := c.o.clampTime(time.Now())
	n, err := c.writeFile(d, name, "heredoc "+name, strings.NewReader(data), c.own, c.mode.apply(0o644, false), now, nil)
	if err != nil {
		return err
	}
	c.res.Files++
	c.res.Bytes += n
	return nil
}
