package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

func applyOpts(f Format) ApplyOptions {
	return ApplyOptions{Format: f, NoChown: os.Geteuid() != 0}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name   string
		lower  []tarEntry
		layer  []tarEntry
		format Format
		want   map[string]string
	}{
		{"whiteout file", []tarEntry{file("a", "1"), file("b", "2")},
			[]tarEntry{file(".wh.a", "")}, DirFormat,
			map[string]string{"b": "f:2"}},
		{"whiteout dir", []tarEntry{dir("d"), file("d/x", "x")},
			[]tarEntry{file(".wh.d", "")}, DirFormat,
			map[string]string{}},
		{"whiteout of missing path", []tarEntry{file("a", "1")},
			[]tarEntry{file("nope/.wh.x", ""), file(".wh.y", "")}, DirFormat,
			map[string]string{"a": "f:1"}},
		{"whiteout after same-layer entry keeps it", []tarEntry{file("a", "old")},
			[]tarEntry{file("a", "new"), file(".wh.a", "")}, DirFormat,
			map[string]string{"a": "f:new"}},
		{"whiteout after same-layer dir clears lower content", []tarEntry{dir("d"), file("d/old", "o")},
			[]tarEntry{dir("d"), file("d/new", "n"), file(".wh.d", "")}, DirFormat,
			map[string]string{"d": "d", "d/new": "f:n"}},
		{"opaque after entries", []tarEntry{dir("d"), file("d/old", "o")},
			[]tarEntry{dir("d"), file("d/new", "n"), file("d/.wh..wh..opq", "")}, DirFormat,
			map[string]string{"d": "d", "d/new": "f:n"}},
		{"opaque before entries", []tarEntry{dir("d"), file("d/old", "o"), dir("d/sub"), file("d/sub/o2", "o")},
			[]tarEntry{dir("d"), file("d/.wh..wh..opq", ""), file("d/new", "n")}, DirFormat,
			map[string]string{"d": "d", "d/new": "f:n"}},
		{"opaque spares same-layer subtree", []tarEntry{dir("d"), dir("d/sub"), file("d/sub/old", "o"), file("d/x", "x")},
			[]tarEntry{file("d/sub/new", "n"), file("d/.wh..wh..opq", "")}, DirFormat,
			map[string]string{"d": "d", "d/sub": "d", "d/sub/new": "f:n"}},
		{"file replaced by dir", []tarEntry{file("p", "f")},
			[]tarEntry{dir("p"), file("p/x", "x")}, DirFormat,
			map[string]string{"p": "d", "p/x": "f:x"}},
		{"dir replaced by file", []tarEntry{dir("p"), file("p/x", "x")},
			[]tarEntry{file("p", "f")}, DirFormat,
			map[string]string{"p": "f:f"}},
		{"dir over dir merges", []tarEntry{dir("p"), file("p/x", "x")},
			[]tarEntry{dir("p"), file("p/y", "y")}, DirFormat,
			map[string]string{"p": "d", "p/x": "f:x", "p/y": "f:y"}},
		{"symlink replaced, not written through", []tarEntry{file("t", "T"), symlink("s", "t")},
			[]tarEntry{file("s", "S")}, DirFormat,
			map[string]string{"t": "f:T", "s": "f:S"}},
		{"hardlink replaced, not written through", []tarEntry{file("a", "A"), hardlink("b", "a")},
			[]tarEntry{file("a", "new")}, DirFormat,
			map[string]string{"a": "f:new", "b": "f:A"}},
		{"hardlink in layer", nil,
			[]tarEntry{file("a", "A"), hardlink("b", "a"), hardlink("c", "/a")}, DirFormat,
			map[string]string{"a": "f:A", "b": "f:A", "c": "f:A"}},
		{"hardlink to lower file", []tarEntry{file("a", "A")},
			[]tarEntry{hardlink("b", "a")}, DirFormat,
			map[string]string{"a": "f:A", "b": "f:A"}},
		{"absolute names are relative to the root", nil,
			[]tarEntry{file("/etc/x", "x"), dir("/"), dir("./")}, DirFormat,
			map[string]string{"etc": "d", "etc/x": "f:x"}},
		{"relative symlinked parent resolves inside", []tarEntry{dir("usr"), dir("usr/lib"), symlink("lib", "usr/lib")},
			[]tarEntry{file("lib/x", "x")}, DirFormat,
			map[string]string{"usr": "d", "usr/lib": "d", "usr/lib/x": "f:x", "lib": "l:usr/lib"}},
		{"absolute symlinked parent resolves inside", []tarEntry{dir("usr"), dir("usr/lib"), symlink("lib", "/usr/lib")},
			[]tarEntry{file("lib/x", "x")}, DirFormat,
			map[string]string{"usr": "d", "usr/lib": "d", "usr/lib/x": "f:x", "lib": "l:/usr/lib"}},
		{"aufs metadata skipped", nil,
			[]tarEntry{dir(".wh..wh.plnk"), file(".wh..wh.plnk/1.2", "x"), file("a", "a")}, DirFormat,
			map[string]string{"a": "f:a"}},
		{"overlay whiteouts and opaque", nil,
			[]tarEntry{file(".wh.a", ""), dir("d"), file("d/.wh..wh..opq", ""), dir("e"), file("e/f", "f")}, OverlayFormat,
			map[string]string{"a": "c:0:0", "d": "d+opq", "e": "d", "e/f": "f:f"}},
		{"overlay whiteout after same-layer entry", nil,
			[]tarEntry{file("a", "x"), file(".wh.a", ""), file("d/.wh..wh..opq", ""), file("d/y", "y")}, OverlayFormat,
			map[string]string{"a": "f:x", "d": "d+opq", "d/y": "f:y"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.format == OverlayFormat {
				testutil.RequirePrivileges(t, "root")
			}
			root := t.TempDir()
			ctx := context.Background()
			if tc.lower != nil {
				if _, err := Apply(ctx, root, bytes.NewReader(buildTar(t, tc.lower...)), applyOpts(DirFormat)); err != nil {
					t.Fatalf("applying lower: %v", err)
				}
			}
			data := buildTar(t, tc.layer...)
			n, err := Apply(ctx, root, bytes.NewReader(data), applyOpts(tc.format))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if n != int64(len(data)) {
				t.Errorf("Apply returned %d bytes, tar has %d", n, len(data))
			}
			if d := diffMaps(tc.want, compact(t, root)); d != "" {
				t.Errorf("tree mismatch:\n%s", d)
			}
		})
	}
}

