package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Container is one working container as the store records it. Its
// filesystem is the persistent active snapshot named by its ID (see
// Snapshots.Get), stacked on the layers of its image; its other
// directories are given by ContainerDirs.
type Container struct {
	// ID is 64 random lower-case hex characters.
	ID string `json:"id"`
	// Name is unique among the store's containers.
	Name string `json:"name"`
	// Image is the ID of the image the container was created from.
	Image digest.Digest `json:"image"`
	// Manifest describes that image's manifest. Collect keeps it, its
	// config and its layers while the container exists, even once the
	// image itself is removed (rmi -f).
	Manifest ocispec.Descriptor `json:"manifest"`
	// Created is when the container was created.
	Created time.Time `json:"created"`
	// Config is the owner's own description of the container (builder's:
	// its process, image config and mounts), kept as is.
	Config json.RawMessage `json:"config,omitempty"`
}

// NewContainer describes a container for CreateContainer.
type NewContainer struct {
	// Name is the container's name; it must be free. When empty,
	// DefaultName is used, or DefaultName-1, DefaultName-2, … when taken.
	Name, DefaultName string
	// Image is the ID of a stored image.
	Image digest.Digest
	// Layers are the image's layers, base first: the parent of the
	// container's snapshot.
	Layers []Layer
	// Config is recorded as Container.Config.
	Config json.RawMessage
}

// ContainerDirs are a container's directories besides its snapshot. Dir
// is created with the container; State and Merged are for its owner to
// create. All of them go when the container is removed.
type ContainerDirs struct {
	// Dir is containers/<id>/.
	Dir string
	// State is containers/<id>/state/: the runtime's state of the
	// container's processes (pid, status, exit code, logs).
	State string
	// Merged is containers/<id>/merged/: where the merged root filesystem
	// is mounted on the host while a user works on it (builder mount).
	// RemoveContainer unmounts it first.
	Merged string
}

// containersFile is containers.json on disk, the table of containers. It
// sits beside index.json and, like it, changes only under index.lock, so
// that an image removal and a container creation never miss each other.
type containersFile struct {
	// Version of the on-disk format.
	Version int `json:"version"`
	// Containers by ID.
	Containers map[string]*Container `json:"containers"`
}

const containersVersion = 1

// validContainerName is docker's rule for container names.
var validContainerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// isContainerID reports whether s has the form of a container ID, which
// is also the name of the container's snapshot.
func isContainerID(s string) bool { return len(s) == 64 && isHex(s) }

// ContainerDirs returns the directories of the container id.
func (s *Store) ContainerDirs(id string) ContainerDirs {
	dir := s.path("containers", id)
	return ContainerDirs{Dir: dir, State: dir + "/state", Merged: dir + "/merged"}
}

// readContainers reads the container table; a missing file is an empty one.
func (s *Store) readContainers() (map[string]*Container, error) {
	data, err := os.ReadFile(s.path("containers.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*Container{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading containers: %w", err)
	}
	var f containersFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", s.path("containers.json"), err)
	}
	if f.Version != containersVersion {
		return nil, fmt.Errorf("containers format %d is not supported (want %d)", f.Version, containersVersion)
	}
	if f.Containers == nil {
		f.Containers = map[string]*Container{}
	}
	return f.Containers, nil
}

// updateContainers applies fn to the container table under index.lock and
// writes it atomically; fn also sees the image index as it is under the
// lock. Nothing is written when fn fails.
func (s *Store) updateContainers(fn func(idx *Index, table map[string]*Container) error) error {
	return s.updateLocked("containers.json", func(idx *Index) ([]byte, error) {
		table, err := s.readContainers()
		if err != nil {
			return nil, err
		}
		if err := fn(idx, table); err != nil {
			return nil, err
		}
		data, err := json.MarshalIndent(containersFile{Version: containersVersion, Containers: table}, "", " ")
		if err != nil {
			return nil, fmt.Errorf("encoding containers: %w", err)
		}
		return data, nil
	})
}

// Containers returns every container, newest first.
func (s *Store) Containers() ([]Container, error) {
	table, err := s.readContainers()
	if err != nil {
		return nil, err
	}
	return sortedContainers(table), nil
}

