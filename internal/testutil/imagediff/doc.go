// Package imagediff lists the layers of an image archive entry by entry
// (path, type, mode, owner, size, mtime, content digest, link target, PAX
// records and xattrs) and compares two images that way, as diffoci does, so
// that a test comparing image digests can say which file, in which layer,
// made them differ. It is for tests only.
package imagediff
