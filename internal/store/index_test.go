package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// indexV1 is an index.json as the store has always written it: version,
// images, tags and layers, one-space indent, every key spelled as here.
const indexV1 = `{
 "version": 1,
 "images": {
  "sha256:1111111111111111111111111111111111111111111111111111111111111111": {
   "id": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
   "manifest": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
    "size": 402
   },
   "created": "2024-05-01T10:00:00.123456789Z",
   "lastTagTime": "2024-05-02T11:00:00Z",
   "repoDigests": [
    "docker.io/library/busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222"
   ],
   "parent": "sha256:3333333333333333333333333333333333333333333333333333333333333333"
  },
  "sha256:4444444444444444444444444444444444444444444444444444444444444444": {
   "id": "sha256:4444444444444444444444444444444444444444444444444444444444444444",
   "manifest": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:5555555555555555555555555555555555555555555555555555555555555555",
    "size": 10
   },
   "created": "2024-05-03T00:00:00Z",
   "lastTagTime": "0001-01-01T00:00:00Z"
  }
 },
 "tags": {
  "docker.io/library/busybox:latest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"
 },
 "layers": {
  "sha256:6666666666666666666666666666666666666666666666666666666666666666": {
   "diffID": "sha256:6666666666666666666666666666666666666666666666666666666666666666",
   "size": 4096,
   "blobs": [
    {
     "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
     "digest": "sha256:7777777777777777777777777777777777777777777777777777777777777777",
     "size": 1024
    }
   ]
  }
 }
}`

// hexDigest returns a sha256 digest whose hex is c repeated.
func hexDigest(c string) digest.Digest { return digest.Digest("sha256:" + strings.Repeat(c, 64)) }

// TestIndexFormatCompatible reads an index.json in the established format
// and writes it back byte for byte.
func TestIndexFormatCompatible(t *testing.T) {
	s := newStore(t)
	p := filepath.Join(s.Root(), "index.json")
	if err := os.WriteFile(p, []byte(indexV1), 0o600); err != nil {
		t.Fatal(err)
	}
	idx := view(t, s)
	busybox, ok := idx.Image(hexDigest("1"))
	if !ok || busybox.Manifest.Size != 402 || busybox.Parent != hexDigest("3") || len(busybox.RepoDigests) != 1 ||
		busybox.Created.Nanosecond() != 123456789 || busybox.LastTagTime.IsZero() {
		t.Fatalf("image read as %+v, %v", busybox, ok)
	}
	if got := idx.Tags(); len(got) != 1 || got["docker.io/library/busybox:latest"] != hexDigest("1") {
		t.Fatalf("Tags = %v", got)
	}
	if li, ok := idx.Layer(hexDigest("6")); !ok || li.Size != 4096 || len(li.Blobs) != 1 || li.Blobs[0].Digest != hexDigest("7") {
		t.Fatalf("Layer = %+v, %v", li, ok)
	}
	// An update that changes nothing rewrites the file unchanged.
	if err := s.RecordLayers(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != indexV1 {
		t.Fatalf("index.json rewritten differently:\n%s", got)
	}
}

// TestIndexNullTables: an index whose tables are null or missing is usable.
func TestIndexNullTables(t *testing.T) {
	s := newStore(t)
	if err := os.WriteFile(filepath.Join(s.Root(), "index.json"), []byte(`{"version":1,"images":null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImage(t.Context(), NewImage{ID: hexDigest("1")}, []string{"docker.io/library/a:1"}); err != nil {
		t.Fatal(err)
	}
	if got := view(t, s).TagsOf(hexDigest("1")); len(got) != 1 {
		t.Fatalf("TagsOf = %v", got)
	}
	if err := os.WriteFile(filepath.Join(s.Root(), "index.json"), []byte(`{"version":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(); err == nil {
		t.Fatal("an unknown index version was accepted")
	}
}

// TestIndexViewIsImmutable: what the read methods return shares nothing
// with the view, and a view does not see later updates.
func TestIndexViewIsImmutable(t *testing.T) {
	s := newStore(t)
	id := hexDigest("1")
	blob := ocispec.Descriptor{Digest: hexDigest("7"), Size: 5}
	if err := s.PutImage(t.Context(), NewImage{ID: id, Layers: []Layer{{DiffID: hexDigest("6"), Blob: blob}}}, []string{"docker.io/library/a:1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRepoDigests(id, "a@"+hexDigest("2").String()); err != nil {
		t.Fatal(err)
	}
	idx := view(t, s)
	img, _ := idx.Image(id)
	img.RepoDigests[0] = "changed"
	idx.Tags()["docker.io/library/b:1"] = id
	li, _ := idx.Layer(hexDigest("6"))
	li.Blobs[0].Digest = "changed"
	all := idx.Images()
	all[0].RepoDigests[0] = "changed"
	if r, _ := idx.Resolve("a:1"); r.RepoDigests[0] != "docker.io/library/a@"+hexDigest("2").String() {
		t.Fatalf("the view changed through a returned image: %v", r.RepoDigests)
	}
	if len(idx.Tags()) != 1 {
		t.Fatal("the view changed through a returned tag table")
	}
	if li, _ := idx.Layer(hexDigest("6")); li.Blobs[0].Digest != blob.Digest {
		t.Fatal("the view changed through a returned layer")
	}
	if err := s.Tag("a:1", "docker.io/library/b:1"); err != nil {
		t.Fatal(err)
	}
	if len(idx.Tags()) != 1 || len(view(t, s).Tags()) != 2 {
		t.Fatal("a view saw a later update, or the update was lost")
	}
	if got := idx.LayerSize(hexDigest("6"), blob); got != 5 {
		t.Fatalf("LayerSize with unknown size = %d, want the blob's 5", got)
	}
}
