package store

import (
	"errors"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPutImageMovesTags(t *testing.T) {
	s := newStore(t)
	l := writeLayer(t, s, file("a", "1"))
	one := putImage(t, s, "one", []string{"docker.io/library/app:1", "docker.io/library/app:latest"}, l)
	before, _ := view(t, s).Image(one.ID)
	if before.Created.IsZero() || before.LastTagTime.IsZero() {
		t.Fatalf("new image %+v lacks Created or LastTagTime", before)
	}
	two := putImage(t, s, "two", []string{"docker.io/library/app:latest"}, l)

	idx := view(t, s)
	if got := idx.TagsOf(one.ID); !slices.Equal(got, []string{"docker.io/library/app:1"}) {
		t.Errorf("tags of the first image = %v", got)
	}
	if got := idx.TagsOf(two.ID); !slices.Equal(got, []string{"docker.io/library/app:latest"}) {
		t.Errorf("tags of the second image = %v (latest did not move)", got)
	}
	// Putting an existing image again keeps its record and adds the tag.
	if err := s.PutImage(t.Context(), NewImage{ID: one.ID, Manifest: ocispec.Descriptor{Digest: "sha256:other"}}, []string{"docker.io/library/app:2"}); err != nil {
		t.Fatal(err)
	}
	after, _ := view(t, s).Image(one.ID)
	if after.Manifest.Digest != before.Manifest.Digest || !after.Created.Equal(before.Created) || !after.LastTagTime.After(before.LastTagTime) {
		t.Errorf("record after a second PutImage: %+v, before %+v", after, before)
	}
	if li, ok := view(t, s).Layer(l.DiffID); !ok || li.Size != l.Size || len(li.Blobs) != 1 || li.Blobs[0].Digest != l.Blob.Digest {
		t.Errorf("layer record = %+v, %v", li, ok)
	}
	// Untagged: no LastTagTime.
	three := putImage(t, s, "three", nil, l)
	if img, _ := view(t, s).Image(three.ID); !img.LastTagTime.IsZero() {
		t.Errorf("untagged image has LastTagTime %v", img.LastTagTime)
	}
	for _, bad := range []string{"app:1", "docker.io/library/app", "docker.io/library/app@" + l.DiffID.String()} {
		if err := s.PutImage(t.Context(), NewImage{ID: one.ID}, []string{bad}); err == nil {
			t.Errorf("PutImage accepted the tag %q", bad)
		}
	}
}

func TestRecordLayers(t *testing.T) {
	s := newStore(t)
	diffID := digest.FromString("layer")
	gz := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("gz"), Size: 10}
	zst := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: digest.FromString("zst"), Size: 8}
	if err := s.RecordLayers(Layer{DiffID: diffID, Blob: gz}, Layer{DiffID: diffID, Blob: zst, Size: 100}, Layer{DiffID: diffID, Blob: gz}); err != nil {
		t.Fatal(err)
	}
	idx := view(t, s)
	li, ok := idx.Layer(diffID)
	if !ok || li.Size != 100 || len(li.Blobs) != 2 {
		t.Fatalf("Layer = %+v, %v; want size 100 and two blobs", li, ok)
	}
	if len(idx.Images()) != 0 {
		t.Fatal("RecordLayers created an image")
	}
	if got := idx.LayerSize(diffID, gz); got != 100 {
		t.Fatalf("LayerSize = %d, want the uncompressed 100", got)
	}
}

func TestTag(t *testing.T) {
	s := newStore(t)
	img := putImage(t, s, "x", nil)
	if err := s.Tag(img.ID.Encoded()[:8], "docker.io/library/x:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("x:1", "localhost:5000/y:2"); err != nil {
		t.Fatal(err)
	}
	idx := view(t, s)
	if got := idx.TagsOf(img.ID); !slices.Equal(got, []string{"docker.io/library/x:1", "localhost:5000/y:2"}) {
		t.Fatalf("TagsOf = %v", got)
	}
	if r, _ := idx.Image(img.ID); r.LastTagTime.IsZero() {
		t.Fatal("Tag set no LastTagTime")
	}
	if err := s.Tag("nothere", "docker.io/library/z:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Tag of a missing image = %v", err)
	}
	if err := s.Tag("x:1", "z"); err == nil {
		t.Fatal("Tag accepted a reference that is not normalized")
	}
}

// removeFixture is a store with image a (tags a:1, a:2, a repo digest),
// b (tag b:1) and c (no tag).
type removeFixture struct {
	s       *Store
	a, b, c testImage
	aDigest string // a's repo digest, familiar
}