func sortedContainers(table map[string]*Container) []Container {
	out := make([]Container, 0, len(table))
	for _, c := range table {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Container finds the container ref names, as docker does: a full ID, a
// name (with or without a leading "/"), or an unambiguous ID prefix.
func (s *Store) Container(ref string) (Container, error) {
	table, err := s.readContainers()
	if err != nil {
		return Container{}, err
	}
	c, err := resolveContainer(table, ref)
	if err != nil {
		return Container{}, err
	}
	return *c, nil
}

func resolveContainer(table map[string]*Container, ref string) (*Container, error) {
	if c := table[ref]; c != nil {
		return c, nil
	}
	name := strings.TrimPrefix(ref, "/")
	for _, c := range table {
		if c.Name == name {
			return c, nil
		}
	}
	if isHex(ref) {
		switch c, n := uniquePrefix(table, ref, func(id string) string { return id }); n {
		case 1:
			return c, nil
		case 2:
			return nil, fmt.Errorf("container %q: %w: matches several containers", ref, ErrAmbiguous)
		}
	}
	return nil, fmt.Errorf("no such container: %s: %w", ref, ErrNotFound)
}

// uniquePrefix returns the value of m whose key, as name spells it,
// starts with prefix, and how many matched: 0, 1, or 2 for several.
func uniquePrefix[K comparable, V any](m map[K]V, prefix string, name func(K) string) (V, int) {
	var found V
	n := 0
	for k, v := range m {
		if strings.HasPrefix(name(k), prefix) {
			if n++; n > 1 {
				break
			}
			found = v
		}
	}
	return found, n
}

// CreateContainer creates a container from a stored image: its directory,
// its persistent snapshot on c.Layers (unpacking missing layers), then its
// record. The record is written last, under the lock that image removal
// takes, and only if the image is still there; a process killed before
// that leaves directories without a record, which the next Open removes.
// A name that is taken is an error wrapping ErrConflict.
func (s *Store) CreateContainer(ctx context.Context, nc NewContainer) (Container, error) {
	if nc.Name != "" && !validContainerName.MatchString(nc.Name) {
		return Container{}, fmt.Errorf("invalid container name %q, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", nc.Name)
	}
	id := newContainerID()
	dirs := s.ContainerDirs(id)
	if err := os.MkdirAll(s.path("containers"), 0o700); err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	// The lock tells Open that the directories without a record are not
	// a dead process's leftovers.
	lk, err := tryLockExclusive(dirs.Dir + ".lock")
	if err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	defer unlockRemove(lk, dirs.Dir+".lock")
	c := Container{ID: id, Image: nc.Image, Created: time.Now().UTC(), Config: nc.Config}
	err = s.createContainer(ctx, &c, nc)
	if err != nil {
		err = errors.Join(err, s.removeContainerFiles(id))
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	return c, nil
}

func (s *Store) createContainer(ctx context.Context, c *Container, nc NewContainer) error {
	if err := os.Mkdir(s.ContainerDirs(c.ID).Dir, 0o700); err != nil {
		return err
	}
	if _, err := s.Snapshots().Prepare(ctx, c.ID, nc.Layers); err != nil {
		return err
	}
	return s.updateContainers(func(idx *Index, table map[string]*Container) error {
		img := idx.images[nc.Image]
		if img == nil {
			return fmt.Errorf("image %s: %w", nc.Image, ErrNotFound)
		}
		c.Manifest = img.Manifest
		name, err := freeName(table, nc)
		if err != nil {
			return err
		}
		c.Name = name
		table[c.ID] = c
		return nil
	})
}

// freeName returns nc's name, or the first free one derived from its
// default name.
func freeName(table map[string]*Container, nc NewContainer) (string, error) {
	taken := map[string]bool{}
	for _, c := range table {
		taken[c.Name] = true
	}
	if nc.Name != "" {
		if taken[nc.Name] {
			return "", fmt.Errorf("%w: the container name %q is already in use", ErrConflict, nc.Name)
		}
		return nc.Name, nil
	}
	base := nc.DefaultName
	if !validContainerName.MatchString(base) {
		base = "container"
	}
	name := base
	for n := 1; taken[name]; n++ {
		name = fmt.Sprintf("%s-%d", base, n)
	}
	return name, nil
}

func newContainerID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// UpdateContainer changes the record of the container id with fn, under
// the index lock. Only Name (checked for clashes) and Config may change.
func (s *Store) UpdateContainer(id string, fn func(c *Container) error) error {
	err := s.updateContainers(func(_ *Index, table map[string]*Container) error {
		cur := table[id]
		if cur == nil {
			return fmt.Errorf("no such container: %s: %w", id, ErrNotFound)
		}
		c := *cur
		if err := fn(&c); err != nil {
			return err
		}
		if c.Name != cur.Name {
			if !validContainerName.MatchString(c.Name) {
				return fmt.Errorf("invalid container name %q", c.Name)
			}
			if _, err := freeName(table, NewContainer{Name: c.Name}); err != nil {
				return err
			}
		}
		cur.Name, cur.Config = c.Name, c.Config
		return nil
	})
	if err != nil {
		return fmt.Errorf("updating container %s: %w", shortContainerID(id), err)
	}
	return nil
}

// RemoveContainer deletes the container id: its record first, then its
// directories (unmounting Merged) and its snapshot. Whatever a killed
// process leaves of it once the record is gone, the next Open removes.
// The caller makes sure no process of the container is left.
func (s *Store) RemoveContainer(id string) error {
	dirs := s.ContainerDirs(id)
	lk, err := lockExclusive(dirs.Dir + ".lock")
	if err != nil {
		return fmt.Errorf("removing container: %w", err)
	}
	defer unlockRemove(lk, dirs.Dir+".lock")
	err = s.updateContainers(func(_ *Index, table map[string]*Container) error {
		if table[id] == nil {
			return fmt.Errorf("no such container: %s: %w", id, ErrNotFound)
		}
		delete(table, id)
		return nil
	})
	if err == nil {
		err = s.removeContainerFiles(id)
	}
	if err != nil {
		return fmt.Errorf("removing container %s: %w", shortContainerID(id), err)
	}
	return nil
}

// removeContainerFiles removes the directories and the snapshot of the
// container id. A merged root still mounted is detached first; if it
// cannot be, nothing below it is touched.
func (s *Store) removeContainerFiles(id string) error {
	dirs := s.ContainerDirs(id)
	detachMount(dirs.Merged)
	if err := os.Remove(dirs.Merged); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", dirs.Merged, err)
	}
	if err := removeAll(dirs.Dir); err != nil {
		return err
	}
	a := s.Snapshots().active(id, nil)
	return a.Remove()
}

func unlockRemove(lk *fileLock, path string) {
	os.Remove(path)
	lk.Unlock()
}

// cleanupContainers removes the directories and snapshots of containers
// that have no record and whose lock is free: what a process killed while
// creating or removing a container left behind.
func (s *Store) cleanupContainers() error {
	ids := map[string]bool{}
	for _, sub := range []string{"containers", "active"} {
		entries, err := os.ReadDir(s.path(sub))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range entries {
			if id := strings.TrimSuffix(e.Name(), ".lock"); isContainerID(id) {
				ids[id] = true
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	for id := range ids {
		if err := s.cleanupContainer(id); err != nil {
			return fmt.Errorf("removing leftover container %s: %w", shortContainerID(id), err)
		}
	}
	return nil
}

func (s *Store) cleanupContainer(id string) error {
	lockFile := s.ContainerDirs(id).Dir + ".lock"
	lk, err := tryLockExclusive(lockFile)
	if errors.Is(err, errLocked) {
		return nil // being created or removed
	}
	if err != nil {
		return err
	}
	defer unlockRemove(lk, lockFile)
	// Read the table under the lock: a creator records its container
	// before it lets the lock go.
	table, err := s.readContainers()
	if err != nil || table[id] != nil {
		return err
	}
	return s.removeContainerFiles(id)
}

// containerUsing returns the oldest container created from the image id,
// or nil. Callers hold index.lock.
func (s *Store) containerUsing(id digest.Digest) (*Container, error) {
	table, err := s.readContainers()
	if err != nil {
		return nil, err
	}
	var found *Container
	for _, c := range table {
		if c.Image == id && (found == nil || c.Created.Before(found.Created)) {
			found = c
		}
	}
	return found, nil
}

// checkInUse is the container rule of Remove, under index.lock: deleting
// the image rec, or its last tag named by tagRef, needs force while a
// container uses it, as in docker.
func (s *Store) checkInUse(rec *Image, tagRef string, force bool) error {
	if force {
		return nil
	}
	c, err := s.containerUsing(rec.ID)
	if err != nil || c == nil {
		return err
	}
	if tagRef != "" {
		return fmt.Errorf("%w: unable to remove repository reference %q (must force) - container %s is using its referenced image %s",
			ErrConflict, tagRef, shortContainerID(c.ID), ShortID(rec.ID))
	}
	return fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by stopped container %s",
		ErrConflict, ShortID(rec.ID), shortContainerID(c.ID))
}

// imagesInUse returns the IDs of the images containers were created from.
func (s *Store) imagesInUse() (map[digest.Digest]bool, error) {
	table, err := s.readContainers()
	if err != nil {
		return nil, err
	}
	used := map[digest.Digest]bool{}
	for _, c := range table {
		used[c.Image] = true
	}
	return used, nil
}

// keepContainers adds to r what containers need: their image's manifest,
// config and layers (their snapshot's parent is kept as a persistent one).
func (s *Store) keepContainers(ctx context.Context, r Roots, seen map[digest.Digest]bool) error {
	table, err := s.readContainers()
	if err != nil {
		return err
	}
	for _, c := range table {
		if err := s.keepManifest(ctx, c.Manifest.Digest, r, seen); err != nil {
			return fmt.Errorf("container %s: %w", shortContainerID(c.ID), err)
		}
	}
	return nil
}

// shortContainerID is ShortID of a container ID (bare hex, no algorithm).
func shortContainerID(id string) string { return ShortID(digest.Digest("sha256:" + id)) }
