package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/builder-project/builder/builder"
	"github.com/builder-project/builder/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// nobody is the unprivileged user the export runs as.
const nobody = 65534

// fixtureEntry is one entry of a layer of the export fixture.
type fixtureEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

// exportLayers are the export fixture's layers: files of several owners,
// a setuid binary, a device node, hard links whose file the next layer
// replaces and the one after deletes one of, a whiteout, an opaque
// directory.
var exportLayers = [][]fixtureEntry{
	{
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", body: "root:x:0:0\n", mode: 0o644},
		{name: "etc/shadow", body: "secret\n", mode: 0o640, gid: 42},
		{name: "home/", typ: tar.TypeDir, mode: 0o755},
		{name: "home/app/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
		{name: "home/app/notes", body: "notes\n", mode: 0o600, uid: 1000, gid: 1000},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", body: "busybox v1\n", mode: 0o4755},
		{name: "bin/sh", typ: tar.TypeLink, link: "bin/busybox"},
		{name: "bin/ls", typ: tar.TypeLink, link: "bin/busybox"},
		{name: "opq/", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/old", body: "old\n", mode: 0o644},
		{name: "run/", typ: tar.TypeDir, mode: 0o1777},
		{name: "dev/", typ: tar.TypeDir, mode: 0o755},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		{name: "passwd", typ: tar.TypeSymlink, link: "/etc/passwd", mode: 0o777},
	},
	{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", body: "busybox v2\n", mode: 0o755},
		{name: "etc/", typ: tar.TypeDir, mode: 0o700},
		{name: "etc/.wh.shadow"},
		{name: "opq/", typ: tar.TypeDir, mode: 0o770, uid: 2000, gid: 3000},
		{name: "opq/.wh..wh..opq"},
		{name: "opq/new", body: "new\n", mode: 0o644, uid: 2000, gid: 3000},
	},
	{
		{name: "home/app/notes", body: "notes v2\n", mode: 0o600, uid: nobody, gid: nobody},
		{name: "bin/.wh.ls"},
	},
}

// writeExportLayout writes the fixture as an OCI image layout in dir and
// returns the image ID.
func writeExportLayout(t *testing.T, dir string) string {
	t.Helper()
	put := func(data []byte) digest.Digest {
		d := digest.FromBytes(data)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, data)
		return d
	}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, entries := range exportLayers {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid,
				ModTime: time.Unix(1700000000, 0)}
			if h.Typeflag == 0 {
				h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
			}
			if h.Typeflag == tar.TypeChar {
				h.Devmajor, h.Devminor = 1, 3
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			io.WriteString(tw, e.body)
		}
		tw.Close()
		d := put(buf.Bytes())
		layers = append(layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(buf.Len())})
		diffIDs = append(diffIDs, d)
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	cd := put(cfg)
	man, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))}, Layers: layers})
	md := put(man)
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(man)),
			Annotations: map[string]string{ocispec.AnnotationRefName: "flat:1", "io.containerd.image.name": "docker.io/library/flat:1"}}}})
	writeFile(t, filepath.Join(dir, "index.json"), idx)
	writeFile(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return cd.String()
}

// tarListing describes each path of a root filesystem tar: type, mode,
// owner, content, symlink target, and the paths it shares an inode with.
func tarListing(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups := map[string][]string{}
	first := map[string]string{}
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
		if h.Typeflag == tar.TypeLink {
			f, ok := first[h.Linkname]
			if !ok {
				t.Fatalf("hard link %s to %s, which is not earlier in the tar", name, h.Linkname)
			}
			out[name], first[name] = out[f], f
			groups[f] = append(groups[f], name)
			continue
		}
		body, _ := io.ReadAll(tr)
		kind := map[byte]string{tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink", tar.TypeChar: "char"}[h.Typeflag]
		out[name] = fmt.Sprintf("%s %o %d:%d %q %s dev=%d,%d", kind, h.Mode&0o7777, h.Uid, h.Gid, body, h.Linkname, h.Devmajor, h.Devminor)
		first[name] = name
		groups[name] = []string{name}
	}
	addGroups(out, groups)
	return out
}

// dirListing describes a directory tree as tarListing describes a tar.
func dirListing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		name, _ := filepath.Rel(root, p)
		var kind, link string
		var body []byte
		switch {
		case fi.IsDir():
			kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			kind = "symlink"
			link, _ = os.Readlink(p)
		case fi.Mode()&fs.ModeCharDevice != 0:
			kind = "char"
		default:
			kind = "file"
			body, _ = os.ReadFile(p)
			groups[st.Ino] = append(groups[st.Ino], name)
		}
		mode := uint32(fi.Mode().Perm())
		if fi.Mode()&fs.ModeSetuid != 0 {
			mode |= 0o4000
		}
		if fi.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		major, minor := uint64(0), uint64(0)
		if kind == "char" {
			major, minor = uint64(st.Rdev>>8)&0xfff, uint64(st.Rdev&0xff)
		}
		out[name] = fmt.Sprintf("%s %o %d:%d %q %s dev=%d,%d", kind, mode, st.Uid, st.Gid, body, link, major, minor)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	byFirst := map[string][]string{}
	for _, names := range groups {
		byFirst[names[0]] = names
	}
	addGroups(out, byFirst)
	return out
}

func addGroups(out map[string]string, groups map[string][]string) {
	for _, names := range groups {
		if len(names) > 1 {
			sort.Strings(names)
			for _, n := range names {
				out[n] += fmt.Sprintf(" links=%v", names)
			}
		}
	}
}

// TestExportAsNonRoot loads a multi-layer image of many owners into a
// store of an unprivileged user and exports its root filesystem as that
// user: the export streams from the layers and needs no privilege. The
// tar holds what unpacking the image as root holds: owners, modes, the
// setuid bit, the device node, hard links (one of whose group kept the
// content a higher layer replaced), whiteouts and the opaque directory
// applied.
func TestExportAsNonRoot(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // to switch to nobody, and to unpack the reference as root
	base, err := os.MkdirTemp("", "builder-export-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary, where nobody can run it.
	bin := filepath.Join(base, "builder.test")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(base, "layout")
	id := writeExportLayout(t, layout)
	store := filepath.Join(base, "store")
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(store, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, append([]string{args[0], "--root", store}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "BUILDER_TEST_CLI=1", "HOME="+base)
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("builder %s as uid %d: %v\n%s", strings.Join(args, " "), nobody, err, errb.String())
		}
		return out.Bytes()
	}
	asNobody("load", "-i", "oci:"+layout)
	got := tarListing(t, asNobody("export", id))

	// The reference: the image unpacked as root.
	b, err := builder.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.LoadLayout(ctx, layout); err != nil {
		t.Fatal(err)
	}
	unpacked := filepath.Join(t.TempDir(), "rootfs")
	if err := b.ExportDir(ctx, unpacked, id); err != nil {
		t.Fatal(err)
	}
	want := dirListing(t, unpacked)
	var diffs []string
	for name := range want {
		if got[name] != want[name] {
			diffs = append(diffs, fmt.Sprintf("%s:\n  unpacked: %s\n  exported: %s", name, want[name], got[name]))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the export: %s", name, got[name]))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("the export differs from the unpacked image:\n%s", strings.Join(diffs, "\n"))
	}
	for name, want := range map[string]string{"bin/sh": "busybox v1", "bin/busybox": "busybox v2", "home/app/notes": "notes v2"} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s: %s, want %q", name, got[name], want)
		}
	}
	for _, gone := range []string{"bin/ls", "etc/shadow", "opq/old"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s is in the export", gone)
		}
	}
}
