package main

import (
	"archive/tar"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportURLAndBadFiles: `import URL` downloads from a loopback server
// as docker does; a 404 fails naming the URL; a file that is no tar fails
// naming the file.
func TestImportURLAndBadFiles(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi\n"))
	tw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rootfs.tar" {
			http.NotFound(w, r)
			return
		}
		w.Write(buf.Bytes())
	}))
	defer srv.Close()
	root := t.TempDir()
	out := mustCLI(t, root, nil, "import", srv.URL+"/rootfs.tar", "web:1")
	if !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("import printed %q", out)
	}
	if hist := mustCLI(t, root, nil, "history", "--no-trunc", "web:1"); !strings.Contains(hist, srv.URL+"/rootfs.tar") {
		t.Errorf("history does not name the URL:\n%s", hist)
	}
	_, stderr, code := runCLI(t, root, "import", srv.URL+"/nope.tar", "web:2")
	if code == 0 || !strings.Contains(stderr, "importing "+srv.URL+"/nope.tar: 404 Not Found") {
		t.Errorf("import of a 404: exit %d, %s", code, stderr)
	}
	junk := filepath.Join(t.TempDir(), "junk.txt")
	if err := os.WriteFile(junk, []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, root, "import", junk, "junk:1")
	if code == 0 || !strings.Contains(stderr, "importing "+junk+": ") || !strings.Contains(stderr, "not a tar archive") {
		t.Errorf("import of a text file: exit %d, %s", code, stderr)
	}
}
