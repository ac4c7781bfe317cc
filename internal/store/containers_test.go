package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// newContainer creates a container from ti, failing t on error.
func newContainer(t *testing.T, s *Store, ti testImage, name, defaultName string) Container {
	t.Helper()
	c, err := s.CreateContainer(context.Background(), NewContainer{Name: name, DefaultName: defaultName, Image: ti.ID, Layers: ti.Layers, Config: []byte(`{"k":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContainersCreateResolveUpdate(t *testing.T) {
	s := newStore(t)
	l := writeLayer(t, s, file("a", "1"))
	ti := putImage(t, s, "x", []string{"docker.io/library/base:1"}, l)
	index, err := os.ReadFile(s.path("index.json"))
	must(t, err)

	c1 := newContainer(t, s, ti, "", "base-working-container")
	c2 := newContainer(t, s, ti, "", "base-working-container")
	c3 := newContainer(t, s, ti, "web", "ignored")
	if c1.Name != "base-working-container" || c2.Name != "base-working-container-1" || c3.Name != "web" {
		t.Errorf("names = %q %q %q", c1.Name, c2.Name, c3.Name)
	}
	if !isContainerID(c1.ID) || c1.Image != ti.ID || c1.Manifest.Digest != ti.Manifest.Digest || compact(c1.Config) != `{"k":1}` {
		t.Errorf("record = %+v", c1)
	}
	if _, err := s.CreateContainer(t.Context(), NewContainer{Name: "web", Image: ti.ID, Layers: ti.Layers}); !errors.Is(err, ErrConflict) {
		t.Errorf("a taken name = %v, want ErrConflict", err)
	}
	if _, err := s.CreateContainer(t.Context(), NewContainer{Name: "bad name", Image: ti.ID}); err == nil {
		t.Error("an invalid name was accepted")
	}
	if _, err := s.CreateContainer(t.Context(), NewContainer{Image: digest.Digest("sha256:" + strings.Repeat("0", 64)), Layers: ti.Layers}); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown image = %v, want ErrNotFound", err)
	}
	// The failed creations left nothing behind.
	if got := len(dirNames(t, s.path("containers"))); got != 3 {
		t.Errorf("containers/ has %d entries, want 3: %v", got, dirNames(t, s.path("containers")))
	}
	if after, _ := os.ReadFile(s.path("index.json")); !bytes.Equal(after, index) {
		t.Error("creating containers changed index.json")
	}

	for _, ref := range []string{c3.ID, "web", "/web", c3.ID[:10]} {
		if got, err := s.Container(ref); err != nil || got.ID != c3.ID {
			t.Errorf("Container(%q) = %v, %v", ref, got.ID, err)
		}
	}
	if _, err := s.Container("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown container: %v", err)
	}
	list, err := s.Containers()
	must(t, err)
	if len(list) != 3 || list[0].ID != c3.ID {
		t.Errorf("Containers = %v, want 3, newest first", list)
	}
	a, err := s.Snapshots().Get(c1.ID)
	must(t, err)
	if len(a.Lowers) != 1 {
		t.Errorf("snapshot lowers = %v", a.Lowers)
	}

	must(t, s.UpdateContainer(c1.ID, func(c *Container) error { c.Config = []byte(`{"k":2}`); return nil }))
	if got, _ := s.Container(c1.ID); compact(got.Config) != `{"k":2}` {
		t.Errorf("updated config = %s", got.Config)
	}
	if err := s.UpdateContainer(c1.ID, func(c *Container) error { c.Name = "web"; return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("renaming onto a taken name = %v", err)
	}

	must(t, s.RemoveContainer(c1.ID))
	if _, err := s.Snapshots().Get(c1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("snapshot after RemoveContainer: %v", err)
	}
	if _, err := os.Stat(s.ContainerDirs(c1.ID).Dir); !os.IsNotExist(err) {
		t.Errorf("directory after RemoveContainer: %v", err)
	}
	if err := s.RemoveContainer(c1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second RemoveContainer = %v", err)
	}
}

// TestContainersKeepTheirImage: an image a container uses is removed only
// with force, never pruned, and its data outlives its removal until the
// container goes.
func TestContainersKeepTheirImage(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	l := writeLayer(t, s, file("a", "1"))
	ti := putImage(t, s, "x", []string{"docker.io/library/base:1"}, l)
	dangling := putImage(t, s, "y", nil, l)
	c := newContainer(t, s, ti, "c1", "")
	cd := newContainer(t, s, dangling, "d1", "")

	_, err := s.Remove("base:1", false)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `unable to remove repository reference "base:1" (must force) - container `+c.ID[:12]+" is using its referenced image "+ti.ID.Encoded()[:12]) {
		t.Errorf("rmi of a tag in use = %v", err)
	}
	_, err = s.Remove(ti.ID.String(), false)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "unable to delete "+ti.ID.Encoded()[:12]+" (must be forced) - image is being used by stopped container "+c.ID[:12]) {
		t.Errorf("rmi of an ID in use = %v", err)
	}
	res, err := s.Prune(true)
	must(t, err)
	if len(res.Deleted) != 0 {
		t.Errorf("prune deleted images in use: %v", res.Deleted)
	}
	if _, err := s.Remove("base:1", true); err != nil {
		t.Fatalf("rmi -f: %v", err)
	}
	must(t, s.RemoveContainer(cd.ID))
	if _, err := s.Prune(false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collect(ctx, Roots{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range ti.blobs() {
		if _, ok := s.Has(d); !ok {
			t.Errorf("blob %s of the container's removed image was collected", d)
		}
	}
	if _, ok := s.Snapshots().Dir(chainOf(l.DiffID)); !ok {
		t.Error("the container's snapshot parent was collected")
	}
	must(t, s.RemoveContainer(c.ID))
	if _, err := s.Collect(ctx, Roots{}); err != nil {
		t.Fatal(err)
	}
	if got := blobSet(t, s); len(got) != 0 {
		t.Errorf("blobs left after the container went: %v", got)
	}
}

// TestContainersLeftoversRemovedOnOpen: what a process killed in the middle
// of creating a container leaves (directory and snapshot, no record) goes
// at the next Open, unless the container's lock is held.
func TestContainersLeftoversRemovedOnOpen(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	l := writeLayer(t, s, file("a", "1"))
	ti := putImage(t, s, "x", nil, l)
	kept := newContainer(t, s, ti, "kept", "")
	half := func() string {
		id := newContainerID()
		must(t, os.Mkdir(s.ContainerDirs(id).Dir, 0o700))
		_, err := s.Snapshots().Prepare(t.Context(), id, ti.Layers)
		must(t, err)
		return id
	}
	dead, busy := half(), half()
	lk, err := tryLockExclusive(s.ContainerDirs(busy).Dir + ".lock")
	must(t, err)
	defer lk.Unlock()
	must(t, os.WriteFile(s.ContainerDirs(kept.ID).Dir+"/x", nil, 0o600))

	mustOpen(t, root)
	for id, want := range map[string]bool{dead: false, busy: true, kept.ID: true} {
		_, err := os.Stat(s.ContainerDirs(id).Dir)
		_, serr := s.Snapshots().Get(id)
		if (err == nil) != want || (serr == nil) != want {
			t.Errorf("container %s: dir %v, snapshot %v; want kept=%v", id[:12], err, serr, want)
		}
	}
	if names := dirNames(t, filepath.Join(root, "containers")); slices.Contains(names, dead+".lock") {
		t.Errorf("lock file of a dead creation left: %v", names)
	}
}

// compact returns the compact form of a JSON document.
func compact(data []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return string(data)
	}
	return b.String()
}
