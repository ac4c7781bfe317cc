package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/builder-project/builder/layer"
	"github.com/klauspost/compress/gzip"
)

// TestImportRefusesUnsafeEntries imports tarballs holding an entry that
// layer.Apply would refuse: the import fails naming the entry, and neither
// a blob nor an image is stored.
func TestImportRefusesUnsafeEntries(t *testing.T) {
	file := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644} }
	link := func(name, to string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: to, Mode: 0o644}
	}
	for _, tc := range []struct {
		name, entry string
		hdrs        []*tar.Header
		gzip        bool
	}{
		{"dotdot name", "../../etc/cron.d/x", []*tar.Header{file("ok"), file("../../etc/cron.d/x")}, false},
		{"dotdot name, gzip", "a/../../x", []*tar.Header{file("a/../../x")}, true},
		{"hardlink out of the root", "h", []*tar.Header{link("h", "../etc/shadow")}, false},
		{"hardlink to a host path", "h", []*tar.Header{link("h", "/etc/shadow")}, false},
		{"whiteout that escapes", "../.wh.x", []*tar.Header{file("../.wh.x")}, false},
		{"whiteout prefix in a directory", ".wh.d/f", []*tar.Header{file(".wh.d/f")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			var zw *gzip.Writer
			tw := tar.NewWriter(&buf)
			if tc.gzip {
				zw = gzip.NewWriter(&buf)
				tw = tar.NewWriter(zw)
			}
			for _, h := range tc.hdrs {
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			if zw != nil {
				zw.Close()
			}
			b := newTestBuilder(t)
			_, err := b.Import(context.Background(), &buf, ImportOptions{Ref: "evil:1"})
			if !errors.Is(err, layer.ErrInvalidEntry) || !strings.Contains(err.Error(), `entry "`+tc.entry+`"`) {
				t.Fatalf("Import = %v, want an error naming entry %q", err, tc.entry)
			}
			if blobs, err := b.st.Blobs(); err != nil || len(blobs) != 0 {
				t.Errorf("a failed import stored %d blobs (%v)", len(blobs), err)
			}
			if imgs, err := b.Images(context.Background(), ImagesOptions{}); err != nil || len(imgs) != 0 {
				t.Errorf("a failed import recorded %d images (%v)", len(imgs), err)
			}
		})
	}
}

// storeFiles lists every path below the store root with its size.
func storeFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d", strings.TrimPrefix(p, root), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportNotATar imports files that are no tar: a few bytes of text,
// random bytes, a tar cut short, compressed text. Each fails with an error
// naming the input, and the store is left exactly as it was: no blob, no
// ingest, no temporary file, no image. An empty archive is an image with
// one empty layer, as in docker.
func TestImportNotATar(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Import(ctx, bytes.NewReader(tarOf(t, "a", "1")), ImportOptions{Ref: "ok:1", Source: "ok.tar"}); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 1000)
	rand.NewChaCha8([32]byte{1}).Read(random)
	whole := tarOf(t, "big", strings.Repeat("x", 5000))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("just some text, compressed\n"))
	zw.Close()
	before := storeFiles(t, root)
	for _, tc := range []struct {
		name   string
		data   []byte
		notTar bool
	}{
		{"three-bytes.txt", []byte("hi\n"), true},
		{"random.bin", random, true},
		{"cut.tar", whole[:2000], false},
		{"text.gz", gz.Bytes(), true},
	} {
		_, err := b.Import(ctx, bytes.NewReader(tc.data), ImportOptions{Ref: "bad:1", Source: tc.name})
		if err == nil {
			t.Fatalf("%s: imported", tc.name)
		}
		if !strings.HasPrefix(err.Error(), "importing "+tc.name+": ") || errors.Is(err, layer.ErrNotTar) != tc.notTar {
			t.Errorf("%s: error %q: want it to name the file (and say it is not a tar: %v)", tc.name, err, tc.notTar)
		}
		if strings.Contains(err.Error(), root) {
			t.Errorf("%s: error %q shows a store path", tc.name, err)
		}
	}
	if after := storeFiles(t, root); !reflect.DeepEqual(after, before) {
		t.Errorf("failed imports changed the store:\nbefore %q\nafter  %q", before, after)
	}

	var empty bytes.Buffer
	tar.NewWriter(&empty).Close()
	if _, err := b.Import(ctx, &empty, ImportOptions{Ref: "empty:1", Source: "empty.tar"}); err != nil {
		t.Fatalf("empty archive: %v", err)
	}
	var out bytes.Buffer
	if err := b.Export(ctx, &out, "empty:1"); err != nil {
		t.Fatal(err)
	}
	if hdr, err := tar.NewReader(&out).Next(); err != io.EOF {
		t.Errorf("export of an empty import: %v, %v; want no entry", hdr, err)
	}
}

// TestImportURL imports from a loopback HTTP server, as docker import URL
// does: the tarball (gzip'd here) streams into an image whose history names
// the URL; a 404 and a page that is no tar fail naming the URL, and store
// nothing.
func TestImportURL(t *testing.T) {
	ctx := context.Background()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarOf(t, "etc/", "", "etc/motd", "served\n"))
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rootfs.tar.gz":
			w.Write(gz.Bytes())
		case "/page.html":
			io.WriteString(w, "<html>not a tar</html>")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	b := newTestBuilder(t)
	u := srv.URL + "/rootfs.tar.gz"
	id, err := b.ImportURL(ctx, u, ImportOptions{Ref: "web:1"})
	if err != nil {
		t.Fatal(err)
	}
	hist, err := b.History(ctx, "web:1")
	if err != nil || len(hist) != 1 || hist[0].CreatedBy != "builder import "+u || !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("history %+v, %v", hist, err)
	}
	var out bytes.Buffer
	if err := b.Export(ctx, &out, "web:1"); err != nil || !strings.Contains(out.String(), "served\n") {
		t.Fatalf("export: %v", err)
	}
	blobs, _ := b.st.Blobs()
	for _, bad := range []struct{ path, want string }{{"/missing.tar", "404 Not Found"}, {"/page.html", "not a tar archive"}} {
		u := srv.URL + bad.path
		_, err := b.ImportURL(ctx, u, ImportOptions{Ref: "bad:1"})
		if err == nil || !strings.HasPrefix(err.Error(), "importing "+u+": ") || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("import %s: %v, want an error naming it with %q", u, err, bad.want)
		}
	}
	if after, _ := b.st.Blobs(); len(after) != len(blobs) {
		t.Errorf("failed imports stored blobs: %d, then %d", len(blobs), len(after))
	}
}
