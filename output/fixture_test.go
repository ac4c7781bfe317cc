package output

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math/rand"
	"runtime"
	"sort"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/store"
)

// testLayer describes a layer to build: file path → content, or the
// uncompressed tar raw when set, compressed as comp.
type testLayer struct {
	files map[string][]byte
	raw   []byte
	comp  compression.Kind
}

// testImage is an image built into a store by buildImage.
type testImage struct {
	Image
	config  digest.Digest
	diffIDs []digest.Digest
	layers  []ocispec.Descriptor
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// randomBytes returns n bytes that do not compress, from a fixed seed.
func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// layerTar makes an uncompressed layer tar holding files (and their parent
// directories), in sorted order.
func layerTar(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, n := range names {
		for i := range n {
			if n[i] == '/' && !dirs[n[:i]] {
				dirs[n[:i]] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n[:i+1], Mode: 0o755, ModTime: epoch}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: epoch}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compress compresses data as c.
func compress(t *testing.T, data []byte, c compression.Kind) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case compression.Gzip:
		w = gzip.NewWriter(&buf)
	case compression.Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return data
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// defaultLayers is a gzip layer, an uncompressed one and a zstd one; the
// big files go through ingests rather than memory when loaded.
func defaultLayers() []testLayer {
	return []testLayer{
		{files: map[string][]byte{"etc/hello.txt": []byte("hello\n"), "bin/tool": randomBytes(100<<10, 1)}, comp: compression.Gzip},
		{files: map[string][]byte{"data/big.bin": randomBytes(200<<10, 2)}, comp: compression.None},
		{files: map[string][]byte{"etc/hello.txt": []byte("bye\n")}, comp: compression.Zstd},
	}
}

// buildImage stores an image made of layers and returns it. mutate, when
// set, may alter the config before it is stored.
func buildImage(t *testing.T, st *store.Store, names []string, layers []testLayer, mutate func(*ocispec.Image)) testImage {
	t.Helper()
	ctx := context.Background()
	var ti testImage
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/tool"}, Env: []string{"PATH=/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	for _, l := range layers {
		raw := l.raw
		if raw == nil {
			raw = layerTar(t, l.files)
		}
		desc, err := st.WriteBlob(ctx, layerMediaType(l.comp), compress(t, raw, l.comp))
		if err != nil {
			t.Fatal(err)
		}
		ti.layers = append(ti.layers, desc)
		ti.diffIDs = append(ti.diffIDs, digest.FromBytes(raw))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(raw))
		cfg.History = append(cfg.History, ocispec.History{CreatedBy: "test layer"})
	}
	if mutate != nil {
		mutate(&cfg)
	}
	cdesc, err := st.WriteJSON(ctx, ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ti.config = cdesc.Digest
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: ti.layers}
	mdesc, err := st.WriteJSON(ctx, ocispec.MediaTypeImageManifest, m)
	if err != nil {
		t.Fatal(err)
	}
	ti.Image = Image{Manifest: mdesc, Names: names}
	return ti
}

// archive writes imgs, read from p, with the exporter write makes and
// returns the bytes.
func archive(t *testing.T, p Provider, write func(io.Writer) Exporter, imgs ...Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf).Export(context.Background(), p, imgs...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarEntry is one entry of an archive being rewritten by rewriteTar.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// readTar returns the entries of a tar held in memory.
func readTar(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: hdr, data: b})
	}
}

// writeTar writes entries as a tar, fixing up sizes.
func writeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if e.hdr.Typeflag == tar.TypeReg {
			e.hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// load runs Load on data into a fresh store.
func load(t *testing.T, data []byte) (*store.Store, []Loaded, error) {
	t.Helper()
	st := newStore(t)
	imgs, err := Load(context.Background(), st, bytes.NewReader(data))
	return st, imgs, err
}

// checkLoaded asserts that got is ti, with its blobs in st.
func checkLoaded(t *testing.T, st *store.Store, got Loaded, ti testImage) {
	t.Helper()
	if got.Manifest.Digest != ti.Manifest.Digest {
		t.Errorf("manifest = %s, want %s", got.Manifest.Digest, ti.Manifest.Digest)
	}
	if got.Config != ti.config {
		t.Errorf("config = %s, want %s", got.Config, ti.config)
	}
	if len(got.Layers) != len(ti.layers) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(ti.layers))
	}
	for i, l := range got.Layers {
		if l.DiffID != ti.diffIDs[i] || l.Blob.Digest != ti.layers[i].Digest || l.Blob.MediaType != ti.layers[i].MediaType {
			t.Errorf("layer %d = %+v, want diffID %s blob %+v", i, l, ti.diffIDs[i], ti.layers[i])
		}
		if l.Size <= 0 {
			t.Errorf("layer %d: uncompressed size unknown", i)
		}
	}
	checkBlobs(t, st, got)
}

// checkBlobs asserts every blob of got is in st, whole.
func checkBlobs(t *testing.T, st *store.Store, got Loaded) {
	t.Helper()
	ctx := context.Background()
	var m ocispec.Manifest
	if err := st.ReadJSON(ctx, got.Manifest.Digest, &m); err != nil {
		t.Fatalf("reading loaded manifest: %v", err)
	}
	if m.Config.Digest != got.Config {
		t.Errorf("manifest config %s, loaded config %s", m.Config.Digest, got.Config)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		rc, _, err := st.Open(ctx, d.Digest)
		if err != nil {
			t.Fatalf("blob %s: %v", d.Digest, err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("blob %s: %v", d.Digest, err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("closing blob %s: %v", d.Digest, err)
		}
	}
}
