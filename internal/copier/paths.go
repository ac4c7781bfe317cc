package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// maxSymlinks bounds symlink resolution, like the kernel's ELOOP limit.
const maxSymlinks = 255

// mkdirFunc creates the directory rel (root-relative, symlink-free) while a
// path is being resolved.
type mkdirFunc func(rel string) error

// resolveIn resolves p inside the root r the way a process chrooted at r
// would: symlinks are followed, an absolute symlink target starts again at
// the root, and ".." never climbs above the root. With followFinal false the
// last component is not followed (a symlink there stays the result). With
// mkdir set, missing directories along the path (the last component too)
// are created through it.
//
// The result is a clean root-relative path ("." for the root) that contains
// no symlink when the call returns. The actual access still goes through r,
// so a race that swaps a component for a symlink can make the access fail
// but never leave the root.
func resolveIn(r *os.Root, p string, followFinal bool, mkdir mkdirFunc) (string, error) {
	rest := splitPath(p)
	var cur []string
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := joinRel(cur, name)
		last := !hasNamed(rest)
		if last && !followFinal && mkdir == nil {
			cur = append(cur, name)
			continue
		}
		fi, err := r.Lstat(next)
		switch {
		case err != nil && isNotExist(err):
			if mkdir == nil {
				// Nothing below exists: keep resolving lexically, so that
				// a later ".." can still bring us back to real paths.
				cur = append(cur, name)
				continue
			}
			if err := mkdir(next); err != nil {
				return "", err
			}
			cur = append(cur, name)
			continue
		case err != nil:
			return "", fmt.Errorf("resolving %s: %w", p, err)
		case fi.Mode()&fs.ModeSymlink != 0 && (!last || followFinal):
			links++
			if links > maxSymlinks {
				return "", fmt.Errorf("resolving %s: %w", p, syscall.ELOOP)
			}
			target, err := r.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("resolving %s: %w", p, err)
			}
			if strings.HasPrefix(target, "/") {
				cur = nil
			}
			rest = append(splitPath(target), rest...)
			continue
		case mkdir != nil && !fi.IsDir() && (!last || followFinal):
			return "", fmt.Errorf("resolving %s: /%s: %w", p, next, syscall.ENOTDIR)
		}
		cur = append(cur, name)
	}
	if len(cur) == 0 {
		return ".", nil
	}
	return strings.Join(cur, "/"), nil
}

// hasNamed reports whether rest still holds a component other than "" or ".".
func hasNamed(rest []string) bool {
	for _, c := range rest {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// splitPath splits a slash-separated path into components without cleaning
// it: "a/../b" must stay three components, as "a" may be a symlink.
func splitPath(p string) []string {
	return strings.Split(p, "/")
}

// joinRel joins resolved components and a name into a root-relative path.
func joinRel(cur []string, name string) string {
	if len(cur) == 0 {
		return name
	}
	return strings.Join(cur, "/") + "/" + name
}

// relJoin joins two root-relative paths, treating "." and "" as the root.
func relJoin(dir, name string) string {
	switch {
	case dir == "." || dir == "":
		if name == "" {
			return "."
		}
		return name
	case name == "" || name == ".":
		return dir
	}
	return dir + "/" + name
}

// relDir returns the parent of a root-relative path ("." for top-level).
func relDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}

// relBase returns the last component of a root-relative path.
func relBase(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// isNotExist reports whether err means that a path does not exist, which
// includes a path component that is not a directory.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
