// Package store owns builder's on-disk state: content-addressed blobs with
// atomic ingest, the image and tag index, and unpacked layer snapshots.
//
// Layout under the root directory:
//
//	blobs/sha256/<hex>   committed blobs (layers, configs, manifests)
//	ingest/<id>/         blobs being written; each holds a lock while its writer lives
//	snapshots/<hex>      committed snapshots, named by chain ID, in overlay format
//	active/<id>/         active snapshots: upper/ and work/ of a running step or container
//	index.json           images, tags and the diffID → blob map, replaced atomically
//	index.lock           serializes updates of index.json across processes
//	gc.lock              shared by builds, exclusive for garbage collection
//
// Every write becomes visible by rename after fsync, so a process killed at any
// instant leaves no half-written blob or index. Open removes what such a
// process left behind: ingests and ephemeral active snapshots whose lock is
// no longer held.
package store
