package layer

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	trustedOverlay = "trusted.overlay."
	userOverlay    = "user.overlay."
)

// overlayAttrs is what the overlay-private xattrs of an upperdir entry say.
type overlayAttrs struct {
	opaque   bool // opaque=y: the directory hides the lowers
	whiteout bool // xattr whiteout (a regular file standing for one)
	redirect bool // redirect_dir was on: the upper is not a diff by itself
	metacopy bool // metacopy was on: the data lives in a lower
}

// isOverlayXattr reports whether name belongs to overlayfs itself and so
// must neither be copied into a layer nor taken from one.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, trustedOverlay) || strings.HasPrefix(name, userOverlay)
}

// listXattrs returns the xattr names of path, without following symlinks.
func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

// getXattr returns the value of xattr name on path, without following
// symlinks.
func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// readXattrs returns the xattrs of path that belong in a layer, and what its
// overlay-private xattrs say.
func readXattrs(path string) (map[string][]byte, overlayAttrs, error) {
	var ov overlayAttrs
	names, err := listXattrs(path)
	if err != nil || len(names) == 0 {
		return nil, ov, err
	}
	var out map[string][]byte
	for _, name := range names {
		if isOverlayXattr(name) {
			key := strings.TrimPrefix(strings.TrimPrefix(name, trustedOverlay), userOverlay)
			switch key {
			case "opaque":
				v, err := getXattr(path, name)
				if err != nil && !errors.Is(err, unix.ENODATA) {
					return nil, ov, err
				}
				ov.opaque = ov.opaque || string(v) == "y"
			case "whiteout":
				ov.whiteout = true
			case "redirect":
				ov.redirect = true
			case "metacopy":
				ov.metacopy = true
			}
			continue
		}
		v, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, ov, err
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[name] = v
	}
	return out, ov, nil
}

// isOpaqueDir reports whether the directory at path carries an overlay
// opaque marker.
func isOpaqueDir(path string) (bool, error) {
	for _, name := range []string{trustedOverlay + "opaque", userOverlay + "opaque"} {
		v, err := getXattr(path, name)
		if err == nil && string(v) == "y" {
			return true, nil
		}
		if err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return false, err
		}
	}
	return false, nil
}
