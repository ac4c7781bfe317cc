package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// DiffDirs writes to w the layer that turns the tree lower into the tree
// upper; both are plain directories (for example a rootfs before and after a
// step), and lower may be "" for an empty tree. opts.Lowers is ignored.
//
// An entry present only in upper is added with its whole subtree; an entry
// present only in lower becomes a ".wh.NAME" whiteout; an entry whose type
// changed is written anew (applying it replaces the old one). An entry of the
// same type is written when its mode, uid, gid, size, mtime, device number,
// symlink target or xattrs differ. When all of those are equal and the mtime
// has a whole second only (as after a tar extraction, where a rewrite within
// the same second keeps the stamp) the contents are compared too; entries
// that share an inode are equal. Directories that did not change but hold
// changes are written as well, so that applying the layer onto an empty
// directory keeps their metadata. The tar conventions are Diff's.
func DiffDirs(ctx context.Context, lower, upper string, opts DiffOptions, w io.Writer) error {
	d := &dirDiffer{g: newTarGen(ctx, w, opts.SourceDateEpoch), lower: lower, upper: upper}
	if err := d.walk("", lower != ""); err != nil {
		return fmt.Errorf("diffing %s against %s: %w", upper, lower, err)
	}
	if err := d.g.close(); err != nil {
		return fmt.Errorf("diffing %s against %s: %w", upper, lower, err)
	}
	return nil
}

type dirDiffer struct {
	g            *tarGen
	lower, upper string
	// pending are unchanged directories, outermost first, whose entries are
	// written only once something below them changes.
	pending []pendingDir
}

type pendingDir struct {
	rel    string
	st     unix.Stat_t
	xattrs map[string][]byte
}

type pairEntry struct {
	name         string
	emit         string
	upper, lower *unix.Stat_t
}

// flush writes the pending parent directories.
func (d *dirDiffer) flush() error {
	for _, p := range d.pending {
		if err := d.g.addEntry(filepath.Join(d.upper, p.rel), p.rel, &p.st, p.xattrs); err != nil {
			return err
		}
	}
	d.pending = d.pending[:0]
	return nil
}

