package output

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
)

// unsafeTar is a layer whose entries are written as given, after padding
// big enough (when pad is set) that the loader streams it into an ingest.
func unsafeTar(t *testing.T, pad bool, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if pad {
		hdrs = append([]*tar.Header{{Typeflag: tar.TypeReg, Name: "pad", Size: 200 << 10}}, hdrs...)
	}
	for _, h := range hdrs {
		h.Mode, h.ModTime = 0o644, epoch
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(randomBytes(int(h.Size), 3)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadRefusesUnsafeLayers loads archives and layouts whose layer holds
// an entry layer.Apply would refuse: the load fails naming the entry and
// the layer file, and commits nothing.
func TestLoadRefusesUnsafeLayers(t *testing.T) {
	file := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name} }
	link := func(name, to string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: to}
	}
	cases := []struct {
		name  string
		entry string // the entry the error names
		hdrs  []*tar.Header
	}{
		{"dotdot name", "a/../../etc/passwd", []*tar.Header{file("ok"), file("a/../../etc/passwd")}},
		{"hardlink out of the root", "h", []*tar.Header{link("h", "../../etc/shadow")}},
		{"hardlink to nothing in the layer", "h", []*tar.Header{file("ok"), link("h", "/etc/shadow")}},
		{"whiteout that escapes", "../.wh.x", []*tar.Header{file("../.wh.x")}},
		{"whiteout prefix in a directory", ".wh.d/x", []*tar.Header{file(".wh.d/x")}},
	}
	kinds := []struct {
		name  string
		comp  compression.Kind
		pad   bool
		write func(io.Writer) Exporter
	}{
		{"oci/plain", compression.None, false, OCIArchive},
		{"oci/gzip/ingested", compression.Gzip, true, OCIArchive},
		{"docker/zstd", compression.Zstd, false, DockerArchive},
		{"docker/plain/ingested", compression.None, true, DockerArchive},
	}
	ctx := context.Background()
	for _, tc := range cases {
		for _, k := range kinds {
			t.Run(tc.name+"/"+k.name, func(t *testing.T) {
				src := newStore(t)
				img := buildImage(t, src, []string{"docker.io/library/evil:1"}, []testLayer{
					{files: map[string][]byte{"etc/hello.txt": []byte("hello\n")}, comp: compression.Gzip},
					{raw: unsafeTar(t, k.pad, tc.hdrs...), comp: k.comp},
				}, nil)
				layerFile := img.layers[1].Digest.Encoded()
				check := func(what string, st *store.Store, err error) {
					t.Helper()
					if !errors.Is(err, layer.ErrInvalidEntry) {
						t.Fatalf("%s: error %v, want one wrapping layer.ErrInvalidEntry", what, err)
					}
					for _, want := range []string{`entry "` + tc.entry + `"`, layerFile} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("%s: error %q does not name %s", what, err, want)
						}
					}
					if blobs, err := st.Blobs(); err != nil || len(blobs) != 0 {
						t.Errorf("%s: a failed load committed %d blobs (%v)", what, len(blobs), err)
					}
				}
				st, _, err := load(t, archive(t, src, k.write, img.Image))
				check("Load", st, err)

				dir := filepath.Join(t.TempDir(), "layout")
				exportLayout(t, src, dir, nil, img.Image)
				st = newStore(t)
				_, err = LoadLayout(ctx, st, dir)
				check("LoadLayout", st, err)
			})
		}
	}
}

// TestLoadAcceptsSpecialEntries loads a layer with device nodes, a fifo,
// hardlinks, whiteouts and an absolute name: all valid in a layer.
func TestLoadAcceptsSpecialEntries(t *testing.T) {
	src := newStore(t)
	raw := unsafeTar(t, true,
		&tar.Header{Typeflag: tar.TypeDir, Name: "./"},
		&tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Devmajor: 1, Devminor: 3},
		&tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Devmajor: 8},
		&tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo"},
		&tar.Header{Typeflag: tar.TypeReg, Name: "/etc/a", Size: 3},
		&tar.Header{Typeflag: tar.TypeLink, Name: "etc/b", Linkname: "/etc/a"},
		&tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/up", Linkname: "../../../.."},
		&tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.gone"},
		&tar.Header{Typeflag: tar.TypeReg, Name: "var/.wh..wh..opq"},
	)
	img := buildImage(t, src, []string{"docker.io/library/special:1"}, []testLayer{{raw: raw, comp: compression.Gzip}}, nil)
	st, got, err := load(t, archive(t, src, OCIArchive, img.Image))
	if err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, st, got[0], img)
}
