package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

// owned returns e with a mode and an owner.
func owned(e tarEntry, mode int64, uid, gid int) tarEntry {
	e.mode, e.uid, e.gid = mode, uid, gid
	return e
}

// flattenFixture is three layers with what makes flattening hard: files
// of several owners and modes, device nodes, a fifo, xattrs, a whiteout of
// a file, a directory and a symlink, an opaque directory with and without
// its own entry, a file replaced by a directory and the other way round, a
// directory deleted and made anew in one layer, a directory whose metadata
// an upper layer changes, hard links whose file an upper layer replaces
// or deletes, and a link to a link.
func flattenFixture(t *testing.T) [][]byte {
	base := buildTar(t,
		dir("etc/"), file("etc/passwd", "root:x:0:0\n"), owned(file("etc/shadow", "secret\n"), 0o640, 0, 42),
		dir("home/"), owned(dir("home/app/"), 0o750, 1000, 1000), owned(file("home/app/notes", "notes\n"), 0o600, 1000, 1000),
		dir("bin/"), owned(file("bin/busybox", "busybox v1\n"), 0o4755, 0, 0), hardlink("bin/sh", "bin/busybox"), hardlink("bin/ls", "bin/busybox"),
		dir("data/"), file("data/keep", "keep\n"), file("data/drop", "drop\n"), dir("data/sub/"), file("data/sub/x", "x\n"),
		dir("opq/"), file("opq/old", "old\n"), dir("opq/olddir/"), file("opq/olddir/f", "f\n"),
		dir("dev/"), tarEntry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		owned(dir("run/"), 0o1777, 0, 0), tarEntry{name: "run/pipe", typ: tar.TypeFifo, mode: 0o600, uid: 2000, gid: 3000},
		symlink("passwd-link", "/etc/passwd"),
		file("filedir", "a file first\n"), dir("dirfile/"), file("dirfile/child", "child\n"),
		tarEntry{name: "attrs", body: "with xattrs\n", mode: 0o644, xattrs: map[string]string{"user.flatten": "yes"}},
	)
	mid := buildTar(t,
		owned(dir("etc/"), 0o700, 0, 0),
		dir("bin/"), owned(file("bin/busybox", "busybox v2\n"), 0o755, 0, 0),
		dir("data/"), file("data/.wh.drop", ""),
		owned(dir("opq/"), 0o770, 2000, 3000), file("opq/.wh..wh..opq", ""), owned(file("opq/new", "new\n"), 0o644, 2000, 3000),
		dir("filedir/"), file("filedir/inner", "inner\n"), file("dirfile", "a file now\n"),
		dir("newdir/"), owned(file("newdir/a", "a\n"), 0o600, 65534, 65534), hardlink("newdir/b", "newdir/a"),
		file(".wh.passwd-link", ""),
	)
	top := buildTar(t,
		dir("bin/"), file("bin/.wh.ls", ""),
		dir("home/"), dir("home/app/"), owned(file("home/app/notes", "notes v2\n"), 0o600, 65534, 65534),
		file("data/sub/.wh..wh..opq", ""), file("data/sub/y", "y\n"),
		file(".wh.newdir", ""), dir("newdir/"), file("newdir/c", "c\n"),
		dir("x/"), owned(file("x/f1", "f1\n"), 0o640, 3000, 3000), hardlink("x/f2", "x/f1"), hardlink("x/f3", "x/f2"),
	)
	return [][]byte{base, mid, top}
}

func openers(layers [][]byte) []Opener {
	out := make([]Opener, len(layers))
	for i, l := range layers {
		out[i] = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l)), nil }
	}
	return out
}

