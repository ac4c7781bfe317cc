package output

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/internal/testutil"
)

// rootfsLayers stack into a root filesystem with a whiteout and an opaque
// directory: etc/gone.txt and opq/old.txt are hidden by the second layer.
func rootfsLayers() []testLayer {
	return []testLayer{
		{files: map[string][]byte{"etc/hello.txt": []byte("hello\n"), "etc/gone.txt": []byte("x"), "bin/tool": randomBytes(100<<10, 1), "opq/old.txt": []byte("old\n")}, comp: compression.Gzip},
		{files: map[string][]byte{"data/big.bin": randomBytes(200<<10, 2), "etc/.wh.gone.txt": nil, "opq/.wh..wh..opq": nil, "opq/new.txt": []byte("new\n")}, comp: compression.None},
		{files: map[string][]byte{"etc/hello.txt": []byte("bye\n")}, comp: compression.Zstd},
	}
}

// rootfsFiles are the regular files of rootfsLayers' flattened rootfs.
func rootfsFiles() map[string]string {
	return map[string]string{
		"etc/hello.txt": "bye\n",
		"bin/tool":      string(randomBytes(100<<10, 1)),
		"data/big.bin":  string(randomBytes(200<<10, 2)),
		"opq/new.txt":   "new\n",
	}
}

// conformanceFixture is the images every exporter is run on: a named image
// with whiteouts, and an unnamed one sharing its base layer.
type conformanceFixture struct {
	a, b testImage
}

func newConformanceFixture(t *testing.T, st *store.Store) conformanceFixture {
	return conformanceFixture{
		a: buildImage(t, st, []string{"docker.io/library/app:1", "example.com/team/app:latest"}, rootfsLayers(), nil),
		b: buildImage(t, st, nil, rootfsLayers()[:1], func(c *ocispec.Image) { c.Config.Cmd = []string{"other"} }),
	}
}

// exporterCase is one Exporter under test: make returns the exporter for a
// fresh destination, and check asserts the destination holds imgs.
type exporterCase struct {
	name   string
	rootfs bool // exports exactly one image, and needs root
	make   func(t *testing.T) (Exporter, func(t *testing.T, fx conformanceFixture))
}

