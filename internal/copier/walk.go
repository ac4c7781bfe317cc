package copier

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
)

// srcAt tells the copy where the walk found an entry, so that it can reach
// the entry without resolving its path again.
type srcAt struct {
	// parent is the open directory that holds the entry under the name
	// relBase(Entry.Path); nil for a top-level entry, which is reached
	// through the root by its path.
	parent *os.File
	// dir is the entry itself when it is a directory the walk lists.
	dir *os.File
}

// visitFunc is called by walk for each entry. The files of at stay open
// until it returns.
type visitFunc func(e Entry, at srcAt) error

// walk calls fn with what Copy reads for one source, parents before
// children, names sorted.
func (w *walker) walk(s *Source, fn visitFunc) error {
	if s.Heredoc {
		return nil
	}
	rel := ""
	if w.o.Parents {
		rel = s.DestName
		// The directories between the pivot and the match are recreated
		// with their own metadata.
		if rel != "." {
			comps := strings.Split(rel, "/")
			for i := 1; i < len(comps); i++ {
				prefix := strings.Join(comps[:i], "/")
				p, err := resolveIn(w.r, relJoin(s.base, prefix), true, nil)
				if err != nil {
					return fmt.Errorf("resolving %s: %w", prefix, err)
				}
				fi, err := w.r.Lstat(p)
				if err != nil {
					return fmt.Errorf("stat %s: %w", p, err)
				}
				if err := fn(Entry{Source: s, Path: p, Rel: prefix, Info: fi}, srcAt{}); err != nil {
					return err
				}
			}
		}
	} else if s.IsDir {
		rel = "."
	}
	fi, err := w.r.Lstat(s.Resolved)
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.Path, err)
	}
	e := Entry{Source: s, Path: s.Resolved, Rel: rel, Info: fi}
	if !s.IsDir {
		return fn(e, srcAt{})
	}
	d, err := w.r.OpenFile(s.Resolved, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("walking %s: %w", s.Resolved, err)
	}
	defer d.Close()
	if err := fn(e, srcAt{dir: d}); err != nil {
		return err
	}
	w.held = w.held[:0]
	return w.walkDir(s, d, s.Resolved, rel, fn)
}

// heldEntry is a directory that the walk entered although .dockerignore or
// --exclude leaves it out, because patterns may re-include something below
// it. It is reported just before the first entry below it, if any.
type heldEntry struct {
	e  Entry
	at srcAt
}

// emit reports e, after the held directories above it.
func (w *walker) emit(e Entry, at srcAt, fn visitFunc) error {
	for _, h := range w.held {
		if err := fn(h.e, h.at); err != nil {
			return err
		}
	}
	w.held = w.held[:0]
	return fn(e, at)
}

// walkDir reports the contents of the open source directory d, found at
// the symlink-free path dir, whose entries go to rel below the destination.
// Symlinks are not followed.
func (w *walker) walkDir(s *Source, d *os.File, dir, rel string, fn visitFunc) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	// Readdir stats each entry relative to d; an entry removed meanwhile
	// is left out.
	fis, err := d.Readdir(-1)
	if err != nil {
		return fmt.Errorf("walking %s: %w", dir, err)
	}
	slices.SortFunc(fis, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	for _, fi := range fis {
		p := relJoin(dir, fi.Name())
		r := relJoin(rel, fi.Name())
		ign, err := w.ignored(p)
		if err != nil {
			return err
		}
		exc, err := w.excluded(r)
		if err != nil {
			return err
		}
		e := Entry{Source: s, Path: p, Rel: r, Info: fi}
		if !fi.IsDir() {
			if !ign && !exc {
				if err := w.emit(e, srcAt{parent: d}, fn); err != nil {
					return err
				}
			}
			continue
		}
		if ign {
			if skip, err := w.canSkip(p); err != nil {
				return err
			} else if skip {
				continue
			}
		}
		if exc && !w.exclude.Exclusions() {
			continue
		}
		if err := w.walkSubdir(s, d, e, ign || exc, fn); err != nil {
			return err
		}
	}
	return nil
}

// walkSubdir reports the directory entry e of the open directory parent
// and its contents. A held directory is reported only if something below
// it is.
func (w *walker) walkSubdir(s *Source, parent *os.File, e Entry, held bool, fn visitFunc) error {
	sub, err := openAt(parent, e.Info.Name(), os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("walking %s: %w", e.Path, err)
	}
	defer sub.Close()
	at := srcAt{parent: parent, dir: sub}
	mark := len(w.held)
	if held {
		w.held = append(w.held, heldEntry{e, at})
	} else if err := w.emit(e, at, fn); err != nil {
		return err
	}
	if err := w.walkDir(s, sub, e.Path, e.Rel, fn); err != nil {
		return err
	}
	// Still held: nothing below was reported, so neither is e. (emit
	// empties the list, and entries held later sit above mark.)
	if len(w.held) > mark {
		w.held = w.held[:mark]
	}
	return nil
}
