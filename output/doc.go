// Package output moves images between the local store and archives: it
// writes OCI image-layout tars (WriteOCIArchive) and docker-archives as
// produced by docker save (WriteDockerArchive), and reads either kind back
// (Load).
//
// Every writer streams blobs straight from the store into the tar, verifying
// each blob's digest as it is read; nothing larger than a manifest or config
// is held in memory, and a blob shared by several images is written once.
// The output is reproducible: entries are ordered and carry fixed times.
//
// Load is the inverse. It reads an archive once, in any entry order, plain or
// compressed, ingests every candidate blob into uncommitted store ingests as
// it streams past, verifies digests and diffIDs, and only then commits the
// blobs the archive's images reference. It never touches the store's index:
// the caller records the returned images, tags and layers in one Update.
package output
