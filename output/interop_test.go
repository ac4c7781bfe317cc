package output

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/testutil"
)

// run runs a tool and returns its standard output, failing t on error.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// writeFile writes data to a new file in a temporary directory.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// extract unpacks an archive held in memory into a new directory.
func extract(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, e := range readTar(t, data) {
		p := filepath.Join(dir, filepath.FromSlash(e.hdr.Name))
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, e.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// tarDir archives a directory (regular files and directories only).
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// inspectResult is the part of skopeo inspect's output we check.
type inspectResult struct {
	Digest digest.Digest
	Layers []digest.Digest
}

func inspect(t *testing.T, ref string) inspectResult {
	t.Helper()
	var r inspectResult
	if err := json.Unmarshal(run(t, "skopeo", "inspect", ref), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func digests(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func TestSkopeoReadsOurArchives(t *testing.T) {
	testutil.SkipIfShort(t, "interop with skopeo")
	testutil.RequireTool(t, "skopeo")
	src := newStore(t)
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, defaultLayers(), nil)
	blobs := layerDigests(a)

	oci := writeFile(t, "oci.tar", archive(t, src, OCIArchive, a.Image))
	for _, ref := range []string{"oci-archive:" + oci, "oci-archive:" + oci + ":1"} {
		got := inspect(t, ref)
		if got.Digest != a.Manifest.Digest || !reflect.DeepEqual(got.Layers, blobs) {
			t.Errorf("skopeo inspect %s = %+v, want digest %s layers %s", ref, got, a.Manifest.Digest, blobs)
		}
	}

	docker := writeFile(t, "docker.tar", archive(t, src, DockerArchive, a.Image))
	got := inspect(t, "docker-archive:"+docker)
	// skopeo decompresses a docker-archive's layer files and lists them by
	// diffID, in a manifest of its own making.
	if !reflect.DeepEqual(got.Layers, a.diffIDs) {
		t.Errorf("skopeo inspect docker-archive: layers %s, want the diffIDs %s", got.Layers, a.diffIDs)
	}
	// skopeo also understands the docker-archive as an OCI layout.
	layout := extract(t, archive(t, src, DockerArchive, a.Image))
	if got := inspect(t, "oci:"+layout+":1"); got.Digest != a.Manifest.Digest {
		t.Errorf("docker-archive as OCI layout: digest %s, want %s", got.Digest, a.Manifest.Digest)
	}

	// skopeo copies our docker-archive to an OCI layout, which we load back.
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, "skopeo", "copy", "docker-archive:"+docker, "oci:"+dir+":copied")
	st, imgs, err := load(t, tarDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Config != a.config || len(imgs[0].Names) != 0 {
		t.Fatalf("loaded %+v, want one unnamed image with config %s", imgs, a.config)
	}
	if !reflect.DeepEqual(diffIDs(imgs[0]), digests(a.diffIDs)) {
		t.Errorf("diffIDs %v, want %v", diffIDs(imgs[0]), a.diffIDs)
	}
	checkBlobs(t, st, imgs[0])
}

func diffIDs(l Loaded) []string {
	var out []string
	for _, b := range l.Layers {
		out = append(out, b.DiffID.String())
	}
	return out
}

func TestLoadSkopeoArchives(t *testing.T) {
	testutil.SkipIfShort(t, "interop with skopeo")
	testutil.RequireTool(t, "skopeo")
	src := newStore(t)
	layers := defaultLayers()
	layers[2].comp = compression.Gzip // skopeo 1.9 refuses zstd layers in docker-archives
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, layers, nil)
	oci := writeFile(t, "oci.tar", archive(t, src, OCIArchive, a.Image))
	for _, tc := range []struct {
		dest string
		want []string
	}{
		{"docker-archive:%s:example.com/their/app:2", []string{"example.com/their/app:2"}},
		{"docker-archive:%s", nil},
		{"oci-archive:%s:theirs:3", []string{"docker.io/library/theirs:3"}},
		{"oci-archive:%s:3", nil},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "theirs.tar")
			run(t, "skopeo", "copy", "oci-archive:"+oci, strings.Replace(tc.dest, "%s", out, 1))
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st := newStore(t)
			imgs, err := Load(context.Background(), st, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].Config != a.config {
				t.Fatalf("loaded %+v, want config %s", imgs, a.config)
			}
			if !reflect.DeepEqual(imgs[0].Names, tc.want) {
				t.Errorf("names %q, want %q", imgs[0].Names, tc.want)
			}
			if !reflect.DeepEqual(diffIDs(imgs[0]), digests(a.diffIDs)) {
				t.Errorf("diffIDs %v, want %v", diffIDs(imgs[0]), a.diffIDs)
			}
			checkBlobs(t, st, imgs[0])
		})
	}
}