// tarTree describes the tree a tar makes: for each path its type, mode,
// owner, mtime, device, symlink target, xattrs and content digest (a hard
// link described as the entry it links to), and the names sharing it. It
// fails the test for a hard link to an entry not earlier in the tar, a
// whiteout name, a path written twice, or an entry before its directory.
func tarTree(t *testing.T, data []byte) map[string]string {
	t.Helper()
	desc := map[string]string{}
	group := map[string][]string{} // first name -> names
	firstOf := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if strings.HasPrefix(path.Base(name), whiteoutPrefix) {
			t.Errorf("whiteout name %s in the tar", h.Name)
		}
		if _, dup := desc[name]; dup {
			t.Errorf("%s written twice", name)
		}
		if p := path.Dir(name); p != "." {
			if _, ok := desc[p]; !ok {
				t.Errorf("%s comes before its directory", name)
			}
		}
		if h.Typeflag == tar.TypeLink {
			first, ok := firstOf[h.Linkname]
			if !ok {
				t.Errorf("hard link %s to %s, which is not an earlier file of the tar", name, h.Linkname)
				continue
			}
			desc[name] = desc[first]
			firstOf[name] = first
			group[first] = append(group[first], name)
			continue
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		var xattrs []string
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, paxXattr) {
				xattrs = append(xattrs, k+"="+v)
			}
		}
		sort.Strings(xattrs)
		desc[name] = fmt.Sprintf("%c %o %d:%d mtime=%d dev=%d,%d link=%q xattrs=%v content=%x",
			h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid, h.ModTime.Unix(), h.Devmajor, h.Devminor, h.Linkname, xattrs, sum.Sum(nil)[:6])
		firstOf[name] = name
		group[name] = []string{name}
	}
	for _, names := range group {
		if len(names) > 1 {
			sort.Strings(names)
			for _, n := range names {
				desc[n] += fmt.Sprintf(" links=%v", names)
			}
		}
	}
	return desc
}

// TestFlattenMatchesUnpack flattens the fixture's layers and compares the
// tree with the one unpacking them onto a directory (Apply, as root) and
// writing that directory out (DiffDirs) gives, entry by entry: the same
// paths, owners, modes, contents and hard link groups.
func TestFlattenMatchesUnpack(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // Apply restores owners and makes device nodes
	layers := flattenFixture(t)
	var flat bytes.Buffer
	if err := Flatten(context.Background(), &flat, openers(layers)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, l := range layers {
		if _, err := Apply(context.Background(), dir, bytes.NewReader(l), ApplyOptions{Format: DirFormat}); err != nil {
			t.Fatalf("applying layer %d: %v", i, err)
		}
	}
	var unpacked bytes.Buffer
	if err := DiffDirs(context.Background(), "", dir, DiffOptions{}, &unpacked); err != nil {
		t.Fatal(err)
	}
	want, got := tarTree(t, unpacked.Bytes()), tarTree(t, flat.Bytes())
	// data/sub has no entry in the layer that changes what it holds:
	// unpacking changes its mtime to the time of the unpack, while the
	// flattened tar keeps the mtime its layer recorded.
	for _, m := range []map[string]string{want, got} {
		if f := strings.Fields(m["data/sub"]); len(f) > 3 {
			f[3] = "mtime=(unpack time)"
			m["data/sub"] = strings.Join(f, " ")
		}
	}
	if d := diffMaps(want, got); d != "" {
		t.Errorf("flattened tree differs from the unpacked one (- unpacked, + flattened):\n%s", d)
	}
	// What the fixture is about, spelled out.
	for p, want := range map[string]string{
		"bin/busybox": "busybox v2\n", "bin/sh": "busybox v1\n", "home/app/notes": "notes v2\n",
		"x/f3": "f1\n", "filedir/inner": "inner\n", "dirfile": "a file now\n", "newdir/c": "c\n",
	} {
		if !strings.Contains(got[p], fmt.Sprintf("content=%x", sha256Of(want)[:6])) {
			t.Errorf("%s: %s, want content %q", p, got[p], want)
		}
	}
	for _, gone := range []string{"bin/ls", "data/drop", "opq/old", "opq/olddir", "passwd-link", "newdir/a", "data/sub/x", "dirfile/child"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s should be gone", gone)
		}
	}
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// TestFlattenErrors: each layer is read to its end in both
// passes (so a verifying reader checks it), and a layer that fails to
// open or is no tar fails the flattening naming the layer.
func TestFlattenErrors(t *testing.T) {
	layers := flattenFixture(t)
	reads := make([]int, len(layers))
	ops := openers(layers)
	for i := range ops {
		open := ops[i]
		ops[i] = func() (io.ReadCloser, error) {
			rc, err := open()
			reads[i]++
			return rc, err
		}
	}
	if err := Flatten(context.Background(), io.Discard, ops); err != nil {
		t.Fatal(err)
	}
	for i, n := range reads {
		if n != 2 {
			t.Errorf("layer %d opened %d times, want 2", i, n)
		}
	}
	bad := openers([][]byte{layers[0], []byte("no tar at all, just text that is long enough for a header block? no.")})
	if err := Flatten(context.Background(), io.Discard, bad); err == nil || !strings.Contains(err.Error(), "layer 1") {
		t.Errorf("flattening a layer that is no tar: %v", err)
	}
	link := openers([][]byte{buildTar(t, hardlink("a", "b"))})
	if err := Flatten(context.Background(), io.Discard, link); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("a hard link to nothing: %v", err)
	}
}
