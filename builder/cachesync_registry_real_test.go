package builder

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/registry/registrytest"
	"github.com/builder-project/builder/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// These tests run real builds (root, overlayfs, a busybox base) against a
// real registry on loopback.

const regCacheRealDockerfile = `FROM busybox:latest AS builder
RUN head -c 4000000 /dev/urandom > /big && echo small > /small
FROM busybox:latest
COPY --from=builder /small /small
RUN cat /small > /copy
`

// otherMachine returns a fixture on a fresh store that shares f's context
// and holds only f's base image, moved through a docker archive.
func otherMachine(t *testing.T, f *buildFixture) *buildFixture {
	t.Helper()
	ctx := context.Background()
	var archive bytes.Buffer
	if err := f.b.Save(ctx, &archive, DockerArchive, []string{"busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	o := &buildFixture{b: newTestBuilder(t), ctx: f.ctx}
	if _, err := o.b.Load(ctx, &archive); err != nil {
		t.Fatal(err)
	}
	return o
}

// layersOf returns the layer blobs of the image ref.
func layersOf(t *testing.T, b *Builder, ref string) []ocispec.Descriptor {
	t.Helper()
	img, err := b.resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return img.manifest.Layers
}

func TestRegistryCacheRoundTrip(t *testing.T) {
	a := newBuildFixture(t, map[string]string{"Dockerfile": regCacheRealDockerfile})
	_, ref := registryCache(t, "1")
	resA := a.mustBuild(t, BuildOptions{Tags: []string{"app:1"},
		CacheTo: []CacheDest{{Type: CacheRegistry, Ref: ref, Mode: CacheModeMax, CompressionOptions: CompressionOptions{Compression: "zstd"}}}})
	recs, _ := readRegistryCache(t, ref)
	if len(recs) != 3 {
		t.Fatalf("mode=max exported %d records, want 3", len(recs))
	}
	var big ocispec.Descriptor
	for _, rec := range recs {
		if rec.Layer == nil || rec.Layer.Desc.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Fatalf("record %q: layer %+v, want a zstd layer", rec.CreatedBy, rec.Layer)
		}
		if strings.Contains(rec.CreatedBy, "urandom") {
			big = rec.Layer.Desc
		}
	}
	if big.Size < 4000000 {
		t.Fatalf("builder layer %+v, want the big one", big)
	}

	// Another machine with only the base image hits every step, gets the
	// same image and downloads only the final image's layers.
	b := otherMachine(t, a)
	blobsBefore := countBlobs(t, b.b)
	resB := b.mustBuild(t, BuildOptions{Tags: []string{"app:1"}, CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: ref}}})
	if resB.Cached != 3 || resB.Steps != 0 || resB.ID != resA.ID {
		t.Fatalf("build from the registry cache: %d cached, %d run, ID %s want %s", resB.Cached, resB.Steps, resB.ID, resA.ID)
	}
	if _, ok := b.b.st.Has(big.Digest); ok {
		t.Error("the builder stage's big layer was downloaded, though nothing read it")
	}
	layers := layersOf(t, b.b, "app:1")
	for _, l := range layers {
		if _, ok := b.b.st.Has(l.Digest); !ok {
			t.Errorf("final image layer %s is not in the store", l.Digest)
		}
	}
	// The final image's two new layers, its config and its manifest.
	if got := countBlobs(t, b.b) - blobsBefore; got != 4 {
		t.Errorf("the build added %d blobs, want 4", got)
	}
	if got := readFile(t, filepath.Join(b.rootfs(t, "app:1"), "copy")); got != "small\n" {
		t.Errorf("/copy = %q", got)
	}

	// A changed last step re-runs on the final stage's snapshot: its
	// layers are downloaded first; the builder's still are not.
	c := otherMachine(t, a)
	c.write(t, map[string]string{"Dockerfile": strings.Replace(regCacheRealDockerfile, "cat /small > /copy", "cat /small /small > /copy", 1)})
	resC := c.mustBuild(t, BuildOptions{Tags: []string{"app:2"}, CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: ref}}})
	if resC.Cached != 2 || resC.Steps != 1 {
		t.Errorf("changed build: %d cached, %d run; want 2 and 1", resC.Cached, resC.Steps)
	}
	if got := readFile(t, filepath.Join(c.rootfs(t, "app:2"), "copy")); got != "small\nsmall\n" {
		t.Errorf("/copy = %q", got)
	}
	if _, ok := c.b.st.Has(big.Digest); ok {
		t.Error("the builder stage's big layer was downloaded for a step of another stage")
	}
	// COPY --from the builder, not cached, needs its snapshot.
	c.write(t, map[string]string{"Dockerfile": regCacheRealDockerfile + "COPY --from=builder /big /big\n"})
	c.mustBuild(t, BuildOptions{Tags: []string{"app:3"}, CacheFrom: []CacheSource{{Type: CacheRegistry, Ref: ref}}})
	if _, ok := c.b.st.Has(big.Digest); !ok {
		t.Error("COPY --from the builder stage ran without its layer")
	}
}

