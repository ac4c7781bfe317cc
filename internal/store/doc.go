// Package store owns builder's on-disk state: content-addressed blobs with
// atomic ingest, the image and tag index with the operations that change it
// (PutImage, Tag, Remove, Prune, …), unpacked layer snapshots, garbage
// collection, and the directories of the build cache and cache mounts.
//
// Layout under the root directory:
//
//	blobs/sha256/<hex>        committed blobs (layers, configs, manifests, indexes), read-only
//	recipes/sha256/<hex>      how to regenerate a built layer's uncompressed blob from its snapshot
//	ingest/<id>/data          a blob being written
//	ingest/<id>.lock          held by the ingest's writer while it lives
//	snapshots/<hex>/          committed snapshots, named by chain ID, in overlay format
//	snapshots/new-*/          a snapshot being deleted
//	active/<name>/upper/      an active snapshot's overlay upperdir,
//	active/<name>/work/       its overlay workdir,
//	active/<name>/persistent  and, for a persistent one, its marker: the parent layers as JSON
//	active/<name>.lock        held while an ephemeral (e-<id>) snapshot's process lives
//	active/<id>/              a container's filesystem: the persistent snapshot named by its ID
//	containers/<id>/state/    the runtime's state of the container's processes (pid, status, logs)
//	containers/<id>/merged/   its merged root, mounted on the host while a user works on it
//	containers/<id>.lock      held while the container is being created or removed
//	containers.json           the container table (ID, name, image, config), replaced atomically under index.lock
//	tmp/<prefix><id>/         temporary work directories (TempDir) on the store's filesystem
//	tmp/<prefix><id>.lock     held while the temporary directory's process lives
//	cache/records/<alg>/<hex>.json  the build cache: one record per cache key
//	cache/context/            the build cache's per-context checksum indexes
//	mounts/cache/<hex>/       the directory of a RUN --mount=type=cache, named by the sha256 of its id
//	mounts/cache/<hex>.lock   held by the step using it with sharing=locked
//	index.json                images, tags and the diffID → blob map, replaced atomically
//	.tmp-index.json-*         index.json being written, under index.lock
//	index.lock                serializes updates of index.json across processes
//	gc.lock                   shared by builds (Lease), exclusive for garbage collection (Collect)
//
// Every write becomes visible by rename after fsync, so a process killed at any
// instant leaves no half-written blob, snapshot or index. Open removes what
// such a process left behind: ingests, temporary directories and ephemeral
// active snapshots whose lock is no longer held, snapshots/new-*, and
// index.json's temporary files, and temporary files under recipes/ (named
// .tmp-*) older than an hour. Those under cache/ are the cache package's to
// remove: cache.Open and cache.OpenHasher do, when the builder opens them.
//
// A container exists once its record is in containers.json. CreateContainer
// makes its directory and snapshot first and writes the record last, and
// RemoveContainer deletes the record first; so whatever a killed process
// leaves of a container is without a record, and Open removes it unless
// the container's lock is held. The table is its own file, not a key of
// index.json, so that index.json keeps its format; it changes only under
// index.lock, so an image removal or prune sees every container of the
// image it deletes (Remove needs force for one, Prune spares it).
package store
