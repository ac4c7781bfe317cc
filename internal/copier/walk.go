package copier

import (
	"fmt"
	"strings"
)

// entries lists what Copy reads for one source, parents before children.
func (w *walker) entries(s *Source) ([]Entry, error) {
	if s.Heredoc {
		return nil, nil
	}
	var out []Entry
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
					return nil, fmt.Errorf("resolving %s: %w", prefix, err)
				}
				fi, err := w.r.Lstat(p)
				if err != nil {
					return nil, fmt.Errorf("stat %s: %w", p, err)
				}
				out = append(out, Entry{Source: s, Path: p, Rel: prefix, Info: fi})
			}
		}
	} else if s.IsDir {
		rel = "."
	}
	fi, err := w.r.Lstat(s.Resolved)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", s.Path, err)
	}
	out = append(out, Entry{Source: s, Path: s.Resolved, Rel: rel, Info: fi})
	if !s.IsDir {
		return out, nil
	}
	children, err := w.walkDir(s, s.Resolved, rel)
	if err != nil {
		return nil, err
	}
	return append(out, children...), nil
}

// walkDir lists the contents of the symlink-free source directory dir,
// whose entries go to rel below the destination. Symlinks are not
// followed. A directory that .dockerignore or --exclude leaves out is still
// entered when patterns may re-include something below it, and kept only
// if something is.
func (w *walker) walkDir(s *Source, dir, rel string) ([]Entry, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, err
	}
	des, err := readDir(w.r, dir)
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", dir, err)
	}
	var out []Entry
	for _, de := range des {
		p := relJoin(dir, de.Name())
		r := relJoin(rel, de.Name())
		fi, err := w.r.Lstat(p)
		if err != nil {
			if isNotExist(err) {
				continue // removed while walking
			}
			return nil, fmt.Errorf("stat %s: %w", p, err)
		}
		ign, err := w.ignored(p)
		if err != nil {
			return nil, err
		}
		exc, err := w.excluded(r)
		if err != nil {
			return nil, err
		}
		e := Entry{Source: s, Path: p, Rel: r, Info: fi}
		if !fi.IsDir() {
			if !ign && !exc {
				out = append(out, e)
			}
			continue
		}
		if ign {
			if skip, err := w.canSkip(p); err != nil {
				return nil, err
			} else if skip {
				continue
			}
		}
		if exc && !w.exclude.Exclusions() {
			continue
		}
		children, err := w.walkDir(s, p, r)
		if err != nil {
			return nil, err
		}
		if (ign || exc) && len(children) == 0 {
			continue
		}
		out = append(out, e)
		out = append(out, children...)
	}
	return out, nil
}
