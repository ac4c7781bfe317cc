// Package layer owns the OCI layer format: it turns an overlayfs upperdir (or
// the difference of two plain directory trees) into a deterministic OCI layer
// tar, applies such a tar safely onto a directory, and compresses and hashes
// layer streams in one pass.
//
// The vocabulary follows the rest of builder: the diffID is the sha256 of the
// uncompressed tar, the digest is the sha256 of the stored (possibly
// compressed) blob, and a chain ID identifies a stack of layers (see ChainID).
//
// Diff walks only the upperdir, so its cost is proportional to the changes of
// a step, not to the size of the root filesystem. Whiteouts (character
// devices 0:0) become ".wh.NAME" entries and opaque directories
// (trusted.overlay.opaque=y or user.overlay.opaque=y) become
// "DIR/.wh..wh..opq" entries, each emitted only when the lower layers hold
// something to hide. DiffDirs compares two plain trees instead.
//
// Apply resolves every path inside the target directory with
// filepath-securejoin, never writes through an existing symlink or hardlink,
// and lays whiteouts out either as deletions (DirFormat) or in the overlayfs
// on-disk format (OverlayFormat), so that the result can serve as a lowerdir.
//
// Validate checks a layer tar as it streams past, refusing what Apply would
// refuse, so that importers can reject an unsafe layer before storing it.
//
// Flatten writes the root filesystem a stack of layers makes as one tar,
// straight from the layer tars: whiteouts, opaque directories and hard
// links resolved in two streaming passes, no file created, so it needs no
// privilege whatever owners the layers hold.
//
// Write streams a tar through a compressor into a BlobWriter while computing
// diffID, digest and size, without holding the layer in memory.
//
// The filesystem parts (Diff, DiffDirs, Apply) are Linux-only; on other
// systems they return ErrUnsupported.
package layer
