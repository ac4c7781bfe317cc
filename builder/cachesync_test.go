package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const cacheSyncDockerfile = `FROM busybox:latest
COPY a.txt /a.txt
RUN cat /a.txt > /b.txt && echo ran >> /b.txt
ENV DONE=1
`

// cacheSyncSource builds cacheSyncDockerfile in a fresh store and exports
// its cache to a new directory.
func cacheSyncSource(t *testing.T) (*buildFixture, *BuildResult, string) {
	t.Helper()
	testutil.RequirePrivileges(t, "root")
	f := newBuildFixture(t, map[string]string{"Dockerfile": cacheSyncDockerfile, "a.txt": "hello"})
	res := f.mustBuild(t, BuildOptions{Tags: []string{"app:1"}})
	dir := filepath.Join(t.TempDir(), "cache")
	if err := f.b.ExportCache(context.Background(), dir, nil); err != nil {
		t.Fatalf("ExportCache: %v", err)
	}
	return f, res, dir
}

// readCacheManifest returns the single cache manifest of the layout at dir.
func readCacheManifest(t *testing.T, dir string) ocispec.Manifest {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "index.json"))), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].ArtifactType != ArtifactTypeCache {
		t.Fatalf("index.json manifests = %+v, want one of artifact type %s", idx.Manifests, ArtifactTypeCache)
	}
	var mf ocispec.Manifest
	p := filepath.Join(dir, "blobs", "sha256", idx.Manifests[0].Digest.Encoded())
	if err := json.Unmarshal([]byte(readFile(t, p)), &mf); err != nil {
		t.Fatal(err)
	}
	return mf
}

func TestCacheExportImport(t *testing.T) {
	a, first, dir := cacheSyncSource(t)
	ctx := context.Background()
	if got := readFile(t, filepath.Join(dir, "oci-layout")); !strings.Contains(got, `"1.0.0"`) {
		t.Errorf("oci-layout = %s", got)
	}
	recs, err := a.b.cache.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mf := readCacheManifest(t, dir)
	var nrec, nlayer int
	for _, d := range mf.Layers {
		if d.MediaType == MediaTypeCacheRecord {
			nrec++
		} else {
			nlayer++
		}
	}
	if nrec != len(recs) || nlayer != 2 {
		t.Fatalf("manifest lists %d records and %d layers, want %d and 2 (COPY, RUN)", nrec, nlayer, len(recs))
	}

	// Store B gets A's base image through an OCI archive, so that its
	// manifest digest, on which every cache key chains, is the same.
	bb := newTestBuilder(t)
	var arch bytes.Buffer
	if err := a.b.Save(ctx, &arch, OCIArchive, []string{"busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.Load(ctx, &arch); err != nil {
		t.Fatal(err)
	}
	n, err := bb.ImportCache(ctx, dir)
	if err != nil {
		t.Fatalf("ImportCache: %v", err)
	}
	if n != len(recs) {
		t.Errorf("imported %d records, want %d", n, len(recs))
	}
	if n, err := bb.ImportCache(ctx, dir); err != nil || n != 0 {
		t.Errorf("second import = %d, %v; want 0 new records", n, err)
	}

	fb := &buildFixture{b: bb, ctx: a.ctx}
	res := fb.mustBuild(t, BuildOptions{Tags: []string{"app:1"}})
	cached := 0
	for _, ev := range fb.evs {
		if ev.Kind == StepCached && ev.Step > 1 { // step 1 is the FROM
			cached++
		}
	}
	if cached != 3 || res.Cached != 3 || res.Steps != 0 {
		t.Errorf("build in B: %d cached events, Cached=%d Steps=%d; want every one of 3 steps cached", cached, res.Cached, res.Steps)
	}
	if res.ID != first.ID {
		t.Errorf("image ID in B = %s, want A's %s", res.ID, first.ID)
	}
	if got := readFile(t, filepath.Join(fb.rootfs(t, "app:1"), "b.txt")); got != "helloran\n" {
		t.Errorf("b.txt in B = %q", got)
	}

	t.Run("re-export merges", func(t *testing.T) {
		old := time.Now().Add(-time.Hour).Truncate(time.Second)
		blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
		for _, p := range blobs {
			os.Chtimes(p, old, old)
		}
		if err := bb.ExportCache(ctx, dir, nil); err != nil {
			t.Fatal(err)
		}
		for _, p := range blobs {
			if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(old) {
				t.Errorf("%s rewritten or removed (%v)", filepath.Base(p), err)
			}
		}
		if got := readCacheManifest(t, dir); !equalDescs(got.Layers, mf.Layers) {
			t.Errorf("manifest after re-export differs:\n%+v\nwant\n%+v", got.Layers, mf.Layers)
		}
		leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
		tmpBlobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", ".*"))
		if len(leftovers)+len(tmpBlobs) != 0 {
			t.Errorf("temporary files left: %v %v", leftovers, tmpBlobs)
		}
	})

	t.Run("selected keys", func(t *testing.T) {
		var key digest.Digest
		for _, r := range recs {
			if r.Layer != nil {
				key = r.Key
			}
		}
		sub := t.TempDir()
		if err := a.b.ExportCache(ctx, sub, []digest.Digest{key}); err != nil {
			t.Fatal(err)
		}
		n, err := newTestBuilder(t).ImportCache(ctx, sub)
		if err != nil || n != 1 {
			t.Fatalf("ImportCache = %d, %v; want 1 record", n, err)
		}
		if err := a.b.ExportCache(ctx, sub, []digest.Digest{digest.FromString("no such key")}); err == nil {
			t.Error("exporting an unknown key succeeded")
		}
	})
}

func equalDescs(a, b []ocispec.Descriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Digest != b[i].Digest || a[i].MediaType != b[i].MediaType {
			return false
		}
	}
	return true
}

func TestCacheImportDamaged(t *testing.T) {
	_, _, src := cacheSyncSource(t)
	mf := readCacheManifest(t, src)
	var layerBlob, recordBlob digest.Digest
	for _, d := range mf.Layers {
		if d.MediaType == MediaTypeCacheRecord {
			recordBlob = d.Digest
		} else {
			layerBlob = d.Digest
		}
	}
	flip := func(d digest.Digest) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0xff
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return d.Encoded()
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns what the error must name
	}{
		{"layer blob", flip(layerBlob)},
		{"record blob", flip(recordBlob)},
		{"missing layer blob", func(t *testing.T, dir string) string {
			if err := os.Remove(filepath.Join(dir, "blobs", "sha256", layerBlob.Encoded())); err != nil {
				t.Fatal(err)
			}
			return layerBlob.Encoded()
		}},
		{"no index", func(t *testing.T, dir string) string {
			if err := os.Remove(filepath.Join(dir, "index.json")); err != nil {
				t.Fatal(err)
			}
			return "index.json"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			want := tc.damage(t, dir)
			b := newTestBuilder(t)
			n, err := b.ImportCache(context.Background(), dir)
			if err == nil {
				t.Fatalf("ImportCache succeeded (%d records)", n)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			if recs, err := b.cache.List(context.Background()); err != nil || len(recs) != 0 {
				t.Errorf("cache after failed import: %d records, %v", len(recs), err)
			}
			assertNoLeftovers(t, b)
		})
	}
}
