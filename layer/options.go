package layer

import (
	"errors"
	"time"
)

// DiffOptions configures Diff and DiffDirs.
type DiffOptions struct {
	// Lowers are the lower layer directories of the overlay, topmost first,
	// as they are on disk in overlay format (see OverlayFormat). Diff uses
	// them only to decide whether a whiteout or an opaque marker hides
	// anything; an empty list means the upperdir is the first layer, so no
	// whiteout or opaque marker is emitted. DiffDirs ignores Lowers.
	Lowers []string
	// SourceDateEpoch, when non-nil, clamps every mtime in the layer to at
	// most this time (reproducible builds). Nil keeps mtimes as they are.
	SourceDateEpoch *time.Time
}

// Format says how whiteouts are represented on disk when applying a layer.
type Format int

const (
	// DirFormat applies whiteouts by deleting the paths they name, so that
	// applying every layer onto one directory yields a flattened rootfs.
	DirFormat Format = iota
	// OverlayFormat keeps whiteouts on disk the way overlayfs does: a
	// whiteout becomes a character device 0:0 and an opaque marker becomes
	// the trusted.overlay.opaque=y xattr (user.overlay.opaque=y with
	// ApplyOptions.UserXattr), so the directory is usable as a lowerdir.
	OverlayFormat
)

// String returns "dir" or "overlay".
func (f Format) String() string {
	switch f {
	case DirFormat:
		return "dir"
	case OverlayFormat:
		return "overlay"
	}
	return "Format(?)"
}

// ApplyOptions configures Apply. The zero value applies as root in
// DirFormat.
type ApplyOptions struct {
	// Format selects how whiteouts are laid out; default DirFormat.
	Format Format
	// NoChown skips changing ownership (for unprivileged callers): files
	// keep the caller's uid/gid. It also makes failures to create device
	// nodes or to set privileged xattrs (trusted.*, security.*) non-fatal,
	// since an unprivileged process cannot do either.
	NoChown bool
	// UserXattr writes opaque markers as user.overlay.opaque instead of
	// trusted.overlay.opaque, for overlay mounts with the userxattr option
	// (rootless). Only meaningful with OverlayFormat.
	UserXattr bool
}

// ErrUnsupported is returned by the filesystem operations on systems other
// than Linux.
var ErrUnsupported = errors.New("layer: filesystem diff and apply are only supported on linux")
