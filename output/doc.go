// Package output is the home of every place an image can come from or go to
// outside the local store: it writes images to archives, OCI image layouts
// and root filesystems, and reads archives, layouts and single layer blobs
// back into the store.
//
// Sinks are Exporters. Each reads the images it is given, by manifest
// descriptor, through a Provider (a *store.Store, or a *Layout), verifying
// every blob as it is read, and streams layers rather than holding them:
//
//   - OCIArchive(w): an OCI image-layout tar (oci-layout, index.json,
//     blobs/sha256/<hex>), reproducible byte for byte.
//   - DockerArchive(w): a docker-archive as docker save writes it, which is
//     also an OCI image layout.
//   - OCILayout(dir, opts...): the same blobs and index entries as
//     OCIArchive, merged into a layout directory; blobs appear atomically and
//     index.json is replaced last (WithReplace drops chosen old entries).
//   - RootfsDir(dir, opts...): one image's layers applied, whiteouts
//     included, in a fresh directory next to dir, whose entries then move
//     into dir (empty or missing, or merged into with WithForce), so that
//     nothing dir held is ever deleted.
//   - RootfsTar(w): that flattened root filesystem as a tar, streamed from
//     the layers (layer.Flatten): nothing unpacked, no privilege needed.
//
// Sources are importers. None of them touches the store's index; the caller
// records the returned images (store.PutImage) or layers (store.RecordLayers):
//
//   - Load(ctx, st, r): a docker-archive or OCI archive, plain or compressed.
//     It reads the tar once, in any entry order, ingesting every candidate
//     blob into uncommitted store ingests as it streams past, verifies
//     digests and diffIDs, checks every layer's entries (layer.Validate) in
//     the same pass, and only then commits the blobs the archive's images
//     reference.
//   - LoadLayout(ctx, st, dir): an OCI layout directory, resolved and checked
//     exactly as an OCI archive, every file opened inside dir.
//   - ImportLayer(ctx, st, p, desc, diffID): one layer blob from a Provider,
//     its size, digest and diffID verified in the pass that ingests it.
//
// Layout is an OCI image layout directory in its own right: a verified blob
// Provider (Open, ReadBlob) and a crash-safe writer (WriteBlob, WriteIndex)
// for code that keeps other content, such as the build cache, in a layout.
package output