// exporterCases lists every Exporter of the package.
func exporterCases() []exporterCase {
	archiveCase := func(name string, mk func(*bytes.Buffer) Exporter) exporterCase {
		return exporterCase{name: name, make: func(t *testing.T) (Exporter, func(*testing.T, conformanceFixture)) {
			var buf bytes.Buffer
			return mk(&buf), func(t *testing.T, fx conformanceFixture) {
				st, got, err := load(t, buf.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				checkBoth(t, st, got, fx)
			}
		}}
	}
	return []exporterCase{
		archiveCase("OCIArchive", func(b *bytes.Buffer) Exporter { return OCIArchive(b) }),
		archiveCase("DockerArchive", func(b *bytes.Buffer) Exporter { return DockerArchive(b) }),
		{name: "OCILayout", make: func(t *testing.T) (Exporter, func(*testing.T, conformanceFixture)) {
			dir := filepath.Join(t.TempDir(), "layout")
			return OCILayout(dir), func(t *testing.T, fx conformanceFixture) {
				st := newStore(t)
				got, err := LoadLayout(context.Background(), st, dir)
				if err != nil {
					t.Fatal(err)
				}
				checkBoth(t, st, got, fx)
				// The directory is also what OCIArchive would have tarred.
				st, got, err = load(t, tarDir(t, dir))
				if err != nil {
					t.Fatal(err)
				}
				checkBoth(t, st, got, fx)
			}
		}},
		{name: "RootfsDir", rootfs: true, make: func(t *testing.T) (Exporter, func(*testing.T, conformanceFixture)) {
			dir := t.TempDir()
			return RootfsDir(dir), func(t *testing.T, _ conformanceFixture) {
				checkRootfs(t, dirFiles(t, dir))
			}
		}},
		{name: "RootfsTar", rootfs: true, make: func(t *testing.T) (Exporter, func(*testing.T, conformanceFixture)) {
			var buf bytes.Buffer
			return RootfsTar(&buf), func(t *testing.T, _ conformanceFixture) {
				files := map[string]string{}
				for _, e := range readTar(t, buf.Bytes()) {
					if e.hdr.Typeflag != tar.TypeDir {
						files[e.hdr.Name] = string(e.data)
					}
				}
				checkRootfs(t, files)
			}
		}},
	}
}

// TestExporterConformance runs every Exporter on the same images, read from
// the store and from an OCI layout, and checks what each must guarantee:
// archives and layouts load back to the same manifests, image IDs and
// names; root filesystems hold the expected files with whiteouts applied;
// and a corrupted blob fails the export instead of being written.
func TestExporterConformance(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	fx := newConformanceFixture(t, src)
	layoutDir := filepath.Join(t.TempDir(), "src")
	if err := OCILayout(layoutDir).Export(ctx, src, fx.a.Image, fx.b.Image); err != nil {
		t.Fatal(err)
	}
	lay, err := OpenLayout(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	// corrupt is a layout whose uncompressed layer has one byte flipped in
	// the middle of a file's content: its tar still parses.
	corruptDir := filepath.Join(t.TempDir(), "corrupt")
	if err := OCILayout(corruptDir).Export(ctx, src, fx.a.Image, fx.b.Image); err != nil {
		t.Fatal(err)
	}
	bad := fx.a.layers[1]
	flipByte(t, filepath.Join(corruptDir, blobName(bad)), bad.Size/2)
	corrupt, err := OpenLayout(corruptDir)
	if err != nil {
		t.Fatal(err)
	}

	for _, ec := range exporterCases() {
		imgs := []Image{fx.a.Image, fx.b.Image}
		if ec.rootfs {
			imgs = imgs[:1]
		}
		t.Run(ec.name, func(t *testing.T) {
			if ec.rootfs {
				testutil.RequirePrivileges(t, "root")
			}
			for name, p := range map[string]Provider{"store": src, "layout": lay} {
				t.Run(name, func(t *testing.T) {
					e, check := ec.make(t)
					if err := e.Export(ctx, p, imgs...); err != nil {
						t.Fatal(err)
					}
					check(t, fx)
				})
			}
			t.Run("corrupt blob", func(t *testing.T) {
				e, _ := ec.make(t)
				err := e.Export(ctx, corrupt, imgs...)
				if !errors.Is(err, store.ErrInvalidDigest) || !strings.Contains(err.Error(), blobName(bad)) {
					t.Fatalf("export of a corrupted blob: %v, want %v naming %s", err, store.ErrInvalidDigest, blobName(bad))
				}
				t.Log(err)
			})
			if ec.rootfs {
				t.Run("two images", func(t *testing.T) {
					e, _ := ec.make(t)
					if err := e.Export(ctx, src, fx.a.Image, fx.b.Image); err == nil {
						t.Fatal("a root filesystem export of two images succeeded")
					}
				})
			}
		})
	}
}

// checkBoth asserts that got are the fixture's two images, with a's names
// and b unnamed, and that their blobs are in st.
func checkBoth(t *testing.T, st *store.Store, got []Loaded, fx conformanceFixture) {
	t.Helper()
	if len(got) != 2 {
		t.Fatalf("loaded %d images, want 2", len(got))
	}
	checkLoaded(t, st, got[0], fx.a)
	checkLoaded(t, st, got[1], fx.b)
	if !reflect.DeepEqual(got[0].Names, fx.a.Names) {
		t.Errorf("names %q, want %q", got[0].Names, fx.a.Names)
	}
	if len(got[1].Names) != 0 {
		t.Errorf("unnamed image loaded with names %q", got[1].Names)
	}
}

// checkRootfs asserts that files, the entries of a flattened root
// filesystem (directories left out), are exactly rootfsFiles.
func checkRootfs(t *testing.T, files map[string]string) {
	t.Helper()
	want := rootfsFiles()
	for name, data := range files {
		if w, ok := want[name]; !ok || w != data {
			t.Errorf("rootfs has %s (%d bytes), want %v", name, len(data), ok)
		}
	}
	for name := range want {
		if _, ok := files[name]; !ok {
			t.Errorf("rootfs lacks %s", name)
		}
	}
}

// dirFiles returns the non-directory entries under dir by relative path,
// with the content of regular files.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