func TestUmociUnpacksOurArchive(t *testing.T) {
	testutil.SkipIfShort(t, "interop with umoci")
	testutil.RequireTool(t, "umoci")
	src := newStore(t)
	layers := defaultLayers()
	layers[2].comp = compression.Gzip // umoci 0.4 reads no zstd layers
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, layers, nil)
	for name, write := range map[string]func(io.Writer) Exporter{"oci": OCIArchive, "docker": DockerArchive} {
		t.Run(name, func(t *testing.T) {
			layout := extract(t, archive(t, src, write, a.Image))
			bundle := filepath.Join(t.TempDir(), "bundle")
			run(t, "umoci", "unpack", "--image", layout+":1", bundle)
			for file, want := range map[string]string{"etc/hello.txt": "bye\n", "data/big.bin": string(randomBytes(200<<10, 2))} {
				got, err := os.ReadFile(filepath.Join(bundle, "rootfs", file))
				if err != nil || string(got) != want {
					t.Errorf("rootfs/%s: %d bytes (%v), want %d", file, len(got), err, len(want))
				}
			}
		})
	}
}

func TestLoadUmociLayout(t *testing.T) {
	testutil.SkipIfShort(t, "interop with umoci")
	testutil.RequireTool(t, "umoci")
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, "umoci", "init", "--layout", layout)
	run(t, "umoci", "new", "--image", layout+":t")
	rootfs := t.TempDir()
	if err := os.WriteFile(filepath.Join(rootfs, "hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "umoci", "insert", "--image", layout+":t", filepath.Join(rootfs, "hello"), "/hello")
	run(t, "umoci", "config", "--image", layout+":t", "--config.cmd", "/hello")
	st, imgs, err := load(t, tarDir(t, layout))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].Layers) != 1 || len(imgs[0].Names) != 0 {
		t.Fatalf("loaded %+v, want one unnamed image with one layer", imgs)
	}
	checkBlobs(t, st, imgs[0])
}

// TestToolsReadOurLayout has skopeo and umoci read a layout OCILayout wrote
// and merged, and loads back what skopeo adds to it.
func TestToolsReadOurLayout(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	testutil.RequireTool(t, "umoci")
	ctx := context.Background()
	src := newStore(t)
	layers := defaultLayers()
	layers[2].comp = compression.Gzip // umoci 0.4 and skopeo 1.9's docker-archive read no zstd layers
	a := buildImage(t, src, []string{"docker.io/library/app:1"}, layers, nil)
	b := buildImage(t, src, []string{"docker.io/library/app:2"}, layers[:1], nil)
	dir := filepath.Join(t.TempDir(), "layout")
	exportLayout(t, src, dir, nil, a.Image)
	exportLayout(t, src, dir, nil, b.Image) // merged into the same layout

	for tag, img := range map[string]testImage{"1": a, "2": b} {
		got := inspect(t, "oci:"+dir+":"+tag)
		if got.Digest != img.Manifest.Digest || !reflect.DeepEqual(got.Layers, layerDigests(img)) {
			t.Errorf("skopeo inspect oci:%s:%s = %+v, want digest %s layers %s", dir, tag, got, img.Manifest.Digest, layerDigests(img))
		}
	}

	var stat struct {
		History []struct {
			CreatedBy string `json:"created_by"`
		} `json:"history"`
	}
	if err := json.Unmarshal(run(t, "umoci", "stat", "--json", "--image", dir+":1"), &stat); err != nil {
		t.Fatal(err)
	}
	if len(stat.History) != len(a.layers) || stat.History[0].CreatedBy != "test layer" {
		t.Errorf("umoci stat: history %+v, want %d test layers", stat.History, len(a.layers))
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, "umoci", "unpack", "--image", dir+":1", bundle)
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "hello.txt")); err != nil || string(got) != "bye\n" {
		t.Errorf("umoci unpack: etc/hello.txt = %q (%v)", got, err)
	}

	// skopeo converts the layout to a docker-archive, which we load back.
	docker := filepath.Join(t.TempDir(), "docker.tar")
	run(t, "skopeo", "copy", "oci:"+dir+":1", "docker-archive:"+docker+":example.com/copy:1")
	f, err := os.Open(docker)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := newStore(t)
	imgs, err := Load(ctx, st, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Config != a.config || !reflect.DeepEqual(diffIDs(imgs[0]), digests(a.diffIDs)) {
		t.Errorf("loaded %+v, want config %s and diffIDs %s", imgs, a.config, a.diffIDs)
	}

	// skopeo adds an image to our layout; exporting again keeps it, and
	// LoadLayout reads every entry.
	run(t, "skopeo", "copy", "docker-archive:"+docker, "oci:"+dir+":copied")
	exportLayout(t, src, dir, nil, a.Image)
	if got := inspect(t, "oci:"+dir+":copied"); got.Layers == nil {
		t.Errorf("skopeo's entry is gone: %+v", got)
	}
	st = newStore(t)
	imgs, err = LoadLayout(ctx, st, dir)
	if err != nil {
		t.Fatal(err)
	}
	configs := map[digest.Digest]bool{}
	for _, l := range imgs {
		configs[l.Config] = true
		checkBlobs(t, st, l)
	}
	if len(imgs) != 3 || !configs[a.config] || !configs[b.config] {
		t.Errorf("LoadLayout: %d images with configs %v, want a's, b's and skopeo's copy of a", len(imgs), configs)
	}
}

func layerDigests(img testImage) []digest.Digest {
	var out []digest.Digest
	for _, l := range img.layers {
		out = append(out, l.Digest)
	}
	return out
}
