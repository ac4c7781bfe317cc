package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
)

// Resolve returns the top-level sources a COPY or ADD with these options
// would read from srcRoot, after wildcard expansion, .dockerignore and
// --exclude, without copying anything. Directories are reported as one
// Source; Walk lists everything below them. Paths are root-relative and
// slash-separated, in the order Copy processes them (sources in the order
// written, wildcard matches sorted).
func Resolve(ctx context.Context, srcRoot string, o Options) ([]Source, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(srcRoot)
	if err != nil {
		return nil, fmt.Errorf("opening source root: %w", err)
	}
	defer r.Close()
	w, err := newWalker(ctx, r, &o)
	if err != nil {
		return nil, err
	}
	srcs, err := w.sources()
	if err != nil {
		return nil, err
	}
	out := make([]Source, len(srcs))
	for i, s := range srcs {
		out[i] = *s
	}
	return out, nil
}

// Walk calls fn for every filesystem object of srcRoot that Copy would read
// with these options, in the order Copy reads them: each source's directory
// before its contents, names sorted. Heredoc sources read nothing and are
// not visited. It is what a cache key over the copied content should hash.
func Walk(ctx context.Context, srcRoot string, o Options, fn func(Entry) error) error {
	if err := o.validate(); err != nil {
		return err
	}
	r, err := os.OpenRoot(srcRoot)
	if err != nil {
		return fmt.Errorf("opening source root: %w", err)
	}
	defer r.Close()
	w, err := newWalker(ctx, r, &o)
	if err != nil {
		return err
	}
	srcs, err := w.sources()
	if err != nil {
		return err
	}
	for _, s := range srcs {
		if err := w.walk(s, func(e Entry, _ srcAt) error { return fn(e) }); err != nil {
			return err
		}
	}
	return nil
}

// walker expands and walks sources inside the source root.
type walker struct {
	ctx     context.Context
	r       *os.Root
	o       *Options
	exclude *patternmatcher.PatternMatcher
	held    []heldEntry // see walkSubdir
}

func newWalker(ctx context.Context, r *os.Root, o *Options) (*walker, error) {
	w := &walker{ctx: ctx, r: r, o: o}
	if len(o.Exclude) > 0 {
		pm, err := patternmatcher.New(o.Exclude)
		if err != nil {
			return nil, fmt.Errorf("parsing --exclude patterns: %w", err)
		}
		w.exclude = pm
	}
	return w, nil
}

// sources expands Options.Sources and the heredocs into top-level sources.
func (w *walker) sources() ([]*Source, error) {
	var out []*Source
	matched := false
	used := map[string]bool{}
	for _, raw := range w.o.Sources {
		if h, ok := w.o.heredoc(raw); ok {
			used[raw] = true
			matched = true
			out = append(out, &Source{Path: h.Name, Resolved: h.Name, DestName: h.Name, Heredoc: true, Data: h.Data})
			continue
		}
		srcs, n, err := w.expand(raw)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			matched = true
		}
		out = append(out, srcs...)
	}
	for _, h := range w.o.Heredocs {
		if !used[h.Name] {
			matched = true
			out = append(out, &Source{Path: h.Name, Resolved: h.Name, DestName: h.Name, Heredoc: true, Data: h.Data})
		}
	}
	if !matched {
		return nil, fmt.Errorf("copying %s: no source files were specified: %w", strings.Join(w.o.Sources, " "), ErrNotFound)
	}
	return out, nil
}

