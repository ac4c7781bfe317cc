package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// DockerignoreName is the ignore file read from the root of the context.
const DockerignoreName = ".dockerignore"

// ReadIgnore returns the .dockerignore patterns that apply to a build of
// contextDir with the Dockerfile at dockerfilePath (the path the caller
// opened; "" or "-" for a Dockerfile that is not a file). Following
// BuildKit, "<dockerfilePath>.dockerignore" next to the Dockerfile wins when
// it exists; otherwise ".dockerignore" at the root of the context is used.
// No ignore file yields no patterns. Patterns are normalized like Docker's
// (comments dropped, paths cleaned, leading "/" removed).
//
// The patterns only filter what COPY and ADD see of the context: the
// Dockerfile is read by the caller whether it is ignored or not, and, as in
// BuildKit, an ignored Dockerfile or .dockerignore cannot be copied.
func ReadIgnore(contextDir, dockerfilePath string) ([]string, error) {
	var candidates []string
	if dockerfilePath != "" && dockerfilePath != "-" {
		candidates = append(candidates, dockerfilePath+DockerignoreName)
	}
	candidates = append(candidates, filepath.Join(contextDir, DockerignoreName))
	for _, name := range candidates {
		dt, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ignore file: %w", err)
		}
		patterns, err := ignorefile.ReadAll(bytes.NewReader(dt))
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		return patterns, nil
	}
	return nil, nil
}

// Ignore decides which context paths .dockerignore patterns exclude. A nil
// *Ignore excludes nothing. It is safe for concurrent use.
type Ignore struct {
	mu       sync.Mutex
	pm       *patternmatcher.PatternMatcher
	patterns []string
}

// NewIgnore compiles patterns (as returned by ReadIgnore; raw lines are
// normalized the same way). "!" lines re-include paths excluded by earlier
// lines; the last matching line wins.
func NewIgnore(patterns []string) (*Ignore, error) {
	var norm []string
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		invert := strings.HasPrefix(p, "!")
		if invert {
			p = strings.TrimSpace(p[1:])
		}
		if p != "" {
			p = path.Clean(filepath.ToSlash(p))
			if len(p) > 1 && p[0] == '/' {
				p = p[1:]
			}
		}
		if invert {
			p = "!" + p
		}
		norm = append(norm, p)
	}
	pm, err := patternmatcher.New(norm)
	if err != nil {
		return nil, fmt.Errorf("compiling .dockerignore patterns: %w", err)
	}
	return &Ignore{pm: pm, patterns: norm}, nil
}

// Patterns returns the normalized patterns, for cache keys.
func (ig *Ignore) Patterns() []string {
	if ig == nil {
		return nil
	}
	return append([]string(nil), ig.patterns...)
}

// Match reports whether relPath, a slash-separated path relative to the
// context root, is excluded. A path is excluded when it or one of its parent
// directories matches (patternmatcher's MatchesOrParentMatches), unless a
// later "!" pattern re-includes it. The context root itself is never
// excluded.
func (ig *Ignore) Match(relPath string) (bool, error) {
	if ig == nil || len(ig.patterns) == 0 {
		return false, nil
	}
	p := cleanRel(relPath)
	if p == "." {
		return false, nil
	}
	ig.mu.Lock()
	defer ig.mu.Unlock()
	m, err := ig.pm.MatchesOrParentMatches(p)
	if err != nil {
		return false, fmt.Errorf("matching %s against .dockerignore: %w", p, err)
	}
	return m, nil
}

// CanSkipDir reports whether the directory relDir and everything below it
// is excluded, so a walk need not descend into it. That holds when relDir is
// excluded and no "!" pattern could re-include anything inside it (a
// conservative check: patterns with "**" are assumed to reach anywhere).
func (ig *Ignore) CanSkipDir(relDir string) (bool, error) {
	excluded, err := ig.Match(relDir)
	if err != nil || !excluded {
		return false, err
	}
	if !ig.pm.Exclusions() {
		return true, nil
	}
	dirs := strings.Split(cleanRel(relDir), "/")
	for _, p := range ig.pm.Patterns() {
		if p.Exclusion() && mayReach(strings.Split(filepath.ToSlash(p.String()), "/"), dirs) {
			return false, nil
		}
	}
	return true, nil
}

// mayReach reports whether a pattern split into components could match the
// directory dirs, one of its ancestors or anything inside it.
func mayReach(pattern, dirs []string) bool {
	for i, d := range dirs {
		if i >= len(pattern) {
			return true // matches an ancestor of the directory
		}
		if strings.Contains(pattern[i], "**") {
			return true
		}
		if ok, err := path.Match(pattern[i], d); err != nil || !ok {
			return err != nil
		}
	}
	return true
}

// cleanRel cleans a context-relative path into patternmatcher's form.
func cleanRel(p string) string {
	p = path.Clean("/" + filepath.ToSlash(p))
	if p == "/" {
		return "."
	}
	return p[1:]
}
