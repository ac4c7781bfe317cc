package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/testutil"
	"github.com/builder-project/builder/output"
)

// compressDockerfile makes two layers: a COPY of a compressible file, and a
// RUN.
const compressDockerfile = "FROM scratch\nCOPY big.txt /big.txt\nRUN echo hi > /hi\n"

// newCompressBuild builds compressDockerfile with the fake executor and
// tags the image app:1.
func newCompressBuild(t *testing.T) (*fakeBuild, *BuildResult) {
	t.Helper()
	f := newFakeBuild(t, nil)
	text := strings.Repeat("a line of text that compresses well\n", 30000)
	if err := os.WriteFile(filepath.Join(f.ctx, "big.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, f.mustBuild(t, compressDockerfile, BuildOptions{Tags: []string{"app:1"}})
}

// archive is an OCI or docker archive read back: its files, and the
// manifest of its only image.
type archive struct {
	raw      []byte
	files    map[string][]byte
	manifest ocispec.Descriptor
	mf       ocispec.Manifest
}

// readArchive reads an archive Save or an output wrote; both formats hold
// an OCI layout's index.json.
func readArchive(t *testing.T, raw []byte) archive {
	t.Helper()
	a := archive{raw: raw, files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.files[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(a.files["index.json"], &idx); err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("index.json: %v, %+v", err, idx)
	}
	a.manifest = idx.Manifests[0]
	if err := json.Unmarshal(a.blob(t, a.manifest.Digest), &a.mf); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a archive) blob(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	data, ok := a.files["blobs/sha256/"+d.Encoded()]
	if !ok {
		t.Fatalf("archive lacks blob %s", d)
	}
	return data
}

// layerDigests returns the digests of the archive's layers.
func (a archive) layerDigests() []digest.Digest {
	var out []digest.Digest
	for _, l := range a.mf.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// checkLayers fails t unless every layer of a has mediaType and, for a
// compressed one, starts with magic; an uncompressed layer must be a tar.
func (a archive) checkLayers(t *testing.T, mediaType string, magic []byte) {
	t.Helper()
	for _, l := range a.mf.Layers {
		data := a.blob(t, l.Digest)
		if l.MediaType != mediaType {
			t.Errorf("layer %s has media type %s, want %s", l.Digest, l.MediaType, mediaType)
		}
		if magic == nil {
			if len(data) < 262 || string(data[257:262]) != "ustar" {
				t.Errorf("layer %s is not a plain tar", l.Digest)
			}
		} else if !bytes.HasPrefix(data, magic) {
			t.Errorf("layer %s starts with %x, want %x", l.Digest, data[:min(len(data), 4)], magic)
		}
	}
}

// save runs SaveWith on app:1 and reads the archive back.
func save(t *testing.T, b *Builder, opts SaveOptions) archive {
	t.Helper()
	var buf bytes.Buffer
	if err := b.SaveWith(context.Background(), &buf, opts, []string{"app:1"}); err != nil {
		t.Fatalf("SaveWith(%+v): %v", opts, err)
	}
	return readArchive(t, buf.Bytes())
}

// loadInto loads raw into a fresh builder and returns it with the image ID
// and diffIDs it got.
func loadInto(t *testing.T, raw []byte) (*Builder, digest.Digest, []digest.Digest) {
	t.Helper()
	ctx := context.Background()
	b := newTestBuilder(t)
	loaded, err := b.Load(ctx, bytes.NewReader(raw))
	if err != nil || len(loaded) != 1 {
		t.Fatalf("Load: %+v, %v", loaded, err)
	}
	img, err := b.resolve(ctx, loaded[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return b, img.rec.ID, img.config.RootFS.DiffIDs
}

// blobsOf returns the store's blob files.
func blobsOf(t *testing.T, b *Builder) map[digest.Digest]int64 {
	t.Helper()
	blobs, err := b.st.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	return blobs
}

// formsOf counts the recorded blobs of media type mt of each layer of img.
func formsOf(t *testing.T, b *Builder, diffIDs []digest.Digest, mt string) []int {
	t.Helper()
	idx, err := b.st.View()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, d := range diffIDs {
		li, _ := idx.Layer(d)
		n := 0
		for _, bl := range li.Blobs {
			if bl.MediaType == mt {
				n++
			}
		}
		out = append(out, n)
	}
	return out
}

var compressions = []struct {
	name      string
	mediaType string
	magic     []byte
}{
	{"gzip", ocispec.MediaTypeImageLayerGzip, []byte{0x1f, 0x8b}},
	{"zstd", ocispec.MediaTypeImageLayerZstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{"uncompressed", ocispec.MediaTypeImageLayer, nil},
}

// TestSaveCompression saves a built image in each compression and format:
// the layers are compressed as asked, the image loads back with the same ID
// and diffIDs, and each layer is compressed only once.
func TestSaveCompression(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	f, res := newCompressBuild(t)
	built, err := f.b.resolve(context.Background(), "app:1")
	if err != nil {
		t.Fatal(err)
	}
	diffIDs := built.config.RootFS.DiffIDs
	for _, c := range compressions {
		t.Run(c.name, func(t *testing.T) {
			var first archive
			for i, format := range []ArchiveFormat{OCIArchive, DockerArchive} {
				before := blobsOf(t, f.b)
				opts := CompressionOptions{Compression: c.name}
				if i > 0 && c.magic != nil {
					// Level 1 makes other blobs than the default level:
					// the second save can only match the first by reusing.
					one := 1
					opts.CompressionLevel = &one
				}
				a := save(t, f.b, SaveOptions{Format: format, CompressionOptions: opts})
				a.checkLayers(t, c.mediaType, c.magic)
				if a.mf.Config.Digest != res.ID {
					t.Errorf("%s: config %s, want the image ID %s", format, a.mf.Config.Digest, res.ID)
				}
				// Built layers are stored uncompressed: only a compression
				// makes a new manifest.
				if changed := a.manifest.Digest != res.Manifest.Digest; changed != (c.mediaType != ocispec.MediaTypeImageLayer) {
					t.Errorf("%s: manifest %s, built as %s", format, a.manifest.Digest, res.Manifest.Digest)
				}
				_, id, gotDiffIDs := loadInto(t, a.raw)
				if id != res.ID || !reflect.DeepEqual(gotDiffIDs, diffIDs) {
					t.Errorf("%s: loaded %s with %s, want %s with %s", format, id, gotDiffIDs, res.ID, diffIDs)
				}
				if i == 0 {
					first = a
					continue
				}
				// Done once: the second save reuses the layers and the
				// manifest of the first, and writes no blob.
				if after := blobsOf(t, f.b); !reflect.DeepEqual(after, before) {
					t.Errorf("the second %s save wrote %d new blobs", c.name, len(after)-len(before))
				}
				if a.manifest.Digest != first.manifest.Digest {
					t.Errorf("second save: manifest %s, first %s", a.manifest.Digest, first.manifest.Digest)
				}
			}
			if got := formsOf(t, f.b, diffIDs, c.mediaType); !reflect.DeepEqual(got, []int{1, 1}) {
				t.Errorf("blobs of %s recorded per layer: %v, want one each", c.mediaType, got)
			}
		})
	}
}

// TestSaveCompressionLevels checks BuildKit's semantics of
// compression-level and force-compression.
func TestSaveCompressionLevels(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	f, _ := newCompressBuild(t)
	level := func(n int) *int { return &n }
	zstdSave := func(c CompressionOptions) archive {
		c.Compression = "zstd"
		return save(t, f.b, SaveOptions{Format: OCIArchive, CompressionOptions: c})
	}
	def := zstdSave(CompressionOptions{})
	blobs := blobsOf(t, f.b)

	// Without force, a stored zstd blob is reused whatever its level.
	if a := zstdSave(CompressionOptions{CompressionLevel: level(19)}); a.manifest.Digest != def.manifest.Digest {
		t.Errorf("level 19 without force made new layers %s, want the stored %s", a.layerDigests(), def.layerDigests())
	}
	if after := blobsOf(t, f.b); len(after) != len(blobs) {
		t.Errorf("level 19 without force wrote %d blobs", len(after)-len(blobs))
	}
	// With force, the layers are compressed again at that level.
	best := zstdSave(CompressionOptions{CompressionLevel: level(19), ForceCompression: true})
	best.checkLayers(t, ocispec.MediaTypeImageLayerZstd, compressions[1].magic)
	for i, d := range best.layerDigests() {
		if d == def.layerDigests()[i] {
			t.Errorf("layer %d: forced level 19 gave the default level's blob %s", i, d)
		}
	}
	if n := len(blobsOf(t, f.b)) - len(blobs); n != 3 {
		t.Errorf("forced level 19 wrote %d blobs, want 2 layers and a manifest", n)
	}
	// Compression is reproducible: forcing the default level again gives
	// the first blobs.
	again := zstdSave(CompressionOptions{ForceCompression: true})
	if !reflect.DeepEqual(again.layerDigests(), def.layerDigests()) {
		t.Errorf("forced default level: %s, first %s", again.layerDigests(), def.layerDigests())
	}
	// A gzip level: 1 and 9 give different blobs.
	fast := save(t, f.b, SaveOptions{Format: OCIArchive, CompressionOptions: CompressionOptions{Compression: "gzip", CompressionLevel: level(1)}})
	small := save(t, f.b, SaveOptions{Format: OCIArchive, CompressionOptions: CompressionOptions{Compression: "gzip", CompressionLevel: level(9), ForceCompression: true}})
	if fast.mf.Layers[0].Digest == small.mf.Layers[0].Digest || small.mf.Layers[0].Size >= fast.mf.Layers[0].Size {
		t.Errorf("gzip level 9 (%d bytes) is no smaller than level 1 (%d bytes)", small.mf.Layers[0].Size, fast.mf.Layers[0].Size)
	}

	for _, bad := range []CompressionOptions{
		{Compression: "lz4"},
		{Compression: "gzip", CompressionLevel: level(10)},
		{Compression: "zstd", CompressionLevel: level(0)},
		{Compression: "uncompressed", CompressionLevel: level(1)},
		{CompressionLevel: level(1)},
		{ForceCompression: true},
	} {
		if err := f.b.SaveWith(context.Background(), io.Discard, SaveOptions{CompressionOptions: bad}, []string{"app:1"}); err == nil {
			t.Errorf("SaveWith accepted %+v", bad)
		}
	}
}

// TestSaveDefaultUnchanged checks that a save without compression writes
// exactly what the exporters write of the stored image, as before
// compression options existed, and so does compression=uncompressed of a
// built image, whose layers are stored uncompressed.
func TestSaveDefaultUnchanged(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	f, res := newCompressBuild(t)
	ctx := context.Background()
	for _, format := range []ArchiveFormat{OCIArchive, DockerArchive} {
		var want bytes.Buffer
		exp, err := archiveExporter(format, &want)
		if err != nil {
			t.Fatal(err)
		}
		img := output.Image{Manifest: res.Manifest, Names: []string{"docker.io/library/app:1"}}
		if err := exp.Export(ctx, f.b.st, img); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"", "uncompressed"} {
			var got bytes.Buffer
			if err := f.b.SaveWith(ctx, &got, SaveOptions{Format: format, CompressionOptions: CompressionOptions{Compression: c}}, []string{"app:1"}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s archive with compression %q differs from the stored image's", format, c)
			}
		}
		var plain bytes.Buffer
		if err := f.b.Save(ctx, &plain, format, []string{"app:1"}); err != nil || !bytes.Equal(plain.Bytes(), want.Bytes()) {
			t.Errorf("Save %s differs from the stored image's (%v)", format, err)
		}
	}
}

// TestSaveLoadedCompressed saves an image loaded with gzip layers: gzip
// reuses its blobs as they are, and the other compressions convert them.
func TestSaveLoadedCompressed(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	f, res := newCompressBuild(t)
	gz := save(t, f.b, SaveOptions{Format: OCIArchive, CompressionOptions: CompressionOptions{Compression: "gzip"}})
	b, id, diffIDs := loadInto(t, gz.raw)
	if id != res.ID {
		t.Fatalf("loaded %s, want %s", id, res.ID)
	}
	if err := b.Tag(context.Background(), id.String(), "app:1"); err != nil {
		t.Fatal(err)
	}
	blobs := blobsOf(t, b)
	if a := save(t, b, SaveOptions{Format: OCIArchive, CompressionOptions: CompressionOptions{Compression: "gzip"}}); a.manifest.Digest != gz.manifest.Digest {
		t.Errorf("gzip save of gzip layers made manifest %s, want the loaded %s", a.manifest.Digest, gz.manifest.Digest)
	}
	if after := blobsOf(t, b); len(after) != len(blobs) {
		t.Errorf("gzip save of gzip layers wrote %d blobs", len(after)-len(blobs))
	}
	// The default exports the gzip layers as loaded.
	save(t, b, SaveOptions{Format: DockerArchive}).checkLayers(t, ocispec.MediaTypeImageLayerGzip, compressions[0].magic)
	plain := save(t, b, SaveOptions{Format: OCIArchive, CompressionOptions: CompressionOptions{Compression: "uncompressed"}})
	plain.checkLayers(t, ocispec.MediaTypeImageLayer, nil)
	if !reflect.DeepEqual(plain.layerDigests(), diffIDs) {
		t.Errorf("uncompressed layers %s, want the diffIDs %s", plain.layerDigests(), diffIDs)
	}
	// zstd is made from the uncompressed blobs now stored; it loads back.
	zs := save(t, b, SaveOptions{Format: DockerArchive, CompressionOptions: CompressionOptions{Compression: "zstd"}})
	zs.checkLayers(t, ocispec.MediaTypeImageLayerZstd, compressions[1].magic)
	if _, id, got := loadInto(t, zs.raw); id != res.ID || !reflect.DeepEqual(got, diffIDs) {
		t.Errorf("zstd from gzip loaded as %s with %s", id, got)
	}
}

// TestBuildOutputCompression builds to compressed archives only: the image
// is not kept, the archives load back as the built image, and the layers
// compressed for them are recorded for the next export.
func TestBuildOutputCompression(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY and unpacking set owners
	f := newFakeBuild(t, nil)
	if err := os.WriteFile(filepath.Join(f.ctx, "big.txt"), []byte(strings.Repeat("text\n", 50000)), 0o644); err != nil {
		t.Fatal(err)
	}
	nine := 9
	var oci bytes.Buffer
	dest := filepath.Join(t.TempDir(), "app.docker.tar")
	res := f.mustBuild(t, compressDockerfile, BuildOptions{Tags: []string{"app:1"}, Outputs: []Output{
		{Type: OutputOCI, Writer: &oci, CompressionOptions: CompressionOptions{Compression: "zstd"}},
		{Type: OutputDocker, Dest: dest, CompressionOptions: CompressionOptions{Compression: "gzip", CompressionLevel: &nine}},
	}})
	data, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		raw []byte
		c   int
	}{{oci.Bytes(), 1}, {data, 0}} {
		a := readArchive(t, tc.raw)
		a.checkLayers(t, compressions[tc.c].mediaType, compressions[tc.c].magic)
		if _, id, _ := loadInto(t, tc.raw); id != res.ID {
			t.Errorf("%s archive loaded as %s, want %s", compressions[tc.c].name, id, res.ID)
		}
		if len(a.mf.Layers) != 2 {
			t.Errorf("%d layers, want 2", len(a.mf.Layers))
		}
	}
	if _, err := f.b.ResolveID("app:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an archive-only build kept its image: %v", err)
	}
	var cfg ocispec.Image
	if err := f.b.st.ReadJSON(context.Background(), res.ID, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := formsOf(t, f.b, cfg.RootFS.DiffIDs, ocispec.MediaTypeImageLayerZstd); !reflect.DeepEqual(got, []int{1, 1}) {
		t.Errorf("zstd blobs recorded per layer: %v, want one each", got)
	}
	if _, err := f.build(t, compressDockerfile, BuildOptions{Outputs: []Output{{Type: OutputTar, Dest: dest, CompressionOptions: CompressionOptions{Compression: "gzip"}}}}); err == nil {
		t.Error("a tar output took a compression")
	}
}

func TestParseOutputCompression(t *testing.T) {
	level := func(n int) *int { return &n }
	for _, tc := range []struct {
		in   string
		want CompressionOptions
		err  bool
	}{
		{"type=oci,dest=a.tar", CompressionOptions{}, false},
		{"type=oci,dest=a.tar,compression=zstd,compression-level=19,force-compression=true", CompressionOptions{"zstd", level(19), true}, false},
		{"type=docker,dest=a.tar,compression=gzip,force-compression=false", CompressionOptions{Compression: "gzip"}, false},
		{"type=docker,dest=a.tar,compression=uncompressed", CompressionOptions{Compression: "uncompressed"}, false},
		{"type=oci,dest=a.tar,compression=estargz", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,compression=gzip,compression-level=10", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,compression=zstd,compression-level=23", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,compression=gzip,compression-level=fast", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,compression=uncompressed,compression-level=1", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,compression-level=1", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,force-compression=yes", CompressionOptions{}, true},
		{"type=oci,dest=a.tar,force-compression=true", CompressionOptions{}, true},
		{"type=tar,dest=a.tar,compression=gzip", CompressionOptions{}, true},
		{"type=local,dest=dir,compression=zstd", CompressionOptions{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			o, err := ParseOutput(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("ParseOutput: %v", err)
			}
			if err == nil && !reflect.DeepEqual(o.CompressionOptions, tc.want) {
				t.Errorf("ParseOutput = %+v, want %+v", o.CompressionOptions, tc.want)
			}
		})
	}
}
