package copier

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
}

// mkTar builds an uncompressed tar archive.
func mkTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, Uid: e.uid, Gid: e.uid,
			ModTime: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		must(t, tw.WriteHeader(hdr))
		if typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// compressWith compresses data with a Go encoder or an external program.
func compressWith(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "plain":
		return data
	case "gzip":
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(data)
		must(t, err)
		must(t, zw.Close())
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		must(t, err)
		_, err = zw.Write(data)
		must(t, err)
		must(t, zw.Close())
	case "bzip2", "xz":
		bin := testutil.RequireTool(t, kind)
		cmd := exec.Command(bin, "-c")
		cmd.Stdin = bytes.NewReader(data)
		cmd.Stdout = &buf
		must(t, cmd.Run())
	}
	return buf.Bytes()
}

// blob creates a file with raw content.
func blob(p string, data []byte) op {
	return func(t *testing.T, root string) {
		t.Helper()
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, data, 0o644))
	}
}

func TestAddArchives(t *testing.T) {
	archive := mkTar(t,
		tarEntry{name: "top/", typ: tar.TypeDir, mode: 0o750},
		tarEntry{name: "top/f", body: "F", mode: 0o4755, uid: 1000},
		tarEntry{name: "top/l", typ: tar.TypeSymlink, link: "f"},
		tarEntry{name: "top/h", typ: tar.TypeLink, link: "top/f"},
		tarEntry{name: "implied/dir/g", body: "G"},
	)
	want := []string{
		"x: d 0755", "x/top: d 0750", "x/top/f: f 4755 F", "x/top/l: l -> f", "x/top/h: f 4755 F",
		"x/implied: d 0755", "x/implied/dir: d 0755", "x/implied/dir/g: f 0644 G",
	}
	var cases []copyCase
	for _, kind := range []string{"plain", "gzip", "bzip2", "xz", "zstd"} {
		cases = append(cases, copyCase{
			name: kind + " archive is extracted",
			src:  []op{blob("a.bin", compressWith(t, kind, archive))},
			opts: Options{Sources: []string{"a.bin"}, Dest: "/x", Add: true},
			want: want,
			check: func(t *testing.T, _, dst string) {
				if uid, _ := ownerOf(t, filepath.Join(dst, "x/top/f")); uid != 1000 {
					t.Errorf("owner from the archive not kept: %d", uid)
				}
				a, err := os.Stat(filepath.Join(dst, "x/top/f"))
				must(t, err)
				b, err := os.Stat(filepath.Join(dst, "x/top/h"))
				must(t, err)
				if !os.SameFile(a, b) {
					t.Error("hardlink not kept")
				}
			},
		})
	}
	cases = append(cases,
		copyCase{
			name: "chown overrides archive owners",
			src:  []op{blob("a.tar", archive)},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/x/", Add: true, Chown: "5:6"},
			check: func(t *testing.T, _, dst string) {
				if uid, gid := ownerOf(t, filepath.Join(dst, "x/top/f")); uid != 5 || gid != 6 {
					t.Errorf("owner %d:%d, want 5:6", uid, gid)
				}
			},
		},
		copyCase{
			name: "COPY does not extract",
			src:  []op{blob("a.tar", []byte("not really")), blob("b.tar", archive)},
			opts: Options{Sources: []string{"b.tar"}, Dest: "/b.tar"},
			check: func(t *testing.T, _, dst string) {
				data, err := os.ReadFile(filepath.Join(dst, "b.tar"))
				must(t, err)
				if !bytes.Equal(data, archive) {
					t.Error("archive content changed")
				}
			},
		},
		copyCase{
			name: "unpack=false does not extract",
			src:  []op{blob("b.tar", archive)},
			opts: Options{Sources: []string{"b.tar"}, Dest: "/b/", Add: true, Unpack: new(false)},
			check: func(t *testing.T, _, dst string) {
				if _, err := os.Stat(filepath.Join(dst, "b/b.tar")); err != nil {
					t.Error(err)
				}
			},
		},
		copyCase{
			name: "non-archive with an archive name is copied",
			src:  []op{blob("empty.tar.gz", nil), blob("text.tar", []byte("hello"))},
			opts: Options{Sources: []string{"empty.tar.gz", "text.tar"}, Dest: "/d/", Add: true},
			want: []string{"d: d 0755", "d/empty.tar.gz: f 0644 ", "d/text.tar: f 0644 hello"},
		},
		copyCase{
			name: "directory of archives is copied, not extracted",
			src:  []op{blob("dir/a.tar", archive)},
			opts: Options{Sources: []string{"dir"}, Dest: "/d", Add: true},
			check: func(t *testing.T, _, dst string) {
				if fi, err := os.Stat(filepath.Join(dst, "d/a.tar")); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("d/a.tar: %v", err)
				}
			},
		},
		copyCase{
			name: "archive merges into an existing directory through a symlink",
			src:  []op{blob("a.tar", mkTar(t, tarEntry{name: "lib64/", typ: tar.TypeDir, mode: 0o755}, tarEntry{name: "lib64/libz.so", body: "z"}))},
			dst:  []op{dir("usr/lib64", 0o755), file("usr/lib64/libc.so", "c", 0o755), symlink("lib64", "/usr/lib64")},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/", Add: true},
			want: []string{"lib64: l -> /usr/lib64", "usr: d 0755", "usr/lib64: d 0755", "usr/lib64/libc.so: f 0755 c", "usr/lib64/libz.so: f 0644 z"},
		},
		copyCase{
			name: "URL is refused offline",
			opts: Options{Sources: []string{"https://example.com/a.tar.gz"}, Dest: "/", Add: true}, errIs: ErrOffline,
			wantErr: "ADD from URL https://example.com/a.tar.gz: network access is disabled in this build",
		},
		copyCase{
			name: "git source is refused offline",
			opts: Options{Sources: []string{"git@github.com:moby/buildkit.git"}, Dest: "/", Add: true}, errIs: ErrOffline,
		},
		copyCase{
			name: "checksum needs a URL",
			src:  []op{blob("a.tar", archive)},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/", Add: true, Checksum: "sha256:00"}, wantErr: "checksum requires HTTP(S) or Git sources",
		},
		copyCase{
			name: "checksum with COPY",
			src:  []op{blob("a.tar", archive)},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/", Checksum: "sha256:00"}, wantErr: "checksum can't be specified for COPY",
		},
	)
	runCases(t, cases)
}

func TestAddXzMissing(t *testing.T) {
	requireRoot(t)
	testutil.RequireTool(t, "xz")
	src := build(t, blob("a.txz", compressWith(t, "xz", mkTar(t, tarEntry{name: "f", body: "F"}))))
	t.Setenv("PATH", t.TempDir())
	_, err := Copy(t.Context(), src, t.TempDir(), Options{Sources: []string{"a.txz"}, Dest: "/", Add: true})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("xz archives need the xz program")) {
		t.Fatalf("error %v", err)
	}
}
