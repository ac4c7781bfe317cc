package registry

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/testutil"
	"github.com/builder-project/builder/output"
)

// skopeo runs skopeo with args and returns its output.
func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testutil.RequireTool(t, "skopeo")
	cmd := exec.Command(bin, append([]string{"--insecure-policy"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("skopeo %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("skopeo %v: %v", args, err)
	}
	return out
}

func TestSkopeoReadsWhatBuilderPushed(t *testing.T) {
	t.Parallel()
	testutil.SkipIfShort(t, "runs skopeo")
	testutil.RequireTool(t, "skopeo")
	reg, c, src := start(t)
	for _, docker := range []bool{false, true} {
		spec := twoLayers("skopeo reads")
		spec.docker = docker
		img := makeImage(t, src, spec)
		pushImage(t, c, src, img, reg.Host+"/x:1")
		var info struct {
			Digest string
			Layers []string
		}
		if err := json.Unmarshal(skopeo(t, "inspect", "--tls-verify=false", "docker://"+reg.Host+"/x:1"), &info); err != nil {
			t.Fatal(err)
		}
		if info.Digest != img.Manifest.Digest.String() || len(info.Layers) != 2 || info.Layers[1] != img.Layers[1].Blob.Digest.String() {
			t.Errorf("skopeo sees %+v, want manifest %s", info, img.Manifest.Digest)
		}
		raw := skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+reg.Host+"/x:1")
		if string(raw) != string(mustRead(t, src, img.Manifest)) {
			t.Errorf("skopeo reads other manifest bytes than were pushed:\n%s", raw)
		}
	}
}

func TestBuilderPullsWhatSkopeoPushed(t *testing.T) {
	t.Parallel()
	testutil.SkipIfShort(t, "runs skopeo")
	testutil.RequireTool(t, "skopeo")
	reg, c, src := start(t)
	img := makeImage(t, src, twoLayers("skopeo pushes"))
	layout := filepath.Join(t.TempDir(), "layout")
	if err := output.OCILayout(layout).Export(context.Background(), src, output.Image{Manifest: img.Manifest, Names: []string{"example.com/y:1"}}); err != nil {
		t.Fatal(err)
	}
	skopeo(t, "copy", "--dest-tls-verify=false", "oci:"+layout+":1", "docker://"+reg.Host+"/y:1")
	skopeo(t, "copy", "--dest-tls-verify=false", "--format", "v2s2", "oci:"+layout+":1", "docker://"+reg.Host+"/y:v2s2")

	dst := newStore(t)
	checkPulled(t, dst, pullOne(t, c, dst, reg.Host+"/y:1", PullOptions{}), img)

	// Converted to docker's media types: another manifest, the same image.
	dst = newStore(t)
	p := pullOne(t, c, dst, reg.Host+"/y:v2s2", PullOptions{})
	if p.ID != img.ID || p.Manifest.MediaType != mediatype.DockerManifest {
		t.Errorf("pulled %s (%s), want %s as a docker manifest", p.ID, p.Manifest.MediaType, img.ID)
	}
	for i, l := range p.Layers {
		if l.DiffID != img.Layers[i].DiffID || l.Blob.MediaType != "application/vnd.docker.image.rootfs.diff.tar.gzip" {
			t.Errorf("layer %d pulled as %+v", i, l)
		}
	}
}
