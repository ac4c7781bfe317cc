package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/executor/executortest"
	"github.com/builder-project/builder/internal/registry/registrytest"
	"github.com/builder-project/builder/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// These tests move the build cache through a real Distribution registry on
// loopback, with the fake executor: builds FROM scratch need no root.

// regCacheDockerfile has a builder stage whose first layer is big and a
// final stage that copies a small file from it.
const regCacheDockerfile = `FROM scratch AS builder
RUN big
RUN echo small > /small
FROM scratch
COPY --from=builder /small /copied
ENV DONE=1
`

// bigHandler plays "RUN big" by writing 2 MiB of incompressible bytes to
// /big, and every other RUN through the fake's script interpreter. What
// it writes has a fixed mtime, so that a step run again gives the same
// layer.
func bigHandler(ctx context.Context, s executor.Spec, root string, stdio executor.IO) error {
	var err error
	if len(s.Args) > 0 && strings.HasSuffix(s.Args[len(s.Args)-1], "big") {
		data := make([]byte, 2<<20)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		err = os.WriteFile(filepath.Join(root, "big"), data, 0o644)
	} else {
		err = executortest.Script(ctx, s, root, stdio)
	}
	if err != nil {
		return err
	}
	epoch := time.Unix(1e9, 0)
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && p != root {
			err = os.Chtimes(p, epoch, epoch)
		}
		return err
	})
}

// registryCache is a cache reference in a fresh registry.
func registryCache(t *testing.T, tag string) (*registrytest.Registry, string) {
	t.Helper()
	reg := registrytest.Start(t)
	return reg, reg.Host + "/cache:" + tag
}

// readRegistryCache reads the records of the cache at ref.
func readRegistryCache(t *testing.T, ref string) (map[digest.Digest]cache.Record, []byte) {
	t.Helper()
	ctx := context.Background()
	c, err := RegistryOptions{}.client(nil)
	if err != nil {
		t.Fatal(err)
	}
	data, desc, err := c.FetchManifest(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	rc := &remoteCache{ref: ref, repo: repository(ref), client: c}
	recs, _, err := cache.ReadImageManifest(ctx, desc, func(ctx context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
		if d.Digest == desc.Digest {
			return data, nil
		}
		return fetchSmallBlob(ctx, rc, d, limit)
	})
	if err != nil {
		t.Fatalf("reading the cache at %s: %v", ref, err)
	}
	return recs, data
}

// messages returns the messages of the last build's events of kind k.
func (f *fakeBuild) messages(k EventKind) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.evs {
		if ev.Kind == k {
			out = append(out, ev.Message)
		}
	}
	return out
}

// imageLayers returns the layer blobs of the image ref in f's store.
func (f *fakeBuild) imageLayers(t *testing.T, ref string) []ocispec.Descriptor {
	t.Helper()
	img, err := f.b.resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return img.manifest.Layers
}

// builderLayers returns the layer blobs of the builder stage's records.
func builderLayers(recs map[digest.Digest]cache.Record) []digest.Digest {
	var out []digest.Digest
	for _, rec := range recs {
		if rec.Layer != nil && strings.HasPrefix(rec.CreatedBy, "RUN") {
			out = append(out, rec.Layer.Desc.Digest)
		}
	}
	return out
}

func TestRegistryCacheFake(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	_, ref := registryCache(t, "1")
	a := newFakeBuild(t, bigHandler)
	resA := a.mustBuild(t, regCacheDockerfile, BuildOptions{Tags: []string{"app:1"},
		CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref, Mode: CacheModeMax}}})
	recs, _ := readRegistryCache(t, ref)
	if len(recs) != 4 {
		t.Fatalf("mode=max exported %d records, want 4", len(recs))
	}
	big := builderLayers(recs)
	if len(big) != 2 {
		t.Fatalf("builder stage layers %v, want 2", big)
	}

	// Another machine: every step hits, nothing runs, the image is the
	// same, and only the final image's layer was downloaded.
	b := newFakeBuild(t, bigHandler)
	resB := b.mustBuild(t, regCacheDockerfile, BuildOptions{Tags: []string{"app:1"}, CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: ref}}})
	if resB.Cached != 4 || len(b.exec.Runs()) != 0 || resB.ID != resA.ID {
		t.Fatalf("build from the registry cache: %d cached, %d runs, ID %s want %s", resB.Cached, len(b.exec.Runs()), resB.ID, resA.ID)
	}
	layers := b.imageLayers(t, "app:1")
	if len(layers) != 1 {
		t.Fatalf("final image has %d layers, want 1", len(layers))
	}
	if _, ok := b.b.st.Has(layers[0].Digest); !ok {
		t.Error("the final image's layer was not downloaded")
	}
	for _, d := range big {
		if _, ok := b.b.st.Has(d); ok {
			t.Errorf("builder stage layer %s was downloaded, though nothing read it", d)
		}
	}
	if n := countBlobs(t, b.b); n != 3 {
		t.Errorf("store B holds %d blobs, want 3 (the layer, the config, the manifest)", n)
	}
	// The records whose layers arrived joined the local cache: a rebuild
	// without the registry hits the final stage.
	res := b.mustBuild(t, regCacheDockerfile, BuildOptions{Target: ""})
	if res.ID != resA.ID || len(b.exec.Runs()) != 2 {
		t.Errorf("rebuild without --cache-from: ID %s, %d runs (want the builder stage's 2)", res.ID, len(b.exec.Runs()))
	}

	// An uncached step that reads a cached stage downloads its layers:
	// COPY --from the builder needs the big layer; the final stage's
	// changed last step needs the final stage's snapshot.
	c := newFakeBuild(t, bigHandler)
	df := strings.Replace(regCacheDockerfile, "ENV DONE=1\n", "COPY --from=builder /big /big\nRUN echo changed > /changed\n", 1)
	resC := c.mustBuild(t, df, BuildOptions{Tags: []string{"app:2"}, CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: ref}}})
	if resC.Cached != 3 || len(c.exec.Runs()) != 1 {
		t.Errorf("changed build: %d cached, %d runs; want 3 and 1", resC.Cached, len(c.exec.Runs()))
	}
	for _, d := range big {
		if _, ok := c.b.st.Has(d); !ok {
			t.Errorf("builder stage layer %s was not downloaded for COPY --from", d)
		}
	}
	if entries := layerEntries(t, c.b, c.imageLayers(t, "app:2")[1].Digest); len(entries) != 1 || entries[0] != "big" {
		t.Errorf("COPY --from layer holds %q, want big", entries)
	}
	fetched := strings.Join(c.messages(Info), "\n")
	if strings.Count(fetched, "fetched cached layer") != 3 {
		t.Errorf("want 3 layers fetched, events:\n%s", fetched)
	}
}