// expand turns one source as written into sources; n counts the paths that
// matched before --exclude removed any.
func (w *walker) expand(raw string) ([]*Source, int, error) {
	pivot, pattern := ".", raw
	if w.o.Parents {
		if p, rest, ok := strings.Cut(raw, "/./"); ok {
			pivot, pattern = cleanSource(p), rest
		}
		pattern = cleanSource(path.Join(pivot, cleanSource(pattern)))
	} else {
		pattern = cleanSource(pattern)
	}
	wildcard := hasMeta(pattern)
	var matches []string
	if wildcard {
		if err := w.glob(".", strings.Split(pattern, "/"), &matches); err != nil {
			return nil, 0, fmt.Errorf("expanding %s: %w", raw, err)
		}
		slices.Sort(matches)
		matches = slices.Compact(matches)
	} else {
		matches = []string{pattern}
	}
	var pivotResolved string
	if w.o.Parents {
		var err error
		if pivotResolved, err = resolveIn(w.r, pivot, true, nil); err != nil {
			return nil, 0, fmt.Errorf("resolving %s: %w", raw, err)
		}
	}
	var out []*Source
	n := 0
	for _, m := range matches {
		if err := w.ctx.Err(); err != nil {
			return nil, 0, err
		}
		s, err := w.source(m, wildcard)
		if err != nil {
			return nil, 0, fmt.Errorf("copying %s: %w", raw, err)
		}
		if s == nil {
			continue // a wildcard match that is ignored or gone
		}
		n++
		if w.o.Parents {
			rel := relativeTo(m, pivot)
			if m == pivot {
				rel = "."
				if !s.IsDir {
					rel = relBase(m)
				}
			}
			s.DestName, s.base = rel, pivotResolved
		}
		if wildcard && !s.IsDir {
			excludeRel := s.DestName
			if !w.o.Parents {
				excludeRel = relativeTo(m, staticPrefix(pattern))
			}
			if ex, err := w.excluded(m, excludeRel); err != nil {
				return nil, 0, err
			} else if ex {
				continue
			}
		}
		out = append(out, s)
	}
	return out, n, nil
}

