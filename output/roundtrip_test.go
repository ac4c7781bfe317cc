package output

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/store"
)

// TestArchivesAreReproducible writes the same images twice: the bytes must
// not change, and a blob two images share is written once. That archives
// load back is TestExporterConformance's job.
func TestArchivesAreReproducible(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(io.Writer) Exporter
	}{
		{"oci", OCIArchive},
		{"docker", DockerArchive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newStore(t)
			a := buildImage(t, src, []string{"docker.io/library/app:1", "example.com/team/app:latest"}, defaultLayers(), nil)
			// b shares a's first layer: the archive must hold it once.
			b := buildImage(t, src, nil, defaultLayers()[:1], func(c *ocispec.Image) { c.Config.Cmd = []string{"other"} })
			data := archive(t, src, tc.write, a.Image, b.Image)
			if again := archive(t, src, tc.write, a.Image, b.Image); !bytes.Equal(again, data) {
				t.Error("writing the same images twice made different archives")
			}
			seen := map[string]bool{}
			for _, e := range readTar(t, data) {
				if seen[e.hdr.Name] {
					t.Errorf("%s written twice", e.hdr.Name)
				}
				seen[e.hdr.Name] = true
			}
			if !seen[blobName(a.layers[0])] {
				t.Errorf("the shared layer %s is missing", a.layers[0].Digest)
			}
		})
	}
}

func TestDockerArchiveLayout(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1", "app@" + digest.FromString("x").String()}, defaultLayers(), nil)
	files := map[string][]byte{}
	for _, e := range readTar(t, archive(t, src, DockerArchive, a.Image)) {
		files[e.hdr.Name] = e.data
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(files["manifest.json"], &entries); err != nil {
		t.Fatal(err)
	}
	want := dockerManifestEntry{Config: "blobs/sha256/" + a.config.Encoded(), RepoTags: []string{"app:1"}}
	for _, l := range a.layers {
		want.Layers = append(want.Layers, "blobs/sha256/"+l.Digest.Encoded())
	}
	if len(entries) != 1 || !reflect.DeepEqual(entries[0], want) {
		t.Errorf("manifest.json = %+v, want [%+v]", entries, want)
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal(files["repositories"], &repos); err != nil || repos["app"]["1"] == "" {
		t.Errorf("repositories = %s (%v)", files["repositories"], err)
	}
	for _, n := range []string{"oci-layout", "index.json", "blobs/sha256/" + a.Manifest.Digest.Encoded()} {
		if files[n] == nil {
			t.Errorf("docker-archive lacks %s", n)
		}
	}
}

func TestOCIIndexAnnotations(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers()[:1], nil)
	for _, e := range readTar(t, archive(t, src, OCIArchive, a.Image)) {
		if e.hdr.Name != "index.json" {
			continue
		}
		var idx ocispec.Index
		if err := json.Unmarshal(e.data, &idx); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{annotationRefName: "1", annotationContainerdName: "docker.io/library/app:1"}
		if len(idx.Manifests) != 1 || !reflect.DeepEqual(idx.Manifests[0].Annotations, want) {
			t.Errorf("index.json = %s", e.data)
		}
		return
	}
	t.Fatal("no index.json")
}

func TestLoadCompressedArchive(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	data := archive(t, src, DockerArchive, a.Image)
	for _, c := range []compression.Kind{compression.Gzip, compression.Zstd} {
		st, got, err := load(t, compress(t, data, c))
		if err != nil || len(got) != 1 {
			t.Fatalf("compression %d: loaded %d images, %v", c, len(got), err)
		}
		checkLoaded(t, st, got[0], a)
	}
}

func TestLoadNestedIndex(t *testing.T) {
	src := newStore(t)
	ctx := context.Background()
	host := buildImage(t, src, nil, defaultLayers()[:1], nil)
	other := buildImage(t, src, nil, defaultLayers()[1:2], nil)
	hostDesc, otherDesc := host.Manifest, other.Manifest
	hostDesc.Platform = &ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	otherDesc.Platform = &ocispec.Platform{OS: "plan9", Architecture: "mips"}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{otherDesc, hostDesc}}
	idesc, err := src.WriteJSON(ctx, ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		t.Fatal(err)
	}
	data := archive(t, src, OCIArchive, Image{Manifest: idesc, Names: []string{"docker.io/library/multi:2"}})
	st, got, err := load(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("loaded %d images", len(got))
	}
	checkLoaded(t, st, got[0], host)
	if !reflect.DeepEqual(got[0].Names, []string{"docker.io/library/multi:2"}) {
		t.Errorf("names = %q", got[0].Names)
	}
	// The docker-archive of an index is its host platform's image.
	st, got, err = load(t, archive(t, src, DockerArchive, Image{Manifest: idesc, Names: []string{"docker.io/library/multi:2"}}))
	if err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, st, got[0], host)
}