func (d *dirDiffer) readDir(root, rel string) (map[string]*unix.Stat_t, error) {
	dir := filepath.Join(root, rel)
	names, err := readDirNames(dir)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	out := make(map[string]*unix.Stat_t, len(names))
	for _, n := range names {
		st, err := lstat(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out[n] = &st
	}
	return out, nil
}

// walk compares directory rel of both trees; lowerDir says that rel is a
// directory in lower too.
func (d *dirDiffer) walk(rel string, lowerDir bool) error {
	uppers, err := d.readDir(d.upper, rel)
	if err != nil {
		return err
	}
	var lowers map[string]*unix.Stat_t
	if lowerDir {
		if lowers, err = d.readDir(d.lower, rel); err != nil {
			return err
		}
	}
	dirSt, err := lstat(filepath.Join(d.upper, rel))
	if err != nil {
		return err
	}
	pairs := make([]pairEntry, 0, len(uppers)+len(lowers))
	for n, st := range uppers {
		pairs = append(pairs, pairEntry{name: n, emit: n, upper: st, lower: lowers[n]})
	}
	for n, st := range lowers {
		if uppers[n] == nil {
			pairs = append(pairs, pairEntry{name: n, emit: whiteoutPrefix + n, lower: st})
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].emit < pairs[j].emit })

	for _, pe := range pairs {
		if err := d.g.checkCtx(); err != nil {
			return err
		}
		p := path.Join(rel, pe.name)
		if pe.upper == nil {
			if err := d.flush(); err != nil {
				return err
			}
			if err := d.g.addWhiteout(rel, pe.name, dirSt.Mtim); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(pe.name, whiteoutPrefix) {
			return fmt.Errorf("%s: a file name starting with %q cannot be represented in a layer", p, whiteoutPrefix)
		}
		uxa, _, err := readXattrs(filepath.Join(d.upper, p))
		if err != nil {
			return fmt.Errorf("reading xattrs of %s: %w", p, err)
		}
		if pe.lower == nil || pe.lower.Mode&unix.S_IFMT != pe.upper.Mode&unix.S_IFMT {
			if err := d.addTree(p, pe.upper, uxa); err != nil {
				return err
			}
			continue
		}
		changed, err := d.changed(p, pe.lower, pe.upper, uxa)
		if err != nil {
			return err
		}
		if !isDir(pe.upper) {
			if changed {
				if err := d.flush(); err != nil {
					return err
				}
				if err := d.g.addEntry(filepath.Join(d.upper, p), p, pe.upper, uxa); err != nil {
					return err
				}
			}
			continue
		}
		if changed {
			if err := d.flush(); err != nil {
				return err
			}
			if err := d.g.addEntry(filepath.Join(d.upper, p), p, pe.upper, uxa); err != nil {
				return err
			}
		} else {
			d.pending = append(d.pending, pendingDir{rel: p, st: *pe.upper, xattrs: uxa})
		}
		if err := d.walk(p, true); err != nil {
			return err
		}
		if n := len(d.pending); n > 0 && d.pending[n-1].rel == p {
			d.pending = d.pending[:n-1]
		}
	}
	return nil
}

// addTree writes a new (or retyped) entry and, for a directory, everything
// below it.
func (d *dirDiffer) addTree(p string, st *unix.Stat_t, xattrs map[string][]byte) error {
	if err := d.flush(); err != nil {
		return err
	}
	if err := d.g.addEntry(filepath.Join(d.upper, p), p, st, xattrs); err != nil {
		return err
	}
	if isDir(st) {
		return d.walk(p, false)
	}
	return nil
}

// changed compares two entries of the same type; see DiffDirs.
func (d *dirDiffer) changed(p string, lo, up *unix.Stat_t, uxa map[string][]byte) (bool, error) {
	if lo.Dev == up.Dev && lo.Ino == up.Ino {
		return false, nil
	}
	if lo.Mode != up.Mode || lo.Uid != up.Uid || lo.Gid != up.Gid || lo.Mtim != up.Mtim || lo.Rdev != up.Rdev {
		return true, nil
	}
	fmtType := up.Mode & unix.S_IFMT
	if fmtType == unix.S_IFREG && lo.Size != up.Size {
		return true, nil
	}
	lxa, _, err := readXattrs(filepath.Join(d.lower, p))
	if err != nil {
		return false, fmt.Errorf("reading xattrs of %s: %w", p, err)
	}
	if !maps.EqualFunc(lxa, uxa, bytes.Equal) {
		return true, nil
	}
	switch fmtType {
	case unix.S_IFLNK:
		lt, err := os.Readlink(filepath.Join(d.lower, p))
		if err != nil {
			return false, err
		}
		ut, err := os.Readlink(filepath.Join(d.upper, p))
		if err != nil {
			return false, err
		}
		return lt != ut, nil
	case unix.S_IFREG:
		if up.Mtim.Nsec != 0 {
			return false, nil
		}
		same, err := sameContent(filepath.Join(d.lower, p), filepath.Join(d.upper, p))
		if err != nil {
			return false, fmt.Errorf("comparing %s: %w", p, err)
		}
		return !same, nil
	}
	return false, nil
}

// sameContent compares two files byte by byte.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aEnd := errors.Is(erra, io.EOF) || errors.Is(erra, io.ErrUnexpectedEOF)
		bEnd := errors.Is(errb, io.EOF) || errors.Is(errb, io.ErrUnexpectedEOF)
		if erra != nil && !aEnd {
			return false, erra
		}
		if errb != nil && !bEnd {
			return false, errb
		}
		if aEnd || bEnd {
			return aEnd == bEnd, nil
		}
	}
}
