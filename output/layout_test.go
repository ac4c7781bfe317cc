package output

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// exportLayout runs OCILayout(dir, opts...) on imgs from p.
func exportLayout(t *testing.T, p Provider, dir string, opts []LayoutOption, imgs ...Image) {
	t.Helper()
	if err := OCILayout(dir, opts...).Export(context.Background(), p, imgs...); err != nil {
		t.Fatal(err)
	}
}

// layoutIndex reads dir's index.json and returns it, and its entries as
// "<manifest digest> <io.containerd.image.name or ref.name>".
func layoutIndex(t *testing.T, dir string) ([]byte, []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range idx.Manifests {
		name := d.Annotations[annotationContainerdName]
		if name == "" {
			name = d.Annotations[annotationRefName]
		}
		out = append(out, strings.TrimSpace(d.Digest.Encoded()[:8]+" "+name))
	}
	return data, out
}

func entry(img Image, name string) string {
	return strings.TrimSpace(img.Manifest.Digest.Encoded()[:8] + " " + name)
}

func TestOCILayoutMerge(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	b := buildImage(t, src, []string{"docker.io/library/app:2"}, defaultLayers()[:1], nil)
	c := buildImage(t, src, nil, defaultLayers()[1:2], nil)
	a2 := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers()[:2], nil)
	d := buildImage(t, src, []string{"example.com/other:2"}, defaultLayers()[2:], nil)

	// A layout that already holds something of its own: an artifact.
	dir := filepath.Join(t.TempDir(), "layout")
	l, err := CreateLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	art := []byte(`{"kind":"not an image"}`)
	artDesc := ocispec.Descriptor{MediaType: "application/vnd.example+json", Digest: digest.FromBytes(art), Size: int64(len(art)),
		Annotations: map[string]string{annotationRefName: "notes"}}
	if err := l.WriteBlob(ctx, artDesc, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(art)), nil }); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteIndex(newIndex([]ocispec.Descriptor{artDesc})); err != nil {
		t.Fatal(err)
	}
	artEntry := artDesc.Digest.Encoded()[:8] + " notes"

	steps := []struct {
		name string
		opts []LayoutOption
		imgs []Image
		want []string
	}{
		{"first export keeps what was there", nil, []Image{a.Image, b.Image, c.Image},
			[]string{artEntry, entry(a.Image, "docker.io/library/app:1"), entry(b.Image, "docker.io/library/app:2"), entry(c.Image, "")}},
		{"same images again", nil, []Image{a.Image, b.Image, c.Image},
			[]string{artEntry, entry(a.Image, "docker.io/library/app:1"), entry(b.Image, "docker.io/library/app:2"), entry(c.Image, "")}},
		{"a name moves to another image", nil, []Image{a2.Image},
			[]string{artEntry, entry(b.Image, "docker.io/library/app:2"), entry(c.Image, ""), entry(a2.Image, "docker.io/library/app:1")}},
		{"a tag (ref.name) is unique in a layout", nil, []Image{d.Image},
			[]string{artEntry, entry(c.Image, ""), entry(a2.Image, "docker.io/library/app:1"), entry(d.Image, "example.com/other:2")}},
		{"WithReplace drops chosen entries", []LayoutOption{
			WithReplace(func(e ocispec.Descriptor) bool { return e.MediaType == artDesc.MediaType }),
			WithReplace(func(e ocispec.Descriptor) bool { return e.Digest == a2.Manifest.Digest }),
		}, []Image{c.Image},
			[]string{entry(d.Image, "example.com/other:2"), entry(c.Image, "")}},
	}
	for _, s := range steps {
		exportLayout(t, src, dir, s.opts, s.imgs...)
		if _, got := layoutIndex(t, dir); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: index.json lists\n%q\nwant\n%q", s.name, got, s.want)
		}
	}
	// Blobs no entry references any more stay.
	for _, img := range []Image{a.Image, a2.Image, b.Image} {
		if _, err := os.Stat(filepath.Join(dir, blobName(img.Manifest))); err != nil {
			t.Errorf("manifest of a replaced image: %v", err)
		}
	}
	st := newStore(t)
	got, err := LoadLayout(ctx, st, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("loaded %d images, want 2", len(got))
	}
	checkLoaded(t, st, got[0], d)
	checkLoaded(t, st, got[1], c)
	if !reflect.DeepEqual(got[0].Names, d.Names) || len(got[1].Names) != 0 {
		t.Errorf("names %q and %q, want %q and none", got[0].Names, got[1].Names, d.Names)
	}
}