func newRemoveFixture(t *testing.T) removeFixture {
	s := newStore(t)
	f := removeFixture{s: s}
	f.a = putImage(t, s, "a", []string{"docker.io/library/a:1", "docker.io/library/a:2"})
	f.b = putImage(t, s, "b", []string{"docker.io/library/b:1"})
	f.c = putImage(t, s, "c", nil)
	f.aDigest = "a@" + f.a.Manifest.Digest.String()
	if err := s.SetRepoDigests(f.a.ID, f.aDigest, f.aDigest); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRemove(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ref      func(f removeFixture) string
		force    bool
		untagged func(f removeFixture) []string
		deleted  func(f removeFixture) []digest.Digest
		err      error
	}{
		{name: "tag of an image with other tags only untags",
			ref:      func(f removeFixture) string { return "a:1" },
			untagged: func(f removeFixture) []string { return []string{"a:1"} }},
		{name: "last tag deletes the image",
			ref:      func(f removeFixture) string { return "b:1" },
			untagged: func(f removeFixture) []string { return []string{"b:1"} },
			deleted:  func(f removeFixture) []digest.Digest { return []digest.Digest{f.b.ID} }},
		{name: "ID of an image with several tags needs force",
			ref: func(f removeFixture) string { return f.a.ID.String() },
			err: ErrConflict},
		{name: "name@digest of an image with several tags needs force",
			ref: func(f removeFixture) string { return f.aDigest },
			err: ErrConflict},
		{name: "forced ID untags all and reports repo digests",
			ref: func(f removeFixture) string { return f.a.ID.String() }, force: true,
			untagged: func(f removeFixture) []string { return []string{"a:1", "a:2", f.aDigest} },
			deleted:  func(f removeFixture) []digest.Digest { return []digest.Digest{f.a.ID} }},
		{name: "forced tag still only untags",
			ref: func(f removeFixture) string { return "docker.io/library/a:2" }, force: true,
			untagged: func(f removeFixture) []string { return []string{"a:2"} }},
		{name: "ID of an image with one tag",
			ref:      func(f removeFixture) string { return f.b.ID.Encoded()[:12] },
			untagged: func(f removeFixture) []string { return []string{"b:1"} },
			deleted:  func(f removeFixture) []digest.Digest { return []digest.Digest{f.b.ID} }},
		{name: "untagged image by short ID",
			ref:     func(f removeFixture) string { return "sha256:" + f.c.ID.Encoded()[:6] },
			deleted: func(f removeFixture) []digest.Digest { return []digest.Digest{f.c.ID} }},
		{name: "unknown reference",
			ref: func(f removeFixture) string { return "nothere:1" },
			err: ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRemoveFixture(t)
			before := view(t, f.s)
			res, err := f.s.Remove(tc.ref(f), tc.force)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Remove = %v, want %v", err, tc.err)
				}
				after := view(t, f.s)
				if len(after.Images()) != len(before.Images()) || len(after.Tags()) != len(before.Tags()) {
					t.Fatal("a failed Remove changed the index")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var wantU []string
			var wantD []digest.Digest
			if tc.untagged != nil {
				wantU = tc.untagged(f)
			}
			if tc.deleted != nil {
				wantD = tc.deleted(f)
			}
			if !slices.Equal(res.Untagged, wantU) || !slices.Equal(res.Deleted, wantD) {
				t.Fatalf("Remove = %+v, want untagged %v, deleted %v", res, wantU, wantD)
			}
			idx := view(t, f.s)
			for _, id := range wantD {
				if _, ok := idx.Image(id); ok || len(idx.TagsOf(id)) > 0 {
					t.Errorf("image %s or its tags survived", id)
				}
			}
			if len(idx.Images()) != 3-len(wantD) {
				t.Errorf("%d images left, want %d", len(idx.Images()), 3-len(wantD))
			}
			for _, u := range wantU {
				if n, _ := NormalizeRef(u); idx.Tags()[n] != "" {
					t.Errorf("tag %s survived", u)
				}
			}
		})
	}
}

func TestRemoveConflictMessage(t *testing.T) {
	f := newRemoveFixture(t)
	_, err := f.s.Remove(f.a.ID.String(), false)
	want := "conflict: unable to delete " + f.a.ID.Encoded()[:12] + " (must be forced) - image is referenced in multiple repositories"
	if err == nil || err.Error() != want {
		t.Fatalf("Remove = %v, want %q", err, want)
	}
}

