package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ErrInvalidEntry is wrapped by the errors of Apply and Validate for tar
// entries they refuse: names or hardlink targets escaping the root, misused
// whiteout names, unsupported entry types, and (Validate only) hardlinks to
// nothing earlier in the layer.
var ErrInvalidEntry = errors.New("invalid layer entry")

// ErrNotTar is wrapped by the error of Validate for input whose first
// header is no tar header (text, random bytes, a truncated file). An empty
// archive, its end marker alone, is a valid layer with no entries.
var ErrNotTar = errors.New("not a tar archive")

const (
	opaqueMarker   = ".wh..wh..opq"
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes AUFS bookkeeping entries (.wh..wh.plnk, ...).
	whiteoutMeta = ".wh..wh."
	// paxXattr prefixes the PAX records that carry extended attributes.
	paxXattr = "SCHILY.xattr."
)

// Validate reads the uncompressed layer tar r and returns an error wrapping
// ErrInvalidEntry, naming the entry, for the first entry Apply would refuse
// (see Apply), or for a hardlink whose target is not an earlier file, link
// or node of the same layer: a layer unpacked on its own, as a snapshot is,
// could not create it. Device nodes are valid, as in Docker's layers. A
// malformed tar is an error too. Validate keeps only the names of the
// layer's entries in memory and reads r to EOF when the layer is valid, so
// that a hashing or copying reader upstream sees every byte; r is never
// seeked.
func Validate(r io.Reader) error {
	tr := tar.NewReader(struct{ io.Reader }{r}) // hides a Seeker: every byte is read
	// files holds the entries a hardlink may target: true for a
	// non-directory.
	files := map[string]bool{}
	for first := true; ; first = false {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && first {
			return fmt.Errorf("%w: %w", ErrNotTar, err)
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		e, err := checkEntry(hdr)
		if err == nil && e.act == actEntry && hdr.Typeflag == tar.TypeLink {
			var target string
			if target, err = linkTarget(e.name, hdr.Linkname); err == nil && !files[target] {
				err = fmt.Errorf("%w: hardlink to %q, which is not an earlier file of the layer", ErrInvalidEntry, hdr.Linkname)
			}
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if e.act == actEntry {
			files[e.name] = hdr.Typeflag != tar.TypeDir
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("reading tar: %w", err)
	}
	return nil
}

// entryAction is what an entry of a layer does to the tree.
type entryAction int

const (
	// actSkip: nothing (a global header, AUFS bookkeeping).
	actSkip entryAction = iota
	// actOpaque: parent/.wh..wh..opq hides what lies below parent.
	actOpaque
	// actWhiteout: parent/.wh.base deletes base below.
	actWhiteout
	// actRoot: "./" carries the root's metadata.
	actRoot
	// actEntry: a file, directory, link or node at name.
	actEntry
)

// checkedEntry is a tar entry as Apply and Validate see it.
type checkedEntry struct {
	act  entryAction
	name string // clean and relative; "" is the root
	// parent and base split name; for actWhiteout base is the name the
	// whiteout deletes.
	parent, base string
}

// checkEntry cleans and classifies hdr, refusing with ErrInvalidEntry what
// no layer may hold. Hardlink targets are checked by linkTarget.
func checkEntry(hdr *tar.Header) (checkedEntry, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return checkedEntry{}, err
	}
	e := checkedEntry{act: actEntry, name: name, parent: parentOf(name), base: name[strings.LastIndexByte(name, '/')+1:]}
	for _, c := range strings.Split(e.parent, "/") {
		if strings.HasPrefix(c, whiteoutMeta) {
			return checkedEntry{act: actSkip}, nil // inside AUFS bookkeeping such as .wh..wh.plnk
		}
		if strings.HasPrefix(c, whiteoutPrefix) {
			return checkedEntry{}, fmt.Errorf("%w: whiteout prefix %q in a directory component", ErrInvalidEntry, c)
		}
	}
	switch {
	case e.base == opaqueMarker:
		e.act = actOpaque
		return e, nil
	case strings.HasPrefix(e.base, whiteoutMeta):
		return checkedEntry{act: actSkip}, nil // AUFS bookkeeping, meaningless here
	case strings.HasPrefix(e.base, whiteoutPrefix):
		e.act, e.base = actWhiteout, strings.TrimPrefix(e.base, whiteoutPrefix)
		if e.base == "" || e.base == "." || e.base == ".." {
			return checkedEntry{}, fmt.Errorf("%w: whiteout without a name", ErrInvalidEntry)
		}
		return e, nil
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return checkedEntry{act: actSkip}, nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, //nolint:staticcheck // old layers still use TypeRegA
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return checkedEntry{}, fmt.Errorf("%w: unsupported entry type %q", ErrInvalidEntry, hdr.Typeflag)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return checkedEntry{}, fmt.Errorf("%w: the root must be a directory", ErrInvalidEntry)
		}
		e.act = actRoot
	}
	return e, nil
}

// linkTarget cleans the target of the hardlink name, refusing one that
// climbs out of the root or names the root or the link itself.
func linkTarget(name, linkname string) (string, error) {
	target, err := cleanName(linkname)
	if err != nil {
		return "", fmt.Errorf("hardlink target %q: %w", linkname, err)
	}
	if target == "" || target == name {
		return "", fmt.Errorf("%w: hardlink to %q", ErrInvalidEntry, linkname)
	}
	return target, nil
}

// cleanName turns a tar name into a path relative to the root ("" is the
// root itself), refusing names that climb out.
func cleanName(name string) (string, error) {
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: path escapes the root", ErrInvalidEntry)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

func parentOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}