// TestLoadLegacyDockerArchive loads a pre-25 docker save layout written with
// manifest.json last: layer.tar files in per-layer directories, one of them
// a symlink, and <hex>.json configs. Load must write a manifest whose layer
// media types match the layer files' content.
func TestLoadLegacyDockerArchive(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	ctx := context.Background()
	cfg, err := src.ReadBlob(ctx, a.config)
	if err != nil {
		t.Fatal(err)
	}
	var entries []tarEntry
	entry := dockerManifestEntry{Config: a.config.Encoded() + ".json", RepoTags: []string{"app:1"}}
	for i, l := range a.layers {
		blob, err := src.ReadBlob(ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		dir := strings.Repeat(string(rune('a'+i)), 64)
		entries = append(entries,
			tarEntry{&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}, nil},
			tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/VERSION", Mode: 0o644}, []byte("1.0")},
			tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/layer.tar", Mode: 0o644}, blob})
		entry.Layers = append(entry.Layers, dir+"/layer.tar")
	}
	// A second entry whose only layer is a symlink to the first image's.
	entries = append(entries, tarEntry{&tar.Header{Typeflag: tar.TypeSymlink, Name: "zz/layer.tar", Linkname: "../" + strings.Repeat("a", 64) + "/layer.tar"}, nil})
	b := buildImage(t, src, nil, defaultLayers()[:1], nil)
	bcfg, err := src.ReadBlob(ctx, b.config)
	if err != nil {
		t.Fatal(err)
	}
	mj, err := json.Marshal([]dockerManifestEntry{entry, {Config: b.config.Encoded() + ".json", Layers: []string{"zz/layer.tar"}}})
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries,
		tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: a.config.Encoded() + ".json", Mode: 0o644}, cfg},
		tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: b.config.Encoded() + ".json", Mode: 0o644}, bcfg},
		tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: "manifest.json", Mode: 0o644}, mj})
	st, got, err := load(t, writeTar(t, entries))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("loaded %d images", len(got))
	}
	// The manifest is made anew, so its digest may differ; the rest must not.
	a.Manifest.Digest = got[0].Manifest.Digest
	checkLoaded(t, st, got[0], a)
	b.Manifest.Digest = got[1].Manifest.Digest
	checkLoaded(t, st, got[1], b)
	if !reflect.DeepEqual(got[0].Names, []string{"docker.io/library/app:1"}) {
		t.Errorf("names = %q", got[0].Names)
	}
}