// source stats one match. A plain (non-wildcard) path that is missing or
// ignored is an error; a wildcard match that is gives nil.
func (w *walker) source(m string, wildcard bool) (*Source, error) {
	notFound := func(err error) (*Source, error) {
		if wildcard {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: stat %s: %w", ErrNotFound, m, err)
	}
	resolved, err := resolveIn(w.r, m, true, nil)
	if err != nil {
		if isNotExist(err) {
			return notFound(err)
		}
		return nil, err
	}
	fi, err := w.r.Lstat(resolved)
	if err != nil {
		if isNotExist(err) {
			return notFound(fs.ErrNotExist)
		}
		return nil, fmt.Errorf("stat %s: %w", m, err)
	}
	for _, p := range []string{m, resolved} {
		ign, err := w.ignoredTop(p, fi.IsDir())
		if err != nil {
			return nil, err
		}
		if ign {
			return notFound(fs.ErrNotExist)
		}
	}
	s := &Source{Path: m, Resolved: resolved, IsDir: fi.IsDir(), wildcard: wildcard}
	if s.IsDir {
		s.DestName, s.base = ".", resolved
	} else {
		s.DestName, s.base = relBase(m), relDir(resolved)
		if m == "." {
			s.DestName = relBase(resolved)
		}
	}
	if !w.o.Parents && w.o.unpack() && fi.Mode().IsRegular() {
		if s.Archive, err = isArchive(w.ctx, w.r, resolved); err != nil {
			return nil, fmt.Errorf("inspecting %s: %w", m, err)
		}
	}
	return s, nil
}

// ignoredTop reports whether a top-level source is excluded by
// .dockerignore. An ignored directory still counts as present when
// "!" patterns may re-include something inside it.
func (w *walker) ignoredTop(p string, isDir bool) (bool, error) {
	ign, err := w.ignored(p)
	if err != nil || !ign {
		return false, err
	}
	if !isDir {
		return true, nil
	}
	return w.canSkip(p)
}

// glob matches pattern components below dir (a path as listed, not
// resolved), appending matches to out.
func (w *walker) glob(dir string, parts []string, out *[]string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if len(parts) == 0 {
		*out = append(*out, dir)
		return nil
	}
	part := parts[0]
	if !hasMeta(part) {
		return w.glob(relJoin(dir, unescape(part)), parts[1:], out)
	}
	names, err := w.list(dir)
	if err != nil || names == nil {
		return err
	}
	if part == "**" && w.o.Parents {
		if err := w.glob(dir, parts[1:], out); err != nil {
			return err
		}
		for _, n := range names {
			if n.isDir {
				if err := w.glob(relJoin(dir, n.name), parts, out); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		ok, err := path.Match(part, n.name)
		if err != nil {
			return fmt.Errorf("matching %q: %w", part, err)
		}
		if ok {
			if err := w.glob(relJoin(dir, n.name), parts[1:], out); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirName is a directory entry seen while globbing.
type dirName struct {
	name  string
	isDir bool // after following a symlink
}

// list returns the sorted entries of dir that are not pruned by
// .dockerignore, or nil when dir is not a directory.
func (w *walker) list(dir string) ([]dirName, error) {
	resolved, err := resolveIn(w.r, dir, true, nil)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	des, err := readDir(w.r, resolved)
	if err != nil {
		if isNotExist(err) || errors.Is(err, errNotDir) {
			return nil, nil
		}
		return nil, err
	}
	var out []dirName
	for _, de := range des {
		p := relJoin(resolved, de.Name())
		isDir := de.IsDir()
		if de.Type()&fs.ModeSymlink != 0 {
			if t, err := resolveIn(w.r, p, true, nil); err == nil {
				if fi, err := w.r.Lstat(t); err == nil {
					isDir = fi.IsDir()
				}
			}
		}
		if ign, err := w.ignoredTop(p, isDir); err != nil {
			return nil, err
		} else if ign {
			continue
		}
		out = append(out, dirName{name: de.Name(), isDir: isDir})
	}
	return out, nil
}

// errNotDir is returned by readDir for something that is not a directory.
var errNotDir = errors.New("not a directory")

// readDir lists a symlink-free directory of r, sorted by name.
func readDir(r *os.Root, dir string) ([]fs.DirEntry, error) {
	fi, err := r.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errNotDir
	}
	f, err := r.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return des, nil
}

// ignored applies the .dockerignore callback to a root-relative path.
func (w *walker) ignored(p string) (bool, error) {
	if w.o.Ignore == nil || p == "." {
		return false, nil
	}
	ign, err := w.o.Ignore(p)
	if err != nil {
		return false, fmt.Errorf("matching %s against .dockerignore: %w", p, err)
	}
	return ign, nil
}

// canSkip reports whether an ignored directory can be pruned.
func (w *walker) canSkip(p string) (bool, error) {
	if w.o.CanSkipDir == nil {
		return false, nil
	}
	skip, err := w.o.CanSkipDir(p)
	if err != nil {
		return false, fmt.Errorf("matching %s against .dockerignore: %w", p, err)
	}
	return skip, nil
}

// excluded applies --exclude to a path; it tries both the root-relative
// path and the path relative to the source.
func (w *walker) excluded(paths ...string) (bool, error) {
	if w.exclude == nil {
		return false, nil
	}
	for _, p := range paths {
		if p == "" || p == "." {
			continue
		}
		ok, err := w.exclude.MatchesOrParentMatches(p)
		if err != nil {
			return false, fmt.Errorf("matching %s against --exclude: %w", p, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// hasMeta reports whether a path holds an unescaped wildcard.
func hasMeta(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[':
			return true
		case '\\':
			i++
		}
	}
	return false
}

// unescape removes the backslash escapes of a component without wildcards.
func unescape(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// staticPrefix returns the directory part of a pattern before its first
// wildcard component.
func staticPrefix(pattern string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		if hasMeta(p) {
			if i == 0 {
				return "."
			}
			return strings.Join(parts[:i], "/")
		}
	}
	return relDir(pattern)
}

// relativeTo returns p relative to dir when p is below it.
func relativeTo(p, dir string) string {
	if dir == "." || dir == "" {
		return p
	}
	if rest, ok := strings.CutPrefix(p, dir+"/"); ok {
		return rest
	}
	return p
}
