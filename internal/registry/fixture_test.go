package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/registry/registrytest"
	"github.com/builder-project/builder/internal/store"
)

func TestMain(m *testing.M) {
	// Fast retries, and no credentials or config from the machine.
	retryBackoff.Duration = 5 * time.Millisecond
	dir, err := os.MkdirTemp("", "registry-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	os.Setenv("HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newClient returns a client whose config file is empty unless opts names
// one, and whose transport dials loopback addresses only (after mapping
// the names in dial), so that no test reaches outside the machine.
func newClient(t *testing.T, opts Options, dial map[string]string) *Client {
	t.Helper()
	if opts.ConfigFile == "" {
		opts.ConfigFile = writeConfig(t, "")
	}
	if opts.Transport == nil {
		opts.Transport = loopbackTransport(dial)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loopbackTransport is an http.Transport that refuses to dial anything but
// a loopback address, after replacing an address found in dial.
func loopbackTransport(dial map[string]string) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := dial[addr]; ok {
				addr = to
			}
			host, _, _ := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("test transport refuses to dial %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 16,
	}
}

// writeConfig writes a config file and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs a registry for t and returns it with a client with default
// options and an empty store to build images in.
func start(t *testing.T, opts ...registrytest.Option) (*registrytest.Registry, *Client, *store.Store) {
	t.Helper()
	return registrytest.Start(t, opts...), newClient(t, Options{}, nil), newStore(t)
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// randomBytes returns n incompressible bytes from seed.
func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// layerTar returns an uncompressed layer tar of one file.
func layerTar(t *testing.T, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// putLayer stores a gzipped layer holding one file and returns it.
func putLayer(t *testing.T, st *store.Store, mediaType, name string, content []byte) store.Layer {
	t.Helper()
	raw := layerTar(t, name, content)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	desc, err := st.WriteBlob(context.Background(), mediaType, gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return store.Layer{DiffID: digest.FromBytes(raw), Blob: desc, Size: int64(len(raw))}
}

// testImage is an image built by makeImage.
type testImage struct {
	ID       digest.Digest
	Manifest ocispec.Descriptor
	Layers   []store.Layer
}

// imageSpec says what makeImage builds.
type imageSpec struct {
	// docker uses docker's schema2 media types instead of OCI's.
	docker bool
	// arch is the config's architecture; "" is the host's.
	arch string
	// author makes otherwise equal images distinct.
	author string
	// files are the layers' single files, name → content, one layer each,
	// in order; base, when set, goes first.
	files []fileLayer
	base  []store.Layer
}

type fileLayer struct {
	name    string
	content []byte
}

// makeImage stores and records an image as spec says, tagged tags.
func makeImage(t *testing.T, st *store.Store, spec imageSpec, tags ...string) testImage {
	t.Helper()
	ctx := context.Background()
	layerType, configType, manifestType := ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if spec.docker {
		layerType, configType, manifestType = "application/vnd.docker.image.rootfs.diff.tar.gzip", mediatype.DockerConfig, mediatype.DockerManifest
	}
	layers := append([]store.Layer{}, spec.base...)
	for _, f := range spec.files {
		layers = append(layers, putLayer(t, st, layerType, f.name, f.content))
	}
	arch := spec.arch
	if arch == "" {
		arch = hostPlatform().Architecture
	}
	cfg := ocispec.Image{Author: spec.author, Platform: ocispec.Platform{OS: "linux", Architecture: arch}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}}
	mf := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manifestType, Layers: []ocispec.Descriptor{}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		mf.Layers = append(mf.Layers, l.Blob)
	}
	cdesc, err := st.WriteJSON(ctx, configType, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mf.Config = cdesc
	mdesc, err := st.WriteJSON(ctx, manifestType, mf)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutImage(ctx, store.NewImage{ID: cdesc.Digest, Manifest: mdesc, Layers: layers}, tags); err != nil {
		t.Fatal(err)
	}
	return testImage{ID: cdesc.Digest, Manifest: mdesc, Layers: layers}
}

// twoLayers is an image spec with a small layer and a 1.5 MiB incompressible
// one, so that a transfer can be cut in its middle.
func twoLayers(author string) imageSpec {
	return imageSpec{author: author, files: []fileLayer{
		{"etc/small", []byte("small " + author)},
		{"big.bin", randomBytes(3<<19, int64(len(author)))},
	}}
}

// checkPulled checks that st holds img as pulled: its ID, manifest and
// every blob, with the layers recorded with their diffIDs and sizes.
func checkPulled(t *testing.T, st *store.Store, p Pulled, img testImage) {
	t.Helper()
	if p.ID != img.ID || p.Manifest.Digest != img.Manifest.Digest {
		t.Fatalf("pulled ID %s manifest %s, want %s and %s", p.ID, p.Manifest.Digest, img.ID, img.Manifest.Digest)
	}
	if p.Manifest.MediaType != img.Manifest.MediaType {
		t.Errorf("manifest media type %q, want %q", p.Manifest.MediaType, img.Manifest.MediaType)
	}
	idx, err := st.View()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := idx.Image(img.ID)
	if !ok {
		t.Fatalf("image %s not recorded", img.ID)
	}
	if got.Manifest.Digest != img.Manifest.Digest {
		t.Errorf("recorded manifest %s, want %s", got.Manifest.Digest, img.Manifest.Digest)
	}
	for _, d := range []digest.Digest{img.ID, img.Manifest.Digest} {
		if _, ok := st.Has(d); !ok {
			t.Errorf("blob %s missing", d)
		}
	}
	if len(p.Layers) != len(img.Layers) {
		t.Fatalf("%d layers, want %d", len(p.Layers), len(img.Layers))
	}
	for i, l := range img.Layers {
		if p.Layers[i].Blob.Digest != l.Blob.Digest || p.Layers[i].DiffID != l.DiffID || p.Layers[i].Size != l.Size {
			t.Errorf("layer %d is %+v, want %+v", i, p.Layers[i], l)
		}
		if _, ok := st.Has(l.Blob.Digest); !ok {
			t.Errorf("layer blob %s missing", l.Blob.Digest)
		}
		if info, ok := idx.Layer(l.DiffID); !ok || info.Size != l.Size {
			t.Errorf("layer %s recorded as %+v, want size %d", l.DiffID, info, l.Size)
		}
	}
}

// ingests returns what is left under the store's ingest directory.
func ingests(t *testing.T, st *store.Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(st.Root(), "ingest"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
