package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// commitSnapshot commits a snapshot holding one file of size bytes under
// the chain ID of the base layer diffID, and returns its chain ID.
func commitSnapshot(t *testing.T, s *Store, diffID digest.Digest, size int) digest.Digest {
	t.Helper()
	a, err := s.Snapshots().Prepare(t.Context(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.Upper, "f"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(t.Context(), diffID); err != nil {
		t.Fatal(err)
	}
	return diffID
}

func TestCollectKeepsReferences(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	l1 := writeLayer(t, s, file("a", "shared"))
	l2 := writeLayer(t, s, file("b", "only x"))
	l3 := writeLayer(t, s, file("c", "only y"))
	x := putImage(t, s, "x", []string{"docker.io/library/x:1"}, l1, l2)
	y := putImage(t, s, "y", nil, l1, l3)
	if _, err := s.Snapshots().View(ctx, x.Layers); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshots().View(ctx, y.Layers); err != nil {
		t.Fatal(err)
	}
	// Roots outside images, as the build cache gives them.
	cached, err := s.WriteBlob(ctx, ocispec.MediaTypeImageLayerGzip, []byte("cached layer"))
	if err != nil {
		t.Fatal(err)
	}
	cachedChain := commitSnapshot(t, s, digest.FromString("cached"), 7)
	// Garbage: a loose blob, recorded as a layer's form, and a snapshot.
	loose, err := s.WriteBlob(ctx, ocispec.MediaTypeImageLayerGzip, []byte("garbage!"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLayers(Layer{DiffID: digest.FromString("loose"), Blob: loose}); err != nil {
		t.Fatal(err)
	}
	garbageChain := commitSnapshot(t, s, digest.FromString("garbage"), 100)

	freed, err := s.Collect(ctx, Roots{Blobs: map[digest.Digest]bool{cached.Digest: true}, Chains: map[digest.Digest]bool{cachedChain: true}})
	if err != nil {
		t.Fatal(err)
	}
	if want := loose.Size + 100; freed != want {
		t.Errorf("Collect freed %d bytes, want %d (a %d-byte blob and a 100-byte snapshot)", freed, want, loose.Size)
	}
	want := sorted(append(append(x.blobs(), y.blobs()...), cached.Digest)...)
	want = slices.Compact(want)
	if got := blobSet(t, s); !slices.Equal(got, want) {
		t.Errorf("blobs after Collect = %v, want %v", got, want)
	}
	chains, _ := s.Snapshots().List()
	wantChains := sorted(chainOf(l1.DiffID), chainOf(l1.DiffID, l2.DiffID), chainOf(l1.DiffID, l3.DiffID), cachedChain)
	if got := sorted(chains...); !slices.Equal(got, wantChains) {
		t.Errorf("snapshots after Collect = %v, want %v", got, wantChains)
	}
	if _, ok := s.Snapshots().Dir(garbageChain); ok {
		t.Error("the unreferenced snapshot survived")
	}
	if _, ok := view(t, s).Layer(digest.FromString("loose")); ok {
		t.Error("the record of a deleted layer blob survived")
	}
	if _, ok := view(t, s).Layer(l3.DiffID); !ok {
		t.Error("the record of a kept layer blob was dropped")
	}
}

func TestCollectAfterRemove(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	l1 := writeLayer(t, s, file("a", "shared"))
	l2 := writeLayer(t, s, file("b", "only y"))
	x := putImage(t, s, "x", []string{"docker.io/library/x:1"}, l1)
	y := putImage(t, s, "y", []string{"docker.io/library/y:1"}, l1, l2)
	if _, err := s.Snapshots().View(ctx, y.Layers); err != nil {
		t.Fatal(err)
	}
	if freed, err := s.Collect(ctx, Roots{}); err != nil || freed != 0 {
		t.Fatalf("Collect with nothing to free = %d, %v", freed, err)
	}
	if _, err := s.Remove("y:1", false); err != nil {
		t.Fatal(err)
	}
	freed, err := s.Collect(ctx, Roots{})
	if err != nil {
		t.Fatal(err)
	}
	// y's manifest, config and own layer go, and the snapshot of its top
	// layer, which holds the 6-byte file "b".
	if want := y.Manifest.Size + y.Config.Size + l2.Blob.Size + 6; freed != want {
		t.Errorf("Collect freed %d bytes, want %d", freed, want)
	}
	if got := blobSet(t, s); !slices.Equal(got, sorted(x.blobs()...)) {
		t.Errorf("blobs after Collect = %v, want x's %v", got, sorted(x.blobs()...))
	}
	if chains, _ := s.Snapshots().List(); !slices.Equal(chains, []digest.Digest{l1.DiffID}) {
		t.Errorf("snapshots after Collect = %v, want only %s", chains, l1.DiffID)
	}
	idx := view(t, s)
	if _, ok := idx.Layer(l2.DiffID); ok {
		t.Error("the removed image's layer is still recorded")
	}
	if _, ok := idx.Layer(l1.DiffID); !ok {
		t.Error("the kept image's layer record was dropped")
	}
}

// TestCollectFollowsIndex: an image whose manifest is an index keeps its
// stored children and what they reference; missing children are skipped.
func TestCollectFollowsIndex(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	l := writeLayer(t, s, file("a", "amd64"))
	child := writeImage(t, s, "amd64", l)
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("arm64 manifest"), Size: 14}
	ix := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{child.Manifest, missing}}
	idesc, err := s.WriteJSON(ctx, ocispec.MediaTypeImageIndex, ix)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(ctx, NewImage{ID: child.ID, Manifest: idesc, Layers: []Layer{l}}, []string{"docker.io/library/multi:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshots().View(ctx, []Layer{l}); err != nil {
		t.Fatal(err)
	}
	if freed, err := s.Collect(ctx, Roots{}); err != nil || freed != 0 {
		t.Fatalf("Collect = %d, %v; want nothing freed", freed, err)
	}
	if got, want := blobSet(t, s), sorted(append(child.blobs(), idesc.Digest)...); !slices.Equal(got, want) {
		t.Fatalf("blobs = %v, want %v", got, want)
	}
	if _, ok := s.Snapshots().Dir(l.DiffID); !ok {
		t.Fatal("the child's layer snapshot was deleted")
	}
}

// TestCollectKeepsPersistentParents: a working container's layers outlive
// the images they came from.
func TestCollectKeepsPersistentParents(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	l1 := writeLayer(t, s, file("a", "base"))
	l2 := writeLayer(t, s, file("b", "top"))
	a, err := s.Snapshots().Prepare(ctx, "ctr", []Layer{l1, l2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collect(ctx, Roots{}); err != nil {
		t.Fatal(err)
	}
	if got := blobSet(t, s); !slices.Equal(got, sorted(l1.Blob.Digest, l2.Blob.Digest)) {
		t.Errorf("blobs = %v, want the container's layers", got)
	}
	for _, dir := range a.Lowers {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("lower of a persistent snapshot deleted: %v", err)
		}
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collect(ctx, Roots{}); err != nil {
		t.Fatal(err)
	}
	if got := blobSet(t, s); len(got) != 0 {
		t.Errorf("blobs after the container went = %v, want none", got)
	}
}