func TestPrune(t *testing.T) {
	for _, tc := range []struct {
		name     string
		all      bool
		deleted  func(f removeFixture) []digest.Digest
		untagged func(f removeFixture) []string
		tagsLeft int
	}{
		{name: "dangling", tagsLeft: 3,
			deleted: func(f removeFixture) []digest.Digest { return []digest.Digest{f.c.ID} }},
		{name: "all", all: true, tagsLeft: 0,
			deleted: func(f removeFixture) []digest.Digest { return sorted(f.a.ID, f.b.ID, f.c.ID) },
			untagged: func(f removeFixture) []string {
				u := map[digest.Digest][]string{f.a.ID: {"a:1", "a:2", f.aDigest}, f.b.ID: {"b:1"}}
				var out []string
				for _, id := range sorted(f.a.ID, f.b.ID, f.c.ID) {
					out = append(out, u[id]...)
				}
				return out
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRemoveFixture(t)
			res, err := f.s.Prune(tc.all)
			if err != nil {
				t.Fatal(err)
			}
			var wantU []string
			if tc.untagged != nil {
				wantU = tc.untagged(f)
			}
			if !slices.Equal(res.Deleted, tc.deleted(f)) || !slices.Equal(res.Untagged, wantU) {
				t.Fatalf("Prune = %+v, want deleted %v, untagged %v", res, tc.deleted(f), wantU)
			}
			idx := view(t, f.s)
			if len(idx.Images()) != 3-len(res.Deleted) || len(idx.Tags()) != tc.tagsLeft {
				t.Fatalf("left %d images and tags %v", len(idx.Images()), idx.Tags())
			}
		})
	}
}

func TestSetRepoDigests(t *testing.T) {
	f := newRemoveFixture(t)
	img, _ := view(t, f.s).Image(f.a.ID)
	if want := []string{"docker.io/library/" + f.aDigest}; !slices.Equal(img.RepoDigests, want) {
		t.Fatalf("RepoDigests = %v, want %v (normalized, once)", img.RepoDigests, want)
	}
	if r, err := view(t, f.s).Resolve(f.aDigest); err != nil || r.ID != f.a.ID {
		t.Fatalf("Resolve(repo digest) = %v, %v", r.ID, err)
	}
	if err := f.s.SetRepoDigests(f.a.ID, "a:1"); err == nil {
		t.Fatal("a reference without digest was accepted")
	}
	if err := f.s.SetRepoDigests(digest.FromString("none"), f.aDigest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetRepoDigests of a missing image = %v", err)
	}
}

// TestRemoveParent checks docker's rule for an image other images are
// built on: its ID cannot be removed even with force, its last tag only
// untags it, and prune spares it until its child is gone, so no image's
// Parent ever names a missing image.
func TestRemoveParent(t *testing.T) {
	s := newStore(t)
	l := writeLayer(t, s, file("f", "x"))
	parent := putImage(t, s, "parent", []string{"docker.io/library/p:1"}, l)
	child := writeImage(t, s, "child", l)
	if err := s.PutImage(t.Context(), NewImage{ID: child.ID, Manifest: child.Manifest, Parent: parent.ID, Layers: []Layer{l}}, []string{"docker.io/library/c:1"}); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		_, err := s.Remove(parent.ID.String(), force)
		want := "conflict: unable to delete " + parent.ID.Encoded()[:12] + " (cannot be forced) - image has dependent child images"
		if !errors.Is(err, ErrConflict) || err.Error() != want {
			t.Fatalf("Remove(parent ID, force=%v) = %v, want %q", force, err, want)
		}
	}
	res, err := s.Remove("p:1", false)
	if err != nil || !slices.Equal(res.Untagged, []string{"p:1"}) || len(res.Deleted) != 0 {
		t.Fatalf("Remove(p:1) = %+v, %v; want only untagged", res, err)
	}
	if res, err := s.Prune(false); err != nil || len(res.Deleted) != 0 {
		t.Fatalf("Prune with the parent's child present = %+v, %v", res, err)
	}
	if _, err := view(t, s).Resolve(parent.ID.String()); err != nil {
		t.Fatal("the parent image is gone while its child names it")
	}
	if _, err := s.Remove("c:1", false); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Prune(false); err != nil || !slices.Equal(res.Deleted, []digest.Digest{parent.ID}) {
		t.Fatalf("Prune once the child is gone = %+v, %v; want the parent deleted", res, err)
	}
}
