package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

// TestImageCommands runs every image command through the CLI, as a user
// would, and checks what each prints.
func TestImageCommands(t *testing.T) {
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	writeFile(t, tarball, randomTar(t, 3, 1000))

	id := strings.TrimSpace(mustCLI(t, root, nil, "import", "-c", "ENV A=1", "-c", `CMD ["/bin/sh"]`, "-m", "first", tarball, "base:1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q", id)
	}
	// stdin import, dangling.
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	mustCLI(t, root, data, "import", "-", "")
	mustCLI(t, root, nil, "tag", "base:1", "example.com/team/base:2")

	images := mustCLI(t, root, nil, "images")
	for _, want := range []string{"REPOSITORY", "base", "example.com/team/base", "<none>", id[7:19]} {
		if !strings.Contains(images, want) {
			t.Errorf("images output lacks %q:\n%s", want, images)
		}
	}
	if q := strings.Fields(mustCLI(t, root, nil, "images", "-q")); len(q) != 2 {
		t.Errorf("images -q = %v, want 2 IDs", q)
	}
	if d := strings.TrimSpace(mustCLI(t, root, nil, "images", "-q", "--filter", "dangling=true")); d == "" || d == id[7:19] {
		t.Errorf("dangling filter = %q", d)
	}
	if r := strings.TrimSpace(mustCLI(t, root, nil, "images", "-q", "--filter", "reference=example.com/*/*")); r != id[7:19] {
		t.Errorf("reference filter = %q", r)
	}

	var insp []map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, root, nil, "inspect", "base:1")), &insp); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Author", "Config", "Architecture", "Os", "Size", "RootFS", "Metadata"} {
		if _, ok := insp[0][k]; !ok {
			t.Errorf("inspect lacks %s", k)
		}
	}
	if insp[0]["Id"] != id || insp[0]["Comment"] != "first" {
		t.Errorf("inspect = %v", insp[0])
	}
	if h := mustCLI(t, root, nil, "history", "--no-trunc", "base:1"); !strings.Contains(h, "builder import") || !strings.Contains(h, id) {
		t.Errorf("history:\n%s", h)
	}

	dir := t.TempDir()
	mustCLI(t, root, nil, "save", "-o", filepath.Join(dir, "d.tar"), "base:1")
	mustCLI(t, root, nil, "save", "--format", "oci", "-o", filepath.Join(dir, "o.tar"), "base:1")
	mustCLI(t, root, nil, "export", "-o", filepath.Join(dir, "fs.tar"), "base:1")
	if out, err := exec.Command("tar", "-tf", filepath.Join(dir, "fs.tar")).Output(); err != nil || !strings.Contains(string(out), "fa") {
		t.Errorf("export tar: %v %s", err, out)
	}

	rmi := mustCLI(t, root, nil, "rmi", "base:1")
	if !strings.Contains(rmi, "Untagged: base:1") || strings.Contains(rmi, "Deleted") {
		t.Errorf("rmi of one of two tags:\n%s", rmi)
	}
	rmi = mustCLI(t, root, nil, "rmi", "example.com/team/base:2")
	if !strings.Contains(rmi, "Deleted: "+id) {
		t.Errorf("rmi of last tag:\n%s", rmi)
	}
	load := mustCLI(t, root, nil, "load", "-i", filepath.Join(dir, "o.tar"))
	if !strings.Contains(load, "Loaded image: base:1") {
		t.Errorf("load:\n%s", load)
	}
	mustCLI(t, root, nil, "load", "-i", filepath.Join(dir, "d.tar"))
	prune := mustCLI(t, root, nil, "prune", "-f")
	if !strings.Contains(prune, "deleted: sha256:") || !strings.Contains(prune, "Total reclaimed space") {
		t.Errorf("prune:\n%s", prune)
	}
	if left := strings.TrimSpace(mustCLI(t, root, nil, "images", "-q")); left != id[7:19] {
		t.Errorf("after prune, images = %q", left)
	}
}

// TestSaveInterop checks our archives, with the layers as stored and
// compressed with gzip and zstd, with the real skopeo and umoci.
func TestSaveInterop(t *testing.T) {
	testutil.SkipIfShort(t, "interop with skopeo and umoci")
	skopeo := testutil.RequireTool(t, "skopeo")
	umoci := testutil.RequireTool(t, "umoci")
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	writeFile(t, tarball, randomTar(t, 2, 100))
	mustCLI(t, root, nil, "import", tarball, "interop:1")
	for _, c := range []string{"", "gzip", "zstd"} {
		t.Run("compression="+c, func(t *testing.T) {
			dir := t.TempDir()
			save := func(name string, flags ...string) string {
				p := filepath.Join(dir, name)
				if c != "" {
					flags = append(flags, "--compression", c)
				}
				mustCLI(t, root, nil, append(append([]string{"save", "-o", p}, flags...), "interop:1")...)
				return p
			}
			docker, oci := save("d.tar"), save("o.tar", "--format", "oci")
			for _, ref := range []string{"docker-archive:" + docker, "oci-archive:" + oci} {
				if out, err := exec.Command(skopeo, "inspect", ref).CombinedOutput(); err != nil {
					t.Errorf("skopeo inspect %s: %v\n%s", ref, err, out)
				}
			}
			// umoci 0.4 unpacks no zstd layers: skopeo, which must
			// decompress ours to do it, recompresses them with gzip.
			layout := filepath.Join(dir, "layout")
			args := []string{"copy", "oci-archive:" + oci, "oci:" + layout + ":1"}
			if c == "zstd" {
				args = append([]string{"copy", "--dest-compress-format", "gzip"}, args[1:]...)
			}
			if out, err := exec.Command(skopeo, args...).CombinedOutput(); err != nil {
				t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			bundle := filepath.Join(dir, "bundle")
			if out, err := exec.Command(umoci, "unpack", "--image", layout+":1", bundle).CombinedOutput(); err != nil {
				t.Fatalf("umoci unpack: %v\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(bundle, "rootfs", "fa")); err != nil {
				t.Fatalf("umoci rootfs lacks our file: %v", err)
			}
		})
	}
}

// TestLoadLayoutDir loads an OCI image layout directory, by path and as
// oci:DIR, and refuses a directory that is not one, naming it.
func TestLoadLayoutDir(t *testing.T) {
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	writeFile(t, tarball, randomTar(t, 3, 1000))
	id := strings.TrimSpace(mustCLI(t, root, nil, "import", tarball, "app:1"))
	archive := filepath.Join(t.TempDir(), "app.tar")
	mustCLI(t, root, nil, "save", "--format", "oci", "-o", archive, "app:1")
	layout := t.TempDir()
	if out, err := exec.Command("tar", "-xf", archive, "-C", layout).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v: %s", err, out)
	}
	for _, input := range []string{layout, "oci:" + layout} {
		other := t.TempDir()
		out := mustCLI(t, other, nil, "load", "-i", input)
		if !strings.Contains(out, "Loaded image: app:1") {
			t.Errorf("load -i %s printed %q", input, out)
		}
		if got := strings.TrimSpace(mustCLI(t, other, nil, "images", "-q", "--no-trunc")); got != id {
			t.Errorf("load -i %s: images = %q, want %s", input, got, id)
		}
	}
	empty := t.TempDir()
	out, err := cli(t.TempDir(), "load", "-i", empty).CombinedOutput()
	if err == nil || !strings.Contains(string(out), empty) {
		t.Errorf("load of a non-layout dir: %v: %s", err, out)
	}
}
