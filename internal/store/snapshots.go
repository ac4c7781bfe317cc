package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/builder-project/builder/internal/atomicfile"
)

// Snapshots manages unpacked layers and the overlay directories stacked on
// them. It hands out mount data (directories), never mounts: the caller
// mounts the overlay, typically inside its own mount namespace.
//
// Vocabulary:
//   - diffID: the digest of a layer's uncompressed tar.
//   - chain ID: the identity of a stack of layers, base first
//     (identity.ChainID of their diffIDs). It is the key of a committed
//     snapshot, snapshots/<chain ID>, which holds only the top layer's own
//     changes, in overlay format (whiteouts are 0:0 character devices,
//     opaque directories carry trusted.overlay.opaque=y).
//   - parent: the stack of layers ([]Layer, base first) an active snapshot
//     sits on. Its lowers are the committed snapshots of every prefix of the
//     parent, topmost first: the overlay lowerdirs.
//   - name: what Prepare calls an active snapshot. "" makes it ephemeral,
//     owned by this process and removed by the next Open once the process
//     is gone; any other name makes it persistent (a working container),
//     found again with Get and kept until Remove or Commit.
//
// Lifecycle:
//
//	sn := st.Snapshots()
//	// Import a layer: its blob is in the store; View unpacks it into
//	// snapshots/<chainID(d0)> unless it is there already.
//	base := []store.Layer{{DiffID: d0, Blob: blob0}}
//	lowers, err := sn.View(ctx, base) // read-only: COPY --from, bind mounts
//	// Stack the next layer and prepare a step on top of both.
//	a, err := sn.Prepare(ctx, "", append(base, store.Layer{DiffID: d1, Blob: blob1}))
//	defer a.Remove() // no-op after Commit
//	// Run the step: mount overlay lowerdir=a.Lowers (joined with ":"),
//	// upperdir=a.Upper, workdir=a.Work; run the process; diff a.Upper into
//	// a layer blob whose diffID is d2.
//	dir, err := a.Commit(ctx, d2) // a.Upper becomes snapshots/<chainID(d0,d1,d2)>
//
// Callers hold a Lease from before Prepare or View until the snapshot's
// layers are referenced by an image or a Roots given to Collect; Collect
// keeps the parents of persistent active snapshots by itself.
type Snapshots struct{ s *Store }

// Snapshots returns the store's snapshot manager.
func (s *Store) Snapshots() *Snapshots { return &Snapshots{s: s} }

func (sn *Snapshots) path(chainID digest.Digest) string {
	return sn.s.path("snapshots", chainID.Encoded())
}

// Dir returns the directory of the committed snapshot chainID, and whether it exists.
func (sn *Snapshots) Dir(chainID digest.Digest) (string, bool) {
	if chainID.Validate() != nil {
		return "", false
	}
	p := sn.path(chainID)
	fi, err := os.Stat(p)
	return p, err == nil && fi.IsDir()
}

// List returns the chain IDs of all committed snapshots.
func (sn *Snapshots) List() ([]digest.Digest, error) {
	entries, err := os.ReadDir(sn.s.path("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	var out []digest.Digest
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if e.IsDir() && d.Validate() == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// delete removes the committed snapshot chainID and returns the apparent
// size of its files. Callers hold the GC lock exclusively.
func (sn *Snapshots) delete(chainID digest.Digest) (int64, error) {
	p, ok := sn.Dir(chainID)
	if !ok {
		return 0, nil
	}
	// Rename first so a half-deleted snapshot is never mistaken for a whole one.
	tmp := sn.s.path("snapshots", "new-del-"+randomID())
	if err := os.Rename(p, tmp); err != nil {
		return 0, fmt.Errorf("deleting snapshot %s: %w", chainID, err)
	}
	size := treeSize(tmp)
	if err := removeAll(tmp); err != nil {
		return 0, fmt.Errorf("deleting snapshot %s: %w", chainID, err)
	}
	return size, nil
}

// Active is an active snapshot: an upperdir and a workdir on the store's
// filesystem, stacked on the committed snapshots of its parent.
type Active struct {
	// Name is the snapshot's name: given for a persistent one, random otherwise.
	Name string
	// Dir holds Upper and Work.
	Dir string
	// Lowers are the snapshot directories of the parent, topmost first: the
	// overlay lowerdirs. Empty when the parent is.
	Lowers []string
	// Upper is the overlay upperdir, or the directory a layer is applied into.
	Upper string
	// Work is the overlay workdir.
	Work string

	parent []Layer
	s      *Store
	lock   *fileLock
}

// persistentMarker is the file that makes an active snapshot persistent.
// It holds the snapshot's parent as JSON (empty in older stores: no parent).
const persistentMarker = "persistent"

type marker struct {
	Parent []Layer `json:"parent"`
}

func isPersistent(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, persistentMarker))
	return err == nil
}

// readMarker returns the parent recorded in a persistent snapshot's marker.
func readMarker(dir string) ([]Layer, error) {
	data, err := os.ReadFile(filepath.Join(dir, persistentMarker))
	if err != nil {
		return nil, err
	}
	var m marker
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, persistentMarker), err)
		}
	}
	return m.Parent, nil
}

// Prepare creates an active snapshot on parent (base first), first
// unpacking every layer of parent that has no committed snapshot yet (see
// View). With name "" it is ephemeral, owned by this process; with a name it
// is persistent and can be found again with Get. Concurrent Prepares of the
// same missing layers are safe: each unpacks, one commit wins.
func (sn *Snapshots) Prepare(ctx context.Context, name string, parent []Layer) (*Active, error) {
	if name != "" {
		if err := validName(name); err != nil {
			return nil, err
		}
	}
	lowers, err := sn.View(ctx, parent)
	if err != nil {
		return nil, fmt.Errorf("preparing snapshot: %w", err)
	}
	a, err := sn.create(ctx, name, parent)
	if err != nil {
		return nil, err
	}
	a.Lowers = lowers
	return a, nil
}

