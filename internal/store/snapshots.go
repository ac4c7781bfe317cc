package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-project/builder/internal/atomicfile"
)

// Snapshots manages unpacked layers usable as overlay lowerdirs.
//
// Vocabulary: a *committed* snapshot is named by the chain ID of the layer
// stack it ends and holds only that layer's own changes, in overlay format
// (whiteouts are 0:0 character devices, opaque directories carry
// trusted.overlay.opaque=y). The lowerdirs for a container on top of layers
// L0..Ln are the snapshot dirs of chain IDs Cn..C0, topmost first.
//
// An *active* snapshot is an upperdir and workdir in the making. Its
// lifecycle:
//
//	a, _ := st.Snapshots().Prepare("")        // ephemeral: owned by this process
//	// mount overlay(lowers…, a.Upper, a.Work) and run a step, or apply a layer tar into a.Upper
//	dir, _ := a.Commit(chainID)                // a.Upper becomes snapshots/<chain ID>
//	// or a.Remove() to discard it
//
// An ephemeral active snapshot is removed by the next Open once its process
// is gone. A named one (Prepare("container-x")) belongs to a long-lived
// working container and survives until Remove.
type Snapshots struct{ s *Store }

// Snapshots returns the store's snapshot manager.
func (s *Store) Snapshots() *Snapshots { return &Snapshots{s: s} }

// Dir returns the directory of the committed snapshot chainID, and whether it exists.
func (sn *Snapshots) Dir(chainID digest.Digest) (string, bool) {
	if chainID.Validate() != nil {
		return "", false
	}
	p := sn.s.path("snapshots", chainID.Encoded())
	fi, err := os.Stat(p)
	return p, err == nil && fi.IsDir()
}

// List returns the chain IDs of all committed snapshots.
func (sn *Snapshots) List() ([]digest.Digest, error) {
	entries, err := os.ReadDir(sn.s.path("snapshots"))
	if err != nil {
		return nil, err
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

// Delete removes the committed snapshot chainID. Callers hold the GC lock.
func (sn *Snapshots) Delete(chainID digest.Digest) error {
	p, ok := sn.Dir(chainID)
	if !ok {
		return nil
	}
	// Rename first so a half-deleted snapshot is never mistaken for a whole one.
	tmp := sn.s.path("snapshots", "new-del-"+randomID())
	if err := os.Rename(p, tmp); err != nil {
		return fmt.Errorf("deleting snapshot %s: %w", chainID, err)
	}
	return removeAll(tmp)
}

// Active is an active snapshot: an upperdir and a workdir on the store's
// filesystem.
type Active struct {
	// Name is the snapshot's name: given for a persistent one, random otherwise.
	Name string
	// Dir holds Upper and Work.
	Dir string
	// Upper is the overlay upperdir, or the directory a layer is applied into.
	Upper string
	// Work is the overlay workdir.
	Work string

	s    *Store
	lock *fileLock
}

const persistentMarker = "persistent"

func isPersistent(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, persistentMarker))
	return err == nil
}

// Prepare creates an active snapshot. With name "" it is ephemeral, owned by
// this process; with a name it is persistent and can be found again with Get.
func (sn *Snapshots) Prepare(ctx context.Context, name string) (*Active, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	persistent := name != ""
	if !persistent {
		name = "e-" + randomID()
	} else if err := validName(name); err != nil {
		return nil, err
	}
	dir := sn.s.path("active", name)
	a := &Active{Name: name, Dir: dir, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), s: sn.s}
	if !persistent {
		lk, err := tryLockExclusive(dir + ".lock")
		if err != nil {
			return nil, fmt.Errorf("preparing snapshot: %w", err)
		}
		a.lock = lk
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
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
		if err := os.WriteFile(filepath.Join(dir, persistentMarker), nil, 0o600); err != nil {
			a.Remove()
			return nil, err
		}
	}
	return a, nil
}

// Get returns the persistent active snapshot called name.
func (sn *Snapshots) Get(name string) (*Active, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	dir := sn.s.path("active", name)
	if !isPersistent(dir) {
		return nil, fmt.Errorf("snapshot %q: %w", name, ErrNotFound)
	}
	return &Active{Name: name, Dir: dir, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), s: sn.s}, nil
}

func validName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name || len(name) > 128 || name[0] == 'e' && len(name) > 1 && name[1] == '-' {
		return fmt.Errorf("invalid snapshot name %q", name)
	}
	return nil
}

// Commit turns the upperdir into the committed snapshot chainID and removes
// the active snapshot. If another process committed chainID first, that one
// is kept and this upperdir is discarded: the result is the same.
func (a *Active) Commit(chainID digest.Digest) (string, error) {
	if err := chainID.Validate(); err != nil {
		return "", fmt.Errorf("committing snapshot: %w", err)
	}
	target := a.s.path("snapshots", chainID.Encoded())
	if err := syncTree(a.Upper); err != nil {
		return "", fmt.Errorf("committing snapshot %s: %w", chainID, err)
	}
	err := os.Rename(a.Upper, target)
	if err != nil && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTEMPTY) {
		return "", fmt.Errorf("committing snapshot %s: %w", chainID, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(target)); err != nil {
		return "", err
	}
	return target, a.Remove()
}

// Remove discards the active snapshot and everything in it.
func (a *Active) Remove() error {
	err := removeAll(a.Dir)
	a.release()
	return err
}

func (a *Active) release() {
	if a.lock != nil {
		os.Remove(a.Dir + ".lock")
		a.lock.Unlock()
		a.lock = nil
	}
}

// syncTree fsyncs every regular file and directory below dir, so that a
// committed snapshot survives a crash. Only the files this step wrote are
// visited: an upperdir holds just the changes.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// GCLock is held shared by every build and exclusively by garbage
// collection, so a collection never deletes what a running build has just
// written but not yet referenced.
type GCLock struct{ l *fileLock }

// Lease takes the GC lock shared. Release it when the build ends.
func (s *Store) Lease() (*GCLock, error) {
	l, err := lockShared(s.path("gc.lock"))
	if err != nil {
		return nil, err
	}
	return &GCLock{l: l}, nil
}

// LockGC takes the GC lock exclusively, waiting for running builds.
func (s *Store) LockGC() (*GCLock, error) {
	l, err := lockExclusive(s.path("gc.lock"))
	if err != nil {
		return nil, err
	}
	return &GCLock{l: l}, nil
}

// Release drops the lock.
func (g *GCLock) Release() error { return g.l.Unlock() }

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