// countBlobs counts the blob files of b's store.
func countBlobs(t *testing.T, b *Builder) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(b.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestRegistryCacheModes(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	reg, _ := registryCache(t, "x")
	a := newFakeBuild(t, bigHandler)
	minRef, maxRef := reg.Host+"/cache:min", reg.Host+"/cache:max"
	a.mustBuild(t, regCacheDockerfile, BuildOptions{CacheTo: []CacheDest{{Ref: minRef}, {Ref: maxRef, Mode: CacheModeMax}}})
	minRecs, _ := readRegistryCache(t, minRef)
	maxRecs, _ := readRegistryCache(t, maxRef)
	if len(minRecs) != 2 || len(maxRecs) != 4 {
		t.Errorf("mode=min exported %d records, mode=max %d; want 2 (the final stage) and 4", len(minRecs), len(maxRecs))
	}
	for _, rec := range minRecs {
		if strings.HasPrefix(rec.CreatedBy, "RUN") {
			t.Errorf("mode=min exported the builder stage's %q", rec.CreatedBy)
		}
	}
	// mode=min with a stage built FROM another exports both.
	chained := "FROM scratch AS base\nRUN echo 1 > /1\nFROM base\nRUN echo 2 > /2\n"
	ref := reg.Host + "/cache:chain"
	a.mustBuild(t, chained, BuildOptions{CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref}}})
	if recs, _ := readRegistryCache(t, ref); len(recs) != 2 {
		t.Errorf("mode=min of a FROM chain exported %d records, want 2", len(recs))
	}
	// A cache without any layer is still a manifest the registry takes.
	ref = reg.Host + "/cache:nolayer"
	a.mustBuild(t, "FROM scratch\nENV A=1\n", BuildOptions{CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref}}})
	if recs, _ := readRegistryCache(t, ref); len(recs) != 1 {
		t.Errorf("a cache without layers holds %d records, want 1", len(recs))
	}
}

