package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrOverlayFeature is returned by Diff when the upperdir was written with
// an overlayfs feature that makes it depend on its lowers (redirect_dir or
// metacopy): such an upperdir cannot be turned into a layer by itself.
var ErrOverlayFeature = errors.New("upperdir uses redirect_dir or metacopy; mount the overlay with redirect_dir=off,metacopy=off")

// Diff writes an OCI layer tar of the overlay upperdir upper to w. It walks
// only the upperdir: regular files, directories, symlinks, hardlinks (tar
// links by inode within the layer), device nodes, fifos and xattrs (as PAX
// SCHILY.xattr records, without overlayfs' own trusted.overlay.* and
// user.overlay.*).
//
// A whiteout (character device 0:0) becomes ".wh.NAME" when NAME exists in
// opts.Lowers, and is left out otherwise. An opaque directory
// (trusted.overlay.opaque=y or user.overlay.opaque=y) is written as the
// directory entry followed by "DIR/.wh..wh..opq" when the directory exists
// in the lowers; overlayfs marks every new directory opaque, which must not
// turn into a marker.
//
// Entries are written depth first with the names of each directory sorted
// bytewise, ids are numeric, mtimes are truncated to seconds (and clamped to
// opts.SourceDateEpoch), atime and ctime are omitted. The root directory
// itself is not written. Diff refuses (ErrOverlayFeature) an upperdir with
// redirect or metacopy xattrs, and stops when ctx is done.
func Diff(ctx context.Context, upper string, opts DiffOptions, w io.Writer) error {
	d := &overlayDiffer{g: newTarGen(ctx, w, opts.SourceDateEpoch), upper: upper, lowers: opts.Lowers}
	if err := d.walk("", len(opts.Lowers) == 0); err != nil {
		return fmt.Errorf("diffing %s: %w", upper, err)
	}
	if err := d.g.close(); err != nil {
		return fmt.Errorf("diffing %s: %w", upper, err)
	}
	return nil
}

type overlayDiffer struct {
	g      *tarGen
	upper  string
	lowers []string
}

type upperEntry struct {
	dirEntry
	emit     string // name in the tar: NAME or .wh.NAME
	whiteout bool
	xattrs   map[string][]byte
	ov       overlayAttrs
}

// walk writes the entries below rel ("" is the root). hidden says that the
// lowers cannot show through rel (an opaque directory above, or no lowers),
// so no whiteout or opaque marker is needed below it.
func (d *overlayDiffer) walk(rel string, hidden bool) error {
	dir := filepath.Join(d.upper, rel)
	names, err := readDirNames(dir)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", rel, err)
	}
	dirSt, err := lstat(dir)
	if err != nil {
		return err
	}
	entries := make([]upperEntry, 0, len(names))
	for _, name := range names {
		p := filepath.Join(dir, name)
		st, err := lstat(p)
		if err != nil {
			return err
		}
		e := upperEntry{dirEntry: dirEntry{name: name, st: st}, emit: name}
		e.xattrs, e.ov, err = readXattrs(p)
		if err != nil {
			return fmt.Errorf("reading xattrs of %s: %w", path.Join(rel, name), err)
		}
		if e.ov.redirect || e.ov.metacopy {
			return fmt.Errorf("%s: %w", path.Join(rel, name), ErrOverlayFeature)
		}
		if isWhiteoutDev(&st) || (e.ov.whiteout && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0) {
			e.whiteout = true
			e.emit = whiteoutPrefix + name
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].emit < entries[j].emit })

	for i := range entries {
		e := &entries[i]
		if err := d.g.checkCtx(); err != nil {
			return err
		}
		p := path.Join(rel, e.name)
		if e.whiteout {
			if hidden {
				continue
			}
			found, _, err := d.lowerLookup(p)
			if err != nil {
				return err
			}
			if found {
				if err := d.g.addWhiteout(rel, e.name, dirSt.Mtim); err != nil {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(e.name, whiteoutPrefix) {
			return fmt.Errorf("%s: a file name starting with %q cannot be represented in a layer", p, whiteoutPrefix)
		}
		if err := d.g.addEntry(filepath.Join(dir, e.name), p, &e.st, e.xattrs); err != nil {
			return err
		}
		if !isDir(&e.st) {
			continue
		}
		childHidden := hidden
		if e.ov.opaque {
			if !hidden {
				found, lowerIsDir, err := d.lowerLookup(p)
				if err != nil {
					return err
				}
				if found && lowerIsDir {
					if err := d.g.addOpaque(p, e.st.Mtim); err != nil {
						return err
					}
				}
			}
			childHidden = true
		}
		if err := d.walk(p, childHidden); err != nil {
			return err
		}
	}
	return nil
}

// lowerLookup resolves rel in the stack of lowers the way overlayfs does:
// the topmost lower holding it wins, a whiteout or a non-directory on the
// way hides everything below, and an opaque directory hides the lowers
// beneath it.
func (d *overlayDiffer) lowerLookup(rel string) (found, dir bool, err error) {
	comps := strings.Split(rel, "/")
	for _, lower := range d.lowers {
		cur := lower
		stop := false
		for i, c := range comps {
			cur = filepath.Join(cur, c)
			var st unix.Stat_t
			err := unix.Lstat(cur, &st)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				break
			}
			if err != nil {
				return false, false, fmt.Errorf("looking up %s in lower %s: %w", rel, lower, err)
			}
			if isWhiteoutDev(&st) {
				return false, false, nil
			}
			if i == len(comps)-1 {
				return true, isDir(&st), nil
			}
			if !isDir(&st) {
				return false, false, nil
			}
			opaque, err := isOpaqueDir(cur)
			if err != nil {
				return false, false, fmt.Errorf("looking up %s in lower %s: %w", rel, lower, err)
			}
			stop = stop || opaque
		}
		if stop {
			return false, false, nil
		}
	}
	return false, false, nil
}
