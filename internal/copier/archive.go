package copier

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/userns"
)

// errNoXz is returned for xz archives when the xz program is missing.
var errNoXz = errors.New("xz archives need the xz program")

// isArchive reports whether the regular file p of r is a tar archive,
// plain or compressed, judging by content only: a compression magic number
// and then a valid tar header. A done ctx is reported before the file is
// opened.
func isArchive(ctx context.Context, r *os.Root, p string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	f, err := r.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rc, err := decompress(f)
	if err != nil {
		if errors.Is(err, errNoXz) {
			return false, err
		}
		return false, nil
	}
	defer rc.Close()
	_, err = tar.NewReader(rc).Next()
	return err == nil, nil
}

// decompress returns the decompressed stream of r (gzip, bzip2, xz, zstd,
// detected by magic number as Docker does), or r itself when it is not
// compressed.
func decompress(r io.Reader) (io.ReadCloser, error) {
	rc, _, err := compression.NewReader(r)
	if errors.Is(err, compression.ErrUnsupported) {
		return nil, fmt.Errorf("%w: %v", errNoXz, err)
	}
	return rc, err
}

// extract unpacks the archive source s into the resolved destination
// directory dir, like tar -x: existing content is merged, conflicts go to
// the archive's entries. Entries with ".." components are rejected; all
// paths (and symlinks met on the way) are resolved inside the destination
// root. Ownership comes from the archive unless --chown is given; --chmod
// does not apply (as in BuildKit).
func (c *copier) extract(s *Source, dir string) (err error) {
	f, err := c.src.OpenFile(s.Resolved, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.Path, err)
	}
	defer f.Close()
	rc, err := decompress(f)
	if err != nil {
		return fmt.Errorf("extracting %s: %w", s.Path, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extracting %s: %w", s.Path, err)
		}
		if err := c.extractEntry(dir, hdr, tr); err != nil {
			return fmt.Errorf("extracting %s: %w", s.Path, err)
		}
	}
}

// archivePath validates and cleans a name from an archive, relative to the
// extraction directory.
func archivePath(name string) (string, error) {
	for _, comp := range strings.Split(name, "/") {
		if comp == ".." {
			return "", fmt.Errorf("invalid entry %q: path escapes the destination", name)
		}
	}
	return cleanSource(name), nil
}

// extractEntry writes one archive entry below dir.
func (c *copier) extractEntry(dir string, hdr *tar.Header, r io.Reader) error {
	rel, err := archivePath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." || hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	parent, err := c.ensureDir(relDir(relJoin(dir, rel)))
	if err != nil {
		return err
	}
	p := relJoin(parent, relBase(rel))
	own := owner{uid: hdr.Uid, gid: hdr.Gid}
	if c.o.Chown != "" {
		own = c.own
	}
	fi := hdr.FileInfo()
	mode := permBits(fi.Mode())
	mtime := c.o.clampTime(hdr.ModTime)
	switch hdr.Typeflag {
	case tar.TypeDir:
		return c.extractDir(p, own, mode, mtime)
	case tar.TypeReg, tar.TypeRegA, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo: //nolint:staticcheck // old archives still use TypeRegA
		// Written below, by name in the open parent directory.
	default:
		return nil // unknown types are skipped, as Docker does
	}
	d, err := c.openDst(parent)
	if err != nil {
		return err
	}
	defer d.close()
	name := relBase(rel)
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if err := c.writeSymlink(d, name, "", hdr.Linkname, own, mtime); err != nil {
			return err
		}
	case tar.TypeLink:
		lrel, err := archivePath(hdr.Linkname)
		if err != nil {
			return err
		}
		target, err := resolveIn(c.dst, relJoin(dir, lrel), false, nil)
		if err != nil {
			return fmt.Errorf("resolving hardlink target %s: %w", hdr.Linkname, err)
		}
		if tfi, err := c.dst.Lstat(target); err != nil || tfi.IsDir() {
			return fmt.Errorf("invalid hardlink %s -> %s: target is missing or a directory", hdr.Name, hdr.Linkname)
		}
		if err := c.link(d, name, "", target); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := c.clearTarget(d, name); err != nil {
			return err
		}
		if err := mknod(c.dst, p, fi.Mode(), mkdev(hdr.Devmajor, hdr.Devminor)); err != nil {
			return err
		}
		if err := c.dst.Lchown(p, own.uid, own.gid); err != nil {
			return fmt.Errorf("changing owner of /%s: %w", p, userns.CheckChown("/"+p, own.uid, own.gid, err))
		}
		if err := c.dst.Chmod(p, mode); err != nil {
			return fmt.Errorf("changing mode of /%s: %w", p, err)
		}
		if err := c.dst.Chtimes(p, mtime, mtime); err != nil {
			return fmt.Errorf("setting times of /%s: %w", p, err)
		}
	default: // regular
		n, err := c.writeFile(d, name, "", r, own, mode, mtime, nil)
		if err != nil {
			return err
		}
		if err := c.setPAXXattrs(p, hdr); err != nil {
			return err
		}
		c.res.Bytes += n
	}
	c.res.Files++
	return nil
}

// extractDir creates or updates a directory entry of an archive. An
// existing directory, or a symlink to one (moby#41035), is kept and takes
// the entry's metadata; anything else in the way is replaced.
func (c *copier) extractDir(p string, own owner, mode fs.FileMode, mtime time.Time) error {
	fi, err := c.dst.Lstat(p)
	switch {
	case err != nil && !isNotExist(err):
		return fmt.Errorf("stat /%s: %w", p, err)
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		t, rerr := resolveIn(c.dst, p, true, nil)
		if rerr == nil {
			if tfi, serr := c.dst.Lstat(t); serr == nil && tfi.IsDir() {
				p, fi = t, tfi
				break
			}
		}
		if err := c.dst.Remove(p); err != nil {
			return fmt.Errorf("replacing /%s: %w", p, err)
		}
		fi, err = nil, fs.ErrNotExist
	case err == nil && !fi.IsDir():
		if err := c.dst.Remove(p); err != nil {
			return fmt.Errorf("replacing /%s: %w", p, err)
		}
		fi, err = nil, fs.ErrNotExist
	}
	if fi == nil {
		if err := c.dst.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("creating directory /%s: %w", p, err)
		}
	}
	if err := c.dst.Lchown(p, own.uid, own.gid); err != nil {
		return fmt.Errorf("changing owner of /%s: %w", p, userns.CheckChown("/"+p, own.uid, own.gid, err))
	}
	if err := c.dst.Chmod(p, mode); err != nil {
		return fmt.Errorf("changing mode of /%s: %w", p, err)
	}
	c.times = append(c.times, pendingTime{p, mtime})
	return nil
}

// setPAXXattrs applies the SCHILY.xattr records of an archive entry.
func (c *copier) setPAXXattrs(p string, hdr *tar.Header) error {
	const prefix = "SCHILY.xattr."
	var names []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, prefix) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil
	}
	f, err := c.dst.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("opening /%s: %w", p, err)
	}
	defer f.Close()
	for _, k := range names {
		if err := setXattr(f, strings.TrimPrefix(k, prefix), []byte(hdr.PAXRecords[k])); err != nil {
			return fmt.Errorf("setting xattr %s on /%s: %w", path.Base(k), p, err)
		}
	}
	return nil
}