// BenchmarkRegistryCacheExport measures what a registry cache export adds
// to a build whose RUN writes a 50 MB layer, as the share of the whole
// Build call spent after the build was done (export-%) and its time
// (export-s/op). The layer goes to a loopback registry:
//
//   - cold: each iteration builds without the cache, so the registry has
//     never seen the layer, which is gzip-compressed (the default) and
//     pushed;
//   - cold-uncompressed: the same with compression=uncompressed: the layer
//     goes up as it is stored;
//   - incremental: the 50 MB step is cached and already in the registry
//     (a HEAD finds it); a small last step re-runs, as after a code change.
func BenchmarkRegistryCacheExport(b *testing.B) {
	testutil.RequirePrivileges(b, "root", "overlay")
	reg := registrytest.Start(b)
	const df = "FROM busybox:latest\nRUN head -c 50000000 /dev/urandom > /big\nARG N\nRUN echo $N > /n\n"
	for _, bc := range []struct {
		name, compression string
		noCache           bool
	}{{"cold", "", true}, {"cold-uncompressed", "uncompressed", true}, {"incremental", "", false}} {
		b.Run(bc.name, func(b *testing.B) {
			bu, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			root := testutil.BusyboxRootfs(b)
			if _, err := bu.Import(context.Background(), bytes.NewReader(tarDir(b, root)), ImportOptions{Ref: "busybox:latest"}); err != nil {
				b.Fatal(err)
			}
			opts := BuildOptions{ContextDir: b.TempDir(), DockerfileData: []byte(df), NoCache: bc.noCache}
			ref := reg.Host + "/bench-" + bc.name
			if !bc.noCache { // the big layer is built and pushed once, beforehand
				opts.CacheTo = []CacheDest{{Ref: ref + ":warm", Mode: CacheModeMax}}
				if _, err := bu.Build(context.Background(), opts); err != nil {
					b.Fatal(err)
				}
			}
			var total, export time.Duration
			b.ResetTimer()
			for i := range b.N {
				var done time.Time
				opts.BuildArgs = map[string]string{"N": fmt.Sprint(i)}
				opts.CacheTo = []CacheDest{{Ref: fmt.Sprintf("%s:%d", ref, i), Mode: CacheModeMax, CompressionOptions: CompressionOptions{Compression: bc.compression}}}
				opts.Progress = func(ev Event) {
					if ev.Kind == BuildDone {
						done = time.Now()
					}
				}
				start := time.Now()
				if _, err := bu.Build(context.Background(), opts); err != nil {
					b.Fatal(err)
				}
				end := time.Now()
				total += end.Sub(start)
				export += end.Sub(done)
			}
			b.ReportMetric(100*export.Seconds()/total.Seconds(), "export-%")
			b.ReportMetric(export.Seconds()/float64(b.N), "export-s/op")
		})
	}
}
