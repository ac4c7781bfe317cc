package registry

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// pushImage pushes img from st to ref or fails the test.
func pushImage(t *testing.T, c *Client, st *store.Store, img testImage, ref string) ocispec.Descriptor {
	t.Helper()
	desc, err := c.Push(context.Background(), st, img.Manifest, ref, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// pullOne pulls ref into st, expecting one image.
func pullOne(t *testing.T, c *Client, st *store.Store, ref string, opts PullOptions) Pulled {
	t.Helper()
	ps, err := c.Pull(context.Background(), st, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("pulled %d images, want 1", len(ps))
	}
	return ps[0]
}

func TestPushThenPull(t *testing.T) {
	t.Parallel()
	for _, docker := range []bool{false, true} {
		name := "oci"
		if docker {
			name = "docker-schema2"
		}
		t.Run(name, func(t *testing.T) {
			reg, c, src := start(t)
			spec := twoLayers("round trip")
			spec.docker = docker
			img := makeImage(t, src, spec)
			ref := reg.Host + "/team/app:1"
			desc := pushImage(t, c, src, img, ref)
			if desc.Digest != img.Manifest.Digest || desc.MediaType != img.Manifest.MediaType {
				t.Fatalf("pushed %+v, want %+v", desc, img.Manifest)
			}

			dst := newStore(t)
			p := pullOne(t, c, dst, ref, PullOptions{})
			checkPulled(t, dst, p, img)
			if p.Ref != ref || p.RepoDigest != reg.Host+"/team/app@"+img.Manifest.Digest.String() || !p.Fresh {
				t.Errorf("pulled %+v", p)
			}
			idx, _ := dst.View()
			if id := idx.Tags()[ref]; id != img.ID {
				t.Errorf("tag %s points at %s, want %s", ref, id, img.ID)
			}
			if got, _ := idx.Image(img.ID); !slices.Contains(got.RepoDigests, p.RepoDigest) {
				t.Errorf("repo digests %v lack %s", got.RepoDigests, p.RepoDigest)
			}

			// Again: nothing to fetch. By digest: no tag recorded.
			if p := pullOne(t, c, dst, ref, PullOptions{}); p.Fresh {
				t.Error("second pull is fresh")
			}
			byDigest := reg.Host + "/team/app@" + img.Manifest.Digest.String()
			dst2 := newStore(t)
			p = pullOne(t, c, dst2, byDigest, PullOptions{})
			checkPulled(t, dst2, p, img)
			if idx, _ := dst2.View(); len(idx.Tags()) != 0 {
				t.Errorf("a pull by digest recorded tags %v", idx.Tags())
			}
		})
	}
}

// makeIndex stores an OCI index of imgs, one per architecture in archs.
func makeIndex(t *testing.T, st *store.Store, imgs []testImage, archs []string) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for i, img := range imgs {
		d := img.Manifest
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: archs[i]}
		idx.Manifests = append(idx.Manifests, d)
	}
	// An attestation entry, as BuildKit writes them, is never picked.
	idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: imgs[0].Manifest.Digest,
		Size: imgs[0].Manifest.Size, Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}})
	desc, err := st.WriteJSON(context.Background(), ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func TestPullMultiPlatform(t *testing.T) {
	t.Parallel()
	reg, c, src := start(t)
	archs := []string{"amd64", "arm64", "riscv64"}
	var imgs []testImage
	for _, a := range archs {
		imgs = append(imgs, makeImage(t, src, imageSpec{arch: a, author: a, files: []fileLayer{{"arch", []byte(a)}}}))
	}
	index := makeIndex(t, src, imgs, archs)
	ref := reg.Host + "/multi:1"
	desc, err := c.Push(context.Background(), src, index, ref, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != index.Digest {
		t.Fatalf("pushed %s, want the index %s", desc.Digest, index.Digest)
	}

	for i, a := range archs {
		dst := newStore(t)
		p := pullOne(t, c, dst, ref, PullOptions{Platform: &ocispec.Platform{OS: "linux", Architecture: a}})
		checkPulled(t, dst, p, imgs[i])
		if p.RepoDigest != reg.Host+"/multi@"+index.Digest.String() {
			t.Errorf("repo digest %s, want the index's", p.RepoDigest)
		}
		if p.Manifest.Platform == nil || p.Manifest.Platform.Architecture != a {
			t.Errorf("manifest descriptor %+v lacks the platform", p.Manifest)
		}
		if _, ok := dst.Has(index.Digest); !ok {
			t.Error("the index is not stored")
		}
		// The index bytes are stored as pushed: they push again to the same digest.
		data, err := dst.ReadBlob(context.Background(), index.Digest)
		if err != nil || string(data) != string(mustRead(t, src, index)) {
			t.Errorf("stored index differs: %v", err)
		}
	}

	dst := newStore(t)
	p := pullOne(t, c, dst, ref, PullOptions{})
	if want := imgs[slices.Index(archs, hostPlatform().Architecture)]; p.ID != want.ID {
		t.Errorf("default platform pulled %s, want the host's %s", p.ID, want.ID)
	}

	_, err = c.Pull(context.Background(), newStore(t), ref, PullOptions{Platform: &ocispec.Platform{OS: "linux", Architecture: "s390x"}})
	if err == nil || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64, linux/riscv64") {
		t.Errorf("pulling a missing platform: %v", err)
	}
}

func mustRead(t *testing.T, st *store.Store, d ocispec.Descriptor) []byte {
	t.Helper()
	b, err := st.ReadBlob(context.Background(), d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPullAllTags(t *testing.T) {
	t.Parallel()
	reg, c, src := start(t)
	want := map[string]testImage{}
	for _, tag := range []string{"1", "2", "latest"} {
		img := makeImage(t, src, imageSpec{author: tag, files: []fileLayer{{"v", []byte(tag)}}})
		pushImage(t, c, src, img, reg.Host+"/app:"+tag)
		want[reg.Host+"/app:"+tag] = img
	}
	tags, err := c.ListTags(context.Background(), reg.Host+"/app")
	if err != nil || !slices.Equal(tags, []string{"1", "2", "latest"}) {
		t.Fatalf("tags %v, %v", tags, err)
	}
	dst := newStore(t)
	ps, err := c.Pull(context.Background(), dst, reg.Host+"/app", PullOptions{AllTags: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("pulled %d images", len(ps))
	}
	for _, p := range ps {
		checkPulled(t, dst, p, want[p.Ref])
	}
	if _, err := c.Pull(context.Background(), dst, reg.Host+"/app:1", PullOptions{AllTags: true}); err == nil {
		t.Error("a tag with AllTags pulled")
	}
}

func TestPullNotAnImage(t *testing.T) {
	t.Parallel()
	reg, c, st := start(t)
	// An artifact: its config is not an image config.
	cfg, _ := st.WriteBlob(context.Background(), "application/vnd.example.config+json", []byte("{}"))
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}})
	desc, _ := st.WriteBlob(context.Background(), ocispec.MediaTypeImageManifest, m)
	if _, err := c.Push(context.Background(), st, desc, reg.Host+"/artifact:1", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Pull(context.Background(), newStore(t), reg.Host+"/artifact:1", PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "not a container image") {
		t.Errorf("pulling an artifact: %v", err)
	}
}