func TestOCILayoutIdempotent(t *testing.T) {
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1", "example.com/team/app:latest"}, defaultLayers(), nil)
	b := buildImage(t, src, nil, defaultLayers()[:1], nil)
	dir := filepath.Join(t.TempDir(), "layout")
	exportLayout(t, src, dir, nil, a.Image, b.Image)
	first, _ := layoutIndex(t, dir)
	blob := filepath.Join(dir, blobName(a.layers[1]))
	before, err := os.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	exportLayout(t, src, dir, nil, a.Image, b.Image)
	second, _ := layoutIndex(t, dir)
	if !bytes.Equal(first, second) {
		t.Errorf("exporting twice changed index.json:\n%s\n%s", first, second)
	}
	after, err := os.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("a blob already present was rewritten")
	}
	// The layout holds what OCIArchive would write, file for file.
	want := map[string][]byte{}
	for _, e := range readTar(t, archive(t, src, OCIArchive, a.Image, b.Image)) {
		want[strings.TrimSuffix(e.hdr.Name, "/")] = e.data
	}
	got := map[string][]byte{}
	for _, e := range readTar(t, tarDir(t, dir)) {
		got[strings.TrimSuffix(e.hdr.Name, "/")] = e.data
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layout files differ from the OCI archive's")
	}
}

func TestLayoutRejectsBadBlobs(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: a.config}
	data, err := src.ReadBlob(ctx, a.config)
	if err != nil {
		t.Fatal(err)
	}
	config.Size = int64(len(data))

	for _, tc := range []struct {
		name  string
		spoil func(p string)
	}{
		{"corrupted", func(p string) { flipByte(t, p, 3) }},
		{"truncated", func(p string) {
			if err := os.Truncate(p, 10); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			exportLayout(t, src, dir, nil, a.Image)
			l, err := OpenLayout(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []ocispec.Descriptor{config, a.layers[1]} {
				p := filepath.Join(dir, blobName(d))
				tc.spoil(p)
				rc, _, err := l.Open(ctx, d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(rc)
				rc.Close()
				checkErr(t, "Open", err, p, store.ErrInvalidDigest)
				_, err = l.ReadBlob(ctx, d, 1<<30)
				checkErr(t, "ReadBlob", err, p, store.ErrInvalidDigest)
			}
		})
	}

	dir := filepath.Join(t.TempDir(), "layout")
	exportLayout(t, src, dir, nil, a.Image)
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, blobName(config))
	_, err = l.ReadBlob(ctx, config, config.Size-1)
	checkErr(t, "ReadBlob over the limit", err, p, nil)
	_, _, err = l.Open(ctx, digest.FromString("absent"))
	checkErr(t, "Open of an absent blob", err, digest.FromString("absent").Encoded(), store.ErrNotFound)
	_, _, err = l.Open(ctx, "sha256:../../etc/passwd")
	checkErr(t, "Open of an invalid digest", err, dir, store.ErrInvalidDigest)
}

// checkErr asserts err is not nil, mentions want and, when is is set, wraps it.
func checkErr(t *testing.T, what string, err error, want string, is error) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %v, want one naming %s", what, err, want)
		return
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%s: error %v is not %v", what, err, is)
	}
}