// create makes the directories of an active snapshot on parent, whose
// committed snapshots it assumes exist.
func (sn *Snapshots) create(ctx context.Context, name string, parent []Layer) (*Active, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	persistent := name != ""
	if !persistent {
		name = "e-" + randomID()
	}
	a := sn.active(name, parent)
	// The lock keeps a concurrent Open from taking the directory for a dead
	// process's; a persistent snapshot drops it once its marker is written.
	lk, err := tryLockExclusive(a.Dir + ".lock")
	if err != nil {
		return nil, fmt.Errorf("preparing snapshot %q: %w", name, err)
	}
	a.lock = lk
	if err := os.Mkdir(a.Dir, 0o700); err != nil {
		a.release()
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("snapshot %q: %w", name, ErrAlreadyExists)
		}
		return nil, fmt.Errorf("preparing snapshot: %w", err)
	}
	for _, d := range []string{a.Upper, a.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			a.Remove()
			return nil, fmt.Errorf("preparing snapshot: %w", err)
		}
	}
	if persistent {
		data, err := json.Marshal(marker{Parent: parent})
		if err == nil {
			err = atomicfile.WriteFile(filepath.Join(a.Dir, persistentMarker), data, 0o600)
		}
		if err != nil {
			a.Remove()
			return nil, fmt.Errorf("preparing snapshot %q: %w", name, err)
		}
		a.release()
	}
	return a, nil
}

// active returns the Active called name on parent, with Lowers unset.
func (sn *Snapshots) active(name string, parent []Layer) *Active {
	dir := sn.s.path("active", name)
	return &Active{Name: name, Dir: dir, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), parent: parent, s: sn.s}
}

// Get returns the persistent active snapshot called name, with the lowers
// of the parent it was prepared on.
func (sn *Snapshots) Get(name string) (*Active, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	dir := sn.s.path("active", name)
	parent, err := readMarker(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading snapshot %q: %w", name, err)
	}
	a := sn.active(name, parent)
	chains := chainIDs(parent)
	for i := len(chains) - 1; i >= 0; i-- {
		a.Lowers = append(a.Lowers, sn.path(chains[i]))
	}
	return a, nil
}

func validName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name || len(name) > 128 || name[0] == 'e' && len(name) > 1 && name[1] == '-' {
		return fmt.Errorf("invalid snapshot name %q", name)
	}
	return nil
}

// Commit turns the upperdir into the committed snapshot of the parent
// stacked with the layer diffID, returns its directory, and removes the
// active snapshot. If another process committed that chain ID first, its
// snapshot is kept and this upperdir discarded: the content is the same.
func (a *Active) Commit(ctx context.Context, diffID digest.Digest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := diffID.Validate(); err != nil {
		return "", fmt.Errorf("committing snapshot: diffID %q: %w", diffID, err)
	}
	chainID := identity.ChainID(append(diffIDs(a.parent), diffID))
	target := a.s.path("snapshots", chainID.Encoded())
	if err := syncFiles(a.Upper); err != nil {
		return "", fmt.Errorf("committing snapshot %s: %w", chainID, err)
	}
	err := os.Rename(a.Upper, target)
	if err != nil && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTEMPTY) {
		return "", fmt.Errorf("committing snapshot %s: %w", chainID, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(target)); err != nil {
		return "", fmt.Errorf("committing snapshot %s: %w", chainID, err)
	}
	return target, a.Remove()
}

// Remove discards the active snapshot and everything in it. It is a no-op
// after Commit or a previous Remove.
func (a *Active) Remove() error {
	// Without its marker, a persistent snapshot that a crash leaves half
	// removed is a dead process's leftover, which Open removes.
	err := os.Remove(filepath.Join(a.Dir, persistentMarker))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing snapshot %q: %w", a.Name, err)
	}
	err = removeAll(a.Dir)
	a.release()
	if err != nil {
		return fmt.Errorf("removing snapshot %q: %w", a.Name, err)
	}
	return nil
}

func (a *Active) release() {
	if a.lock != nil {
		os.Remove(a.Dir + ".lock")
		a.lock.Unlock()
		a.lock = nil
	}
}

// diffIDs returns the diffIDs of layers.
func diffIDs(layers []Layer) []digest.Digest {
	out := make([]digest.Digest, len(layers))
	for i, l := range layers {
		out[i] = l.DiffID
	}
	return out
}

// chainIDs returns the chain ID of every prefix of layers: out[i] is the
// chain ID of layers[:i+1].
func chainIDs(layers []Layer) []digest.Digest {
	return identity.ChainIDs(diffIDs(layers))
}

// treeSize returns the apparent size of the regular files below dir, each
// inode counted once; unreadable parts count as empty.
func treeSize(dir string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}

// CacheMount returns the persistent directory of the RUN --mount=type=cache
// with the given id, creating it. With exclusive set, it waits until no other
// exclusive user holds it (sharing=locked). Call release when the step ends.
func (s *Store) CacheMount(id string, exclusive bool) (dir string, release func(), err error) {
	dir = s.path("mounts", "cache", digest.FromString(id).Encoded())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("creating cache mount %q: %w", id, err)
	}
	if !exclusive {
		return dir, func() {}, nil
	}
	lk, err := lockExclusive(dir + ".lock")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { lk.Unlock() }, nil
}
