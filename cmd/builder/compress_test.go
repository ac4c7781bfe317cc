package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archiveLayers returns the media type and the first bytes of each layer
// of the only image of the archive at p (OCI or docker: both hold an OCI
// layout's index.json).
func archiveLayers(t *testing.T, p string) (mediaTypes []string, heads [][]byte) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", p, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v: %s", p, err, out)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	blob := func(d digest.Digest) []byte { return read("blobs/sha256/" + d.Encoded()) }
	var idx ocispec.Index
	var mf ocispec.Manifest
	if err := json.Unmarshal(read("index.json"), &idx); err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("%s: index.json: %v", p, err)
	}
	if err := json.Unmarshal(blob(idx.Manifests[0].Digest), &mf); err != nil {
		t.Fatalf("%s: manifest: %v", p, err)
	}
	for _, l := range mf.Layers {
		mediaTypes = append(mediaTypes, l.MediaType)
		heads = append(heads, blob(l.Digest)[:4])
	}
	return mediaTypes, heads
}

// wantLayers fails t unless every layer of the archive at p has the media
// type and magic bytes of compression c.
func wantLayers(t *testing.T, p, c string) {
	t.Helper()
	want := map[string]struct {
		mediaType string
		magic     []byte
	}{
		"gzip": {ocispec.MediaTypeImageLayerGzip, []byte{0x1f, 0x8b}},
		"zstd": {ocispec.MediaTypeImageLayerZstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	}[c]
	mts, heads := archiveLayers(t, p)
	if len(mts) == 0 {
		t.Fatalf("%s: no layers", p)
	}
	for i := range mts {
		if mts[i] != want.mediaType || !bytes.HasPrefix(heads[i], want.magic) {
			t.Errorf("%s: layer %d is %s starting %x, want %s", p, i, mts[i], heads[i], want.mediaType)
		}
	}
}

// TestSaveCompressionFlags saves with --compression, --compression-level
// and --force-compression, loads the archives back into another store, and
// refuses flags that do not go together.
func TestSaveCompressionFlags(t *testing.T) {
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	writeFile(t, tarball, randomTar(t, 2, 1000))
	id := strings.TrimSpace(mustCLI(t, root, nil, "import", tarball, "app:1"))
	dir := t.TempDir()
	for _, tc := range []struct {
		name, compression string
		args              []string
	}{
		{"z.tar", "zstd", []string{"--format", "oci", "--compression", "zstd"}},
		{"g.tar", "gzip", []string{"--compression", "gzip", "--compression-level", "9", "--force-compression"}},
	} {
		p := filepath.Join(dir, tc.name)
		mustCLI(t, root, nil, append(append([]string{"save", "-o", p}, tc.args...), "app:1")...)
		wantLayers(t, p, tc.compression)
		other := t.TempDir()
		mustCLI(t, other, nil, "load", "-i", p)
		if got := strings.TrimSpace(mustCLI(t, other, nil, "images", "-q", "--no-trunc")); got != id {
			t.Errorf("%s loaded as %q, want %s", tc.name, got, id)
		}
	}
	for _, args := range [][]string{
		{"--compression-level", "3"},
		{"--force-compression"},
		{"--compression", "lz4"},
		{"--compression", "gzip", "--compression-level", "12"},
		{"--compression", "uncompressed", "--compression-level", "1"},
	} {
		out, err := cli(root, append(append([]string{"save", "-o", filepath.Join(dir, "bad.tar")}, args...), "app:1")...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "compression") {
			t.Errorf("save %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// TestBuildOutputCompression builds to compressed archives with --output's
// compression keys; the archives load back as the built image.
func TestBuildOutputCompression(t *testing.T) {
	root := storeWithBusybox(t)
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nRUN echo out > /out.txt\n"))
	dir := t.TempDir()
	oci, docker := filepath.Join(dir, "oci.tar"), filepath.Join(dir, "docker.tar")
	id := strings.TrimSpace(mustCLI(t, root, nil, "build", "-q",
		"--output", "type=oci,dest="+oci+",compression=zstd",
		"--output", "type=docker,dest="+docker+",compression=gzip,compression-level=1,force-compression=true",
		ctx))
	wantLayers(t, oci, "zstd")
	wantLayers(t, docker, "gzip")
	for _, p := range []string{oci, docker} {
		other := t.TempDir()
		mustCLI(t, other, nil, "load", "-i", p)
		if got := strings.TrimSpace(mustCLI(t, other, nil, "images", "-q", "--no-trunc")); got != id {
			t.Errorf("%s loaded as %q, want %s", p, got, id)
		}
	}
	out, err := cli(root, "build", "-q", "--output", "type=oci,dest="+oci+",compression=zstd,compression-level=30", ctx).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "compression level 30") {
		t.Errorf("build with zstd level 30: %v: %s", err, out)
	}
}
