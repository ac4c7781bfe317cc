// Package copier owns the filesystem semantics of the Dockerfile COPY and ADD
// instructions between two plain directories: a source root (the build
// context, or the root filesystem of another stage) and a destination root
// (the mounted root filesystem of the step being built).
//
// It mounts nothing and starts no process. Every access goes through an
// os.Root opened on one of the two roots, or through a directory opened
// with one (see below), and paths are resolved the way a chroot would
// resolve them: an absolute symlink target is relative to its root and ".."
// never climbs above it. That gives BuildKit's behaviour where
// it matters:
//
//   - a destination path through a symlink (/lib64 -> /usr/lib64) is copied
//     through, and the symlink is never replaced by a directory (moby#41035);
//   - a source symlink named on the command line is followed inside the
//     source root; symlinks found inside copied directories are copied as
//     symlinks; nothing outside either root is ever read or written;
//   - ".." and a leading "/" in source paths are cleaned away, as the
//     Dockerfile reference documents.
//
// A directory source is copied with the directories being walked held
// open in both roots: each entry below is reached by its name relative to
// the open directory that holds it, never following a symlink there, so a
// file costs the same few system calls whatever its depth. Only what must
// follow a symlink (Dest, a destination directory that is a symlink) is
// resolved from the root again.
//
// Resolve and Walk report exactly what Copy would read, without writing
// anything, so that a caller can compute a cache key before it decides to
// copy: a cache hit never pays for the copy. Copy is built on the same
// walk, so the two cannot disagree.
//
// ADD extracts local tar archives (plain, gzip, bzip2, xz or zstd, detected
// by content) and refuses URLs and Git sources: builds are offline.
package copier