func TestLoadErrors(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	big := "blobs/sha256/" + a.layers[1].Digest.Encoded()   // ingested
	small := "blobs/sha256/" + a.layers[2].Digest.Encoded() // kept in memory
	corrupt := func(name string) func([]tarEntry) {
		return func(es []tarEntry) {
			for _, e := range es {
				if e.hdr.Name == name {
					e.data[len(e.data)/2] ^= 0xff
				}
			}
		}
	}
	drop := func(name string) func([]tarEntry) {
		return func(es []tarEntry) {
			for i, e := range es {
				if e.hdr.Name == name {
					e.hdr.Name = "unrelated"
					es[i] = e
				}
			}
		}
	}
	bad := buildImage(t, src, []string{"docker.io/library/bad:1"}, defaultLayers(), func(c *ocispec.Image) {
		c.RootFS.DiffIDs[1] = digest.FromString("not the layer")
	})
	for _, tc := range []struct {
		name   string
		write  func(io.Writer) Exporter
		img    Image
		mutate func([]tarEntry)
		want   string
		is     error
	}{
		{"oci corrupt big layer", OCIArchive, a.Image, corrupt(big), big, store.ErrInvalidDigest},
		{"oci corrupt small layer", OCIArchive, a.Image, corrupt(small), small, store.ErrInvalidDigest},
		{"docker corrupt layer", DockerArchive, a.Image, corrupt(big), big, store.ErrInvalidDigest},
		{"oci diffID mismatch", OCIArchive, bad.Image, nil, "blobs/sha256/" + bad.layers[1].Digest.Encoded(), store.ErrInvalidDigest},
		{"docker diffID mismatch", DockerArchive, bad.Image, nil, "blobs/sha256/" + bad.layers[1].Digest.Encoded(), store.ErrInvalidDigest},
		{"oci missing layer", OCIArchive, a.Image, drop(big), "missing", nil},
		{"docker missing layer", DockerArchive, a.Image, drop(big), "missing", nil},
		{"docker missing config", DockerArchive, a.Image, drop("blobs/sha256/" + a.config.Encoded()), "missing", nil},
		{"no layout", OCIArchive, a.Image, drop("oci-layout"), "oci-layout", nil},
		{"neither", OCIArchive, a.Image, drop("index.json"), "neither", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := readTar(t, archive(t, src, tc.write, tc.img))
			if tc.mutate != nil {
				tc.mutate(es)
			}
			st, _, err := load(t, writeTar(t, es))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			t.Log(err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if blobs, err := st.Blobs(); err != nil || len(blobs) != 0 {
				t.Errorf("failed load committed %d blobs (%v)", len(blobs), err)
			}
		})
	}
	t.Run("not an archive", func(t *testing.T) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte("hello"))
		zw.Close()
		for _, data := range [][]byte{nil, []byte("hello world"), buf.Bytes()} {
			if _, _, err := load(t, data); err == nil {
				t.Errorf("Load(%q) succeeded", data)
			}
		}
	})
}

func TestAnnotatedName(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{annotationContainerdName: "docker.io/library/a:1", annotationRefName: "1"}, "docker.io/library/a:1"},
		{map[string]string{annotationRefName: "1"}, ""},
		{map[string]string{annotationRefName: "latest"}, ""},
		{map[string]string{annotationRefName: "busybox:1"}, "docker.io/library/busybox:1"},
		{map[string]string{annotationRefName: "example.com/x/y:2"}, "example.com/x/y:2"},
		{map[string]string{annotationRefName: "Not/Valid:ref"}, ""},
		{nil, ""},
	} {
		if got := annotatedName(tc.ann); got != tc.want {
			t.Errorf("annotatedName(%v) = %q, want %q", tc.ann, got, tc.want)
		}
	}
}

func TestTagOf(t *testing.T) {
	for ref, want := range map[string]string{
		"docker.io/library/a:1":           "1",
		"localhost:5000/a":                "",
		"localhost:5000/a:v2":             "v2",
		"docker.io/library/a@sha256:abcd": "",
	} {
		if got := tagOf(ref); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", ref, got, want)
		}
	}
}

// TestStreaming pipes an export straight into a load, as builder save |
// builder load would, and checks that cancellation stops both sides.
func TestStreaming(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(OCIArchive(pw).Export(context.Background(), src, a.Image)) }()
	dst := newStore(t)
	got, err := Load(context.Background(), dst, pr)
	if err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, dst, got[0], a)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := DockerArchive(io.Discard).Export(ctx, src, a.Image); !errors.Is(err, context.Canceled) {
		t.Errorf("DockerArchive with a cancelled context: %v", err)
	}
	data := archive(t, src, DockerArchive, a.Image)
	if _, err := Load(ctx, newStore(t), bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
}

// TestLoadMetadataLast loads our docker-archive with its entries reversed:
// every blob streams past before manifest.json, index.json and oci-layout.
func TestLoadMetadataLast(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	es := readTar(t, archive(t, src, DockerArchive, a.Image))
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	if es[len(es)-1].hdr.Name != "manifest.json" {
		t.Fatalf("last entry is %s", es[len(es)-1].hdr.Name)
	}
	st, got, err := load(t, writeTar(t, es))
	if err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, st, got[0], a)
}
