package output

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

// tree describes dir as relative path → "d", "f:<content>" or "l:<target>".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.IsDir():
			out[rel] = "d"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "l:" + target
			return err
		default:
			data, err := os.ReadFile(p)
			out[rel] = "f:" + string(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRootfsDirKeepsWhatWasThere exports an image whose whiteouts name
// files of the destination: they are never deleted. A destination that is
// not empty is refused without WithForce and left as it was; with it, the
// image's entries replace same-named ones (a symlink there is replaced,
// never followed) and directories merge. Nothing is left next to it.
func TestRootfsDirKeepsWhatWasThere(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	ctx := context.Background()
	src := newStore(t)
	img := buildImage(t, src, nil, []testLayer{
		{files: map[string][]byte{"etc/hello.txt": []byte("hello\n"), "link/x": []byte("x"), "precious.txt": []byte("image")}, comp: compression.Gzip},
		{files: map[string][]byte{".wh.precious.txt": nil, "etc/.wh.mine.txt": nil, ".wh.other": nil}, comp: compression.None},
	}, nil)
	imageTree := map[string]string{"etc": "d", "etc/hello.txt": "f:hello\n", "link": "d", "link/x": "f:x"}

	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeTree(t, outside, map[string]string{"keep": "keep"})
	user := func(t *testing.T) string {
		dir := filepath.Join(base, t.Name())
		writeTree(t, dir, map[string]string{"precious.txt": "user", "other": "user", "etc/mine.txt": "user", "etc/hello.txt": "user"})
		if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	checkBeside := func(t *testing.T, dir string) {
		t.Helper()
		names, err := os.ReadDir(filepath.Dir(dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasPrefix(n.Name(), ".") {
				t.Errorf("left next to the destination: %s", n.Name())
			}
		}
		if got := tree(t, outside); !reflect.DeepEqual(got, map[string]string{"keep": "f:keep"}) {
			t.Errorf("outside the destination: %v", got)
		}
	}

	// exportImage exports the image into dir, which must then hold it alone.
	exportImage := func(t *testing.T, dir string) {
		t.Helper()
		if err := RootfsDir(dir).Export(ctx, src, img.Image); err != nil {
			t.Fatal(err)
		}
		if got := tree(t, dir); !reflect.DeepEqual(got, imageTree) {
			t.Errorf("tree = %v, want %v", got, imageTree)
		}
		checkBeside(t, dir)
	}

	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(base, t.Name(), "new")
		exportImage(t, dir)
	})
	t.Run("empty", func(t *testing.T) {
		dir := filepath.Join(base, t.Name())
		if err := os.Mkdir(dir, 0o710); err != nil {
			t.Fatal(err)
		}
		exportImage(t, dir)
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o710 {
			t.Errorf("destination mode changed: %v, %v", fi, err)
		}
	})
	t.Run("not empty", func(t *testing.T) {
		dir := user(t)
		before := tree(t, dir)
		err := RootfsDir(dir).Export(ctx, src, img.Image)
		if !errors.Is(err, ErrDirNotEmpty) {
			t.Fatalf("Export = %v, want ErrDirNotEmpty", err)
		}
		if err := CheckRootfsDir(dir); !errors.Is(err, ErrDirNotEmpty) {
			t.Errorf("CheckRootfsDir = %v, want ErrDirNotEmpty", err)
		}
		if got := tree(t, dir); !reflect.DeepEqual(got, before) {
			t.Errorf("a refused export changed the destination: %v, was %v", got, before)
		}
		checkBeside(t, dir)
	})
	t.Run("force", func(t *testing.T) {
		dir := user(t)
		old := time.Unix(1e9, 0)
		if err := os.Chtimes(filepath.Join(dir, "etc"), old, old); err != nil {
			t.Fatal(err)
		}
		if err := CheckRootfsDir(dir, WithForce()); err != nil {
			t.Fatal(err)
		}
		if err := RootfsDir(dir, WithForce()).Export(ctx, src, img.Image); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			// Whited out by the image: kept.
			"precious.txt": "f:user",
			"other":        "f:user",
			// Merged, and the same-named file replaced.
			"etc":           "d",
			"etc/mine.txt":  "f:user",
			"etc/hello.txt": "f:hello\n",
			// The symlink replaced, not followed.
			"link":   "d",
			"link/x": "f:x",
		}
		if got := tree(t, dir); !reflect.DeepEqual(got, want) {
			t.Errorf("tree = %v\nwant %v", got, want)
		}
		if fi, err := os.Stat(filepath.Join(dir, "etc")); err != nil || fi.ModTime().Equal(old) || fi.Mode().Perm() != 0o755 {
			t.Errorf("merged directory keeps its old metadata: %v, %v", fi, err)
		}
		checkBeside(t, dir)
	})
	t.Run("mount point", func(t *testing.T) {
		// The image is unpacked inside the destination, on its filesystem.
		dir := filepath.Join(base, t.Name())
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			testutil.Unavailable(t, "mounting a tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		exportImage(t, dir)
	})
	t.Run("failed export", func(t *testing.T) {
		dir := filepath.Join(base, t.Name())
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		lay := filepath.Join(t.TempDir(), "layout")
		if err := OCILayout(lay).Export(ctx, src, img.Image); err != nil {
			t.Fatal(err)
		}
		flipByte(t, filepath.Join(lay, blobName(img.layers[1])), img.layers[1].Size/2)
		l, err := OpenLayout(lay)
		if err != nil {
			t.Fatal(err)
		}
		if err := RootfsDir(dir).Export(ctx, l, img.Image); err == nil {
			t.Fatal("export of a corrupted image succeeded")
		}
		if got := tree(t, dir); len(got) != 0 {
			t.Errorf("a failed export wrote %v", got)
		}
		checkBeside(t, dir)
	})
}

// TestMoveEntriesNoReplace checks that without force a name already in the
// destination is never replaced, even one that appears after the check.
func TestMoveEntriesNoReplace(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]string{"a": "image", "b": "image"})
	writeTree(t, dst, map[string]string{"b": "user"})
	err := moveEntries(src, dst, false)
	if !errors.Is(err, ErrDirNotEmpty) {
		t.Fatalf("moveEntries = %v, want ErrDirNotEmpty", err)
	}
	if got := tree(t, dst); got["b"] != "f:user" {
		t.Errorf("the destination's file was replaced: %v", got)
	}
}
