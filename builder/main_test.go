package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

func TestMain(m *testing.M) {
	if Reexec() {
		return
	}
	os.Exit(m.Run())
}

// newTestBuilder opens a builder on a fresh store, whose containers are
// removed when the test ends: their processes and cgroups go with them.
func newTestBuilder(t *testing.T) *Builder {
	t.Helper()
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAllContainers(t, b) })
	return b
}

func removeAllContainers(t *testing.T, b *Builder) {
	ctx := context.Background()
	list, err := b.Containers(ctx, ContainersOptions{All: true})
	if err != nil {
		t.Errorf("listing containers to remove: %v", err)
		return
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	if _, err := b.RemoveContainers(ctx, ids, true); err != nil {
		t.Errorf("removing the test's containers: %v", err)
	}
}

// tarDir writes dir as a tar stream with numeric owners.
func tarDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

// importBusybox imports a busybox rootfs into b as ref.
func importBusybox(t *testing.T, b *Builder, ref string) string {
	t.Helper()
	root := testutil.BusyboxRootfs(t)
	id, err := b.Import(context.Background(), bytes.NewReader(tarDir(t, root)), ImportOptions{Ref: ref, Changes: []string{`CMD ["/bin/sh"]`}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tarOf builds a small tar from name → content pairs (names ending in / are dirs).
func tarOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		name, body := files[i], files[i+1]
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}
		if name[len(name)-1] == '/' {
			h = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return buf.Bytes()
}