func TestLayoutWriteBlob(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "layout")
	l, err := CreateLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("some blob content")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	serve := func(b []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	for name, bad := range map[string][]byte{
		"other content": []byte("other blob content"),
		"short":         data[:5],
		"long":          append(append([]byte{}, data...), 'x'),
	} {
		err := l.WriteBlob(ctx, desc, serve(bad))
		checkErr(t, name, err, desc.Digest.String(), store.ErrInvalidDigest)
		if entries, _ := os.ReadDir(blobs); len(entries) != 0 {
			t.Errorf("%s: a failed write left %v", name, entries)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.WriteBlob(cancelled, desc, serve(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteBlob with a cancelled context: %v", err)
	}
	if err := l.WriteBlob(ctx, desc, serve(data)); err != nil {
		t.Fatal(err)
	}
	got, err := l.ReadBlob(ctx, desc, 1<<10)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadBlob = %q, %v", got, err)
	}
	if err := l.WriteBlob(ctx, desc, func() (io.ReadCloser, error) {
		t.Error("a present blob was copied again")
		return nil, errors.New("unused")
	}); err != nil {
		t.Error(err)
	}
	// A file of the wrong size is not trusted: it is replaced.
	if err := os.Truncate(filepath.Join(dir, blobName(desc)), 3); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteBlob(ctx, desc, serve(data)); err != nil {
		t.Fatal(err)
	}
	if got, err := l.ReadBlob(ctx, desc, 1<<10); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after rewriting a short blob: %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(blobs); len(entries) != 1 {
		t.Errorf("blobs/sha256 holds %v, want the one blob", entries)
	}
}

func TestOpenLayout(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenLayout(dir)
	checkErr(t, "OpenLayout of an empty directory", err, dir, nil)
	if err != nil && !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("error %v does not say the directory is not a layout", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenLayout(dir)
	checkErr(t, "OpenLayout of version 2.0.0", err, filepath.Join(dir, ocispec.ImageLayoutFile), nil)
	_, err = CreateLayout(dir)
	checkErr(t, "CreateLayout over version 2.0.0", err, filepath.Join(dir, ocispec.ImageLayoutFile), nil)

	// CreateLayout opens an existing layout as it is.
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers()[:1], nil)
	dir = filepath.Join(t.TempDir(), "layout")
	exportLayout(t, src, dir, nil, a.Image)
	before, _ := layoutIndex(t, dir)
	l, err := CreateLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Dir() != dir {
		t.Errorf("Dir() = %s, want %s", l.Dir(), dir)
	}
	if after, _ := layoutIndex(t, dir); !bytes.Equal(before, after) {
		t.Error("CreateLayout changed the index of an existing layout")
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = l.Index(context.Background())
	checkErr(t, "Index of a broken index.json", err, filepath.Join(dir, ocispec.ImageIndexFile), nil)
	// A broken index.json fails an export before anything is written.
	err = OCILayout(dir).Export(context.Background(), src, a.Image)
	checkErr(t, "OCILayout onto a broken index.json", err, filepath.Join(dir, ocispec.ImageIndexFile), nil)
}

func TestLoadLayoutErrors(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	big := a.layers[1] // large enough to go through an ingest

	t.Run("not a layout", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		st := newStore(t)
		_, err := LoadLayout(ctx, st, dir)
		checkErr(t, "LoadLayout", err, dir, nil)
		if err != nil && !strings.Contains(err.Error(), "not an OCI image layout") {
			t.Errorf("error %v does not say the directory is not a layout", err)
		}
	})

	// moveOut replaces the layer blob of a fresh layout with a symlink to a
	// copy of it placed at target, relative to the layout.
	moveOut := func(t *testing.T, target string) (string, string) {
		dir := filepath.Join(t.TempDir(), "layout")
		exportLayout(t, src, dir, nil, a.Image)
		p := filepath.Join(dir, blobName(big))
		dest := filepath.Join(dir, filepath.FromSlash(target))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p, dest); err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(filepath.Dir(p), dest)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(rel, p); err != nil {
			t.Fatal(err)
		}
		return dir, p
	}
	t.Run("symlink outside", func(t *testing.T) {
		dir, p := moveOut(t, "../outside/blob")
		st := newStore(t)
		_, err := LoadLayout(ctx, st, dir)
		checkErr(t, "LoadLayout", err, p, nil)
		if blobs, err := st.Blobs(); err != nil || len(blobs) != 0 {
			t.Errorf("a failed load committed %d blobs (%v)", len(blobs), err)
		}
		// The same through an absolute link.
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(filepath.Dir(dir), "outside", "blob"), p); err != nil {
			t.Fatal(err)
		}
		_, err = LoadLayout(ctx, st, dir)
		checkErr(t, "LoadLayout through an absolute link", err, p, nil)
	})
	t.Run("symlink inside", func(t *testing.T) {
		dir, _ := moveOut(t, "elsewhere/blob")
		st := newStore(t)
		got, err := LoadLayout(ctx, st, dir)
		if err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, st, got[0], a)
	})
	t.Run("other files are ignored", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		exportLayout(t, src, dir, nil, a.Image)
		for name, data := range map[string]string{
			"README":                  "not part of the layout",
			"blobs/sha256/.tmp-12345": "a leftover",
			"blobs/sha512/" + strings.Repeat("ab", 64): "another algorithm",
		} {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(dir, "blobs", "sha256", strings.Repeat("0", 64)), 0o755); err != nil {
			t.Fatal(err)
		}
		st := newStore(t)
		got, err := LoadLayout(ctx, st, dir)
		if err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, st, got[0], a)
		if !reflect.DeepEqual(got[0].Names, a.Names) {
			t.Errorf("names %q, want %q", got[0].Names, a.Names)
		}
	})
	t.Run("corrupted blob", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		exportLayout(t, src, dir, nil, a.Image)
		flipByte(t, filepath.Join(dir, blobName(big)), big.Size/2)
		st := newStore(t)
		_, err := LoadLayout(ctx, st, dir)
		checkErr(t, "LoadLayout", err, blobName(big), store.ErrInvalidDigest)
		if blobs, err := st.Blobs(); err != nil || len(blobs) != 0 {
			t.Errorf("a failed load committed %d blobs (%v)", len(blobs), err)
		}
	})
}

// flipByte inverts the byte at off of the file p in place.
func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