func TestRegistryCacheWarningsAndErrors(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	reg, ref := registryCache(t, "1")
	ctx := context.Background()
	f := newFakeBuild(t, bigHandler)
	f.mustBuild(t, regCacheDockerfile, BuildOptions{CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref, Mode: CacheModeMax}}})

	// A damaged cache: a manifest whose config is not JSON.
	c, err := RegistryOptions{}.client(nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte("not json")
	cdesc := ocispec.Descriptor{MediaType: cache.MediaTypeCacheConfig, Digest: digest.FromBytes(bad), Size: int64(len(bad))}
	if err := c.PushBlob(ctx, reg.Host+"/cache", cdesc, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(bad)), nil }); err != nil {
		t.Fatal(err)
	}
	mf, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: []ocispec.Descriptor{}})
	if err := c.PushManifest(ctx, reg.Host+"/cache:damaged", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mf), Size: int64(len(mf))}, mf); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ ref, want string }{
		"missing tag": {reg.Host + "/cache:nope", "MANIFEST_UNKNOWN"},
		"damaged":     {reg.Host + "/cache:damaged", "decoding cache config"},
	} {
		t.Run(name, func(t *testing.T) {
			fresh := newFakeBuild(t, bigHandler)
			res := fresh.mustBuild(t, regCacheDockerfile, BuildOptions{CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: tc.ref}}})
			warnings := fresh.messages(Warning)
			if len(warnings) != 1 || !strings.Contains(warnings[0], "importing cache from "+tc.ref) || !strings.Contains(warnings[0], tc.want) {
				t.Errorf("warnings %q, want one about %s mentioning %q", warnings, tc.ref, tc.want)
			}
			if res.Cached != 0 {
				t.Errorf("%d steps cached from an unusable cache", res.Cached)
			}
		})
	}

	// A failed export is an error, or a warning with ignore-error.
	locked := registrytest.Start(t, registrytest.WithHtpasswd("u", "p"))
	dest := CacheDest{Type: CacheRegistry, Ref: locked.Host + "/cache:1"}
	if _, err := f.build(t, regCacheDockerfile, BuildOptions{CacheTo: []CacheDest{dest}}); err == nil || !strings.Contains(err.Error(), "exporting cache to "+dest.Ref) {
		t.Errorf("export to a registry refusing it: %v", err)
	}
	dest.IgnoreError = true
	f.mustBuild(t, regCacheDockerfile, BuildOptions{CacheTo: []CacheDest{dest}})
	if w := f.messages(Warning); len(w) != 1 || !strings.Contains(w[0], "unauthorized") {
		t.Errorf("ignore-error: warnings %q", w)
	}

	// A layer that vanished from the cache after its records were read
	// fails the build and names the blob and the cache.
	recs, _ := readRegistryCache(t, ref)
	var layerDigest digest.Digest
	for _, rec := range recs {
		if rec.Layer != nil && strings.HasPrefix(rec.CreatedBy, "COPY") {
			layerDigest = rec.Layer.Desc.Digest // the final image's: always fetched
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, "http://"+reg.Host+"/v2/cache/blobs/"+layerDigest.String(), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting blob: %v %v", resp, err)
	}
	fresh := newFakeBuild(t, bigHandler)
	_, err = fresh.build(t, regCacheDockerfile, BuildOptions{CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: ref}}})
	if err == nil || !strings.Contains(err.Error(), layerDigest.String()) || !strings.Contains(err.Error(), ref) {
		t.Errorf("build with a vanished cached layer: %v; want an error naming %s and %s", err, layerDigest, ref)
	}
}

// TestRegistryCacheSkopeo checks the pushed cache with skopeo: an image
// manifest whose config is a BuildKit cache config and whose layers carry
// their diffIDs.
func TestRegistryCacheSkopeo(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	skopeo := testutil.RequireTool(t, "skopeo")
	_, ref := registryCache(t, "1")
	f := newFakeBuild(t, bigHandler)
	f.mustBuild(t, regCacheDockerfile, BuildOptions{CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref, Mode: CacheModeMax, CompressionOptions: CompressionOptions{Compression: "gzip"}}}})
	out, err := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(out, &mf); err != nil {
		t.Fatalf("skopeo printed %s: %v", out, err)
	}
	if mf.MediaType != ocispec.MediaTypeImageManifest || mf.Config.MediaType != "application/vnd.buildkit.cacheconfig.v0" || len(mf.Layers) != 3 {
		t.Fatalf("manifest %s", out)
	}
	for _, l := range mf.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerGzip || !strings.HasPrefix(l.Annotations["containerd.io/uncompressed"], "sha256:") {
			t.Errorf("layer %+v: want gzip with a containerd.io/uncompressed annotation", l)
		}
	}
	// The gzip forms were recorded: a second export compresses nothing.
	before := countBlobs(t, f.b)
	f.mustBuild(t, regCacheDockerfile, BuildOptions{CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref, Mode: CacheModeMax, CompressionOptions: CompressionOptions{Compression: "gzip"}}}})
	if after := countBlobs(t, f.b); after != before {
		t.Errorf("a second gzip export wrote %d new blobs", after-before)
	}
}

// TestRegistryCacheSharesImageBlobs pushes the image and the cache of one
// build to one registry: each blob goes up once, the cache mounting what
// the image push uploaded.
func TestRegistryCacheSharesImageBlobs(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	reg, ref := registryCache(t, "1")
	f := newFakeBuild(t, bigHandler)
	f.mustBuild(t, regCacheDockerfile, BuildOptions{Tags: []string{reg.Host + "/app:1"}, Outputs: []Output{{Type: OutputRegistry}},
		CacheTo: []CacheDest{{Ref: ref, Mode: CacheModeMax}}})
	pushed := map[string]int{}
	mounted := 0
	f.mu.Lock()
	for _, ev := range f.evs {
		switch {
		case ev.Kind != Transfer || ev.ID == "":
		case ev.Message == "Pushed":
			pushed[ev.ID]++
		case strings.HasPrefix(ev.Message, "Mounted from"):
			mounted++
		}
	}
	f.mu.Unlock()
	for id, n := range pushed {
		if n > 1 {
			t.Errorf("blob %s went up %d times", id, n)
		}
	}
	if len(pushed) != 3 || mounted != 1 {
		t.Errorf("%d blobs pushed, %d mounted; want 3 (the image's layer, the builder's two) and 1 (the image's layer, into the cache)", len(pushed), mounted)
	}
}
