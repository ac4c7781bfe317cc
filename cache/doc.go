// Package cache owns the build cache: versioned, canonical cache keys for
// build steps (Key), the persistent key → Record table that remembers what a
// step produced (Cache: Lookup, Put, List, Delete, Prune, Usage), and
// checksums of build-context sources that avoid re-reading unchanged files
// (Hasher).
//
// The package imports nothing from the rest of the project but leaf
// packages of shared plumbing (internal/atomicfile). A Record holds
// digests and descriptors only; the blobs and snapshots it names live in the
// store, and the caller garbage-collects them after Prune.
//
// # Vocabulary
//
// A step is one Dockerfile instruction in one stage. Its key is the digest of
// a canonical description of everything that can change its result
// (KeyInput): the parent step's key, the platform, the expanded instruction
// text, the build args in scope, the environment, flags, the checksum of
// COPY/ADD sources and RUN --mount descriptions.
//
// # Durability
//
// Every file this package writes (records and context indexes) is written to
// a temporary file in the same directory, fsynced, renamed into place and
// the directory fsynced. A process killed at any instant leaves either the
// old or the new file visible, never a torn one, and processes sharing a
// directory are safe: concurrent writers of the same file both succeed and
// the last rename wins. Leftover temporary files are removed by Open once
// they are old enough that no live writer can own them.
package cache