func TestApplyMetadata(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	root := t.TempDir()
	mt := time.Unix(1600000000, 123000000)
	data := buildTar(t,
		tarEntry{name: "ro/", typ: tar.TypeDir, mode: 0o555, uid: 7, gid: 8, mtime: mt},
		tarEntry{name: "ro/suid", body: "x", mode: 0o4755, uid: 1000, gid: 1000, mtime: mt,
			xattrs: map[string]string{"user.k": "v", "trusted.t": "\x00\x01bin", "trusted.overlay.opaque": "y"}},
		tarEntry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777, mtime: mt},
		tarEntry{name: "ro/sl", typ: tar.TypeSymlink, link: "/nowhere", uid: 5, gid: 6, mtime: mt},
		tarEntry{name: "null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666, mtime: mt},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o600, mtime: mt},
	)
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	got := fullSnapshot(t, root, false)
	want := map[string]string{
		"ro":      "d mode=555 owner=7:8 mtime=1600000000 xattrs=[]",
		"ro/suid": "f:x mode=4755 owner=1000:1000 mtime=1600000000 xattrs=[trusted.t=\x00\x01bin,user.k=v]",
		"ro/sl":   "l:/nowhere mode=0 owner=5:6 mtime=1600000000 xattrs=[]",
		"tmp":     "d mode=1777 owner=0:0 mtime=1600000000 xattrs=[]",
		"null":    "c:1:3 mode=666 owner=0:0 mtime=1600000000 xattrs=[]",
		"fifo":    "p mode=600 owner=0:0 mtime=1600000000 xattrs=[]",
	}
	if d := diffMaps(want, got); d != "" {
		t.Errorf("metadata mismatch:\n%s", d)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "ro/suid"), &st))
	if st.Mtim.Nsec != 123000000 {
		t.Errorf("mtime nanoseconds = %d, want 123000000", st.Mtim.Nsec)
	}
}

func TestApplyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(buildTar(t, file("a", "a"))), applyOpts(DirFormat))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with cancelled ctx: %v, want context.Canceled", err)
	}
}
